// The Audit Logs dashboard (spec §8): Settings > Monitoring > Audit Logs.
//
// One module drives the page: the view (range, zone, filters, join, workflow)
// lives in the URL, so a reload or a shared link shows the same thing; every
// change of view writes the URL and reloads the list, count and histogram
// from the public v1 API. The token lives in sessionStorage only.
//
// Rule for this file: data from the server is put on the page with
// textContent or element properties (see dom.js), never parsed as HTML.

import { h, icon, replace, uid, trapFocus } from './dom.js';
import {
  PRESETS, PRESET_LABELS, DEFAULT_PRESET, isDate, parts, makeDate, addDays, daysInMonth,
  weekdayMonday0, isTimeZone, dateIn, todayIn, presetDates, formatDate, formatLongDate,
  formatSpan, monthNames, weekdayShortNames, formatInstant, splitInstant, offsetLabel, formatHour,
} from './dates.js';
import {
  session, request, getJson, ApiError, MESSAGES, viewParams, eventsBase, attachmentName,
} from './api.js';

const PAGE_SIZE = 50;

const COLUMNS = { event: 'Event', category: 'Category', user: 'User' };
const EXTRA_COLUMNS = {
  user_id: 'User ID', ip_address: 'IP Address', workflow_id: 'Workflow ID',
  level: 'Level', description: 'Description',
};
const OPERATORS = { eq: 'Is Equal To', ne: 'Is Not Equal To' };
const EXTRA_OPERATORS = { contains: 'Contains', not_contains: 'Does Not Contain' };
const columnLabel = (c) => COLUMNS[c] || EXTRA_COLUMNS[c] || c;
const operatorLabel = (o) => OPERATORS[o] || EXTRA_OPERATORS[o] || o;

const browserZone = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
})();

const numberFormat = new Intl.NumberFormat();
const plural = (n, one, many) => `${numberFormat.format(n)} ${n === 1 ? one : many}`;

// ---------------------------------------------------------------------------
// State

const state = {
  /** The account being viewed, and whether the token is for every account. */
  account: null,
  anyAccount: false,
  /** The view: what the URL holds. */
  view: null,
  catalog: null,
  events: [],
  nextCursor: null,
  count: null,
  histogram: null,
  echoedRange: null,
  loading: false,
  loadingMore: false,
  error: null,
  generation: 0,
  controller: null,
};

const ui = {}; // element references, filled by buildConsole()

// ---------------------------------------------------------------------------
// URL <-> view

/** Splits COLUMN:OP:VALUE at the first two colons (the value may hold more). */
function parseFilter(s) {
  const a = s.indexOf(':');
  const b = a < 0 ? -1 : s.indexOf(':', a + 1);
  if (a <= 0 || b < 0) return { column: s, op: '', value: '', raw: s };
  return { column: s.slice(0, a), op: s.slice(a + 1, b), value: s.slice(b + 1) };
}

function viewFromUrl() {
  const p = new URLSearchParams(location.search);
  const range = p.get('range') || DEFAULT_PRESET;
  const tz = p.get('tz') || browserZone;
  const view = {
    range,
    from: p.get('from') || '',
    to: p.get('to') || '',
    tz,
    filters: p.getAll('filter').filter((f) => f !== '').map(parseFilter),
    join: p.get('join') === 'or' ? 'or' : 'and',
    workflow: p.get('workflow') || '',
  };
  if (range === 'custom' && !view.to && isDate(view.from)) view.to = todayIn(isTimeZone(tz) ? tz : 'UTC');
  return view;
}

function urlOf(view, { account = state.anyAccount ? state.account : null } = {}) {
  const p = new URLSearchParams();
  if (account) p.set('account', account);
  if (view.workflow) p.set('workflow', view.workflow);
  p.set('range', view.range);
  if (view.range === 'custom') {
    p.set('from', view.from);
    if (view.to) p.set('to', view.to);
  }
  p.set('tz', view.tz);
  for (const f of view.filters) p.append('filter', f.raw ?? `${f.column}:${f.op}:${f.value}`);
  if (view.filters.length > 0) p.set('join', view.join);
  return `/?${p}`;
}

/** Moves to a new view: writes the URL (one history entry) and reloads. */
function setView(patch, { push = true } = {}) {
  state.view = { ...state.view, ...patch };
  const url = urlOf(state.view);
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
  renderView();
  loadView();
}

// ---------------------------------------------------------------------------
// Sign-in and session

function show(el, visible) {
  el.hidden = !visible;
}

function showSignIn({ error = '', info = '', needAccount = false, focus = null } = {}) {
  closeAllDialogs();
  state.generation += 1;
  if (state.controller) state.controller.abort();
  show(document.getElementById('boot'), false);
  show(document.getElementById('shell'), false);
  show(document.getElementById('session-area'), false);
  show(document.getElementById('menu-toggle'), false);
  show(document.getElementById('signin'), true);
  const err = document.getElementById('signin-error');
  err.textContent = error;
  show(err, Boolean(error));
  const inf = document.getElementById('signin-info');
  inf.textContent = info;
  show(inf, Boolean(info));
  show(document.getElementById('account-field'), needAccount);
  document.title = 'Sign in · Audit Logs · AI for Process';
  setSkipTarget('signin');
  const target = focus || (needAccount ? 'account-input' : 'token-input');
  requestAnimationFrame(() => document.getElementById(target).focus());
}

/** Points the skip link at the landmark on screen (the sign-in form or the log). */
function setSkipTarget(id) {
  document.querySelector('.skip-link')?.setAttribute('href', `#${id}`);
}

function signOut(reason) {
  session.clear();
  state.account = null;
  document.getElementById('token-input').value = '';
  document.getElementById('account-input').value = '';
  if (reason) showSignIn({ error: reason });
  else showSignIn({ info: 'You have signed out.' });
}

/** Called by any API failure: a 401 anywhere ends the session. */
function handleAuthFailure(err) {
  if (err instanceof ApiError && err.kind === 'unauthorized') {
    signOut(MESSAGES.unauthorized);
    return true;
  }
  return false;
}

async function onSignInSubmit(event) {
  event.preventDefault();
  const tokenInput = document.getElementById('token-input');
  const accountInput = document.getElementById('account-input');
  const submit = document.getElementById('signin-submit');
  const token = tokenInput.value.trim();
  const err = document.getElementById('signin-error');
  show(document.getElementById('signin-info'), false);
  if (!token) {
    err.textContent = 'Enter a token.';
    show(err, true);
    tokenInput.focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = 'Signing in…';
  try {
    const who = await getJson('/v1/whoami', { token });
    let account = who.account;
    if (account === '*') {
      const typed = accountInput.value.trim();
      if (!typed) {
        session.set(token, null);
        showSignIn({ info: 'This token can read every account: enter the Account to open.', needAccount: true });
        return;
      }
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(typed)) {
        showSignIn({ error: 'An account id is lowercase letters, digits, “-” and “_”.', needAccount: true });
        return;
      }
      account = typed;
    }
    session.set(token, who.account === '*' ? account : null);
    await startSession(who, account);
  } catch (e) {
    const message = e instanceof ApiError && e.kind === 'unauthorized'
      ? 'This token is not valid. Check it and try again.'
      : (e.message || String(e));
    showSignIn({ error: message, needAccount: !document.getElementById('account-field').hidden });
  } finally {
    submit.disabled = false;
    submit.textContent = 'Sign in';
  }
}

/** After a successful whoami: opens the console on the account. */
async function startSession(who, account) {
  if (who.role === 'ingest') {
    session.clear();
    showSignIn({ error: MESSAGES.forbidden });
    return;
  }
  state.anyAccount = who.account === '*';
  state.account = account;
  // Signed in from the form: its button is about to be hidden, so the focus
  // moves to the log's heading instead of falling to <body>.
  const fromForm = !document.getElementById('signin').hidden;
  state.view = viewFromUrl();
  history.replaceState(null, '', urlOf(state.view));
  show(document.getElementById('boot'), false);
  show(document.getElementById('signin'), false);
  show(document.getElementById('shell'), true);
  show(document.getElementById('session-area'), true);
  document.getElementById('account-badge').textContent = account;
  setSkipTarget('main');
  if (!ui.root) buildConsole();
  renderView();
  if (fromForm) ui.title.focus();
  loadCatalog();
  loadView();
}

/**
 * A link with `#token=…` (what `auditlog demo` prints) only fills in the
 * sign-in form: whoever wrote the link chose the account, so the page says
 * which account and role the token is for and waits for the person to press
 * Sign in. It never signs in by itself.
 */
