//! Time ranges: the presets of the time selection panel and custom days,
//! resolved at a given `now` in the viewer's zone into half-open
//! `[start, end)` instants.
//!
//! Every day boundary is the *start of the day* in the viewer's zone, which is
//! midnight except in the few zones whose clocks jump over midnight (then it
//! is the first instant of that date).

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::error::{ParseQueryError, wire_enum};

wire_enum! {
    /// A time-range choice of the time selection panel.
    #[derive(Default)]
    pub enum RangePreset (param = "range", what = "range") {
        /// Unbounded: all logs since the account was created.
        AllTime => "all_time",
        /// `[today, tomorrow)`.
        Today => "today",
        /// `[yesterday, today)`.
        Yesterday => "yesterday",
        /// `[first day of this week, +7 days)`.
        ThisWeek => "this_week",
        /// `[first of this month, first of next month)`.
        ThisMonth => "this_month",
        /// `[first of last month, first of this month)`.
        LastMonth => "last_month",
        /// `[today − 29 days, tomorrow)`: 30 calendar days including today.
        /// The default, as in the seed ("Last 30 Days is the default
        /// selection").
        #[default]
        Last30Days => "last_30_days",
        /// `[today − 89 days, tomorrow)`: 90 calendar days including today.
        Last90Days => "last_90_days",
        /// `[1 January this year, 1 January next year)`.
        ThisYear => "this_year",
        /// `[1 January last year, 1 January this year)`.
        LastYear => "last_year",
        /// `[from, to + 1 day)`, both whole days, `to` defaulting to today.
        Custom => "custom",
    }
}

impl RangePreset {
    /// The text the dashboard shows for this choice (the seed's wording).
    pub fn label(self) -> &'static str {
        match self {
            RangePreset::AllTime => "All Time",
            RangePreset::Today => "Today",
            RangePreset::Yesterday => "Yesterday",
            RangePreset::ThisWeek => "This Week",
            RangePreset::ThisMonth => "This Month",
            RangePreset::LastMonth => "Last Month",
            RangePreset::Last30Days => "Last 30 Days",
            RangePreset::Last90Days => "Last 90 Days",
            RangePreset::ThisYear => "This Year",
            RangePreset::LastYear => "Last Year",
            RangePreset::Custom => "Custom",
        }
    }
}

wire_enum! {
    /// The first day of a week for `this_week`.
    #[derive(Default)]
    pub enum WeekStart (param = "week_start", what = "week start") {
        /// ISO 8601 weeks; the default.
        #[default]
        Monday => "monday",
        /// Weeks as most North American calendars show them.
        Sunday => "sunday",
    }
}

/// A time range as the viewer asked for it, not yet tied to an instant.
///
/// [`parse_query`](super::parse_query) guarantees `from`/`to` are only set for
/// [`RangePreset::Custom`], that `from` is set for it, and that `from <= to`
/// when both are given; [`RangeSpec::resolve`] checks again because the
/// fields are public.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSpec {
    pub preset: RangePreset,
    /// First day of a custom range, inclusive.
    pub from: Option<Date>,
    /// Last day of a custom range, inclusive; today when absent.
    pub to: Option<Date>,
    /// The viewer's zone; every day boundary is the start of a day here.
    pub tz: TimeZone,
    /// The canonical IANA name of `tz`, echoed back and fingerprinted.
    pub tz_name: String,
    pub week_start: WeekStart,
}

impl Default for RangeSpec {
    fn default() -> Self {
        RangeSpec {
            preset: RangePreset::default(),
            from: None,
            to: None,
            tz: TimeZone::UTC,
            tz_name: "UTC".to_owned(),
            week_start: WeekStart::default(),
        }
    }
}

/// A range of instants, half-open `[start, end)`; `None` is unbounded on
/// that side (only `all_time` produces it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedRange {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl ResolvedRange {
    /// Whether `ts` lies in `[start, end)`.
    pub fn contains(&self, ts: Timestamp) -> bool {
        self.start.is_none_or(|start| start <= ts) && self.end.is_none_or(|end| ts < end)
    }

    /// The `range` object echoed in list responses:
    /// `{"preset", "from", "to", "tz"}`, instants as RFC 3339 in the
    /// viewer's zone with its offset (e.g. `2026-11-01T00:00:00+01:00`), so
    /// the client sees the boundaries as its clock shows them.
    pub fn to_json_echo(&self, spec: &RangeSpec) -> serde_json::Value {
        let render = |ts: Option<Timestamp>| match ts {
            Some(ts) => {
                serde_json::Value::String(ts.display_with_offset(spec.tz.to_offset(ts)).to_string())
            }
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "preset": spec.preset.as_str(),
            "from": render(self.start),
            "to": render(self.end),
            "tz": spec.tz_name,
        })
    }
}

