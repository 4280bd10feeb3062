// Helpers for the dashboard's end-to-end tests: start the real `auditlog`
// binary on a fresh temporary store, make tokens, ingest known events through
// the public API, and drive Debian's Chromium with playwright-core.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';
import assert from 'node:assert/strict';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.AUDITLOG_BIN || path.join(ROOT, 'target', 'debug', 'auditlog');
export const SCREENSHOTS = path.join(ROOT, 'target', 'screenshots');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** The zone the browser runs in: not UTC, and with a half-hour offset, so a
 *  page that mixes up zones shows wrong days. */
export const TZ = 'Asia/Kolkata';

// ---------------------------------------------------------------------------
// The server

/** A PostgreSQL server (`postgres://…/postgres`) to run the tests on instead
 *  of the embedded store: each server then gets a database of its own there
 *  (created and dropped with `psql`). scripts/test.sh runs the tests once on
 *  each. */
export const PG = process.env.AUDITLOG_BROWSER_DATABASE_URL || '';

function psql(sql) {
  execFileSync('psql', [PG, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Starts `auditlog serve` on port 0 with a fresh data dir (and, with `PG`, a
 * fresh database) and `args`, and waits for its "listening on http://…" line.
 */
export async function startServer(args = []) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditlog-e2e-'));
  let store = ['--data-dir', dataDir];
  let dbName = null;
  if (PG) {
    dbName = `e2e_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
    psql(`CREATE DATABASE ${dbName}`);
    const url = new URL(PG);
    url.pathname = `/${dbName}`;
    // The data dir still holds the signing key and server secret.
    store = ['--data-dir', dataDir, '--database-url', url.toString()];
  }
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', ...store, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-8000); });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s\n${stderr}`)), 30_000);
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}\n${stderr}`));
    });
  });
  // Token commands name the store the way `serve` was given it.
  const tokenStore = PG ? store.slice(2) : store;
  const server = {
    url,
    dataDir,
    child,
    /** Prints a new token for `account` with `role` (the CLI's bootstrap). */
    token(role = 'admin', account = 'acme') {
      return execFileSync(BIN, ['token', 'create', ...tokenStore, '--account', account, '--role', role], {
        encoding: 'utf8',
      }).trim();
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => { child.once('exit', r); setTimeout(r, 5000); });
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
      if (dbName) psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    },
  };
  return server;
}

/** A JSON request to the API; throws with the problem body on non-2xx. */
export async function api(server, token, method, urlPath, body) {
  const res = await fetch(server.url + urlPath, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${urlPath} → ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** (level, category, event) → catalog entry, from GET /v1/catalog. */
export async function loadCatalog(server, token) {
  const catalog = await api(server, token, 'GET', '/v1/catalog');
  const byKey = new Map();
  for (const level of catalog.levels) {
    for (const cat of level.categories) {
      for (const ev of cat.events) byKey.set(`${level.level}|${cat.name}|${ev.name}`, ev);
    }
  }
  return byKey;
}

/**
 * An ingest body for a catalog event, with every required metadata field
 * filled with a value of its type (overridable through `metadata`).
 */
export function eventBody(catalog, spec) {
  const { level = 'account', category, event } = spec;
  const entry = catalog.get(`${level}|${category}|${event}`);
  if (!entry) throw new Error(`not in catalog: ${level}|${category}|${event}`);
  const metadata = {};
  for (const f of entry.fields) {
    if (!f.required) continue;
    metadata[f.key] = f.type === 'number' ? 1 : f.type === 'boolean' ? true : `${f.key}-value`;
  }
  const body = {
    level,
    category,
    event,
    occurred_at: spec.occurred_at,
    actor: spec.actor || { kind: 'user', id: 'u_1', name: 'Jane Doe', email: 'jane@acme.example' },
    ip_address: spec.ip_address ?? '203.0.113.7',
    description: spec.description ?? `${event} (test)`,
    metadata: { ...metadata, ...(spec.metadata || {}) },
  };
  if (spec.workflow_id) body.workflow_id = spec.workflow_id;
  return body;
}

/** Ingests events through POST …/events/batch, in chunks. */
export async function ingest(server, token, events, account = 'acme') {
  const out = [];
  for (let i = 0; i < events.length; i += 500) {
    const res = await api(server, token, 'POST', `/v1/accounts/${account}/events/batch`, { events: events.slice(i, i + 500) });
    out.push(...res.records);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Dates: the tests' own oracle for presets (spec §4), on plain dates in TZ.

export function dateIn(when, tz = TZ) {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
  }).formatToParts(new Date(when)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}`;
}
export const makeDate = (y, m, d) => new Date(Date.UTC(y, m - 1, d)).toISOString().slice(0, 10);
export function addDays(date, n) {
  const [y, m, d] = date.split('-').map(Number);
  return makeDate(y, m, d + n);
}
const dim = (y, m) => new Date(Date.UTC(y, m, 0)).getUTCDate();