async function offerLinkToken(token, account) {
  document.getElementById('token-input').value = token;
  document.getElementById('account-input').value = account || '';
  try {
    const who = await getJson('/v1/whoami', { token });
    if (who.role === 'ingest') {
      showSignIn({ error: `The token in this link can only write events (${MESSAGES.forbidden})` });
      return;
    }
    const whose = who.account === '*' ? 'every account' : `the account “${who.account}”`;
    const role = who.role === 'admin' ? 'an admin' : `a ${who.role}`;
    showSignIn({
      info: `This link holds ${role} token for ${whose}. Check that this is the account you expect, then press Sign in.`,
      needAccount: who.account === '*',
      focus: 'signin-submit',
    });
  } catch (e) {
    const message = e instanceof ApiError && e.kind === 'unauthorized'
      ? 'The token in this link is not valid. Check the link or paste another token.'
      : (e.message || String(e));
    showSignIn({ error: message });
  }
}

async function boot() {
  document.querySelector('.skip-link')?.addEventListener('click', (e) => {
    // Focus the landmark without a fragment navigation, which would add a
    // history entry and reload the view through popstate.
    const target = document.querySelector(e.currentTarget.getAttribute('href'));
    if (!target) return;
    e.preventDefault();
    target.focus();
  });
  // The fragment never reaches a server log; drop it from the address bar
  // at once so it is not kept in the history or copied along with the URL.
  let linkToken = null;
  if (location.hash.length > 1) {
    const frag = new URLSearchParams(location.hash.slice(1));
    if (frag.get('token')) linkToken = { token: frag.get('token'), account: frag.get('account') };
    history.replaceState(null, '', location.pathname + location.search);
  }
  document.getElementById('signin-form').addEventListener('submit', onSignInSubmit);
  document.getElementById('sign-out').addEventListener('click', () => signOut());
  setupMenuToggle();
  window.addEventListener('popstate', () => {
    if (!state.account) return;
    closeAllDialogs();
    state.view = viewFromUrl();
    renderView();
    loadView();
  });

  if (linkToken) {
    await offerLinkToken(linkToken.token, linkToken.account);
    return;
  }
  if (!session.token) {
    showSignIn();
    return;
  }
  try {
    const who = await getJson('/v1/whoami');
    let account = who.account;
    if (account === '*') {
      account = new URLSearchParams(location.search).get('account') || session.account;
      if (!account) {
        showSignIn({ info: 'This token can read every account: enter the Account to open.', needAccount: true });
        return;
      }
      session.setAccount(account);
    }
    await startSession(who, account);
  } catch (e) {
    if (handleAuthFailure(e)) return;
    showSignIn({ error: e.message || String(e) });
  }
}

function setupMenuToggle() {
  const toggle = document.getElementById('menu-toggle');
  const sidebar = document.getElementById('sidebar');
  const mq = window.matchMedia('(max-width: 960px)');
  const apply = () => {
    const narrow = mq.matches;
    toggle.hidden = !narrow || document.getElementById('shell').hidden;
    if (!narrow) {
      sidebar.classList.remove('open');
      toggle.setAttribute('aria-expanded', 'false');
    }
  };
  mq.addEventListener('change', apply);
  toggle.addEventListener('click', () => {
    const open = !sidebar.classList.contains('open');
    sidebar.classList.toggle('open', open);
    toggle.setAttribute('aria-expanded', String(open));
    if (open) sidebar.querySelector('a')?.focus();
  });
  sidebar.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && sidebar.classList.contains('open')) {
      sidebar.classList.remove('open');
      toggle.setAttribute('aria-expanded', 'false');
      toggle.focus();
    }
  });
  document.addEventListener('click', (e) => {
    if (sidebar.classList.contains('open') && !sidebar.contains(e.target) && !toggle.contains(e.target)) {
      sidebar.classList.remove('open');
      toggle.setAttribute('aria-expanded', 'false');
    }
  });
  document.getElementById('nav-audit-logs').addEventListener('click', (e) => {
    e.preventDefault();
    sidebar.classList.remove('open');
    toggle.setAttribute('aria-expanded', 'false');
    setView({ range: DEFAULT_PRESET, from: '', to: '', filters: [], join: 'and', workflow: '' });
  });
  ui.applyMenu = apply;
}

// ---------------------------------------------------------------------------
// Catalog: suggestions and metadata labels

async function loadCatalog() {
  if (state.catalog) return;
  try {
    state.catalog = await getJson('/v1/catalog');
  } catch (e) {
    if (handleAuthFailure(e)) return;
    state.catalog = null; // suggestions and labels degrade to keys
  }
}

function catalogEntries() {
  const out = [];
  for (const level of state.catalog?.levels || []) {
    for (const cat of level.categories || []) {
      for (const ev of cat.events || []) out.push({ level: level.level, category: cat.name, event: ev });
    }
  }
  return out;
}

function suggestionsFor(column) {
  const entries = catalogEntries().filter((e) => !state.view.workflow || e.level === 'workflow');
  const set = new Set();
  if (column === 'event') entries.forEach((e) => set.add(e.event.name));
  else if (column === 'category') entries.forEach((e) => set.add(e.category));
  else if (column === 'level') ['account', 'workflow'].forEach((v) => set.add(v));
  return [...set].sort((a, b) => a.localeCompare(b));
}

function humanize(key) {
  const s = String(key).replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The catalog label of a metadata key for this record's event. */
function fieldLabel(record, key) {
  const entries = catalogEntries();
  const own = entries.find((e) => e.level === record.level && e.category === record.category && e.event.name === record.event);
  const field = own?.event.fields?.find((f) => f.key === key);
  if (field) return field.label;
  for (const e of entries) {
    const f = e.event.fields?.find((x) => x.key === key);
    if (f) return f.label;
  }
  return humanize(key);
}

// ---------------------------------------------------------------------------
// Loading the view

function viewBase() {
  return eventsBase(state.account, state.view.workflow);
}

async function loadView() {
  state.generation += 1;
  const generation = state.generation;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  Object.assign(state, {
    events: [], nextCursor: null, count: null, histogram: null, error: null,
    loading: true, loadingMore: false, echoedRange: null,
  });
  renderTable();
  renderCount();
  renderHistogram();
  renderRangeCaption();

  const base = viewBase();
  const params = viewParams(state.view);
  const signal = controller.signal;
  const current = () => generation === state.generation;

  const list = getJson(`${base}?${viewParams(state.view, { limit: PAGE_SIZE })}`, { signal })
    .then((body) => {
      if (!current()) return;
      state.events = body.events || [];
      state.nextCursor = body.next_cursor || null;
      state.echoedRange = body.range || null;
      state.loading = false;
      renderTable();
      renderRangeCaption();
    });
  const count = getJson(`${base}/count?${params}`, { signal }).then((body) => {
    if (!current()) return;
    state.count = typeof body.count === 'number' ? body.count : null;
    renderCount();
    renderTableFooter();
  });
  const histogram = loadHistogram(base, signal)
    .then((body) => {
      if (!current()) return;
      state.histogram = body;
      renderHistogram();
    });

  const results = await Promise.allSettled([list, count, histogram]);
  if (!current()) return;
  const failure = results.find((r) => r.status === 'rejected' && r.reason?.name !== 'AbortError');
  if (failure) {
    if (handleAuthFailure(failure.reason)) return;
    state.loading = false;
    state.error = failure.reason instanceof ApiError
      ? failure.reason
      : new ApiError('server', String(failure.reason?.message || failure.reason));
    // Whatever arrived is stale next to an error: show the error alone.
    state.events = [];
    state.nextCursor = null;
    state.histogram = state.histogram || { buckets: [] };
    renderTable();
    renderCount();
    renderHistogram();
  }
}

/**
 * The histogram with `bucket=auto`: the server picks hour, day, week, month
 * or year to fit the range (an all-time view of a log that spans decades
 * still answers) and says which. A server that does not know `auto` answers
 * 400: ask again for days (hours for a one-day range).
 */
async function loadHistogram(base, signal) {
  try {
    return await getJson(`${base}/histogram?${viewParams(state.view, { bucket: 'auto' })}`, { signal });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 400) throw e;
    const d = state.view.range === 'all_time' ? null : resolvedDates();
    const bucket = d && d.from === d.to ? 'hour' : 'day';
    const body = await getJson(`${base}/histogram?${viewParams(state.view, { bucket })}`, { signal });
    return { bucket, ...body };
  }
}

