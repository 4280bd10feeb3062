// axe-core (issue 15) on every state of the page — sign-in (empty, with an
// error, from a link), table, menu, time panel, filter dialog (with and
// without an error), details panel, empty, error and loading states — at
// 1280, 768 and 320 px with the WCAG 2.0/2.1/2.2 A and AA rules: no
// violation, and nothing but the data table scrolls sideways.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openSignedIn, waitForView, screenshot, seedA11yLog, addDays,
  expectNoViolations, expectReflow, SECRET_DESCRIPTION,
} from './helpers.mjs';

const WIDTHS = [
  { width: 1280, height: 800 },
  { width: 768, height: 1024 },
  { width: 320, height: 640 },
];

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

/**
 * Every state of the page at one window size: axe finds no violation of
 * the WCAG 2.0/2.1/2.2 A and AA rules, and nothing but the data table
 * scrolls sideways. Returns how many rule checks passed.
 */
async function auditStates(viewport) {
  let checks = 0;
  const browser = await launchBrowser({ viewport });
  try {
    const w = viewport.width;
    // Sign-in: empty, with an error, and from a link.
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.getByRole('heading', { name: 'Sign in to Audit Logs' }).waitFor();
    checks += await expectNoViolations(page, `sign-in ${w}`);
    await expectReflow(page, `sign-in ${w}`);
    await page.getByLabel('Token').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();
    checks += await expectNoViolations(page, `sign-in error ${w}`);
    await page.close();

    const main = await openSignedIn(browser, server, admin);
    await screenshot(main, `after-main-${w}`);
    checks += await expectNoViolations(main, `table ${w}`);
    await expectReflow(main, `table ${w}`);

    if (w < 961) {
      await main.getByRole('button', { name: 'Menu' }).click();
      await main.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Audit Logs' }).waitFor();
      checks += await expectNoViolations(main, `menu ${w}`);
      await main.keyboard.press('Escape');
    }

    await main.getByRole('button', { name: 'Last 30 Days', exact: true }).click();
    const time = main.getByRole('dialog', { name: 'Select time range' });
    await time.waitFor();
    await screenshot(main, `after-time-${w}`);
    checks += await expectNoViolations(main, `time panel ${w}`);
    await expectReflow(main, `time panel ${w}`);
    await main.keyboard.press('Escape');

    await main.getByRole('button', { name: 'Filter', exact: true }).click();
    const filter = main.getByRole('dialog', { name: 'Filter By' });
    await filter.getByRole('button', { name: '+ Add Filter' }).click();
    await filter.getByRole('button', { name: '+ Add Filter' }).click();
    await screenshot(main, `after-filter-${w}`);
    checks += await expectNoViolations(main, `filter dialog ${w}`);
    await expectReflow(main, `filter dialog ${w}`);
    await filter.getByRole('button', { name: 'Apply' }).click();
    await filter.getByRole('alert').waitFor();
    checks += await expectNoViolations(main, `filter dialog with an error ${w}`);
    await main.keyboard.press('Escape');

    await main.locator('#log-table tr.log-row', { hasText: SECRET_DESCRIPTION }).locator('.row-open').click();
    const details = main.getByRole('dialog', { name: 'Role created' });
    await details.waitFor();
    await details.getByText('•••• 7731').waitFor();
    await screenshot(main, `after-details-${w}`);
    checks += await expectNoViolations(main, `details ${w}`);
    await expectReflow(main, `details ${w}`);
    await main.keyboard.press('Escape');
    await main.close();

    // Empty, filtered, loading and error states.
    const empty = await openSignedIn(browser, server, admin, `?range=custom&from=${addDays(log.today, -500)}&to=${addDays(log.today, -499)}&filter=event:eq:Login`);
    await empty.getByText('No events match this view').waitFor();
    await screenshot(empty, `after-empty-${w}`);
    checks += await expectNoViolations(empty, `empty ${w}`);
    await expectReflow(empty, `empty ${w}`);
    await empty.close();

    const bad = await openSignedIn(browser, server, admin, '?filter=colour:eq:red');
    await bad.locator('.card [role="alert"]').filter({ hasText: 'This view cannot be shown' }).waitFor();
    await screenshot(bad, `after-error-${w}`);
    checks += await expectNoViolations(bad, `error ${w}`);
    await expectReflow(bad, `error ${w}`);
    await bad.close();

    const loading = await browser.newPage();
    let release;
    const held = new Promise((r) => { release = r; });
    await loading.route(/\/v1\/accounts\/acme\/events\?/, async (route) => { await held; await route.continue(); });
    await loading.goto(`${server.url}/#token=${admin}`);
    await loading.getByRole('status').filter({ hasText: 'This link holds' }).waitFor();
    await screenshot(loading, `after-signin-link-${w}`);
    checks += await expectNoViolations(loading, `sign-in from a link ${w}`);
    await expectReflow(loading, `sign-in from a link ${w}`);
    await loading.getByRole('button', { name: 'Sign in' }).click();
    await loading.getByText('Loading events…').waitFor();
    checks += await expectNoViolations(loading, `loading ${w}`);
    release();
    await waitForView(loading);
    await loading.close();

    assert.deepEqual(browser.problems, [], 'no script error and no CSP violation');
  } finally {
    await browser.close();
  }
  return checks;
}

for (const viewport of WIDTHS) {
  test(`axe finds no WCAG 2.2 A/AA violation in any state at ${viewport.width} px, and nothing scrolls sideways`, async () => {
    const checks = await auditStates(viewport);
    assert.ok(checks > 100, `axe ran its checks (${checks} passing rule results)`);
  });
}
