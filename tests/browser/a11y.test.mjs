// Accessibility (issue 15) beyond what axe sees: where the keyboard focus
// goes after each action and that its ring is visible, the table taking the
// window's height, a keyboard-only walk, the two-month calendar, the zone
// and account read once; the details panel's view of a secret kept as a
// fingerprint (issue 16); the histogram's buckets (issue 11). axe itself
// runs in a11y-axe.test.mjs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  startServer, launchBrowser, openSignedIn, waitForView, shownCount, rowCount, screenshot,
  seedA11yLog, expectedCount, presetSpan, longDate, loadCatalog, eventBody, ingest, shortDate,
  expectReflow, expectFocusOn, tabTo, FINGERPRINT, SECRET_DESCRIPTION,
} from './helpers.mjs';

let server;
let admin;
let log;

before(async () => {
  server = await startServer();
  admin = server.token('admin');
  log = await seedA11yLog(server, server.token('ingest'), admin);
});

after(async () => {
  await server?.stop();
});

test('at 1280×800 the table takes the height: one scrollbar, the page itself does not scroll', async (t) => {
  const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });
  t.after(() => browser.close());
  const page = await openSignedIn(browser, server, admin);
  const m = await page.evaluate(() => {
    const wrap = document.querySelector('.table-wrap');
    const rows = [...document.querySelectorAll('#log-table tr.log-row')];
    const box = wrap.getBoundingClientRect();
    const head = document.querySelector('#log-table thead').getBoundingClientRect();
    const whole = rows.filter((r) => { const b = r.getBoundingClientRect(); return b.top >= head.bottom - 1 && b.bottom <= box.bottom + 1; });
    return {
      page: document.scrollingElement.scrollHeight, win: window.innerHeight,
      wrapScrolls: wrap.scrollHeight > wrap.clientHeight, whole: whole.length, bottom: Math.round(box.bottom),
    };
  });
  assert.ok(m.page <= m.win, `the page does not scroll: ${JSON.stringify(m)}`);
  assert.ok(m.wrapScrolls, 'the table scrolls in its own box');
  assert.ok(m.whole >= 7, `at least 7 whole rows on screen: ${JSON.stringify(m)}`);
  await page.close();
});

test('after every action the focus lands on a sensible control and its focus ring shows', async (t) => {
  const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });
  t.after(() => browser.close());
  const page = await openSignedIn(browser, server, admin);
  // Keyboard use from here on: Tab once so the browser shows focus rings.
  await page.keyboard.press('Tab');

  // Rings on the controls the audit found without one.
  await tabTo(page, 'Last 30 Days');
  await expectFocusOn(page, 'Last 30 Days', 'time button');
  await tabTo(page, 'Filter');
  await expectFocusOn(page, 'Filter', 'Filter button');
  await tabTo(page, 'Export');
  await expectFocusOn(page, 'Export', 'Export button');

  // Export: the button stays focused while the file downloads, and after.
  const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
  await expectFocusOn(page, /^Export/, 'during export');
  await download.path();
  await page.locator('#export-button:not([aria-disabled])').waitFor();
  await expectFocusOn(page, 'Export', 'after export');

  // A histogram bar: Enter narrows the view to its day; focus goes to the
  // time button, which names the new range.
  await tabTo(page, /: \d+ events?$/);
  await expectFocusOn(page, /: \d+ events?$/, 'histogram bar');
  await page.keyboard.press('Enter');
  await waitForView(page);
  await expectFocusOn(page, shortDate(log.today), 'after Enter on a bar');
  assert.match(page.url(), /range=custom/);

  // The time panel: a preset chosen with Enter keeps the focus on it; the
  // Apply button and today's date show their rings.
  await page.keyboard.press('Enter');
  const time = page.getByRole('dialog', { name: 'Select time range' });
  await time.waitFor();
  await tabTo(page, 'Last 30 Days');
  await page.keyboard.press('Enter');
  await expectFocusOn(page, 'Last 30 Days', 'after choosing a preset');
  assert.equal(await time.getByRole('button', { name: 'Last 30 Days' }).getAttribute('aria-pressed'), 'true');
  await tabTo(page, /, today$/);
  await expectFocusOn(page, /, today$/, "today's date");
  await tabTo(page, 'Apply');
  await expectFocusOn(page, 'Apply', 'time panel Apply');
  await page.keyboard.press('Enter');
  await time.waitFor({ state: 'hidden' });
  await waitForView(page);
  await expectFocusOn(page, 'Last 30 Days', 'after applying the time panel');

  // The filter dialog: the selected AND/OR and Apply show their rings.
  await tabTo(page, 'Filter');
  await page.keyboard.press('Enter');
  const filter = page.getByRole('dialog', { name: 'Filter By' });
  await filter.waitFor();
  await page.keyboard.press('Enter'); // + Add Filter
  await tabTo(page, 'Enter Value');
  await page.keyboard.type('Role created');
  await page.keyboard.press('Enter'); // Enter in a value applies
  await filter.waitFor({ state: 'hidden' });
  await waitForView(page);
  await expectFocusOn(page, 'Filter, 1 active', 'after applying filters');
  await page.keyboard.press('Enter');
  await filter.waitFor();
  await tabTo(page, 'AND', { back: true });
  await expectFocusOn(page, 'AND', 'the selected AND/OR radio');
  await tabTo(page, 'Apply');
  await expectFocusOn(page, 'Apply', 'filter dialog Apply');
  await page.keyboard.press('Escape');
  await filter.waitFor({ state: 'hidden' });

  // Clear filters: the chips go away; focus moves to the Filter button.
  await tabTo(page, 'Clear filters');
  await expectFocusOn(page, 'Clear filters', 'Clear filters');
  await page.keyboard.press('Enter');
  await waitForView(page);
  await expectFocusOn(page, 'Filter', 'after Clear filters');

  // Load more: the next page's first row takes the focus. (Reached
  // directly: Tab through the rows scrolls the table, which loads the next
  // page by itself.)
  await page.locator('#load-more').focus();
  await expectFocusOn(page, 'Load more', 'Load more');
  const before = await rowCount(page);
  await page.keyboard.press('Enter');
  await page.waitForFunction((n) => document.querySelectorAll('#log-table tr.log-row').length > n, before);
  await page.waitForFunction(() => document.activeElement?.classList.contains('row-open'));
  const index = await page.evaluate(() => document.activeElement.closest('tr').dataset.index);
  assert.equal(Number(index), before, 'focus on the first new row');
  await expectFocusOn(page, /.+/, 'after Load more');

  // A row's details: Escape returns to the row.
  await page.keyboard.press('Enter');
  const details = page.getByRole('dialog');
  await details.waitFor();
  await expectFocusOn(page, 'Close', 'details panel');
  await page.keyboard.press('Escape');
  await details.waitFor({ state: 'hidden' });
  await expectFocusOn(page, /.+/, 'after closing the details');
  assert.equal(await page.evaluate(() => document.activeElement.closest('tr')?.dataset.index), index);

  assert.deepEqual(browser.problems, []);
  await page.close();
});