async function loadMore() {
  if (!state.nextCursor || state.loadingMore || state.loading) return;
  const generation = state.generation;
  // Pressed with the keyboard, the button may vanish (no more pages): focus
  // then moves to the first new row, where reading goes on.
  const fromButton = document.activeElement === ui.loadMore;
  state.loadingMore = true;
  renderTableFooter();
  try {
    const body = await getJson(
      `${viewBase()}?${viewParams(state.view, { limit: PAGE_SIZE, cursor: state.nextCursor })}`,
      { signal: state.controller?.signal },
    );
    if (generation !== state.generation) return;
    const added = body.events || [];
    state.events = state.events.concat(added);
    state.nextCursor = body.next_cursor || null;
    appendRows(added, state.events.length - added.length);
    if (fromButton) {
      const first = ui.tbody.querySelectorAll('.row-open')[state.events.length - added.length];
      (first || (ui.loadMore.hidden ? ui.tableWrap : ui.loadMore)).focus();
    }
  } catch (e) {
    if (e?.name === 'AbortError' || generation !== state.generation) return;
    if (handleAuthFailure(e)) return;
    toast(`Could not load more events: ${e.message}`, 'error');
  } finally {
    if (generation === state.generation) {
      state.loadingMore = false;
      renderTableFooter();
    }
  }
}

// ---------------------------------------------------------------------------
// The console: built once, then updated part by part

function buildConsole() {
  const main = document.getElementById('main');
  ui.root = main;

  ui.breadcrumb = h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' });
  // Focusable by script only: a move to another view (a workflow's, back to
  // the account's) puts the focus on the new view's heading.
  ui.title = h('h1', { class: 'page-title', tabindex: '-1' });
  ui.subtitle = h('p', { class: 'page-subtitle' });

  // Time zone: the viewer's by default, changeable, always shown.
  ui.tzSelect = h('select', { class: 'select select-compact', id: 'tz-select', 'aria-label': 'Time zone' });
  ui.tzSelect.addEventListener('change', () => setView({ tz: ui.tzSelect.value }));
  ui.tzOffset = h('span', { class: 'tz-offset' });
  ui.zone = h('div', { class: 'zone' },
    icon('clock'),
    h('label', { for: 'tz-select', class: 'zone-label', text: 'Time zone' }),
    ui.tzSelect, ui.tzOffset);

  const header = h('div', { class: 'page-header' },
    h('div', { class: 'page-heading' }, ui.breadcrumb, ui.title, ui.subtitle),
    ui.zone);

  // Toolbar
  ui.timeButtonLabel = h('span', { class: 'time-button-label' });
  ui.timeButton = h('button', {
    type: 'button', class: 'button button-outline time-button', id: 'time-button',
    'aria-haspopup': 'dialog', onclick: openTimeDialog,
  }, icon('calendar'), ui.timeButtonLabel, icon('chevronDown', 'icon-chevron'));
  ui.rangeCaption = h('span', { class: 'range-caption', id: 'range-caption' });
  ui.count = h('p', { class: 'event-count', id: 'event-count', 'aria-live': 'polite' });

  // The badge is drawn for the eye; the same count is in the button's
  // name (set in renderView): "Filter, 1 active".
  ui.filterBadge = h('span', { class: 'badge', 'aria-hidden': 'true', hidden: true });
  ui.filterButton = h('button', {
    type: 'button', class: 'button button-outline', id: 'filter-button',
    'aria-haspopup': 'dialog', onclick: openFilterDialog,
  }, icon('filter'), h('span', { text: 'Filter' }), ui.filterBadge);
  ui.exportButtonLabel = h('span', { text: 'Export' });
  ui.exportButton = h('button', {
    type: 'button', class: 'button button-outline', id: 'export-button',
    'aria-describedby': 'export-help', onclick: exportView,
  }, icon('download'), ui.exportButtonLabel);
  const exportHelp = h('span', { class: 'visually-hidden', id: 'export-help', text: 'Downloads the events of the current view as CSV' });

  const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Audit log view' },
    h('div', { class: 'toolbar-left' }, ui.timeButton, ui.rangeCaption),
    h('div', { class: 'toolbar-right' }, ui.count, ui.filterButton, ui.exportButton, exportHelp));
  // A toolbar role promises arrow-key navigation we do not need: these are
  // ordinary tab stops, so keep it a plain group.
  toolbar.setAttribute('role', 'group');

  ui.chips = h('div', { class: 'chips', id: 'filter-chips', hidden: true });

  ui.histTitle = h('p', { class: 'histogram-title', id: 'histogram-title' });
  ui.histMax = h('span', { class: 'histogram-max', 'aria-hidden': 'true' });
  ui.histBars = h('div', { class: 'histogram-bars', role: 'group', 'aria-labelledby': 'histogram-title' });
  ui.histAxis = h('div', { class: 'histogram-axis', 'aria-hidden': 'true' });
  ui.histogram = h('section', { class: 'histogram', 'aria-label': 'Events over time' },
    h('div', { class: 'histogram-head' }, ui.histTitle, ui.histMax),
    h('div', { class: 'histogram-plot' }, ui.histBars),
    ui.histAxis);

  ui.banner = h('div', { class: 'banner banner-error', role: 'alert', hidden: true });

  // Table
  const headers = ['Event Name', 'Category', 'User Name', 'Date and Time', 'Description'];
  ui.zoneHeaderNote = h('span', { class: 'th-note' });
  ui.tbody = h('tbody');
  ui.table = h('table', { class: 'log-table', id: 'log-table', 'aria-describedby': 'event-count' },
    h('caption', { class: 'visually-hidden', text: 'Audit log events, newest first' }),
    h('colgroup', {},
      h('col', { class: 'col-event' }), h('col', { class: 'col-category' }), h('col', { class: 'col-user' }),
      h('col', { class: 'col-date' }), h('col', { class: 'col-description' })),
    h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
    ui.tbody);
  ui.sentinel = h('div', { class: 'scroll-sentinel', 'aria-hidden': 'true' });
  ui.tableWrap = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Audit log events' },
    ui.table, ui.sentinel);
  ui.footerText = h('span', { class: 'table-footer-text', id: 'table-footer-text' });
  ui.loadMore = h('button', { type: 'button', class: 'button button-outline', id: 'load-more', onclick: loadMore, hidden: true },
    h('span', { text: 'Load more' }));
  ui.tableFooter = h('div', { class: 'table-footer' }, ui.footerText, ui.loadMore);

  ui.card = h('section', { class: 'card', 'aria-label': 'Audit Logs' },
    toolbar, ui.chips, ui.histogram, ui.banner, ui.tableWrap, ui.tableFooter);

  replace(main, header, ui.card);

  // Infinite scroll: when the end of the loaded rows scrolls into view.
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { root: ui.tableWrap, rootMargin: '200px' });
  observer.observe(ui.sentinel);

  buildTimeDialog();
  buildFilterDialog();
  buildDetailsDialog();
}

function renderView() {
  const v = state.view;
  ui.applyMenu?.();
  // Heading and breadcrumb
  const accountHref = urlOf({ ...v, workflow: '', filters: [], join: 'and' });
  const crumbs = [h('span', { text: 'Settings' }), h('span', { text: 'Monitoring' })];
  if (v.workflow) {
    const back = h('a', { href: accountHref, text: 'Audit Logs' });
    back.addEventListener('click', (e) => {
      e.preventDefault();
      setView({ workflow: '', filters: [], join: 'and' });
      ui.title.focus();
    });
    crumbs.push(back, h('span', { 'aria-current': 'page', text: `Workflow ${v.workflow}` }));
  } else {
    crumbs.push(h('span', { 'aria-current': 'page', text: 'Audit Logs' }));
  }
  replace(ui.breadcrumb, h('ol', {}, crumbs.map((c) => h('li', {}, c))));
  if (v.workflow) {
    replace(ui.title, icon('workflow', 'title-icon'), h('span', { text: 'Workflow ' }), h('code', { class: 'title-code', text: v.workflow }));
    ui.subtitle.textContent = `Workflow-level events of workflow ${v.workflow} in the ${state.account} account, newest first.`;
  } else {
    ui.title.textContent = 'Audit Logs';
    ui.subtitle.textContent = `Every action recorded in the ${state.account} account, newest first.`;
  }
  document.title = v.workflow
    ? `Workflow ${v.workflow} · Audit Logs · AI for Process`
    : 'Audit Logs · Settings · AI for Process';

  // Zone
  fillZoneSelect();
  // "UTC (your zone) UTC+00:00" would say it twice.
  const utc = ['UTC', 'Etc/UTC', 'Etc/GMT', 'GMT', 'Etc/Universal', 'Universal', 'Zulu'].includes(v.tz);
  ui.tzOffset.textContent = isTimeZone(v.tz) && !utc ? offsetLabel(v.tz) : '';

  // Time button
  ui.timeButtonLabel.textContent = rangeLabel(v);
  renderRangeCaption();

  // Filters
  renderChips();
  const n = v.filters.length;
  ui.filterBadge.hidden = n === 0;
  ui.filterBadge.textContent = n === 0 ? '' : String(n);
  if (n === 0) ui.filterButton.removeAttribute('aria-label');
  else ui.filterButton.setAttribute('aria-label', `Filter, ${n} active`);
  ui.filterButton.classList.toggle('is-active', n > 0);
}

