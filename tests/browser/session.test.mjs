// Signing in and out, the demo link (it only fills in the form), what the page says when the token is
// bad or the server is gone, and the page's security headers.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openSignedIn, waitForView, screenshot, loadCatalog, eventBody, ingest,
} from './helpers.mjs';

let server;
let browser;
let admin;

before(async () => {
  server = await startServer();
  admin = server.token('admin');
  const catalog = await loadCatalog(server, admin);
  await ingest(server, server.token('ingest'), [
    eventBody(catalog, { category: 'Roles', event: 'Role created', occurred_at: new Date(Date.now() - 3_600_000).toISOString() }),
  ]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the page is served with a strict Content-Security-Policy', async () => {
  const res = await fetch(`${server.url}/`);
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') || '';
  for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]) {
    assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
  }
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const html = await res.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  assert.doesNotMatch(html, /<style|\sstyle=/, 'no inline style');
});

test('sign in with the Token field; a wrong token says so; sign out', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/`);
  await page.getByRole('heading', { name: 'Sign in to Audit Logs' }).waitFor();
  await screenshot(page, 'signin');
  await page.getByLabel('Token').fill('not-a-real-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'This token is not valid' }).waitFor();

  await page.getByLabel('Token').fill(admin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForView(page);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('auditlog.token')), admin);
  assert.equal(await page.locator('#account-badge').textContent(), 'acme');
  assert.equal(await page.locator('#event-count').textContent(), '1 event');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Audit Logs' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('auditlog.token')), null);
  await page.close();
});

test('a #token= link only fills in the token: it names the account and waits for Sign in', async () => {
  const page = await browser.newPage();
  const urls = [];
  page.on('request', (r) => urls.push(r.url()));
  await page.goto(`${server.url}/?range=all_time#token=${admin}`);
  const info = page.getByRole('status').filter({ hasText: 'This link holds an admin token for the account “acme”' });
  await info.waitFor();
  assert.equal(new URL(page.url()).hash, '', 'the fragment is dropped from the address bar');
  // Not signed in: no session, no log on screen, the token waiting in its field.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('auditlog.token')), null);
  assert.equal(await page.locator('#shell').isVisible(), false);
  assert.equal(await page.getByLabel('Token').inputValue(), admin);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'signin-submit');
  await screenshot(page, 'signin-link');
  await page.keyboard.press('Enter');
  await waitForView(page);
  assert.equal(await page.locator('#account-badge').textContent(), 'acme');
  assert.match(page.url(), /range=all_time/, "the link's view is kept");
  assert.ok(urls.length > 3);
  for (const u of urls) assert.ok(!u.includes(admin), `token not in ${u}`);
  // Every API call carried the token in the Authorization header instead.
  await page.close();
});

test('a link with a bad or ingest-only token says so and signs nobody in', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/#token=not-a-real-token`);
  await page.getByRole('alert').filter({ hasText: 'The token in this link is not valid' }).waitFor();
  // (A new document: a change of fragment alone is not a page load.)
  await page.goto('about:blank');
  await page.goto(`${server.url}/#token=${server.token('ingest')}`);
  await page.getByRole('alert').filter({ hasText: 'can only write events' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('auditlog.token')), null);
  await page.close();
});

test('an expired or revoked token sends the user back to sign in with a message', async () => {
  const page = await openSignedIn(browser, server, admin);
  await page.evaluate(() => sessionStorage.setItem('auditlog.token', 'revoked-token'));
  await page.reload();
  const alert = page.getByRole('alert').filter({ hasText: 'Your session has expired or the token is invalid — sign in again' });
  await alert.waitFor();
  await page.getByLabel('Token').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('auditlog.token')), null);
  await screenshot(page, 'signin-expired');
  await page.close();
});

test('a token with only the ingest role cannot open the dashboard', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/`);
  await page.getByLabel('Token').fill(server.token('ingest'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'not allowed to read the audit log' }).waitFor();
  await page.close();
});

test('loading and empty states say what is happening', async () => {
  const page = await browser.newPage();
  // Hold the list back for a moment to see the loading state.
  let release;
  const held = new Promise((r) => { release = r; });
  await page.route(/\/v1\/accounts\/acme\/events\?/, async (route) => { await held; await route.continue(); });
  await page.goto(`${server.url}/?range=yesterday#token=${admin}`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Loading events…').waitFor();
  assert.equal(await page.locator('#log-table').getAttribute('aria-busy'), 'true');
  await screenshot(page, 'loading');
  release();
  await waitForView(page);
  await page.getByText('No events match this view').waitFor();
  await page.getByRole('button', { name: 'Show All Time' }).waitFor();
  await screenshot(page, 'empty');
  await page.getByRole('button', { name: 'Show All Time' }).click();
  await waitForView(page);
  assert.equal(await page.locator('#event-count').textContent(), '1 event');
  await page.close();
});

test('a token for every account asks which Account to open, and the link keeps it', async () => {
  const any = server.token('read', '*');
  const page = await browser.newPage();
  await page.goto(`${server.url}/`);
  await page.getByLabel('Token').fill(any);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('status').filter({ hasText: 'This token can read every account' }).waitFor();
  const account = page.getByLabel('Account', { exact: true });
  await account.fill('Not An Id!');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'An account id is lowercase' }).waitFor();
  await account.fill('acme');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForView(page);
  assert.equal(await page.locator('#account-badge').textContent(), 'acme');
  assert.equal(new URL(page.url()).searchParams.get('account'), 'acme');
  await page.reload();
  await waitForView(page);
  assert.equal(await page.locator('#account-badge').textContent(), 'acme');
  await page.close();
});

test('when the server is unreachable the page says so', async () => {
  const page = await openSignedIn(browser, server, admin);
  await server.stop();
  await page.getByRole('button', { name: 'Last 30 Days', exact: true }).click();
  const panel = page.getByRole('dialog', { name: 'Select time range' });
  await panel.getByRole('button', { name: 'Today', exact: true }).click();
  await panel.getByRole('button', { name: 'Apply' }).click();
  const alert = page.locator('.card [role="alert"]');
  await alert.filter({ hasText: 'Cannot reach the server' }).waitFor();
  await page.getByRole('button', { name: 'Try again' }).waitFor();
  await screenshot(page, 'error-unreachable');
  await page.close();
  // Network failures are logged by Chromium itself; they are expected here.
  browser.problems.length = 0;
});
