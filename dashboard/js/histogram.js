// The histogram of events over time: one bar per hour, day, week, month or
// year of the view's range, as the server chose. A bar is a button: it
// narrows the view to its day, week, month or year; the arrow keys move
// between bars (one tab stop for the whole chart).

import { h, replace } from './dom.js';
import { addDays, dateIn, todayIn, isTimeZone, formatDate, formatHour } from './dates.js';
import { getJson, ApiError, viewParams } from './api.js';
import { state, ui, numberFormat, plural } from './state.js';
import { setView, resolvedDates } from './view.js';

/** The histogram's elements, made by buildHistogram. */
const el = {};

/** Makes the histogram's section, empty until renderHistogram. */
export function buildHistogram() {
  el.histTitle = h('p', { class: 'histogram-title', id: 'histogram-title' });
  el.histMax = h('span', { class: 'histogram-max', 'aria-hidden': 'true' });
  el.histBars = h('div', { class: 'histogram-bars', role: 'group', 'aria-labelledby': 'histogram-title' });
  el.histAxis = h('div', { class: 'histogram-axis', 'aria-hidden': 'true' });
  el.histogram = h('section', { class: 'histogram', 'aria-label': 'Events over time' },
    h('div', { class: 'histogram-head' }, el.histTitle, el.histMax),
    h('div', { class: 'histogram-plot' }, el.histBars),
    el.histAxis);
  return el.histogram;
}

/**
 * The histogram with `bucket=auto`: the server picks hour, day, week, month
 * or year to fit the range (an all-time view of a log that spans decades
 * still answers) and says which. A server that does not know `auto` answers
 * 400: ask again for days (hours for a one-day range).
 */
export async function loadHistogram(base, signal) {
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

/** Redraws the histogram: bars of skeleton while loading, then the buckets. */
export function renderHistogram() {
  const data = state.histogram;
  const v = state.view;
  el.histogram.classList.toggle('is-loading', !data);
  el.histogram.hidden = Boolean(state.error);
  if (!data) {
    el.histTitle.textContent = 'Events over time';
    el.histMax.textContent = '';
    replace(el.histBars, Array.from({ length: 30 }, () => h('span', { class: 'bar-skeleton' })));
    replace(el.histAxis);
    return;
  }
  const buckets = data.buckets || [];
  const unit = data.bucket || 'day';
  const tz = isTimeZone(v.tz) ? v.tz : 'UTC';
  const per = { hour: 'hour', day: 'day', week: 'week', month: 'month', year: 'year' }[unit] || unit;
  el.histTitle.textContent = `Events per ${per}`;
  if (buckets.length === 0) {
    el.histMax.textContent = '';
    replace(el.histBars, h('span', { class: 'histogram-empty', text: state.error ? '' : 'No events in this range' }));
    replace(el.histAxis);
    return;
  }
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const total = buckets.reduce((n, b) => n + b.count, 0);
  el.histMax.textContent = total === 0 ? '' : `max ${numberFormat.format(max)}`;
  el.histBars.classList.toggle('dense', buckets.length > 60);
  el.histBars.classList.toggle('very-dense', buckets.length > 150);
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
  replace(el.histBars, bars,
    total === 0 ? h('span', { class: 'histogram-overlay', 'aria-hidden': 'true', text: 'No events in this range' }) : null);
  el.histBars.onkeydown = (e) => {
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
  replace(el.histAxis,
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