function fillZoneSelect() {
  const tz = state.view.tz;
  if (ui.tzSelect.dataset.filledFor === tz) return;
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    zones = [];
  }
  const set = new Set([...zones, 'UTC', browserZone, tz]);
  const sorted = [...set].sort((a, b) => a.localeCompare(b));
  replace(ui.tzSelect, sorted.map((z) => h('option', {
    value: z, text: z === browserZone ? `${z} (your zone)` : z, selected: z === tz,
  })));
  ui.tzSelect.value = tz;
  ui.tzSelect.dataset.filledFor = tz;
}

function rangeLabel(v) {
  if (v.range === 'custom') {
    if (isDate(v.from) && isDate(v.to || '')) return formatSpan(v.from, v.to);
    if (isDate(v.from)) return `${formatDate(v.from)} – Today`;
    return 'Custom range';
  }
  return PRESET_LABELS[v.range] || v.range;
}

/** The resolved dates of the view, from the server's echo when it came. */
function resolvedDates() {
  const v = state.view;
  const tz = isTimeZone(v.tz) ? v.tz : 'UTC';
  const r = state.echoedRange;
  if (r && r.from && r.to) {
    return { from: dateIn(new Date(r.from), tz), to: dateIn(new Date(new Date(r.to).getTime() - 1), tz) };
  }
  if (v.range === 'custom') return isDate(v.from) ? { from: v.from, to: v.to || todayIn(tz) } : null;
  return presetDates(v.range, todayIn(tz));
}

function renderRangeCaption() {
  if (!ui.rangeCaption) return;
  const v = state.view;
  if (v.range === 'all_time') {
    ui.rangeCaption.textContent = 'Since the account was created';
    return;
  }
  const d = resolvedDates();
  ui.rangeCaption.textContent = d && v.range !== 'custom' ? formatSpan(d.from, d.to) : '';
}

function renderCount() {
  if (state.error) {
    ui.count.textContent = '';
    return;
  }
  ui.count.textContent = state.count === null ? 'Counting…' : plural(state.count, 'event', 'events');
}

function renderChips() {
  const v = state.view;
  if (v.filters.length === 0) {
    ui.chips.hidden = true;
    replace(ui.chips);
    return;
  }
  ui.chips.hidden = false;
  const items = [];
  v.filters.forEach((f, i) => {
    if (i > 0) items.push(h('li', { class: 'chip-join', 'aria-hidden': 'true', text: v.join.toUpperCase() }));
    const text = f.raw !== undefined ? f.raw : `${columnLabel(f.column)} ${operatorLabel(f.op)} ${f.value}`;
    items.push(h('li', { class: 'chip' },
      h('span', { class: 'chip-column', text: columnLabel(f.column) }),
      h('span', { class: 'chip-op', text: f.raw !== undefined ? '' : operatorLabel(f.op) }),
      h('span', { class: 'chip-value', text: f.raw !== undefined ? f.raw : f.value }),
      h('button', {
        type: 'button', class: 'chip-remove', 'aria-label': `Remove filter ${text}`,
        onclick: () => removeFilter(i),
      }, icon('close'))));
  });
  const joinText = v.filters.length > 1
    ? (v.join === 'and' ? 'Showing events that match all filters' : 'Showing events that match any filter')
    : 'Showing events that match';
  replace(ui.chips,
    h('span', { class: 'chips-label', id: 'chips-label', text: joinText }),
    h('ul', { class: 'chip-list', 'aria-labelledby': 'chips-label' }, items),
    h('button', { type: 'button', class: 'button button-link', onclick: clearFilters }, 'Clear filters'));
}

/** Drops every filter; the chips bar goes away, so focus moves to Filter. */
function clearFilters() {
  setView({ filters: [], join: 'and' });
  ui.filterButton.focus();
}

function removeFilter(index) {
  const filters = state.view.filters.filter((_, i) => i !== index);
  setView({ filters });
  // Keep keyboard focus near where it was.
  requestAnimationFrame(() => {
    const remaining = ui.chips.querySelectorAll('.chip-remove');
    const next = remaining[Math.min(index, remaining.length - 1)];
    (next || ui.filterButton).focus();
  });
}

// ---------------------------------------------------------------------------
// Histogram

function renderHistogram() {
  const data = state.histogram;
  const v = state.view;
  ui.histogram.classList.toggle('is-loading', !data);
  ui.histogram.hidden = Boolean(state.error);
  if (!data) {
    ui.histTitle.textContent = 'Events over time';
    ui.histMax.textContent = '';
    replace(ui.histBars, Array.from({ length: 30 }, () => h('span', { class: 'bar-skeleton' })));
    replace(ui.histAxis);
    return;
  }
  const buckets = data.buckets || [];
  const unit = data.bucket || 'day';
  const tz = isTimeZone(v.tz) ? v.tz : 'UTC';
  const per = { hour: 'hour', day: 'day', week: 'week', month: 'month', year: 'year' }[unit] || unit;
  ui.histTitle.textContent = `Events per ${per}`;
  if (buckets.length === 0) {
    ui.histMax.textContent = '';
    replace(ui.histBars, h('span', { class: 'histogram-empty', text: state.error ? '' : 'No events in this range' }));
    replace(ui.histAxis);
    return;
  }
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const total = buckets.reduce((n, b) => n + b.count, 0);
  ui.histMax.textContent = total === 0 ? '' : `max ${numberFormat.format(max)}`;
  ui.histBars.classList.toggle('dense', buckets.length > 60);
  ui.histBars.classList.toggle('very-dense', buckets.length > 150);
  const clickable = unit !== 'hour';
  const label = (b) => {
    const start = new Date(b.start);
    switch (unit) {
      case 'hour': return `${formatDate(dateIn(start, tz))} ${formatHour(b.start, tz)}`;
      case 'week': return `Week of ${formatDate(dateIn(start, tz))}`;
      case 'month': return new Intl.DateTimeFormat(undefined, { timeZone: tz, month: 'long', year: 'numeric' }).format(start);
      case 'year': return new Intl.DateTimeFormat(undefined, { timeZone: tz, year: 'numeric' }).format(start);
      default: return formatDate(dateIn(start, tz));
    }
  };
  let focusIndex = buckets.length - 1;
  for (let i = buckets.length - 1; i >= 0; i -= 1) if (buckets[i].count > 0) { focusIndex = i; break; }
  const bars = buckets.map((b, i) => {
    const bar = h('button', {
      type: 'button', class: `bar${b.count === 0 ? ' bar-zero' : ''}`,
      tabindex: i === focusIndex ? '0' : '-1',
      'aria-label': `${label(b)}: ${plural(b.count, 'event', 'events')}`,
      title: `${label(b)}: ${plural(b.count, 'event', 'events')}${clickable ? ` — click to show only this ${per}` : ''}`,
      'aria-disabled': clickable ? null : 'true',
      dataset: { index: String(i) },
    }, h('span', { class: 'bar-fill' }));
    // Heights come from data, so they are set through the CSSOM, which the
    // page's CSP allows, rather than a style attribute, which it forbids.
    bar.firstChild.style.height = b.count === 0 ? '0' : `${Math.max(10, (b.count / max) * 100)}%`;
    if (clickable) bar.addEventListener('click', () => narrowToBucket(buckets, i, unit, tz));
    return bar;
  });
  replace(ui.histBars, bars,
    total === 0 ? h('span', { class: 'histogram-overlay', 'aria-hidden': 'true', text: 'No events in this range' }) : null);
  ui.histBars.onkeydown = (e) => {
    const idx = Number(document.activeElement?.dataset?.index);
    if (Number.isNaN(idx)) return;
    let next = null;
    if (e.key === 'ArrowRight') next = Math.min(bars.length - 1, idx + 1);
    else if (e.key === 'ArrowLeft') next = Math.max(0, idx - 1);
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = bars.length - 1;
    if (next === null) return;
    e.preventDefault();
    bars[idx].tabIndex = -1;
    bars[next].tabIndex = 0;
    bars[next].focus();
  };
  const first = buckets[0];
  const last = buckets[buckets.length - 1];
  const mid = buckets[Math.floor(buckets.length / 2)];
  const short = (b) => (unit === 'hour' ? formatHour(b.start, tz) : unit === 'week' ? formatDate(dateIn(new Date(b.start), tz)) : label(b));
  replace(ui.histAxis,
    h('span', { text: short(first) }),
    buckets.length > 2 ? h('span', { text: short(mid) }) : null,
    buckets.length > 1 ? h('span', { text: short(last) }) : null);
}

function narrowToBucket(buckets, i, unit, tz) {
  const from = dateIn(new Date(buckets[i].start), tz);
  let to = from;
  if (unit !== 'day') {
    to = i + 1 < buckets.length
      ? addDays(dateIn(new Date(buckets[i + 1].start), tz), -1)
      : (resolvedDates()?.to || todayIn(tz));
  }
  setView({ range: 'custom', from, to });
  // The bars are redrawn for the new range: the time button, which now
  // names it, keeps the focus.
  ui.timeButton.focus();
}

