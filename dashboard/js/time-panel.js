// The time range panel: the presets on the left, two months of calendar on
// the right (a first click sets the start, the end is today unless a second
// click sets it), and the chosen range written at the bottom. Nothing
// changes until Apply; the draft lives here.

import { h, icon, replace, uid } from './dom.js';
import {
  PRESETS, PRESET_LABELS, DEFAULT_PRESET, isDate, parts, makeDate, addDays, daysInMonth,
  weekdayMonday0, todayIn, presetDates, formatLongDate, formatSpan, monthNames, weekdayShortNames,
} from './dates.js';
import { makeDialog, openDialog, dialogHeader } from './dialogs.js';
import { state, ui, tzOrUtc } from './state.js';
import { setView } from './view.js';

const time = { dialog: null, draft: null, month: null, focusDate: null, picks: 0 };

/** The panel's elements, made by buildTimeDialog. */
const el = {};

/** Makes the time range panel; it is filled from the view each time it opens. */
export function buildTimeDialog() {
  const dialog = makeDialog({ id: 'time-dialog', cls: 'dialog-time' });
  time.dialog = dialog;
  el.presetList = h('ul', { class: 'preset-list', 'aria-label': 'Presets' });
  el.monthSelect = h('select', { class: 'select select-compact', 'aria-label': 'Month' });
  el.yearSelect = h('select', { class: 'select select-compact', 'aria-label': 'Year' });
  el.monthSelect.addEventListener('change', () => { time.month = { ...time.month, m: Number(el.monthSelect.value) }; renderCalendar(); });
  el.yearSelect.addEventListener('change', () => { time.month = { ...time.month, y: Number(el.yearSelect.value) }; renderCalendar(); });
  const prev = h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Previous month', onclick: () => shiftMonth(-1) }, icon('chevronLeft'));
  const next = h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Next month', onclick: () => shiftMonth(1) }, icon('chevronRight'));
  // Two months side by side (stacked on narrow screens), so the start of
  // "Last 30 Days" is on screen next to its end.
  el.calendarMonths = h('div', { class: 'calendar-months' });
  el.rangeSummary = h('p', { class: 'range-summary', id: 'range-summary', 'aria-live': 'polite' });
  el.calendarHint = h('p', { class: 'calendar-hint', id: 'calendar-hint' });
  const apply = h('button', { type: 'button', class: 'button button-primary', onclick: applyTime }, 'Apply');
  const cancel = h('button', { type: 'button', class: 'button button-ghost', onclick: () => dialog.close() }, 'Cancel');
  replace(dialog,
    dialogHeader(dialog, 'Select time range'),
    h('div', { class: 'time-body' },
      h('nav', { class: 'preset-panel', 'aria-label': 'Preset ranges' }, el.presetList),
      h('div', { class: 'calendar' },
        h('div', { class: 'calendar-nav' }, prev, h('div', { class: 'calendar-selects' }, el.monthSelect, el.yearSelect), next),
        el.calendarMonths,
        el.calendarHint)),
    h('div', { class: 'dialog-footer' },
      h('div', { class: 'range-summary-wrap' }, h('span', { class: 'range-summary-label', text: 'Selected range' }), el.rangeSummary),
      h('div', { class: 'dialog-actions' }, cancel, apply)));
  el.calendarMonths.addEventListener('keydown', onCalendarKey);
}

function draftDates() {
  const d = time.draft;
  if (d.range === 'custom') return { from: d.from, to: d.to };
  return presetDates(d.range, todayIn(tzOrUtc()));
}

/** Opens the panel on the view's range, under the time button. */
export function openTimeDialog() {
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
  const selected = el.presetList.querySelector('[aria-pressed="true"]') || el.presetList.querySelector('button');
  selected.focus();
}

function renderTimePanel() {
  replace(el.presetList, PRESETS.map(([key, label]) => h('li', {},
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
        el.presetList.querySelector('[aria-pressed="true"]')?.focus();
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
  replace(el.monthSelect, names.map((n, i) => h('option', { value: String(i + 1), text: n, selected: i + 1 === m })));
  el.monthSelect.value = String(m);
  const thisYear = parts(today).y;
  const years = [];
  for (let yr = Math.min(y, thisYear - 10); yr <= Math.max(y, thisYear); yr += 1) years.push(yr);
  replace(el.yearSelect, years.map((yr) => h('option', { value: String(yr), text: String(yr), selected: yr === y })));
  el.yearSelect.value = String(y);

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
  replace(el.calendarMonths, [{ y, m }, second].map((mo) => monthGrid(mo, drawn, today)));
  // The chosen range, written at the bottom of the panel (the seed's rule).
  if (!d) el.rangeSummary.textContent = 'All Time — every event since the account was created';
  else if (time.draft.range === 'custom') el.rangeSummary.textContent = formatSpan(d.from, d.to);
  else el.rangeSummary.textContent = `${PRESET_LABELS[time.draft.range]}: ${formatSpan(d.from, d.to)}`;
  el.calendarHint.textContent = time.picks === 1
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
  el.calendarMonths.querySelector(`[data-date="${date}"]`)?.focus();
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
    for (const b of el.calendarMonths.querySelectorAll('.day-button')) b.tabIndex = b.dataset.date === next ? 0 : -1;
  }
  el.calendarMonths.querySelector(`[data-date="${next}"]`)?.focus();
}

function applyTime() {
  const d = time.draft;
  time.dialog.close();
  if (d.range === 'custom') setView({ range: 'custom', from: d.from, to: d.to });
  else setView({ range: d.range, from: '', to: '' });
}