/** The inclusive local-date span of a preset, or null for All Time. */
export function presetSpan(preset, today) {
  const [y, m] = today.split('-').map(Number);
  switch (preset) {
    case 'all_time': return null;
    case 'today': return [today, today];
    case 'yesterday': return [addDays(today, -1), addDays(today, -1)];
    case 'this_week': {
      const wd = (new Date(`${today}T12:00:00Z`).getUTCDay() + 6) % 7;
      return [addDays(today, -wd), addDays(today, 6 - wd)];
    }
    case 'this_month': return [makeDate(y, m, 1), makeDate(y, m, dim(y, m))];
    case 'last_month': {
      const from = makeDate(y, m - 1, 1);
      const [py, pm] = from.split('-').map(Number);
      return [from, makeDate(py, pm, dim(py, pm))];
    }
    case 'last_30_days': return [addDays(today, -29), today];
    case 'last_90_days': return [addDays(today, -89), today];
    case 'this_year': return [makeDate(y, 1, 1), makeDate(y, 12, 31)];
    case 'last_year': return [makeDate(y - 1, 1, 1), makeDate(y - 1, 12, 31)];
    default: throw new Error(preset);
  }
}

/** The instant of local noon on `date` in `tz` (noon: never a DST gap). */
export function localNoon(date, tz = TZ) {
  const guess = Date.parse(`${date}T12:00:00Z`);
  // The zone's offset at that instant, read back through Intl.
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(guess)).map((x) => [x.type, x.value]));
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return new Date(guess - (asUtc - guess));
}

/** "Thursday, November 26, 2026": a calendar day's accessible name (en-US). */
export function longDate(date) {
  return new Intl.DateTimeFormat('en-US', {
    timeZone: 'UTC', weekday: 'long', day: 'numeric', month: 'long', year: 'numeric',
  }).format(new Date(`${date}T12:00:00Z`));
}
/** "Nov 26, 2026" (en-US). */
export function shortDate(date) {
  return new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', day: 'numeric', month: 'short', year: 'numeric' })
    .format(new Date(`${date}T12:00:00Z`));
}

export const countText = (n) => `${n.toLocaleString('en-US')} ${n === 1 ? 'event' : 'events'}`;

// ---------------------------------------------------------------------------
// The browser

/** How many times a Chromium that dies while starting is started again. */
const LAUNCH_ATTEMPTS = 3;

/**
 * Starts Chromium on `userDataDir`. A Chromium that crashes before
 * Playwright has a page from it (CI once saw a SIGSEGV 138 ms into a launch,
 * before any page or server was involved) is started again, on a fresh
 * profile, at most LAUNCH_ATTEMPTS times; every retry is printed. Any other
 * failure, and a crash after the launch, fails the test as it should.
 */