// ---------------------------------------------------------------------------
// Table

function userName(record) {
  const a = record.actor || {};
  return a.name || a.id || '';
}

function renderTable() {
  ui.table.setAttribute('aria-busy', String(state.loading));
  ui.banner.hidden = !state.error;
  if (state.error) {
    renderError(state.error);
    replace(ui.tbody);
    ui.tableWrap.hidden = true;
    renderTableFooter();
    return;
  }
  ui.tableWrap.hidden = false;
  if (state.loading) {
    replace(ui.tbody, h('tr', { class: 'state-row' }, h('td', { colspan: '5' },
      h('div', { class: 'state' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', { text: 'Loading events…' })))));
    renderTableFooter();
    return;
  }
  if (state.events.length === 0) {
    const hasFilters = state.view.filters.length > 0;
    replace(ui.tbody, h('tr', { class: 'state-row' }, h('td', { colspan: '5' },
      h('div', { class: 'state state-empty' },
        icon('search', 'state-icon'),
        h('p', { class: 'state-title', text: 'No events match this view' }),
        h('p', {
          class: 'state-text',
          text: hasFilters
            ? `No event in the selected time range (${rangeLabel(state.view)}) matches the filters. Remove a filter or pick a wider time range.`
            : `No events were recorded in the selected time range (${rangeLabel(state.view)}). Pick a wider time range.`,
        }),
        h('div', { class: 'state-actions' },
          hasFilters ? h('button', { type: 'button', class: 'button button-outline', onclick: clearFilters }, 'Clear filters') : null,
          state.view.range !== 'all_time' ? h('button', {
            type: 'button',
            class: 'button button-outline',
            onclick: () => { setView({ range: 'all_time', from: '', to: '' }); ui.timeButton.focus(); },
          }, 'Show All Time') : null)))));
    renderTableFooter();
    return;
  }
  replace(ui.tbody);
  appendRows(state.events, 0);
  renderTableFooter();
}

function appendRows(records, offset) {
  const tz = isTimeZone(state.view.tz) ? state.view.tz : 'UTC';
  const frag = document.createDocumentFragment();
  records.forEach((r, i) => {
    const index = offset + i;
    const open = h('button', {
      type: 'button', class: 'row-open', text: r.event,
      'aria-haspopup': 'dialog', title: 'Show details',
      onclick: (e) => { e.stopPropagation(); openDetails(index, open); },
    });
    const row = h('tr', { class: 'log-row', dataset: { index: String(index) } },
      h('td', { class: 'cell-event' }, open),
      h('td', { class: 'cell-category', text: r.category }),
      h('td', { class: 'cell-user' }, actorCell(r)),
      h('td', { class: 'cell-date' }, dateTimeCell(r.occurred_at, tz)),
      h('td', { class: 'cell-description' },
        h('span', { class: 'desc-text', title: r.description ?? '', text: r.description ?? '' })));
    row.addEventListener('click', () => openDetails(index, open));
    frag.append(row);
  });
  ui.tbody.append(frag);
  renderTableFooter();
}

/** Date on one line, time under it: both in the viewer's zone. */
function dateTimeCell(iso, tz) {
  const { date, time: clock } = splitInstant(iso, tz);
  return h('time', { datetime: iso, title: `${formatInstant(iso, tz)} (${tz})` },
    h('span', { class: 'date-day', text: date }), ' ', h('span', { class: 'date-time', text: clock }));
}

function actorCell(r) {
  const a = r.actor || {};
  const kind = a.kind && a.kind !== 'user' ? h('span', { class: `tag tag-${a.kind === 'app' ? 'app' : 'system'}`, text: a.kind === 'app' ? 'App' : 'System' }) : null;
  return [h('span', { class: 'user-name', text: userName(r) }), kind];
}

function renderTableFooter() {
  if (!ui.footerText) return;
  const loaded = state.events.length;
  ui.tableFooter.hidden = Boolean(state.error) || loaded === 0;
  if (state.loading || state.error) {
    ui.loadMore.hidden = true;
    ui.footerText.textContent = '';
    return;
  }
  const total = state.count;
  if (loaded === 0) ui.footerText.textContent = '';
  else if (total !== null) ui.footerText.textContent = `Showing ${numberFormat.format(loaded)} of ${plural(total, 'event', 'events')}`;
  else ui.footerText.textContent = `Showing ${plural(loaded, 'event', 'events')}`;
  ui.loadMore.hidden = !state.nextCursor;
  // Not `disabled`: a disabled button loses the keyboard focus to <body>.
  if (state.loadingMore) ui.loadMore.setAttribute('aria-disabled', 'true');
  else ui.loadMore.removeAttribute('aria-disabled');
  ui.loadMore.firstChild.textContent = state.loadingMore ? 'Loading…' : 'Load more';
}

function renderError(err) {
  // The banner is redrawn by what these buttons do: focus goes to the time
  // button, which stays, rather than to the page body.
  const actions = [h('button', { type: 'button', class: 'button button-outline', onclick: () => { loadView(); ui.timeButton.focus(); } }, icon('refresh'), h('span', { text: 'Try again' }))];
  let title = 'Something went wrong';
  if (err.kind === 'network') title = 'Cannot reach the server';
  else if (err.kind === 'bad_request') {
    title = 'This view cannot be shown';
    actions.unshift(h('button', {
      type: 'button', class: 'button button-outline',
      onclick: () => {
        setView({ range: DEFAULT_PRESET, from: '', to: '', tz: browserZone, filters: [], join: 'and' });
        ui.timeButton.focus();
      },
    }, 'Reset view'));
    if (state.view.filters.length) {
      actions.unshift(h('button', { type: 'button', class: 'button button-outline', onclick: openFilterDialog }, 'Edit filters'));
    }
  } else if (err.kind === 'not_found') title = state.view.workflow ? 'Workflow or account not found' : 'Account not found';
  else if (err.kind === 'forbidden') title = 'Not allowed';
  const details = (err.errors || []).map((x) => h('li', {}, h('code', { text: x.path }), ` ${x.message}`));
  replace(ui.banner,
    icon('alert', 'banner-icon'),
    h('div', { class: 'banner-body' },
      h('p', { class: 'banner-title', text: title }),
      h('p', { class: 'banner-text', text: err.message }),
      details.length ? h('ul', { class: 'banner-list' }, details) : null,
      h('div', { class: 'banner-actions' }, actions)));
}

// ---------------------------------------------------------------------------
// Dialogs

const dialogs = [];

/**
 * A native modal <dialog>: the page behind it is inert, Escape closes it,
 * Tab is kept inside, and focus returns to the control that opened it.
 */
function makeDialog({ id, cls }) {
  const titleId = `${id}-title`;
  const dialog = h('dialog', { class: `dialog ${cls}`, id, 'aria-labelledby': titleId });
  dialog.titleId = titleId;
  trapFocus(dialog);
  dialog.addEventListener('close', () => {
    const opener = dialog.opener;
    dialog.opener = null;
    if (opener && opener.isConnected && !opener.closest('[hidden]')) opener.focus();
    // The opener was redrawn (a row of a view that changed): focus the time
    // button, the first control of the view, rather than leaving it to <body>.
    else if (ui.timeButton?.isConnected && !document.getElementById('shell').hidden) ui.timeButton.focus();
  });
  // A click on the backdrop (the dialog box itself, outside its content) closes it.
  dialog.addEventListener('mousedown', (e) => {
    if (e.target === dialog) dialog.dataset.backdropDown = '1';
  });
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog && dialog.dataset.backdropDown === '1') dialog.close();
    delete dialog.dataset.backdropDown;
  });
  document.body.append(dialog);
  dialogs.push(dialog);
  return dialog;
}

function openDialog(dialog, opener, anchor) {
  dialog.opener = opener || document.activeElement;
  if (!dialog.open) dialog.showModal();
  positionDialog(dialog, anchor);
}

/** Drops an anchored panel under its button on wide screens; centred otherwise. */
function positionDialog(dialog, anchor) {
  dialog.classList.remove('anchored');
  dialog.style.top = '';
  dialog.style.left = '';
  if (!anchor || window.innerWidth < 900) return;
  const r = anchor.getBoundingClientRect();
  const w = dialog.offsetWidth;
  const hgt = dialog.offsetHeight;
  let left = anchor.dataset.align === 'right' ? r.right - w : r.left;
  left = Math.max(12, Math.min(left, window.innerWidth - w - 12));
  let top = r.bottom + 8;
  if (top + hgt > window.innerHeight - 12) top = Math.max(12, window.innerHeight - hgt - 12);
  dialog.classList.add('anchored');
  dialog.style.left = `${left}px`;
  dialog.style.top = `${top}px`;
}

function closeAllDialogs() {
  for (const d of dialogs) if (d.open) d.close();
}

function dialogHeader(dialog, title) {
  return h('div', { class: 'dialog-header' },
    h('h2', { class: 'dialog-title', id: dialog.titleId, text: title }),
    h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Close', onclick: () => dialog.close() }, icon('close')));
}

// --- Time range panel ------------------------------------------------------

const time = { dialog: null, draft: null, month: null, focusDate: null, picks: 0 };

function buildTimeDialog() {
  const dialog = makeDialog({ id: 'time-dialog', cls: 'dialog-time' });
  time.dialog = dialog;
  ui.presetList = h('ul', { class: 'preset-list', 'aria-label': 'Presets' });
  ui.monthSelect = h('select', { class: 'select select-compact', 'aria-label': 'Month' });
  ui.yearSelect = h('select', { class: 'select select-compact', 'aria-label': 'Year' });
  ui.monthSelect.addEventListener('change', () => { time.month = { ...time.month, m: Number(ui.monthSelect.value) }; renderCalendar(); });
  ui.yearSelect.addEventListener('change', () => { time.month = { ...time.month, y: Number(ui.yearSelect.value) }; renderCalendar(); });
  const prev = h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Previous month', onclick: () => shiftMonth(-1) }, icon('chevronLeft'));
  const next = h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Next month', onclick: () => shiftMonth(1) }, icon('chevronRight'));
  // Two months side by side (stacked on narrow screens), so the start of
  // "Last 30 Days" is on screen next to its end.
  ui.calendarMonths = h('div', { class: 'calendar-months' });
  ui.rangeSummary = h('p', { class: 'range-summary', id: 'range-summary', 'aria-live': 'polite' });
  ui.calendarHint = h('p', { class: 'calendar-hint', id: 'calendar-hint' });
  const apply = h('button', { type: 'button', class: 'button button-primary', onclick: applyTime }, 'Apply');
  const cancel = h('button', { type: 'button', class: 'button button-ghost', onclick: () => dialog.close() }, 'Cancel');
  replace(dialog,
    dialogHeader(dialog, 'Select time range'),
    h('div', { class: 'time-body' },
      h('nav', { class: 'preset-panel', 'aria-label': 'Preset ranges' }, ui.presetList),
      h('div', { class: 'calendar' },
        h('div', { class: 'calendar-nav' }, prev, h('div', { class: 'calendar-selects' }, ui.monthSelect, ui.yearSelect), next),
        ui.calendarMonths,
        ui.calendarHint)),
    h('div', { class: 'dialog-footer' },
      h('div', { class: 'range-summary-wrap' }, h('span', { class: 'range-summary-label', text: 'Selected range' }), ui.rangeSummary),
      h('div', { class: 'dialog-actions' }, cancel, apply)));
  ui.calendarMonths.addEventListener('keydown', onCalendarKey);
}

function tzOrUtc() {
  return isTimeZone(state.view.tz) ? state.view.tz : 'UTC';
}

function draftDates() {
  const d = time.draft;
  if (d.range === 'custom') return { from: d.from, to: d.to };
  return presetDates(d.range, todayIn(tzOrUtc()));
}

function openTimeDialog() {
  const v = state.view;
  const today = todayIn(tzOrUtc());
  time.draft = v.range === 'custom' && isDate(v.from)
    ? { range: 'custom', from: v.from, to: isDate(v.to) ? v.to : today }
    : { range: PRESET_LABELS[v.range] ? v.range : DEFAULT_PRESET };
  time.picks = 0;
  const d = draftDates();
  const anchorDate = d ? (d.to > today ? today : d.to) : today;
  showMonthsEndingAt(anchorDate);
  time.focusDate = anchorDate;
  renderTimePanel();
  ui.timeButton.dataset.align = 'left';
  openDialog(time.dialog, ui.timeButton, ui.timeButton);
  const selected = ui.presetList.querySelector('[aria-pressed="true"]') || ui.presetList.querySelector('button');
  selected.focus();
}

function renderTimePanel() {
  replace(ui.presetList, PRESETS.map(([key, label]) => h('li', {},
    h('button', {
      type: 'button', class: 'preset', 'aria-pressed': String(time.draft.range === key),
      onclick: () => {
        time.draft = { range: key };
        time.picks = 0;
        const d = draftDates();
        if (d) {
          const target = d.to > todayIn(tzOrUtc()) ? todayIn(tzOrUtc()) : d.to;
          showMonthsEndingAt(target);
          time.focusDate = target;
        }
        renderTimePanel();
        // The preset buttons were redrawn: keep the focus on the chosen one.
        ui.presetList.querySelector('[aria-pressed="true"]')?.focus();
      },
    }, label))));
  renderCalendar();
}

/** Shows the month of `date` on the right and the month before it on the left. */
function showMonthsEndingAt(date) {
  const p = parts(date);
  const left = parts(makeDate(p.y, p.m - 1, 1));
  time.month = { y: left.y, m: left.m };
}

function shiftMonth(delta) {
  const { y, m } = parts(makeDate(time.month.y, time.month.m + delta, 1));
  time.month = { y, m };
  renderCalendar();
}

function renderCalendar() {
  const tz = tzOrUtc();
  const today = todayIn(tz);
  const { y, m } = time.month;
  const names = monthNames();
  replace(ui.monthSelect, names.map((n, i) => h('option', { value: String(i + 1), text: n, selected: i + 1 === m })));
  ui.monthSelect.value = String(m);
  const thisYear = parts(today).y;
  const years = [];
  for (let yr = Math.min(y, thisYear - 10); yr <= Math.max(y, thisYear); yr += 1) years.push(yr);
  replace(ui.yearSelect, years.map((yr) => h('option', { value: String(yr), text: String(yr), selected: yr === y })));
  ui.yearSelect.value = String(y);

  const d = draftDates();
  // The range as drawn: a preset that runs into the future (This Week, This
  // Month) is filled up to today only; its later days are not chosen days.
  const drawn = d && { from: d.from, to: d.to > today ? today : d.to };
  const second = parts(makeDate(y, m + 1, 1));
  const firstDay = makeDate(y, m, 1);
  const lastDay = makeDate(second.y, second.m, daysInMonth(second.y, second.m));
  const visible = (date) => date >= firstDay && date <= lastDay;
  if (!time.focusDate || !visible(time.focusDate) || time.focusDate > today) {
    time.focusDate = visible(today) ? today : firstDay;
  }
  replace(ui.calendarMonths, [{ y, m }, second].map((mo) => monthGrid(mo, drawn, today)));
  // The chosen range, written at the bottom of the panel (the seed's rule).
  if (!d) ui.rangeSummary.textContent = 'All Time — every event since the account was created';
  else if (time.draft.range === 'custom') ui.rangeSummary.textContent = formatSpan(d.from, d.to);
  else ui.rangeSummary.textContent = `${PRESET_LABELS[time.draft.range]}: ${formatSpan(d.from, d.to)}`;
  ui.calendarHint.textContent = time.picks === 1
    ? 'End date is today. Click another date to set the end date.'
    : 'Click a date to set the start date; the end date is today unless you click a second date.';
}

/** One month of the calendar: a grid of day buttons under its name. */
function monthGrid({ y, m }, drawn, today) {
  const first = makeDate(y, m, 1);
  const lead = weekdayMonday0(first);
  const count = daysInMonth(y, m);
  const captionId = uid('month');
  const caption = new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', month: 'long', year: 'numeric' })
    .format(new Date(Date.UTC(y, m - 1, 15)));
  const head = h('thead', {}, h('tr', {}, weekdayShortNames().map((n) => h('th', { scope: 'col', abbr: n, text: n }))));
  const rows = [];
  let cells = [];
  for (let i = 0; i < lead; i += 1) cells.push(h('td', { class: 'day-empty', role: 'presentation' }));
  for (let day = 1; day <= count; day += 1) {
    const date = makeDate(y, m, day);
    const inRange = drawn && date >= drawn.from && date <= drawn.to;
    const classes = ['day'];
    if (inRange) classes.push('in-range');
    if (drawn && date === drawn.from) classes.push('range-start');
    if (drawn && date === drawn.to) classes.push('range-end');
    if (date === today) classes.push('today');
    const button = h('button', {
      type: 'button', class: 'day-button', text: String(day),
      'aria-label': `${formatLongDate(date)}${date === today ? ', today' : ''}`,
      tabindex: date === time.focusDate ? '0' : '-1',
      disabled: date > today,
      dataset: { date },
      onclick: () => pickDate(date),
    });
    cells.push(h('td', { class: classes.join(' '), role: 'gridcell', 'aria-selected': String(Boolean(inRange)) }, button));
    if (cells.length === 7) { rows.push(h('tr', {}, cells)); cells = []; }
  }
  if (cells.length) {
    while (cells.length < 7) cells.push(h('td', { class: 'day-empty', role: 'presentation' }));
    rows.push(h('tr', {}, cells));
  }
  return h('div', { class: 'calendar-month' },
    h('p', { class: 'calendar-caption', id: captionId, text: caption }),
    h('table', { class: 'calendar-grid', role: 'grid', 'aria-labelledby': captionId }, head, h('tbody', {}, rows)));
}

function pickDate(date) {
  const tz = tzOrUtc();
  const today = todayIn(tz);
  if (time.picks === 1 && time.draft.range === 'custom') {
    // Second click: the end date (or the start, if it is before the first).
    const a = time.draft.from;
    time.draft = { range: 'custom', from: date < a ? date : a, to: date < a ? a : date };
    time.picks = 2;
  } else {
    time.draft = { range: 'custom', from: date, to: today };
    time.picks = 1;
  }
  time.focusDate = date;
  renderTimePanel();
  ui.calendarMonths.querySelector(`[data-date="${date}"]`)?.focus();
}

function onCalendarKey(e) {
  const current = document.activeElement?.dataset?.date;
  if (!current) return;
  const steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -7, ArrowDown: 7 };
  let next = null;
  if (e.key in steps) next = addDays(current, steps[e.key]);
  else if (e.key === 'PageUp' || e.key === 'PageDown') {
    const p = parts(current);
    const delta = e.key === 'PageUp' ? -1 : 1;
    const target = parts(makeDate(p.y, p.m + delta, 1));
    next = makeDate(target.y, target.m, Math.min(p.d, daysInMonth(target.y, target.m)));
  } else if (e.key === 'Home') next = addDays(current, -weekdayMonday0(current));
  else if (e.key === 'End') next = addDays(current, 6 - weekdayMonday0(current));
  if (!next) return;
  e.preventDefault();
  const today = todayIn(tzOrUtc());
  if (next > today) next = today;
  time.focusDate = next;
  const p = parts(next);
  const second = parts(makeDate(time.month.y, time.month.m + 1, 1));
  const shown = (q) => (q.y === time.month.y && q.m === time.month.m) || (q.y === second.y && q.m === second.m);
  if (!shown(p)) {
    // Moving back shows the new month on the left, moving on shows it on the right.
    if (next < makeDate(time.month.y, time.month.m, 1)) time.month = { y: p.y, m: p.m };
    else showMonthsEndingAt(next);
    renderCalendar();
  } else {
    for (const b of ui.calendarMonths.querySelectorAll('.day-button')) b.tabIndex = b.dataset.date === next ? 0 : -1;
  }
  ui.calendarMonths.querySelector(`[data-date="${next}"]`)?.focus();
}

function applyTime() {
  const d = time.draft;
  time.dialog.close();
  if (d.range === 'custom') setView({ range: 'custom', from: d.from, to: d.to });
  else setView({ range: d.range, from: '', to: '' });
}

// --- Filter By dialog --------------------------------------------------------

const filt = { dialog: null, rows: [], join: 'and' };

function buildFilterDialog() {
  const dialog = makeDialog({ id: 'filter-dialog', cls: 'dialog-filter' });
  filt.dialog = dialog;
  // AND / OR is one choice of two: a radio group (drawn as a switch), whose
  // arrow keys, focus and "1 of 2" come from the browser. It was built as
  // tabs, which promise a panel that changes.
  ui.joinRadios = ['and', 'or'].map((j) => h('input', {
    type: 'radio', name: 'filter-join', id: `join-${j}`, value: j,
    onchange: () => setJoin(j),
  }));
  const joinGroup = h('div', {
    class: 'segmented', role: 'radiogroup', 'aria-label': 'Combine filters with', 'aria-describedby': 'join-help',
  }, ui.joinRadios.map((input) => h('label', { class: 'segment', for: input.id },
    input, h('span', { text: input.value.toUpperCase() }))));
  ui.joinHelp = h('p', { class: 'join-help', id: 'join-help' });
  ui.filterRows = h('ol', { class: 'filter-rows' });
  ui.filterEmpty = h('p', { class: 'filter-empty', text: 'No filters yet. Add one to narrow the log by event, category or user.' });
  ui.filterError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const add = h('button', { type: 'button', class: 'button button-link add-filter', onclick: () => addFilterRow() }, '+ Add Filter');
  const apply = h('button', { type: 'button', class: 'button button-primary', onclick: applyFilters }, 'Apply');
  const cancel = h('button', { type: 'button', class: 'button button-ghost', onclick: () => dialog.close() }, 'Cancel');
  const clear = h('button', {
    type: 'button', class: 'button button-link button-danger-text',
    onclick: () => { filt.rows = []; renderFilterRows(); add.focus(); },
  }, 'Clear all');
  replace(dialog,
    dialogHeader(dialog, 'Filter By'),
    h('div', { class: 'filter-body' },
      h('div', { class: 'join-bar' }, joinGroup, ui.joinHelp),
      h('div', { class: 'filter-panel' },
        ui.filterEmpty, ui.filterRows, ui.filterError, add)),
    h('div', { class: 'dialog-footer' }, clear, h('div', { class: 'dialog-actions' }, cancel, apply)));
  // Enter in a value field applies, like a form would.
  dialog.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.matches('input.filter-value')) {
      e.preventDefault();
      applyFilters();
    }
  });
}