test('keyboard only: file a filter, pick a preset, open a row and export without a mouse', async (t) => {
  const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });
  t.after(() => browser.close());
  const page = await browser.newPage();
  // Sign in from the demo link with the keyboard alone.
  await page.goto(`${server.url}/#token=${admin}`);
  await page.getByRole('status').filter({ hasText: 'This link holds an admin token for the account “acme”' }).waitFor();
  await expectFocusOn(page, 'Sign in', 'the link waits on Sign in');
  await page.keyboard.press('Enter');
  await waitForView(page);
  // The form is gone: the focus is on the log's heading, not on <body>.
  assert.equal(await page.evaluate(() => document.activeElement.tagName + document.activeElement.textContent), 'H1Audit Logs');

  // On a fresh load, the first Tab reaches the skip link, which takes the
  // focus to the log.
  await page.reload();
  await waitForView(page);
  await page.keyboard.press('Tab');
  await expectFocusOn(page, 'Skip to content', 'skip link');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  assert.doesNotMatch(page.url(), /#/, 'no fragment navigation');

  // File a filter: Category Is Equal To Roles.
  await tabTo(page, 'Filter');
  await page.keyboard.press('Enter');
  const filter = page.getByRole('dialog', { name: 'Filter By' });
  await filter.waitFor();
  await page.keyboard.press('Enter'); // + Add Filter
  await expectFocusOn(page, 'Select Column', 'new filter row');
  await page.keyboard.press('ArrowDown'); // Event → Category
  await tabTo(page, 'Enter Value');
  await page.keyboard.type('Roles');
  await tabTo(page, 'Apply');
  await page.keyboard.press('Enter');
  await filter.waitFor({ state: 'hidden' });
  await waitForView(page);

  // Pick a preset: Last 90 Days.
  await tabTo(page, 'Last 30 Days', { back: true });
  await page.keyboard.press('Enter');
  const time = page.getByRole('dialog', { name: 'Select time range' });
  await time.waitFor();
  await tabTo(page, 'Last 90 Days');
  await page.keyboard.press('Enter');
  await tabTo(page, 'Apply');
  await page.keyboard.press('Enter');
  await time.waitFor({ state: 'hidden' });
  await waitForView(page);
  const span = presetSpan('last_90_days', log.today);
  const expected = expectedCount(log.bodies, { span, filters: [['category', 'eq', 'Roles']] });
  assert.equal(await shownCount(page), expected);

  // Open a row.
  await tabTo(page, 'Role created');
  await page.keyboard.press('Enter');
  const details = page.getByRole('dialog', { name: 'Role created' });
  await details.waitFor();
  await page.keyboard.press('Escape');
  await details.waitFor({ state: 'hidden' });
  await expectFocusOn(page, 'Role created', 'back on the row');

  // Export.
  await tabTo(page, 'Export', { back: true });
  const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
  assert.equal(download.suggestedFilename(), 'Account_Audit_Logs.csv');
  const csv = fs.readFileSync(await download.path(), 'utf8');
  assert.equal(csv.trim().split('\r\n').length, expected + 1);
  assert.deepEqual(browser.problems, []);
  await page.close();
});

