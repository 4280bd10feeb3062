// The table of events: its rows (a click opens the details panel), the
// states it shows instead (loading, empty, an error banner), the footer
// with "Showing N of M" and Load more, and the later pages, fetched by that
// button or when the end of the rows scrolls into view.

import { h, icon, replace } from './dom.js';
import { DEFAULT_PRESET, isTimeZone, formatInstant, splitInstant } from './dates.js';
import { getJson, viewParams } from './api.js';
import { openDetails } from './details.js';
import { openFilterDialog } from './filter-dialog.js';
import { clearFilters } from './filters.js';
import { handleAuthFailure } from './session.js';
import { state, ui, browserZone, numberFormat, plural, PAGE_SIZE } from './state.js';
import { toast } from './toast.js';
import { setView, reloadView, rangeLabel, viewBase } from './view.js';

/** The table's elements, made by buildTable. */
const el = {};

/** Makes the error banner, the table and its footer, in that order. */
export function buildTable() {
  el.banner = h('div', { class: 'banner banner-error', role: 'alert', hidden: true });
  const headers = ['Event Name', 'Category', 'User Name', 'Date and Time', 'Description'];
  el.tbody = h('tbody');
  el.table = h('table', { class: 'log-table', id: 'log-table', 'aria-describedby': 'event-count' },
    h('caption', { class: 'visually-hidden', text: 'Audit log events, newest first' }),
    h('colgroup', {},
      h('col', { class: 'col-event' }), h('col', { class: 'col-category' }), h('col', { class: 'col-user' }),
      h('col', { class: 'col-date' }), h('col', { class: 'col-description' })),
    h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
    el.tbody);
  el.sentinel = h('div', { class: 'scroll-sentinel', 'aria-hidden': 'true' });
  el.tableWrap = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Audit log events' },
    el.table, el.sentinel);
  el.footerText = h('span', { class: 'table-footer-text', id: 'table-footer-text' });
  el.loadMore = h('button', { type: 'button', class: 'button button-outline', id: 'load-more', onclick: loadMore, hidden: true },
    h('span', { text: 'Load more' }));
  el.tableFooter = h('div', { class: 'table-footer' }, el.footerText, el.loadMore);
  return [el.banner, el.tableWrap, el.tableFooter];
}

/** Infinite scroll: loads more when the end of the loaded rows scrolls into view. */
export function observeTableEnd() {
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { root: el.tableWrap, rootMargin: '200px' });
  observer.observe(el.sentinel);
}

/** Appends the next page of the view to the table. */
async function loadMore() {
  if (!state.nextCursor || state.loadingMore || state.loading) return;
  const generation = state.generation;
  // Pressed with the keyboard, the button may vanish (no more pages): focus
  // then moves to the first new row, where reading goes on.
  const fromButton = document.activeElement === el.loadMore;
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
      const first = el.tbody.querySelectorAll('.row-open')[state.events.length - added.length];
      (first || (el.loadMore.hidden ? el.tableWrap : el.loadMore)).focus();
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

function userName(record) {
  const a = record.actor || {};
  return a.name || a.id || '';
}

/** Redraws the table body for the state of the load: loading, error, empty or rows. */
export function renderTable() {
  el.table.setAttribute('aria-busy', String(state.loading));
  el.banner.hidden = !state.error;
  if (state.error) {
    renderError(state.error);
    replace(el.tbody);
    el.tableWrap.hidden = true;
    renderTableFooter();
    return;
  }
  el.tableWrap.hidden = false;
  if (state.loading) {
    replace(el.tbody, h('tr', { class: 'state-row' }, h('td', { colspan: '5' },
      h('div', { class: 'state' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', { text: 'Loading events…' })))));
    renderTableFooter();
    return;
  }
  if (state.events.length === 0) {
    const hasFilters = state.view.filters.length > 0;
    replace(el.tbody, h('tr', { class: 'state-row' }, h('td', { colspan: '5' },
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
  replace(el.tbody);
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
  el.tbody.append(frag);
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

/** "Showing N of M" and the Load more button. */
export function renderTableFooter() {
  if (!el.footerText) return;
  const loaded = state.events.length;
  el.tableFooter.hidden = Boolean(state.error) || loaded === 0;
  if (state.loading || state.error) {
    el.loadMore.hidden = true;
    el.footerText.textContent = '';
    return;
  }
  const total = state.count;
  if (loaded === 0) el.footerText.textContent = '';
  else if (total !== null) el.footerText.textContent = `Showing ${numberFormat.format(loaded)} of ${plural(total, 'event', 'events')}`;
  else el.footerText.textContent = `Showing ${plural(loaded, 'event', 'events')}`;
  el.loadMore.hidden = !state.nextCursor;
  // Not `disabled`: a disabled button loses the keyboard focus to <body>.
  if (state.loadingMore) el.loadMore.setAttribute('aria-disabled', 'true');
  else el.loadMore.removeAttribute('aria-disabled');
  el.loadMore.firstChild.textContent = state.loadingMore ? 'Loading…' : 'Load more';
}

function renderError(err) {
  // The banner is redrawn by what these buttons do: focus goes to the time
  // button, which stays, rather than to the page body.
  // A refused view is refused again: no "Try again" for it.
  const actions = err.kind === 'bad_request' ? [] : [h('button', { type: 'button', class: 'button button-outline', onclick: () => { reloadView(); ui.timeButton.focus(); } }, icon('refresh'), h('span', { text: 'Try again' }))];
  let title = 'Something went wrong';
  if (err.kind === 'network') title = 'Cannot reach the server';
  else if (err.kind === 'bad_request') {
    title = err.problem === 'query-too-broad' ? 'This search is too broad' : 'This view cannot be shown';
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
  replace(el.banner,
    icon('alert', 'banner-icon'),
    h('div', { class: 'banner-body' },
      h('p', { class: 'banner-title', text: title }),
      h('p', { class: 'banner-text', text: err.message }),
      details.length ? h('ul', { class: 'banner-list' }, details) : null,
      h('div', { class: 'banner-actions' }, actions)));
}

