// The console page: the heading with its breadcrumb, the time zone, the
// toolbar (time button, count, Filter, Export) and the card that holds the
// chips, the histogram and the table. Built once, when the first session
// opens; renderView then redraws the parts that follow the view.

import { h, icon, replace } from './dom.js';
import { isTimeZone, offsetLabel, formatSpan } from './dates.js';
import { buildDetailsDialog } from './details.js';
import { buildExportButton } from './export.js';
import { buildFilterDialog, openFilterDialog } from './filter-dialog.js';
import { buildChips, renderChips } from './filters.js';
import { buildHistogram } from './histogram.js';
import { applyMenu } from './menu.js';
import { state, ui, browserZone, plural } from './state.js';
import { buildTable, observeTableEnd } from './table.js';
import { buildTimeDialog, openTimeDialog } from './time-panel.js';
import { setView, urlOf, rangeLabel, resolvedDates } from './view.js';

/** The page's own elements, made by buildConsole. */
const el = {};

/** Builds the console into <main> and the dialogs into <body>, once. */
export function buildConsole() {
  if (el.root) return;
  const main = document.getElementById('main');
  el.root = main;

  el.breadcrumb = h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' });
  // Focusable by script only: a move to another view (a workflow's, back to
  // the account's) puts the focus on the new view's heading.
  ui.title = h('h1', { class: 'page-title', tabindex: '-1' });
  el.subtitle = h('p', { class: 'page-subtitle' });

  // Time zone: the viewer's by default, changeable, always shown.
  el.tzSelect = h('select', { class: 'select select-compact', id: 'tz-select', 'aria-label': 'Time zone' });
  el.tzSelect.addEventListener('change', () => setView({ tz: el.tzSelect.value }));
  el.tzOffset = h('span', { class: 'tz-offset' });
  el.zone = h('div', { class: 'zone' },
    icon('clock'),
    h('label', { for: 'tz-select', class: 'zone-label', text: 'Time zone' }),
    el.tzSelect, el.tzOffset);

  const header = h('div', { class: 'page-header' },
    h('div', { class: 'page-heading' }, el.breadcrumb, ui.title, el.subtitle),
    el.zone);

  // Toolbar
  el.timeButtonLabel = h('span', { class: 'time-button-label' });
  ui.timeButton = h('button', {
    type: 'button', class: 'button button-outline time-button', id: 'time-button',
    'aria-haspopup': 'dialog', onclick: openTimeDialog,
  }, icon('calendar'), el.timeButtonLabel, icon('chevronDown', 'icon-chevron'));
  el.rangeCaption = h('span', { class: 'range-caption', id: 'range-caption' });
  el.count = h('p', { class: 'event-count', id: 'event-count', 'aria-live': 'polite' });

  // The badge is drawn for the eye; the same count is in the button's
  // name (set in renderView): "Filter, 1 active".
  el.filterBadge = h('span', { class: 'badge', 'aria-hidden': 'true', hidden: true });
  ui.filterButton = h('button', {
    type: 'button', class: 'button button-outline', id: 'filter-button',
    'aria-haspopup': 'dialog', onclick: openFilterDialog,
  }, icon('filter'), h('span', { text: 'Filter' }), el.filterBadge);
  const [exportButton, exportHelp] = buildExportButton();

  const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Audit log view' },
    h('div', { class: 'toolbar-left' }, ui.timeButton, el.rangeCaption),
    h('div', { class: 'toolbar-right' }, el.count, ui.filterButton, exportButton, exportHelp));
  // A toolbar role promises arrow-key navigation we do not need: these are
  // ordinary tab stops, so keep it a plain group.
  toolbar.setAttribute('role', 'group');

  const card = h('section', { class: 'card', 'aria-label': 'Audit Logs' },
    toolbar, buildChips(), buildHistogram(), ...buildTable());

  replace(main, header, card);
  observeTableEnd();

  buildTimeDialog();
  buildFilterDialog();
  buildDetailsDialog();
}

/** Redraws what follows the view: heading, zone, time button, chips and Filter. */
export function renderView() {
  const v = state.view;
  applyMenu();
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
  replace(el.breadcrumb, h('ol', {}, crumbs.map((c) => h('li', {}, c))));
  if (v.workflow) {
    replace(ui.title, icon('workflow', 'title-icon'), h('span', { text: 'Workflow ' }), h('code', { class: 'title-code', text: v.workflow }));
    el.subtitle.textContent = `Workflow-level events of workflow ${v.workflow} in the ${state.account} account, newest first.`;
  } else {
    ui.title.textContent = 'Audit Logs';
    el.subtitle.textContent = `Every action recorded in the ${state.account} account, newest first.`;
  }
  document.title = v.workflow
    ? `Workflow ${v.workflow} · Audit Logs · AI for Process`
    : 'Audit Logs · Settings · AI for Process';

  // Zone
  fillZoneSelect();
  // "UTC (your zone) UTC+00:00" would say it twice.
  const utc = ['UTC', 'Etc/UTC', 'Etc/GMT', 'GMT', 'Etc/Universal', 'Universal', 'Zulu'].includes(v.tz);
  el.tzOffset.textContent = isTimeZone(v.tz) && !utc ? offsetLabel(v.tz) : '';

  // Time button
  el.timeButtonLabel.textContent = rangeLabel(v);
  renderRangeCaption();

  // Filters
  renderChips();
  const n = v.filters.length;
  el.filterBadge.hidden = n === 0;
  el.filterBadge.textContent = n === 0 ? '' : String(n);
  if (n === 0) ui.filterButton.removeAttribute('aria-label');
  else ui.filterButton.setAttribute('aria-label', `Filter, ${n} active`);
  ui.filterButton.classList.toggle('is-active', n > 0);
}

function fillZoneSelect() {
  const tz = state.view.tz;
  if (el.tzSelect.dataset.filledFor === tz) return;
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    zones = [];
  }
  const set = new Set([...zones, 'UTC', browserZone, tz]);
  const sorted = [...set].sort((a, b) => a.localeCompare(b));
  replace(el.tzSelect, sorted.map((z) => h('option', {
    value: z, text: z === browserZone ? `${z} (your zone)` : z, selected: z === tz,
  })));
  el.tzSelect.value = tz;
  el.tzSelect.dataset.filledFor = tz;
}

/** The dates of the view beside the time button (from the server's echo once it came). */
export function renderRangeCaption() {
  if (!el.rangeCaption) return;
  const v = state.view;
  if (v.range === 'all_time') {
    el.rangeCaption.textContent = 'Since the account was created';
    return;
  }
  const d = resolvedDates();
  el.rangeCaption.textContent = d && v.range !== 'custom' ? formatSpan(d.from, d.to) : '';
}

/** The number of events in the view, or "Counting…" until it came. */
export function renderCount() {
  if (state.error) {
    el.count.textContent = '';
    return;
  }
  el.count.textContent = state.count === null ? 'Counting…' : plural(state.count, 'event', 'events');
}