function setJoin(j) {
  filt.join = j;
  for (const r of ui.joinRadios) r.checked = r.value === j;
  ui.joinHelp.textContent = j === 'and'
    ? 'AND: an event must match every filter.'
    : 'OR: an event may match any one filter.';
  renderFilterJoinWords();
}

function openFilterDialog() {
  filt.rows = state.view.filters.map((f) => ({ ...f, key: uid('f') }));
  setJoin(state.view.join);
  ui.filterError.hidden = true;
  renderFilterRows();
  ui.filterButton.dataset.align = 'right';
  openDialog(filt.dialog, ui.filterButton, ui.filterButton);
  const first = filt.dialog.querySelector('.filter-rows select, .add-filter');
  first?.focus();
}

function addFilterRow() {
  const row = { column: 'event', op: 'eq', value: '', key: uid('f') };
  filt.rows.push(row);
  renderFilterRows();
  const el = ui.filterRows.lastElementChild;
  el?.querySelector('select')?.focus();
}

function renderFilterJoinWords() {
  for (const w of ui.filterRows.querySelectorAll('.row-join')) w.textContent = filt.join.toUpperCase();
}

function renderFilterRows() {
  ui.filterEmpty.hidden = filt.rows.length > 0;
  replace(ui.filterRows, filt.rows.map((row, i) => filterRowEl(row, i)));
}