/// The instant a civil date starts in `tz`.
///
/// Compatible disambiguation is what makes this right in every zone: when
/// midnight falls in a gap (clocks jump from 23:59 to 01:00) it yields the
/// jump itself, the first instant carrying that date; when midnight falls in
/// a fold it yields the earlier of the two midnights.
pub(super) fn start_of(
    date: Date,
    tz: &TimeZone,
    param: &str,
) -> Result<Timestamp, ParseQueryError> {
    tz.to_timestamp(date.to_datetime(Time::midnight()))
        .map_err(|_| out_of_range(param))
}

fn out_of_range(param: &str) -> ParseQueryError {
    ParseQueryError::new(
        param,
        "the range reaches outside the supported dates (years 0000 to 9999)",
    )
}

/// `date + days`, or the out-of-range error for `param`.
pub(super) fn add_days(date: Date, days: i32, param: &str) -> Result<Date, ParseQueryError> {
    date.checked_add(days.days())
        .map_err(|_| out_of_range(param))
}

impl RangeSpec {
    /// The first and the exclusive last civil day of the range, or `None`
    /// for `all_time`. Month and year arithmetic is on the calendar, so
    /// leap days and 28- to 31-day months need no special cases.
    fn day_bounds(&self, today: Date) -> Result<Option<(Date, Date)>, ParseQueryError> {
        const P: &str = "range";
        let bounds = match self.preset {
            RangePreset::AllTime => return Ok(None),
            RangePreset::Today => (today, add_days(today, 1, P)?),
            RangePreset::Yesterday => (add_days(today, -1, P)?, today),
            RangePreset::ThisWeek => {
                let into_week = match self.week_start {
                    WeekStart::Monday => today.weekday().to_monday_zero_offset(),
                    WeekStart::Sunday => today.weekday().to_sunday_zero_offset(),
                };
                let first = add_days(today, -i32::from(into_week), P)?;
                (first, add_days(first, 7, P)?)
            }
            RangePreset::ThisMonth => {
                let first = today.first_of_month();
                let next = first.checked_add(1.month()).map_err(|_| out_of_range(P))?;
                (first, next)
            }
            RangePreset::LastMonth => {
                let first = today.first_of_month();
                let prev = first.checked_sub(1.month()).map_err(|_| out_of_range(P))?;
                (prev, first)
            }
            RangePreset::Last30Days => (add_days(today, -29, P)?, add_days(today, 1, P)?),
            RangePreset::Last90Days => (add_days(today, -89, P)?, add_days(today, 1, P)?),
            RangePreset::ThisYear => {
                let first = today.first_of_year();
                let next = first.checked_add(1.year()).map_err(|_| out_of_range(P))?;
                (first, next)
            }
            RangePreset::LastYear => {
                let first = today.first_of_year();
                let prev = first.checked_sub(1.year()).map_err(|_| out_of_range(P))?;
                (prev, first)
            }
            RangePreset::Custom => {
                let from = self.from.ok_or_else(|| {
                    ParseQueryError::new("from", "range=custom needs `from` (YYYY-MM-DD)")
                })?;
                let to = self.to.unwrap_or(today);
                if from > to {
                    let message = match self.to {
                        Some(to) => format!("`from` {from} is after `to` {to}"),
                        None => format!(
                            "`from` {from} is after today ({today} in {}); \
                             pick an earlier `from` or give `to`",
                            self.tz_name
                        ),
                    };
                    return Err(ParseQueryError::new("from", message));
                }
                (from, add_days(to, 1, "to")?)
            }
        };
        Ok(Some(bounds))
    }

    /// The instants this range covers at `now`.
    ///
    /// Fails only for a custom range without `from` or with `from` after
    /// `to` (or after today when `to` is absent), and for dates so close to
    /// year 0000 or 9999 that a boundary cannot be represented.
    ///
    /// In a zone that skipped a whole calendar day (Pacific/Apia skipped
    /// 2011-12-30), a range made only of that day is empty (`start == end`):
    /// nothing happened on a date that never existed there.
    pub fn resolve(&self, now: Timestamp) -> Result<ResolvedRange, ParseQueryError> {
        let today = self.tz.to_datetime(now).date();
        let Some((first, after_last)) = self.day_bounds(today)? else {
            return Ok(ResolvedRange {
                start: None,
                end: None,
            });
        };
        let param = if self.preset == RangePreset::Custom {
            "from"
        } else {
            "range"
        };
        Ok(ResolvedRange {
            start: Some(start_of(first, &self.tz, param)?),
            end: Some(start_of(after_last, &self.tz, param)?),
        })
    }
}
