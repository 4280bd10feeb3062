// The view (range, zone, filters, join, workflow) and the URL that holds
// it, so a reload or a shared link shows the same thing. Every change of
// view goes through setView, which writes the URL and has the page redraw
// and reload: main.js says how, through onViewChange, so that this module
// needs none of the sections that call it.

import {
  DEFAULT_PRESET, PRESET_LABELS, isDate, isTimeZone, dateIn, todayIn, presetDates, formatDate, formatSpan,
} from './dates.js';
import { eventsBase } from './api.js';
import { state, browserZone } from './state.js';

const handlers = { render: () => {}, load: () => {} };

/**
 * Says what a change of view does: `render` redraws the parts that follow
 * the view, `load` asks the server for its events again.
 */
export function onViewChange({ render, load }) {
  handlers.render = render;
  handlers.load = load;
}

/** Splits COLUMN:OP:VALUE at the first two colons (the value may hold more). */
function parseFilter(s) {
  const a = s.indexOf(':');
  const b = a < 0 ? -1 : s.indexOf(':', a + 1);
  if (a <= 0 || b < 0) return { column: s, op: '', value: '', raw: s };
  return { column: s.slice(0, a), op: s.slice(a + 1, b), value: s.slice(b + 1) };
}

/** The view the address bar holds (defaults for what it leaves out). */
export function viewFromUrl() {
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

/** The address of a view; with a token for every account, it names the account too. */
export function urlOf(view, { account = state.anyAccount ? state.account : null } = {}) {
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
export function setView(patch, { push = true } = {}) {
  state.view = { ...state.view, ...patch };
  const url = urlOf(state.view);
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
  handlers.render();
  handlers.load();
}

/** Loads the same view again (after an error). */
export function reloadView() {
  handlers.load();
}

/** The base path of the view's events: the account's log or a workflow's. */
export function viewBase() {
  return eventsBase(state.account, state.view.workflow);
}

/** What the time button says for a view. */
export function rangeLabel(v) {
  if (v.range === 'custom') {
    if (isDate(v.from) && isDate(v.to || '')) return formatSpan(v.from, v.to);
    if (isDate(v.from)) return `${formatDate(v.from)} – Today`;
    return 'Custom range';
  }
  return PRESET_LABELS[v.range] || v.range;
}

/** The resolved dates of the view, from the server's echo when it came. */
export function resolvedDates() {
  const v = state.view;
  const tz = isTimeZone(v.tz) ? v.tz : 'UTC';
  const r = state.echoedRange;
  if (r && r.from && r.to) {
    return { from: dateIn(new Date(r.from), tz), to: dateIn(new Date(new Date(r.to).getTime() - 1), tz) };
  }
  if (v.range === 'custom') return isDate(v.from) ? { from: v.from, to: v.to || todayIn(tz) } : null;
  return presetDates(v.range, todayIn(tz));
}