async function launchChromium(userDataDir, viewport, timezoneId) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox', '--disable-gpu', '--disable-background-networking',
          '--disable-component-update', '--no-first-run', '--disable-sync',
        ],
        viewport,
        timezoneId,
        locale: 'en-US',
        acceptDownloads: true,
      });
    } catch (e) {
      const died = /<process did exit: exitCode=\S+, signal=\S+>/.exec(e.message);
      if (!died || attempt >= LAUNCH_ATTEMPTS) throw e;
      console.error(`# Chromium died while starting (${died[0]}); starting it again (attempt ${attempt + 1} of ${LAUNCH_ATTEMPTS})`);
      fs.rmSync(userDataDir, { recursive: true, force: true });
      fs.mkdirSync(userDataDir);
    }
  }
}

/**
 * Debian's Chromium through playwright-core, with a fresh profile: no
 * browser download, no network beyond the test server.
 */
export async function launchBrowser({ viewport = { width: 1280, height: 860 }, timezoneId = TZ } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditlog-chromium-'));
  const context = await launchChromium(userDataDir, viewport, timezoneId);
  context.setDefaultTimeout(10_000);
  const problems = [];
  const watch = (page) => {
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // CSP violations and script errors are reported as console errors.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('dialog', (d) => {
      problems.push(`unexpected JS dialog: ${d.message()}`);
      d.dismiss().catch(() => {});
    });
  };
  context.on('page', watch);
  for (const p of context.pages()) watch(p);
  return {
    context,
    problems,
    async newPage() {
      return context.newPage();
    },
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Opens the page through the `#token=` link that `auditlog demo` prints, and
 * presses Sign in: the link only fills in the form and names the account.
 */
export async function openSignedIn(browser, server, token, query = '') {
  const page = await browser.newPage();
  await page.goto(`${server.url}/${query}#token=${encodeURIComponent(token)}`);
  await page.getByRole('status').filter({ hasText: 'This link holds' }).waitFor();
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForView(page);
  return page;
}

/** Waits until the table has settled: no loading row and a count shown. */
export async function waitForView(page) {
  await page.locator('#log-table[aria-busy="false"], .card .banner:not([hidden])').first().waitFor();
  await page.waitForFunction(() => {
    const c = document.getElementById('event-count');
    const banner = document.querySelector('.card .banner');
    return (banner && !banner.hidden) || (c && /\d/.test(c.textContent));
  });
}

/** The number shown as the view's count. */
export async function shownCount(page) {
  const text = await page.locator('#event-count').textContent();
  return Number(text.replace(/[^\d]/g, ''));
}

export async function rowCount(page) {
  return page.locator('#log-table tbody tr.log-row').count();
}

export async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), animations: 'disabled' });
}