function filterRowEl(row, i) {
  const listId = `${row.key}-values`;
  const colOptions = { ...COLUMNS };
  if (!COLUMNS[row.column]) colOptions[row.column] = columnLabel(row.column);
  const opOptions = { ...OPERATORS };
  if (!OPERATORS[row.op]) opOptions[row.op] = operatorLabel(row.op);
  const column = h('select', { class: 'select filter-column', 'aria-label': 'Select Column' },
    Object.entries(colOptions).map(([k, label]) => h('option', { value: k, text: label, selected: k === row.column })));
  const op = h('select', { class: 'select filter-op', 'aria-label': 'Select Operator' },
    Object.entries(opOptions).map(([k, label]) => h('option', { value: k, text: label, selected: k === row.op })));
  const datalist = h('datalist', { id: listId });
  const value = h('input', {
    type: 'text', class: 'input filter-value', 'aria-label': 'Enter Value', placeholder: 'Enter Value',
    list: listId, autocomplete: 'off', spellcheck: 'false', value: row.value,
  });
  const fillSuggestions = async () => {
    if (row.column === 'user') {
      try {
        const q = encodeURIComponent(value.value.trim());
        const body = await getJson(`/v1/accounts/${encodeURIComponent(state.account)}/suggestions?column=user&q=${q}`);
        if (row.column !== 'user') return;
        replace(datalist, (body.values || []).map((v) => h('option', { value: v })));
      } catch (e) {
        if (!handleAuthFailure(e)) replace(datalist);
      }
    } else {
      replace(datalist, suggestionsFor(row.column).map((v) => h('option', { value: v })));
    }
  };
  let timer = null;
  column.addEventListener('change', () => { row.column = column.value; value.classList.remove('is-invalid'); fillSuggestions(); });
  op.addEventListener('change', () => { row.op = op.value; });
  value.addEventListener('input', () => {
    row.value = value.value;
    value.classList.remove('is-invalid');
    value.removeAttribute('aria-invalid');
    if (row.column === 'user') { clearTimeout(timer); timer = setTimeout(fillSuggestions, 200); }
  });
  fillSuggestions();
  const remove = h('button', {
    type: 'button', class: 'icon-button', 'aria-label': `Remove filter ${i + 1}`, title: 'Remove filter',
    onclick: () => {
      filt.rows = filt.rows.filter((r) => r !== row);
      renderFilterRows();
      const rows = ui.filterRows.children;
      const target = rows[Math.min(i, rows.length - 1)];
      (target?.querySelector('.filter-value') || filt.dialog.querySelector('.add-filter')).focus();
    },
  }, icon('trash'));
  return h('li', { class: 'filter-row', dataset: { key: row.key } },
    i > 0 ? h('span', { class: 'row-join', 'aria-hidden': 'true', text: filt.join.toUpperCase() }) : h('span', { class: 'row-join row-join-first', 'aria-hidden': 'true', text: 'Where' }),
    column, op, value, datalist, remove);
}

