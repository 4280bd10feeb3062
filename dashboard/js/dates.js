// Calendar arithmetic on plain dates ("YYYY-MM-DD") in the viewer's zone.
//
// The server is the authority on ranges (it echoes the instants it used); the
// page computes the same presets only to highlight them on the calendar and
// to label the time button before the first answer arrives. Plain dates are
// handled as UTC midnights so that adding days never meets a DST change.

export const PRESETS = [
  ['all_time', 'All Time'],
  ['today', 'Today'],
  ['yesterday', 'Yesterday'],
  ['this_week', 'This Week'],
  ['this_month', 'This Month'],
  ['last_month', 'Last Month'],
  ['last_30_days', 'Last 30 Days'],
  ['last_90_days', 'Last 90 Days'],
  ['this_year', 'This Year'],
  ['last_year', 'Last Year'],
];
export const PRESET_LABELS = Object.fromEntries(PRESETS);
export const DEFAULT_PRESET = 'last_30_days';

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Whether `s` is a real calendar date written YYYY-MM-DD. */
export function isDate(s) {
  const m = DATE_RE.exec(s || '');
  if (!m) return false;
  const t = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  return t.getUTCFullYear() === +m[1] && t.getUTCMonth() === +m[2] - 1 && t.getUTCDate() === +m[3];
}

/** The parts of a plain date. */
export function parts(date) {
  const [y, m, d] = date.split('-').map(Number);
  return { y, m, d };
}

export function makeDate(y, m, d) {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.toISOString().slice(0, 10);
}

export function addDays(date, n) {
  const { y, m, d } = parts(date);
  return makeDate(y, m, d + n);
}

export function daysInMonth(y, m) {
  return new Date(Date.UTC(y, m, 0)).getUTCDate();
}

/** 0 = Monday … 6 = Sunday. */
export function weekdayMonday0(date) {
  const { y, m, d } = parts(date);
  return (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
}

/** Whether `tz` is an IANA zone this browser knows. */
export function isTimeZone(tz) {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const dateFormatters = new Map();
/** The plain date of instant `when` (Date or ms) in zone `tz`. */
export function dateIn(when, tz) {
  let f = dateFormatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
    dateFormatters.set(tz, f);
  }
  const p = Object.fromEntries(f.formatToParts(when).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}`;
}

export function todayIn(tz) {
  return dateIn(new Date(), tz);
}

/**
 * The inclusive plain-date span of a preset, as spec §4 defines it, or null
 * for All Time.
 */
export function presetDates(preset, today) {
  const { y, m } = parts(today);
  switch (preset) {
    case 'today': return { from: today, to: today };
    case 'yesterday': { const d = addDays(today, -1); return { from: d, to: d }; }
    case 'this_week': {
      const from = addDays(today, -weekdayMonday0(today));
      return { from, to: addDays(from, 6) };
    }
    case 'this_month': return { from: makeDate(y, m, 1), to: makeDate(y, m, daysInMonth(y, m)) };
    case 'last_month': {
      const from = makeDate(y, m - 1, 1);
      const p = parts(from);
      return { from, to: makeDate(p.y, p.m, daysInMonth(p.y, p.m)) };
    }
    case 'last_30_days': return { from: addDays(today, -29), to: today };
    case 'last_90_days': return { from: addDays(today, -89), to: today };
    case 'this_year': return { from: makeDate(y, 1, 1), to: makeDate(y, 12, 31) };
    case 'last_year': return { from: makeDate(y - 1, 1, 1), to: makeDate(y - 1, 12, 31) };
    default: return null;
  }
}

function utcDate(date) {
  const { y, m, d } = parts(date);
  return new Date(Date.UTC(y, m - 1, d, 12));
}

/** "20 Nov 2026" in the viewer's locale. */
export function formatDate(date, opts = {}) {
  return new Intl.DateTimeFormat(undefined, {
    timeZone: 'UTC', day: 'numeric', month: 'short', year: 'numeric', ...opts,
  }).format(utcDate(date));
}

/** "Thursday, 20 November 2026": the accessible name of a calendar day. */
export function formatLongDate(date) {
  return new Intl.DateTimeFormat(undefined, {
    timeZone: 'UTC', weekday: 'long', day: 'numeric', month: 'long', year: 'numeric',
  }).format(utcDate(date));
}

export function formatSpan(from, to) {
  if (from === to) return formatDate(from);
  return `${formatDate(from)} – ${formatDate(to)}`;
}

export function monthNames() {
  const f = new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', month: 'long' });
  return Array.from({ length: 12 }, (_, i) => f.format(new Date(Date.UTC(2000, i, 15))));
}

export function weekdayShortNames() {
  const f = new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', weekday: 'short' });
  // 2024-01-01 was a Monday.
  return Array.from({ length: 7 }, (_, i) => f.format(new Date(Date.UTC(2024, 0, 1 + i, 12))));
}

const stampFormatters = new Map();
/** A record's instant in the viewer's zone: "Nov 25, 2026, 11:00:00 AM". */
export function formatInstant(iso, tz) {
  let f = stampFormatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat(undefined, {
      timeZone: tz, year: 'numeric', month: 'short', day: 'numeric',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    stampFormatters.set(tz, f);
  }
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso) : f.format(t);
}

const splitFormatters = new Map();
/** The date and the time of an instant in the zone, apart: for the table. */
export function splitInstant(iso, tz) {
  let f = splitFormatters.get(tz);
  if (!f) {
    f = {
      date: new Intl.DateTimeFormat(undefined, { timeZone: tz, year: 'numeric', month: 'short', day: 'numeric' }),
      time: new Intl.DateTimeFormat(undefined, { timeZone: tz, hour: '2-digit', minute: '2-digit', second: '2-digit' }),
    };
    splitFormatters.set(tz, f);
  }
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return { date: String(iso), time: '' };
  return { date: f.date.format(t), time: f.time.format(t) };
}

/** The zone's current UTC offset, "UTC+01:00", shown beside its name. */
export function offsetLabel(tz, when = new Date()) {
  try {
    const p = new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' })
      .formatToParts(when).find((x) => x.type === 'timeZoneName');
    const v = p ? p.value.replace('GMT', 'UTC') : '';
    return v === 'UTC' ? 'UTC+00:00' : v;
  } catch {
    return '';
  }
}

/** The hour of an instant in the zone, "14:00", for hourly histogram bars. */
export function formatHour(iso, tz) {
  return new Intl.DateTimeFormat(undefined, { timeZone: tz, hour: '2-digit', minute: '2-digit' })
    .format(new Date(iso));
}
