// The main view: table, presets, calendar, histogram, details, load more,
// reload from the URL, export, and markup in events shown as text.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  startServer, launchBrowser, openSignedIn, waitForView, shownCount, rowCount, screenshot,
  seedStandardLog, expectedCount, presetSpan, addDays, longDate, shortDate, countText, parseCsv,
  api, XSS, TZ,
} from './helpers.mjs';

let server;
let browser;
let admin;
let log;

before(async () => {
  server = await startServer();
  admin = server.token('admin');
  const ingestToken = server.token('ingest');
  log = await seedStandardLog(server, ingestToken, admin);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const PRESETS = [
  ['all_time', 'All Time'], ['today', 'Today'], ['yesterday', 'Yesterday'], ['this_week', 'This Week'],
  ['this_month', 'This Month'], ['last_month', 'Last Month'], ['last_30_days', 'Last 30 Days'],
  ['last_90_days', 'Last 90 Days'], ['this_year', 'This Year'], ['last_year', 'Last Year'],
];

test('the default view: Settings > Monitoring > Audit Logs, Last 30 Days, columns in order, newest first', async () => {
  const page = await openSignedIn(browser, server, admin);
  await assert.doesNotReject(page.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Audit Logs' }).waitFor());
  assert.equal(await page.getByRole('navigation', { name: 'Settings' }).getByText('Monitoring').count(), 1);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Audit Logs');
  await page.getByRole('button', { name: 'Last 30 Days', exact: true }).waitFor();
  const headers = await page.locator('#log-table thead th').allTextContents();
  assert.deepEqual(headers, ['Event Name', 'Category', 'User Name', 'Date and Time', 'Description']);

  const expected = expectedCount(log.bodies, { span: presetSpan('last_30_days', log.today) });
  assert.equal(await page.locator('#event-count').textContent(), countText(expected));
  // The viewer's zone is used and shown.
  // (Chromium may name the zone by an older alias, e.g. Asia/Calcutta.)
  const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  assert.ok([TZ, 'Asia/Calcutta'].includes(zone), zone);
  assert.equal(await page.getByLabel('Time zone').inputValue(), zone);
  assert.equal(new URL(page.url()).searchParams.get('tz'), zone);
  assert.match(await page.locator('.zone').textContent(), /UTC\+05:30/);
  assert.match(page.url(), /range=last_30_days/);

  // Newest first: the <time> of each row is non-increasing.
  const stamps = await page.locator('#log-table tbody time').evaluateAll((els) => els.map((e) => e.getAttribute('datetime')));
  assert.ok(stamps.length > 1);
  for (let i = 1; i < stamps.length; i += 1) assert.ok(Date.parse(stamps[i - 1]) >= Date.parse(stamps[i]), 'rows are newest first');
  // User Name is actor.name; App actors are marked.
  assert.equal(await page.locator('#log-table tbody tr').first().locator('td').nth(2).locator('.user-name').textContent(), 'Jane Doe');
  await screenshot(page, 'main-1280');
  await page.close();
});

test('every preset of the time panel shows the events of its range', async () => {
  const page = await openSignedIn(browser, server, admin);
  let current = 'Last 30 Days';
  for (const [key, label] of PRESETS) {
    await page.getByRole('button', { name: current, exact: true }).click();
    const panel = page.getByRole('dialog', { name: 'Select time range' });
    await panel.waitFor();
    await panel.getByRole('button', { name: label, exact: true }).click();
    const span = presetSpan(key, log.today);
    const summary = await panel.locator('#range-summary').textContent();
    if (span) assert.ok(summary.includes(shortDate(span[0])), `${label}: summary "${summary}" shows the start`);
    await panel.getByRole('button', { name: 'Apply' }).click();
    await panel.waitFor({ state: 'hidden' });
    await waitForView(page);
    const expected = expectedCount(log.bodies, { span });
    assert.equal(await shownCount(page), expected, `${label}: count`);
    assert.equal(await rowCount(page), Math.min(expected, 50), `${label}: rows`);
    assert.match(page.url(), new RegExp(`range=${key}`));
    await page.getByRole('button', { name: label, exact: true }).waitFor();
    current = label;
    if (key === 'this_year') await screenshot(page, 'preset-this-year');
  }
  await page.close();
});

test('a custom range from the calendar: arrows, dropdowns, two clicks, highlighted and written at the bottom', async () => {
  const page = await openSignedIn(browser, server, admin);
  await page.getByRole('button', { name: 'Last 30 Days', exact: true }).click();
  const panel = page.getByRole('dialog', { name: 'Select time range' });
  const start = addDays(log.today, -120);
  const end = addDays(log.today, -4);

  // Month and year dropdowns to reach the start date's month.
  const [sy, sm] = start.split('-').map(Number);
  await panel.getByRole('combobox', { name: 'Year' }).selectOption(String(sy));
  await panel.getByRole('combobox', { name: 'Month' }).selectOption(String(sm));
  await panel.getByRole('button', { name: longDate(start), exact: true }).click();
  // One click: from the start date to today.
  assert.equal(await panel.locator('#range-summary').textContent(), `${shortDate(start)} – ${shortDate(log.today)}`);

  // Next-month arrow until the end date's month is shown, then the second click.
  const target = end.slice(0, 7);
  for (let i = 0; i < 12; i += 1) {
    const y = await panel.getByRole('combobox', { name: 'Year' }).inputValue();
    const m = await panel.getByRole('combobox', { name: 'Month' }).inputValue();
    if (`${y}-${m.padStart(2, '0')}` === target) break;
    await panel.getByRole('button', { name: 'Next month' }).click();
  }
  await panel.getByRole('button', { name: longDate(end), exact: true }).click();
  assert.equal(await panel.locator('#range-summary').textContent(), `${shortDate(start)} – ${shortDate(end)}`);
  // The chosen days are highlighted.
  const selected = await panel.locator('td[aria-selected="true"]').count();
  assert.ok(selected >= Number(end.slice(8, 10)), 'days of the range are highlighted');
  assert.equal(await panel.locator('td.range-end button').getAttribute('aria-label'), longDate(end));
  await screenshot(page, 'calendar-custom');

  // The previous-month arrow works too.
  const before = await panel.getByRole('combobox', { name: 'Month' }).inputValue();
  await panel.getByRole('button', { name: 'Previous month' }).click();
  assert.notEqual(await panel.getByRole('combobox', { name: 'Month' }).inputValue(), before);

  await panel.getByRole('button', { name: 'Apply' }).click();
  await waitForView(page);
  assert.equal(await shownCount(page), expectedCount(log.bodies, { span: [start, end] }));
  assert.match(page.url(), new RegExp(`range=custom&from=${start}&to=${end}`));
  await page.getByRole('button', { name: `${shortDate(start)} – ${shortDate(end)}`, exact: true }).waitFor();
  await page.close();
});

test('the histogram: bars per day, per hour for one day, a click narrows the range to the day', async () => {
  const page = await openSignedIn(browser, server, admin);
  const bars = page.locator('.histogram-bars .bar');
  assert.equal(await bars.count(), 30, 'one bar per day of Last 30 Days');
  const day = addDays(log.today, -6);
  const bar = page.getByRole('button', { name: new RegExp(`^${shortDate(day)}: `) });
  const n = expectedCount(log.bodies, { span: [day, day] });
  assert.equal(await bar.getAttribute('aria-label'), `${shortDate(day)}: ${countText(n)}`);
  await bar.click();
  await waitForView(page);
  assert.equal(await shownCount(page), n);
  assert.match(page.url(), new RegExp(`range=custom&from=${day}&to=${day}`));
  // A single day is shown per hour.
  await page.locator('#histogram-title', { hasText: 'Events per hour' }).waitFor();
  assert.equal(await bars.count(), 24);
  await page.close();
});

test('more rows with Load more and on scroll', async () => {
  const page = await openSignedIn(browser, server, admin);
  const total = await shownCount(page);
  assert.ok(total > 50, 'the standard log has more than one page in Last 30 Days');
  assert.equal(await rowCount(page), 50);
  await page.getByRole('button', { name: 'Load more' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('#log-table tr.log-row').length === n, Math.min(total, 100));
  assert.equal(await page.locator('#table-footer-text').textContent(), `Showing ${Math.min(total, 100)} of ${countText(total)}`);

  // Scrolling the table to its end loads the next page by itself.
  const page2 = await openSignedIn(browser, server, admin);
  await page2.locator('.table-wrap').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await page2.waitForFunction(() => document.querySelectorAll('#log-table tr.log-row').length > 50);
  await page.close();
  await page2.close();
});

test('clicking a row opens the details panel with every field', async () => {
  const page = await openSignedIn(browser, server, admin);
  const row = page.locator('#log-table tr.log-row', { hasText: 'Priya Nair' });
  await row.locator('td').nth(3).click();
  const panel = page.getByRole('dialog', { name: 'Role created' });
  await panel.waitFor();
  const index = log.bodies.findIndex((b) => b.actor.id === 'u_42');
  const record = await api(server, admin, 'GET', `/v1/accounts/acme/events/${log.records[index].id}`);
  const text = await panel.textContent();
  for (const needle of [
    '198.51.100.23', 'u_42', 'priya@acme.example', 'Priya Nair', 'Priya Nair created the custom role Auditor',
    'Role ID', 'r_9', 'Role Type', 'custom', record.leaf_hash, record.id, String(record.seq), 'Roles',
  ]) assert.ok(text.includes(needle), `details show ${needle}`);
  const dd = async (label) => panel.locator('dt', { hasText: label }).locator('xpath=following-sibling::dd[1]').textContent();
  assert.equal(await dd('Sequence number (seq)'), String(record.seq));
  assert.equal(await dd('Leaf hash'), record.leaf_hash);
  assert.equal(await dd('IP Address'), '198.51.100.23');
  await screenshot(page, 'details');
  await page.keyboard.press('Escape');
  await panel.waitFor({ state: 'hidden' });
  await page.close();
});

test('an event whose description is markup is shown as text, never interpreted', async () => {
  const page = await openSignedIn(browser, server, admin);
  const cell = page.locator('#log-table td.cell-description', { hasText: XSS });
  assert.equal(await cell.textContent(), XSS);
  assert.equal(await page.locator('#log-table img, .sheet-body img').count(), 0);
  await cell.click();
  const panel = page.getByRole('dialog', { name: 'Role edited' });
  assert.equal(await panel.locator('.sheet-description').textContent(), XSS);
  assert.equal(await page.locator('img').count(), 0);
  assert.deepEqual(browser.problems, [], 'no script ran, no CSP violation');
  await page.close();
});

test('the URL holds the view: a reload and a shared link reproduce it', async () => {
  const from = addDays(log.today, -100);
  const to = addDays(log.today, -2);
  const query = `?range=custom&from=${from}&to=${to}&tz=America%2FNew_York&filter=category%3Aeq%3ARoles&filter=user%3Ane%3ABob%20Stone&join=and`;
  const page = await openSignedIn(browser, server, admin, query);
  const count = await shownCount(page);
  const chips = await page.locator('.chip').allTextContents();
  assert.equal(chips.length, 2);
  assert.equal(await page.getByLabel('Time zone').inputValue(), 'America/New_York');
  await page.reload();
  await waitForView(page);
  assert.equal(await shownCount(page), count);
  assert.deepEqual(await page.locator('.chip').allTextContents(), chips);
  await page.getByRole('button', { name: `${shortDate(from)} – ${shortDate(to)}`, exact: true }).waitFor();

  // A fresh tab has no session: it asks for the token, then shows the linked view.
  const shared = await browser.newPage();
  await shared.goto(page.url());
  await shared.getByLabel('Token').fill(admin);
  await shared.getByRole('button', { name: 'Sign in' }).click();
  await waitForView(shared);
  assert.equal(await shownCount(shared), count);
  assert.deepEqual(await shared.locator('.chip').allTextContents(), chips);
  assert.equal(await shared.getByLabel('Time zone').inputValue(), 'America/New_York');
  await page.close();
  await shared.close();
});

test('Export downloads Account_Audit_Logs.csv with exactly the rows of the view', async () => {
  const page = await openSignedIn(browser, server, admin, '?range=last_90_days&filter=event%3Ane%3ALogin&join=and');
  const count = await shownCount(page);
  assert.equal(count, expectedCount(log.bodies, { span: presetSpan('last_90_days', log.today), filters: [['event', 'ne', 'Login']] }));
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'Account_Audit_Logs.csv');
  const file = await download.path();
  const rows = parseCsv(fs.readFileSync(file, 'utf8'));
  assert.deepEqual(rows[0], ['Date and Time', 'Event Name', 'Event Category', 'Description', 'User/App Name', 'IP Address']);
  assert.equal(rows.length - 1, count, 'one CSV row per event of the view');
  assert.ok(rows.slice(1).every((r) => r[1] !== 'Login'));
  // Dates are written in the view's zone (+05:30).
  assert.match(rows[1][0], /\+05:30$/);
  await page.close();
});