function applyFilters() {
  const rowEls = [...ui.filterRows.children];
  let firstBad = null;
  filt.rows.forEach((row, i) => {
    const input = rowEls[i]?.querySelector('.filter-value');
    const bad = row.value.trim() === '';
    input?.classList.toggle('is-invalid', bad);
    if (bad) input?.setAttribute('aria-invalid', 'true');
    if (bad && !firstBad) firstBad = input;
  });
  if (firstBad) {
    ui.filterError.textContent = 'Enter a value for every filter, or remove the empty ones.';
    ui.filterError.hidden = false;
    firstBad.focus();
    return;
  }
  ui.filterError.hidden = true;
  const filters = filt.rows.map(({ column, op, value }) => ({ column, op, value: value.trim() }));
  filt.dialog.close();
  setView({ filters, join: filt.join });
}

// --- Details panel -------------------------------------------------------------

const details = { dialog: null, body: null };

function buildDetailsDialog() {
  const dialog = makeDialog({ id: 'details-dialog', cls: 'dialog-sheet' });
  details.dialog = dialog;
  details.title = h('h2', { class: 'dialog-title', id: dialog.titleId });
  details.subtitle = h('p', { class: 'sheet-subtitle' });
  details.body = h('div', { class: 'sheet-body' });
  replace(dialog,
    h('div', { class: 'dialog-header sheet-header' },
      h('div', {}, h('p', { class: 'sheet-kicker', text: 'Event details' }), details.title, details.subtitle),
      h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Close', onclick: () => dialog.close() }, icon('close'))),
    details.body);
}

function dd(value, cls = '') {
  if (value === null || value === undefined || value === '') return h('dd', { class: 'muted', text: '—' });
  return h('dd', { class: cls, text: String(value) });
}

// A secret the server keeps only as a fingerprint (issue 16):
// "[REDACTED hmac-sha256:<16 hex> …<last4>]", the last four optional.
const FINGERPRINT_RE = /^\[REDACTED hmac-sha256:([0-9a-f]{16})(?: (?:\u2026|\.\.\.)([^\]]{1,4}))?\]$/;

/** The fingerprint and last four characters of a fingerprinted value, or null. */
function parseFingerprint(v) {
  if (typeof v !== 'string') return null;
  const m = FINGERPRINT_RE.exec(v);
  return m ? { fingerprint: `hmac-sha256:${m[1]}`, last4: m[2] || '' } : null;
}

/**
 * A fingerprinted secret as such: "•••• 7731" for the eye, the fingerprint
 * on hover and in the text a screen reader reads, and a button that copies
 * the fingerprint to match it against the credential one holds.
 */
function secretDd(fp, label) {
  const shown = fp.last4 ? `•••• ${fp.last4}` : '••••';
  const spoken = fp.last4
    ? `Secret ending in ${fp.last4}, kept as fingerprint ${fp.fingerprint}`
    : `Secret kept as fingerprint ${fp.fingerprint}`;
  const copy = h('button', {
    type: 'button', class: 'icon-button copy-fingerprint', title: 'Copy fingerprint',
    'aria-label': `Copy fingerprint of ${label}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(fp.fingerprint);
        toast(`Copied fingerprint ${fp.fingerprint}`);
      } catch (e) {
        toast(`Could not copy the fingerprint: ${e?.message || e}`, 'error');
      }
    },
  }, icon('copy'));
  return h('dd', {},
    h('span', { class: 'secret' },
      h('span', { class: 'secret-mask', title: `Fingerprint ${fp.fingerprint}`, 'aria-hidden': 'true', text: shown }),
      h('span', { class: 'visually-hidden', text: spoken }),
      copy));
}

function metaValue(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v ? 'Yes' : 'No';
  if (typeof v === 'number') return String(v);
  return String(v);
}

function openDetails(index, opener) {
  const r = state.events[index];
  if (!r) return;
  const tz = tzOrUtc();
  const a = r.actor || {};
  details.title.textContent = r.event;
  details.subtitle.textContent = `${r.category} · ${r.level === 'workflow' ? 'Workflow-level' : 'Account-level'} event`;
  const section = (title, ...rows) => h('section', { class: 'sheet-section' },
    h('h3', { class: 'sheet-section-title', text: title }), h('dl', { class: 'kv' }, rows));
  const pair = (label, value, cls) => [h('dt', { text: label }), dd(value, cls)];

  const workflowDd = r.workflow_id
    ? h('dd', {},
      h('code', { text: r.workflow_id }), ' ',
      h('a', {
        href: urlOf({ ...state.view, workflow: r.workflow_id, filters: [], join: 'and' }),
        class: 'inline-link',
        onclick: (e) => {
          e.preventDefault();
          details.dialog.close();
          setView({ workflow: r.workflow_id, filters: [], join: 'and' });
          ui.title.focus();
        },
      }, 'Open workflow view'))
    : dd(null);

  const meta = Object.entries(r.metadata || {});
  const metaRows = meta.length
    ? meta.map(([k, v]) => {
      const fp = parseFingerprint(v);
      const label = fieldLabel(r, k);
      return [h('dt', {}, h('span', { text: label }), h('span', { class: 'dt-key', text: k })), fp ? secretDd(fp, label) : dd(metaValue(v))];
    })
    : [h('dt', { text: 'Metadata' }), dd(null)];

  replace(details.body,
    h('p', { class: 'sheet-description', text: r.description ?? '' }),
    section('Event',
      pair('Event Name', r.event),
      pair('Category', r.category),
      pair('Level', r.level),
      pair('Date and Time', `${formatInstant(r.occurred_at, tz)} (${tz})`),
      pair('Occurred at (UTC)', r.occurred_at, 'mono'),
      pair('Recorded at (UTC)', r.recorded_at, 'mono'),
      pair('Event ID', r.id, 'mono'),
      pair('Account', r.account_id, 'mono')),
    section('Actor',
      pair('User Name', a.name),
      pair('Actor ID', a.id, 'mono'),
      pair('Email', a.email),
      pair('Actor type', a.kind),
      pair('IP Address', r.ip_address, 'mono'),
      [h('dt', { text: 'Workflow ID' }), workflowDd]),
    section('Metadata', metaRows),
    section('Integrity',
      pair('Sequence number (seq)', r.seq, 'mono'),
      pair('Leaf hash', r.leaf_hash, 'mono hash')));
  openDialog(details.dialog, opener);
  details.dialog.querySelector('.icon-button')?.focus();
}

// ---------------------------------------------------------------------------
// Export

async function exportView() {
  const fallback = state.view.workflow ? 'Workflow_Audit_Logs.csv' : 'Account_Audit_Logs.csv';
  // Busy, not `disabled`: a disabled button drops the keyboard focus.
  if (ui.exportButton.getAttribute('aria-disabled') === 'true') return;
  ui.exportButton.setAttribute('aria-disabled', 'true');
  ui.exportButtonLabel.textContent = 'Exporting…';
  try {
    const res = await request(`${viewBase()}/export?${viewParams(state.view, { format: 'csv' })}`);
    const blob = await res.blob();
    const name = attachmentName(res.headers.get('content-disposition'), fallback);
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name, class: 'visually-hidden' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    toast(`Downloaded ${name}`);
  } catch (e) {
    if (handleAuthFailure(e)) return;
    toast(`Export failed: ${e.message}`, 'error');
  } finally {
    ui.exportButton.removeAttribute('aria-disabled');
    ui.exportButtonLabel.textContent = 'Export';
  }
}

// ---------------------------------------------------------------------------
// Toasts

function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null },
    h('span', { text: message }),
    h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Dismiss', onclick: () => el.remove() }, icon('close')));
  region.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 10_000 : 5_000);
}

// Keep anchored panels beside their buttons when the window changes size.
window.addEventListener('resize', () => {
  if (time.dialog?.open) positionDialog(time.dialog, ui.timeButton);
  if (filt.dialog?.open) positionDialog(filt.dialog, ui.filterButton);
});

boot();
