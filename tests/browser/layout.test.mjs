// The tablet layout (768 px), the workflow's own view, and the account
// view's link to it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openSignedIn, waitForView, shownCount, screenshot, loadCatalog, eventBody,
  ingest, dateIn, localNoon, addDays,
} from './helpers.mjs';

let server;
let desktop;
let tablet;
let admin;

before(async () => {
  server = await startServer();
  admin = server.token('admin');
  const catalog = await loadCatalog(server, admin);
  const today = dateIn(Date.now());
  const at = (days) => localNoon(addDays(today, -days)).toISOString();
  const events = [
    eventBody(catalog, { category: 'Workflows', event: 'Workflow created', workflow_id: 'wf_alpha', occurred_at: at(9) }),
    eventBody(catalog, { level: 'workflow', category: 'Workflow Management', event: 'Version created', workflow_id: 'wf_alpha', occurred_at: at(8) }),
    eventBody(catalog, { level: 'workflow', category: 'Workflow Management', event: 'Workflow deployed', workflow_id: 'wf_alpha', occurred_at: at(7) }),
    eventBody(catalog, { level: 'workflow', category: 'Guardrails', event: 'Input scanner added', workflow_id: 'wf_alpha', occurred_at: at(2) }),
    eventBody(catalog, { level: 'workflow', category: 'Workflow Management', event: 'Version created', workflow_id: 'wf_beta', occurred_at: at(3) }),
    eventBody(catalog, {
      category: 'Models', event: 'Model deployed', occurred_at: at(1),
      description: 'Rahul Mehta deployed llama-3-8b-instruct on 2× A100 with autoscaling between 1 and 4 replicas',
      actor: { kind: 'user', id: 'u_2', name: 'Rahul Mehta', email: 'rahul@acme.example' },
    }),
  ];
  await ingest(server, server.token('ingest'), events);
  desktop = await launchBrowser();
  tablet = await launchBrowser({ viewport: { width: 768, height: 1000 } });
});

after(async () => {
  await desktop?.close();
  await tablet?.close();
  await server?.stop();
});

test('a workflow has its own view at its own URL, reached from the details panel', async () => {
  const page = await openSignedIn(desktop, server, admin);
  await page.locator('#log-table tr.log-row', { hasText: 'Version created' }).filter({ hasText: 'Workflow Management' }).last().click();
  const panel = page.getByRole('dialog', { name: 'Version created' });
  await panel.getByRole('link', { name: 'Open workflow view' }).click();
  await waitForView(page);
  assert.match(page.url(), /workflow=wf_alpha/);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Workflow wf_alpha');
  // Workflow-level events of wf_alpha only.
  assert.equal(await shownCount(page), 3);
  const names = await page.locator('#log-table .row-open').allTextContents();
  assert.deepEqual(names, ['Input scanner added', 'Workflow deployed', 'Version created']);
  await screenshot(page, 'workflow-view');
  // Export of the workflow view is the workflow's file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export' }).click()]);
  assert.equal(download.suggestedFilename(), 'Workflow_Audit_Logs.csv');
  // Back to the account's log through the breadcrumb.
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Audit Logs' }).click();
  await waitForView(page);
  assert.doesNotMatch(page.url(), /workflow=/);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Audit Logs');
  // The browser's Back button returns to the workflow view.
  await page.goBack();
  await waitForView(page);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Workflow wf_alpha');
  await page.close();
});

test('at 768 px the left menu collapses behind a Menu button and the whole table fits, no column cut', async () => {
  const page = await openSignedIn(tablet, server, admin);
  const menu = page.getByRole('button', { name: 'Menu' });
  await menu.waitFor();
  const link = page.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Audit Logs' });
  assert.equal(await link.isVisible(), false);
  await screenshot(page, 'main-768');
  await menu.click();
  assert.equal(await menu.getAttribute('aria-expanded'), 'true');
  await link.waitFor({ state: 'visible' });
  await screenshot(page, 'menu-768');
  await page.keyboard.press('Escape');
  assert.equal(await menu.getAttribute('aria-expanded'), 'false');
  // No part of the page is wider than the window, and the table fits its
  // box: the Description column is not cut at the edge (issue 15).
  const widths = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    win: window.innerWidth,
    wrap: document.querySelector('.table-wrap').scrollWidth,
    wrapBox: document.querySelector('.table-wrap').clientWidth,
  }));
  assert.ok(widths.doc <= widths.win, `page fits: ${JSON.stringify(widths)}`);
  assert.ok(widths.wrap <= widths.wrapBox, `the table fits: ${JSON.stringify(widths)}`);
  // Dialogs fit too.
  await page.getByRole('button', { name: 'Last 30 Days', exact: true }).click();
  const panel = page.getByRole('dialog', { name: 'Select time range' });
  const box = await panel.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 768, 'time panel fits the window');
  await screenshot(page, 'time-panel-768');
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Filter By' });
  await dialog.getByRole('button', { name: '+ Add Filter' }).click();
  const fbox = await dialog.boundingBox();
  assert.ok(fbox.x >= 0 && fbox.x + fbox.width <= 768, 'filter dialog fits the window');
  await screenshot(page, 'filter-768');
  await page.close();
});

test('the time panel at desktop width: presets on the left, calendar on the right', async () => {
  const page = await openSignedIn(desktop, server, admin);
  await page.getByRole('button', { name: 'Last 30 Days', exact: true }).click();
  const panel = page.getByRole('dialog', { name: 'Select time range' });
  const presets = await panel.getByRole('navigation', { name: 'Preset ranges' }).getByRole('button').allTextContents();
  assert.deepEqual(presets, ['All Time', 'Today', 'Yesterday', 'This Week', 'This Month', 'Last Month', 'Last 30 Days', 'Last 90 Days', 'This Year', 'Last Year']);
  assert.equal(await panel.getByRole('button', { name: 'Last 30 Days' }).getAttribute('aria-pressed'), 'true');
  await screenshot(page, 'time-panel');
  // Escape closes it and gives focus back to the time button.
  await page.keyboard.press('Escape');
  await panel.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'time-button');
  await page.close();
  assert.deepEqual([...desktop.problems, ...tablet.problems], [], 'no script error and no CSP violation in this file');
});