test('the details panel shows a secret kept as a fingerprint as "•••• 7731", the fingerprint on hover, in its name and one press from the clipboard', async (t) => {
  const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });
  t.after(() => browser.close());
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  const page = await openSignedIn(browser, server, admin);
  await page.locator('#log-table tr.log-row', { hasText: SECRET_DESCRIPTION }).locator('.row-open').click();
  const panel = page.getByRole('dialog', { name: 'Role created' });
  await panel.waitFor();
  const dd = (label) => panel.locator('dt', { hasText: label }).locator('xpath=following-sibling::dd[1]');

  const secret = dd('Note fp');
  assert.equal(await secret.locator('.secret-mask').textContent(), '•••• 7731');
  assert.equal(await secret.locator('.secret-mask').getAttribute('title'), `Fingerprint ${FINGERPRINT}`);
  // What a screen reader reads: the last four and the fingerprint, not dots.
  const snapshot = await secret.ariaSnapshot();
  assert.match(snapshot, new RegExp(`Secret ending in 7731, kept as fingerprint ${FINGERPRINT}`));
  assert.doesNotMatch(snapshot, /••••/);
  assert.ok(!(await panel.textContent()).includes('[REDACTED'), 'the raw stored form is not shown');

  // Without the last four: dots only.
  assert.equal(await dd('Other fp').locator('.secret-mask').textContent(), '••••');

  // A URL whose credentials were replaced is shown as it is stored.
  assert.equal(await dd('Hook url').textContent(), log.secretRecord.metadata.hook_url);

  // Copy: the fingerprint, to match against the credential one holds.
  await secret.getByRole('button', { name: 'Copy fingerprint of Note fp' }).click();
  await page.getByRole('status').filter({ hasText: `Copied fingerprint ${FINGERPRINT}` }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), FINGERPRINT);
  await screenshot(page, 'details-fingerprint');
  assert.deepEqual(browser.problems, []);
  await page.close();
});

test('the time panel shows two months, so the start of Last 30 Days is on screen, and This Week is filled up to today only', async (t) => {
  const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });
  t.after(() => browser.close());
  const page = await openSignedIn(browser, server, admin);
  await page.getByRole('button', { name: 'Last 30 Days', exact: true }).click();
  const panel = page.getByRole('dialog', { name: 'Select time range' });
  const [from, to] = presetSpan('last_30_days', log.today);
  assert.equal(await panel.getByRole('grid').count(), 2);
  assert.ok(await panel.getByRole('button', { name: longDate(from), exact: true }).isVisible(), 'the start date is visible');
  assert.ok(await panel.getByRole('button', { name: `${longDate(to)}, today`, exact: true }).isVisible(), 'today is visible');
  assert.equal(await panel.locator('td.range-start button').getAttribute('aria-label'), longDate(from));

  await panel.getByRole('button', { name: 'This Week', exact: true }).click();
  assert.equal(await panel.locator('td.range-end button').getAttribute('aria-label'), `${longDate(log.today)}, today`);
  for (const cell of await panel.locator('td[aria-selected="true"] button').all()) {
    assert.equal(await cell.isDisabled(), false, 'no future day is drawn as chosen');
  }
  await screenshot(page, 'time-panel-this-week');
  await page.close();
});

test('a viewer in UTC reads the zone once; the account is named in the top bar', async (t) => {
  const browser = await launchBrowser({ viewport: { width: 1280, height: 800 }, timezoneId: 'UTC' });
  t.after(() => browser.close());
  const page = await openSignedIn(browser, server, admin);
  const zone = (await page.locator('.zone').innerText()).replace(/\s+/g, ' ');
  assert.doesNotMatch(zone, /UTC\+00:00/, zone);
  assert.match(await page.getByLabel('Time zone').inputValue(), /^(Etc\/)?UTC$/);
  assert.equal((await page.locator('.account-badge').textContent()).trim(), 'Account: acme');
  await page.close();
});

