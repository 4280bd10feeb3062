// The Filter By dialog: AND and OR sets, chips, suggestions, keyboard-only
// use, and a filter the server refuses.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openSignedIn, waitForView, shownCount, screenshot,
  seedStandardLog, expectedCount, countText,
} from './helpers.mjs';

let server;
let browser;
let admin;
let log;

before(async () => {
  server = await startServer();
  admin = server.token('admin');
  log = await seedStandardLog(server, server.token('ingest'), admin);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const ALL_TIME = '?range=all_time';

/** Fills filter row `i` of the open dialog. */
async function fillRow(dialog, i, column, operator, value) {
  await dialog.getByRole('combobox', { name: 'Select Column' }).nth(i).selectOption({ label: column });
  await dialog.getByRole('combobox', { name: 'Select Operator' }).nth(i).selectOption({ label: operator });
  await dialog.getByRole('combobox', { name: 'Enter Value' }).nth(i).fill(value);
}

test('an AND filter set: every condition must hold', async () => {
  const page = await openSignedIn(browser, server, admin, ALL_TIME);
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Filter By' });
  await dialog.getByRole('button', { name: '+ Add Filter' }).click();
  await fillRow(dialog, 0, 'Event', 'Is Equal To', 'Role created');
  await dialog.getByRole('button', { name: '+ Add Filter' }).click();
  await fillRow(dialog, 1, 'User', 'Is Not Equal To', 'priya nair');
  assert.equal(await dialog.getByRole('radio', { name: 'AND' }).isChecked(), true);
  await screenshot(page, 'filter-dialog');
  await dialog.getByRole('button', { name: 'Apply' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await waitForView(page);
  const expected = expectedCount(log.bodies, { filters: [['event', 'eq', 'Role created'], ['user', 'ne', 'priya nair']], join: 'and' });
  assert.ok(expected > 0);
  assert.equal(await shownCount(page), expected);
  const events = await page.locator('#log-table tbody .row-open').allTextContents();
  assert.ok(events.every((e) => e === 'Role created'));
  assert.deepEqual(await page.locator('.chip').allTextContents(), ['EventIs Equal ToRole created', 'UserIs Not Equal Topriya nair']);
  assert.match(page.url(), /filter=event%3Aeq%3ARole\+created&filter=user%3Ane%3Apriya\+nair&join=and/);
  await page.close();
});

test('an OR filter set, then removing chips one by one', async () => {
  const page = await openSignedIn(browser, server, admin, ALL_TIME);
  const all = await shownCount(page);
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Filter By' });
  await dialog.getByRole('button', { name: '+ Add Filter' }).click();
  await fillRow(dialog, 0, 'Event', 'Is Equal To', 'Login');
  await dialog.getByRole('button', { name: '+ Add Filter' }).click();
  await fillRow(dialog, 1, 'Category', 'Is Equal To', 'Dataset');
  await dialog.getByRole('radio', { name: 'OR' }).click();
  assert.equal(await dialog.getByRole('radio', { name: 'OR' }).isChecked(), true);
  assert.equal(await dialog.getByRole('radio', { name: 'AND' }).isChecked(), false);
  await dialog.getByRole('button', { name: 'Apply' }).click();
  await waitForView(page);
  const filters = [['event', 'eq', 'Login'], ['category', 'eq', 'Dataset']];
  assert.equal(await shownCount(page), expectedCount(log.bodies, { filters, join: 'or' }));
  assert.match(page.url(), /join=or/);
  await screenshot(page, 'filtered-or');

  // Remove the first chip: only the category filter remains.
  await page.getByRole('button', { name: 'Remove filter Event Is Equal To Login' }).click();
  await waitForView(page);
  assert.equal(await page.locator('.chip').count(), 1);
  assert.equal(await shownCount(page), expectedCount(log.bodies, { filters: [filters[1]] }));
  // Focus stays on the chips, for keyboard users.
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Remove filter Category Is Equal To Dataset');
  await page.keyboard.press('Enter');
  await waitForView(page);
  assert.equal(await page.locator('.chip').count(), 0);
  assert.equal(await shownCount(page), all);
  assert.doesNotMatch(page.url(), /filter=/);
  await page.close();
});

test('suggestions: event and category names from the catalog, user names from the log', async () => {
  const page = await openSignedIn(browser, server, admin, ALL_TIME);
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Filter By' });
  await dialog.getByRole('button', { name: '+ Add Filter' }).click();
  const options = () => dialog.locator('datalist option').evaluateAll((els) => els.map((e) => e.value));
  await page.waitForFunction(() => document.querySelectorAll('#filter-dialog datalist option').length > 50);
  const events = await options();
  for (const name of ['Role created', 'Login', 'Workflow deployed', 'Input scanner added']) assert.ok(events.includes(name), name);
  await dialog.getByRole('combobox', { name: 'Select Column' }).selectOption({ label: 'Category' });
  await page.waitForFunction(() => [...document.querySelectorAll('#filter-dialog datalist option')].some((o) => o.value === 'Login/Logout'));
  await dialog.getByRole('combobox', { name: 'Select Column' }).selectOption({ label: 'User' });
  await page.waitForFunction(() => [...document.querySelectorAll('#filter-dialog datalist option')].some((o) => o.value === 'Priya Nair'));
  await dialog.getByRole('combobox', { name: 'Enter Value' }).fill('Ra');
  await page.waitForFunction(() => {
    const v = [...document.querySelectorAll('#filter-dialog datalist option')].map((o) => o.value);
    return v.includes('Rahul Mehta') && !v.includes('Priya Nair');
  });
  await page.keyboard.press('Escape');
  await page.close();
});

test('keyboard only: open Filter, add and fill a row, switch to OR, trap focus, apply, Escape cancels', async () => {
  const page = await openSignedIn(browser, server, admin, ALL_TIME);
  // A plain reading of the focused control's accessible name: its
  // aria-label, else its text without the parts hidden from assistive tech.
  const active = () => page.evaluate(() => {
    const el = document.activeElement;
    if (!el) return '';
    if (el.getAttribute('aria-label')) return el.getAttribute('aria-label');
    if (el.labels?.length) return el.labels[0].textContent.trim();
    const copy = el.cloneNode(true);
    copy.querySelectorAll('[aria-hidden="true"]').forEach((x) => x.remove());
    return copy.textContent.trim();
  });
  // Tab from the top of the page to the Filter button.
  let reached = false;
  for (let i = 0; i < 40 && !reached; i += 1) {
    await page.keyboard.press('Tab');
    reached = (await active()) === 'Filter';
  }
  assert.ok(reached, 'Filter is reachable with Tab');
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Filter By' });
  await dialog.waitFor();
  assert.equal(await active(), '+ Add Filter');
  await page.keyboard.press('Enter');
  assert.equal(await active(), 'Select Column');
  await page.keyboard.press('ArrowDown'); // Event → Category
  await page.keyboard.press('Tab');
  assert.equal(await active(), 'Select Operator');
  await page.keyboard.press('Tab');
  assert.equal(await active(), 'Enter Value');
  await page.keyboard.type('Roles');
  await page.keyboard.press('Tab'); // remove-row button
  await page.keyboard.press('Tab'); // + Add Filter
  assert.equal(await active(), '+ Add Filter');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.type('Login');
  // Shift+Tab back to the AND/OR radio group, and the arrow key selects OR.
  for (let i = 0; i < 12 && (await active()) !== 'AND'; i += 1) await page.keyboard.press('Shift+Tab');
  assert.equal(await active(), 'AND');
  await page.keyboard.press('ArrowRight');
  assert.equal(await active(), 'OR');
  assert.equal(await dialog.getByRole('radio', { name: 'OR' }).isChecked(), true);

  // Focus is trapped: 30 Tabs never leave the dialog.
  for (let i = 0; i < 30; i += 1) {
    await page.keyboard.press('Tab');
    assert.ok(await page.evaluate(() => document.getElementById('filter-dialog').contains(document.activeElement)), 'focus stays in the dialog');
  }
  // Walk to Apply and press it.
  for (let i = 0; i < 20 && (await active()) !== 'Apply'; i += 1) await page.keyboard.press('Tab');
  assert.equal(await active(), 'Apply');
  await page.keyboard.press('Enter');
  await dialog.waitFor({ state: 'hidden' });
  await waitForView(page);
  const filters = [['category', 'eq', 'Roles'], ['event', 'eq', 'Login']];
  assert.equal(await shownCount(page), expectedCount(log.bodies, { filters, join: 'or' }));
  assert.equal(await active(), 'Filter, 2 active', 'focus returns to the Filter button, which says how many filters are on');
  await page.getByRole('button', { name: 'Filter, 2 active', exact: true }).waitFor();

  // Escape closes without applying the draft.
  const before = page.url();
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  assert.equal(await active(), 'Select Column', 'focus starts on the first row');
  await page.keyboard.press('ArrowDown'); // a change in the draft…
  await page.keyboard.press('Escape'); // …that Escape throws away
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(page.url(), before);
  assert.equal(await active(), 'Filter, 2 active');
  await page.close();
});

test('an empty value is flagged in the dialog; a filter the server refuses says why', async () => {
  const page = await openSignedIn(browser, server, admin, ALL_TIME);
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Filter By' });
  await dialog.getByRole('button', { name: '+ Add Filter' }).click();
  await dialog.getByRole('button', { name: 'Apply' }).click();
  await dialog.getByText('Enter a value for every filter').waitFor();
  assert.equal(await dialog.getByRole('combobox', { name: 'Enter Value' }).getAttribute('aria-invalid'), 'true');
  await dialog.getByRole('button', { name: 'Remove filter 1' }).click();
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  // A hand-edited link with an unknown column: the server's 400 is shown.
  await page.goto(`${server.url}/?range=all_time&filter=colour%3Aeq%3Ared`);
  await waitForView(page);
  const alert = page.locator('.card [role="alert"]');
  await alert.waitFor();
  const text = await alert.textContent();
  assert.match(text, /This view cannot be shown/);
  assert.match(text, /colour/);
  await screenshot(page, 'error-bad-filter');
  await page.getByRole('button', { name: 'Reset view' }).click();
  await waitForView(page);
  assert.equal(await page.locator('#event-count').textContent(), countText(await shownCount(page)));
  assert.equal(await page.locator('.chip').count(), 0);
  await page.close();
  assert.deepEqual(browser.problems, [], 'no script error and no CSP violation in this file');
});

test('a search past the record-read cap says it is too broad, and offers no retry', async () => {
  // A server that reads at most one stored event to check a description.
  const narrow = await startServer(['--query-max-record-reads', '1']);
  try {
    const token = narrow.token('admin');
    await seedStandardLog(narrow, narrow.token('ingest'), token);
    const page = await openSignedIn(browser, narrow, token, `${ALL_TIME}&filter=description%3Acontains%3Aa`);
    const alert = page.locator('.card [role="alert"]');
    await alert.filter({ hasText: 'This search is too broad' }).waitFor();
    assert.match(await alert.textContent(), /narrow/i);
    // The same request would be refused again: no "Try again", but a way out.
    assert.equal(await alert.getByRole('button', { name: 'Try again' }).count(), 0);
    await alert.getByRole('button', { name: 'Edit filters' }).waitFor();
    await screenshot(page, 'error-too-broad');
    await alert.getByRole('button', { name: 'Reset view' }).click();
    await waitForView(page);
    assert.equal(await page.locator('.chip').count(), 0);
    await page.close();
  } finally {
    await narrow.stop();
  }
});