/** Minimal RFC 4180 parser: rows of cells (quoted fields may hold CRLF). */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell); rows.push(row); row = []; cell = ''; i += 1;
    } else if (c === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; } else cell += c;
  }
  if (cell !== '' || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

// ---------------------------------------------------------------------------
// The standard log the view and filter tests read

export const XSS = '<img src=x onerror=alert(1)>';

const PEOPLE = [
  { kind: 'user', id: 'u_1', name: 'Jane Doe', email: 'jane@acme.example' },
  { kind: 'user', id: 'u_2', name: 'Rahul Mehta', email: 'rahul@acme.example' },
  { kind: 'user', id: 'u_3', name: 'Ana Silva', email: 'ana@acme.example' },
  { kind: 'user', id: 'u_4', name: 'Bob Stone', email: 'bob@acme.example' },
];
const KINDS = [
  { category: 'Roles', event: 'Role created' },
  { category: 'Login/Logout', event: 'Login' },
  { category: 'Dataset', event: 'Dataset uploaded' },
  { category: 'Prompts', event: 'Prompt created' },
  { category: 'Roles', event: 'Role deleted' },
];

/**
 * Ingests a known log spread over 800 days around today (in TZ), and returns
 * the ingested bodies so tests can compute what every view must show.
 */
export async function seedStandardLog(server, ingestToken, adminToken) {
  const catalog = await loadCatalog(server, adminToken);
  const today = dateIn(Date.now());
  const specs = [];
  // One event a little before now: always "today" (unless run at midnight).
  specs.push({ ...KINDS[0], actor: PEOPLE[0], occurred_at: new Date(Date.now() - 30_000).toISOString() });
  const offsets = [1, 2, 5, 12, 25, 35, 50, 80, 100, 150, 200, 300, 370, 420, 800];
  offsets.forEach((days, i) => {
    specs.push({ ...KINDS[(i + 1) % KINDS.length], actor: PEOPLE[(i + 1) % PEOPLE.length], occurred_at: localNoon(addDays(today, -days)).toISOString() });
  });
  // The event whose description is markup: must be shown as text.
  specs.push({ category: 'Roles', event: 'Role edited', actor: PEOPLE[3], description: XSS, occurred_at: localNoon(addDays(today, -3)).toISOString() });
  // The event the details test opens.
  specs.push({
    category: 'Roles', event: 'Role created', description: 'Priya Nair created the custom role Auditor',
    actor: { kind: 'user', id: 'u_42', name: 'Priya Nair', email: 'priya@acme.example' },
    ip_address: '198.51.100.23', metadata: { role_id: 'r_9', role_type: 'custom' },
    occurred_at: new Date(localNoon(addDays(today, -4)).getTime() + 3_600_000).toISOString(),
  });
  // 60 events on one day, by an app: more than one page of the table.
  for (let i = 0; i < 60; i += 1) {
    specs.push({
      category: 'Prompts', event: 'Prompt created', actor: { kind: 'app', id: 'app_bulk', name: 'Bulk Bot', email: null },
      occurred_at: new Date(localNoon(addDays(today, -6)).getTime() - 3_600_000 * 2 + i * 60_000).toISOString(),
    });
  }
  const bodies = specs.map((s) => eventBody(catalog, s));
  const records = await ingest(server, ingestToken, bodies);
  return { bodies, records, today, catalog };
}

const norm = (s) => String(s ?? '').trim().toLowerCase();
const columnValue = (b, column) => (column === 'user' ? (b.actor.name || b.actor.id) : b[column]);

/** How many of `bodies` a view shows: the oracle of the tests. */
export function expectedCount(bodies, { span = null, filters = [], join = 'and' } = {}) {
  return bodies.filter((b) => {
    const d = dateIn(b.occurred_at);
    if (span && (d < span[0] || d > span[1])) return false;
    if (filters.length === 0) return true;
    const hits = filters.map(([column, op, value]) => {
      const eq = norm(columnValue(b, column)) === norm(value);
      return op === 'eq' ? eq : !eq;
    });
    return join === 'or' ? hits.some(Boolean) : hits.every(Boolean);
  }).length;
}

// ---------------------------------------------------------------------------
// Accessibility checks (issue 15)

/** The axe-core tags of WCAG 2.0, 2.1 and 2.2, levels A and AA. */
export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

// A secret as the server stores it (issue 16): a keyed fingerprint and the
// last four characters.
export const FINGERPRINT = 'hmac-sha256:3f2a9c0d1e4b5a6f';
export const SECRET_VALUE = `[REDACTED ${FINGERPRINT} …7731]`;
export const SECRET_NO_LAST4 = '[REDACTED hmac-sha256:0a1b2c3d4e5f6071]';
export const REDACTED_URL = 'https://user:REDACTED-3f2a9c0d1e4b5a6f@hooks.acme.example/p?token=REDACTED-9e8d7c6b5a493827';
export const SECRET_DESCRIPTION = 'Ana Silva created the custom role Billing Admin';

/**
 * The standard log plus one record whose metadata holds values already in
 * the server's fingerprint form (unknown keys, so this works before and
 * after the server fingerprints sensitive fields itself).
 */
export async function seedA11yLog(server, ingestToken, adminToken) {
  const log = await seedStandardLog(server, ingestToken, adminToken);
  const body = eventBody(log.catalog, {
    category: 'Roles', event: 'Role created', description: SECRET_DESCRIPTION,
    actor: { kind: 'user', id: 'u_3', name: 'Ana Silva', email: 'ana@acme.example' },
    occurred_at: new Date(Date.now() - 120_000).toISOString(),
    metadata: { role_id: 'r_12', role_type: 'custom', note_fp: SECRET_VALUE, other_fp: SECRET_NO_LAST4, hook_url: REDACTED_URL },
  });
  const [rec] = await ingest(server, ingestToken, [body]);
  log.secretRecord = await api(server, adminToken, 'GET', `/v1/accounts/acme/events/${rec.id}`);
  log.bodies.push(body);
  return log;
}

/** Runs axe on the page as it is; fails listing every violation. */
export async function expectNoViolations(page, where) {
  const result = await new AxeBuilder({ page }).withTags(WCAG_TAGS).analyze();
  const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.map((n) => n.target.join(' ')).join('\n    ')}`);
  assert.deepEqual(found, [], `axe violations at ${where}`);
  return result.passes.length;
}

/** The page is no wider than the window, and a dialog, if open, fits it. */
export async function expectReflow(page, where) {
  const m = await page.evaluate(() => {
    const d = [...document.querySelectorAll('dialog[open]')].map((x) => x.getBoundingClientRect());
    return {
      scroll: document.documentElement.scrollWidth,
      body: document.body.scrollWidth,
      win: window.innerWidth,
      dialogs: d.map((r) => [Math.round(r.left), Math.round(r.right)]),
    };
  });
  assert.ok(m.scroll <= m.win && m.body <= m.win, `no horizontal scroll at ${where}: ${JSON.stringify(m)}`);
  for (const [l, r] of m.dialogs) assert.ok(l >= 0 && r <= m.win, `dialog fits at ${where}: ${JSON.stringify(m)}`);
}

/**
 * The focused element, its accessible name as a plain reading, and whether
 * its focus indicator is visible: a solid outline of 2 px or more (or a
 * box-shadow ring) on it, or on the visible part of a styled control.
 */
export async function focusState(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { tag: 'BODY', name: '', ring: false, visible: false };
    let name = el.getAttribute('aria-label') || '';
    if (!name && el.labels?.length) name = el.labels[0].textContent.trim();
    if (!name) {
      const copy = el.cloneNode(true);
      copy.querySelectorAll('[aria-hidden="true"]').forEach((x) => x.remove());
      name = copy.textContent.trim();
    }
    // A radio drawn as a switch shows its ring on the span after it.
    const drawn = el.matches('.segment input') ? el.nextElementSibling : el;
    const cs = getComputedStyle(drawn);
    const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2;
    const shadow = cs.boxShadow !== 'none' && /\b[2-9]px\b/.test(cs.boxShadow);
    const r = drawn.getBoundingClientRect();
    return {
      tag: el.tagName, id: el.id, name, ring: outline || shadow,
      visible: r.width > 0 && r.height > 0 && !el.closest('[hidden]'),
    };
  });
}

export async function expectFocusOn(page, expected, where) {
  const f = await focusState(page);
  assert.notEqual(f.tag, 'BODY', `${where}: focus was dropped to <body>`);
  if (expected instanceof RegExp) assert.match(f.name, expected, `${where}: focus on ${JSON.stringify(f)}`);
  else assert.equal(f.name, expected, `${where}: focus on ${JSON.stringify(f)}`);
  assert.ok(f.visible, `${where}: the focused element is visible`);
  assert.ok(f.ring, `${where}: the focus ring of ${f.name} is visible`);
}

/** Presses Tab (or Shift+Tab) until the focused control is named `name`. */
export async function tabTo(page, name, { back = false, max = 80 } = {}) {
  for (let i = 0; i < max; i += 1) {
    const f = await focusState(page);
    if (name instanceof RegExp ? name.test(f.name) : f.name === name) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  assert.fail(`${name} is not reachable with ${back ? 'Shift+Tab' : 'Tab'}`);
}