test('All Time asks for bucket=auto and labels the bars by the bucket the server chose', async (t) => {
  // An account whose log spans decades: the server picks month or year
  // buckets when it knows how (bucket=auto with week/month/year).
  const ingestToken = server.token('ingest', 'oldco');
  const reader = server.token('read', 'oldco');
  const catalog = await loadCatalog(server, admin);
  try {
    await ingest(server, ingestToken, [
      eventBody(catalog, { category: 'Login/Logout', event: 'Login', occurred_at: '1998-03-02T10:00:00Z' }),
      eventBody(catalog, { category: 'Login/Logout', event: 'Login', occurred_at: new Date(Date.now() - 60_000).toISOString() }),
    ], 'oldco');
  } catch (e) {
    t.skip(`this server refuses a 1998 event: ${e.message.slice(0, 120)}`);
    return;
  }
  const res = await fetch(`${server.url}/v1/accounts/oldco/events/histogram?range=all_time&bucket=auto&tz=UTC`, {
    headers: { Authorization: `Bearer ${reader}` },
  });
  const body = res.ok ? await res.json() : null;
  if (!body || !['week', 'month', 'year'].includes(body.bucket)) {
    t.skip(`this server has no coarse buckets yet (bucket=auto answered ${res.status} ${body?.bucket ?? ''})`);
    return;
  }
  const browser = await launchBrowser({ viewport: { width: 1280, height: 800 }, timezoneId: 'UTC' });
  t.after(() => browser.close());
  const page = await openSignedIn(browser, server, reader, '?range=all_time&tz=UTC');
  await page.locator('#histogram-title', { hasText: `Events per ${body.bucket}` }).waitFor();
  const first = await page.locator('.histogram-bars .bar').first().getAttribute('aria-label');
  const expected = { week: /^Week of /, month: /^\w+ 1998: /, year: /^1998: / }[body.bucket];
  assert.match(first, expected);
  await page.close();
});

test('a server that refuses bucket=auto gets a second request for days, and the histogram still shows', async (t) => {
  const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });
  t.after(() => browser.close());
  const page = await browser.newPage();
  // An older server: the real one, asked for a bucket it does not know
  // (the request is rewritten, the answer is the server's own 400).
  const asked = [];
  await page.route(/\/histogram\?/, async (route) => {
    const url = new URL(route.request().url());
    asked.push(url.searchParams.get('bucket'));
    if (url.searchParams.get('bucket') === 'auto') url.searchParams.set('bucket', 'fortnight');
    await route.continue({ url: url.toString() });
  });
  await page.goto(`${server.url}/#token=${admin}`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForView(page);
  await page.locator('#histogram-title', { hasText: 'Events per day' }).waitFor();
  assert.equal(await page.locator('.histogram-bars .bar').count(), 30);
  assert.deepEqual(asked, ['auto', 'day']);
  assert.equal(await page.locator('.card .banner').isHidden(), true, 'no error shown');
  await page.close();
});

test('at 400 px nothing scrolls sideways either; the sign-in page has a skip link that works', async (t) => {
  const browser = await launchBrowser({ viewport: { width: 400, height: 800 } });
  t.after(() => browser.close());
  const signin = await browser.newPage();
  await signin.goto(`${server.url}/`);
  await signin.getByRole('heading', { name: 'Sign in to Audit Logs' }).waitFor();
  // The page puts the focus in the Token field; the skip link is before it.
  await signin.waitForFunction(() => document.activeElement?.id === 'token-input');
  await signin.keyboard.press('Shift+Tab');
  await expectFocusOn(signin, 'Skip to content', 'skip link on the sign-in page');
  await signin.keyboard.press('Enter');
  assert.equal(await signin.evaluate(() => document.activeElement.id), 'signin');
  await signin.keyboard.press('Tab');
  await expectFocusOn(signin, 'Token', 'the first field after the skip');
  await signin.close();

  const page = await openSignedIn(browser, server, admin);
  await expectReflow(page, 'table 400');
  await page.getByRole('button', { name: 'Last 30 Days', exact: true }).click();
  await expectReflow(page, 'time panel 400');
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  await page.getByRole('button', { name: '+ Add Filter' }).click();
  await expectReflow(page, 'filter dialog 400');
  await page.keyboard.press('Escape');
  // The top bar: the product name, the account and Sign out do not overlap.
  const boxes = await page.evaluate(() => ['.topnav-item', '.account-badge', '#sign-out']
    .map((s) => document.querySelector(s).getBoundingClientRect()).map((r) => [r.left, r.right]));
  for (let i = 1; i < boxes.length; i += 1) assert.ok(boxes[i - 1][1] <= boxes[i][0], `top bar items apart: ${JSON.stringify(boxes)}`);
  await page.close();
});
