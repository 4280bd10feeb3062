//! Histogram buckets: their widths, the automatic choice of one for a
//! range, and bucket boundaries that follow the viewer's clock across DST
//! changes.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

use super::error::{ParseQueryError, wire_enum};
use super::range::{ResolvedRange, WeekStart, add_days, start_of};

/// Most buckets [`bucket_bounds`] will produce.
pub const MAX_BUCKETS: usize = 20_000;

wire_enum! {
    /// The width of a histogram bucket.
    #[derive(Default)]
    pub enum Bucket (param = "bucket", what = "bucket") {
        /// One bucket per hour of the viewer's clock.
        Hour => "hour",
        /// One bucket per calendar day in the viewer's zone.
        Day => "day",
        /// One bucket per week, starting on the query's `week_start`.
        Week => "week",
        /// One bucket per calendar month.
        Month => "month",
        /// One bucket per calendar year.
        Year => "year",
        /// The finest of the above that suits the range (see
        /// [`Bucket::resolve`]); the default.
        #[default]
        Auto => "auto",
    }
}

/// Auto picks hour buckets up to this span. Two calendar days last at most
/// 50 hours (48 plus a DST shift, historically up to 2 hours), while three
/// last at least 69, so this is "at most two days" in every zone.
const AUTO_HOUR_MAX_SECONDS: i64 = 50 * 3600;
/// Auto picks day buckets up to about two years (a chart of at most ~730
/// bars), weeks up to about ten years (~520), months up to a century
/// (~1,200), and years beyond: every span the accepted `occurred_at` window
/// allows gets a chart of a readable size, far below [`MAX_BUCKETS`].
const AUTO_DAY_MAX_SECONDS: i64 = 731 * 86_400;
const AUTO_WEEK_MAX_SECONDS: i64 = 3_653 * 86_400;
const AUTO_MONTH_MAX_SECONDS: i64 = 36_525 * 86_400;

impl Bucket {
    /// `Auto` becomes the finest bucket that suits the range: hours up to
    /// two days, days up to two years, weeks up to ten years, months up to
    /// a century, years beyond (and days for an unbounded range, whose span
    /// is not known here). Every other bucket stays as it is.
    pub fn resolve(self, range: &ResolvedRange) -> Bucket {
        if self != Bucket::Auto {
            return self;
        }
        let (Some(start), Some(end)) = (range.start, range.end) else {
            return Bucket::Day;
        };
        let span = end.as_second() - start.as_second();
        if span <= AUTO_HOUR_MAX_SECONDS {
            Bucket::Hour
        } else if span <= AUTO_DAY_MAX_SECONDS {
            Bucket::Day
        } else if span <= AUTO_WEEK_MAX_SECONDS {
            Bucket::Week
        } else if span <= AUTO_MONTH_MAX_SECONDS {
            Bucket::Month
        } else {
            Bucket::Year
        }
    }
}

fn bucket_error() -> ParseQueryError {
    ParseQueryError::new(
        "bucket",
        "a bucket boundary falls outside the supported dates",
    )
}

/// Every instant at which the clock in `tz` starts showing the civil time
/// `dt`, ascending: one normally, two in a fold (the hour repeats), and in a
/// gap the instant the clock jumps past `dt`.
fn instants_at(tz: &TimeZone, dt: DateTime) -> Result<Vec<Timestamp>, ParseQueryError> {
    let ts = |offset: jiff::tz::Offset| offset.to_timestamp(dt).map_err(|_| bucket_error());
    Ok(match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => vec![ts(offset)?],
        // Read with the offset in force before the gap, `dt` lands exactly
        // on the jump when the gap starts at `dt` (the usual 02:00 → 03:00).
        AmbiguousOffset::Gap { before, .. } => vec![ts(before)?],
        AmbiguousOffset::Fold { before, after } => vec![ts(before)?, ts(after)?],
    })
}

/// The civil top of the hour `ts` shows in `tz`.
fn hour_of(tz: &TimeZone, ts: Timestamp) -> Result<DateTime, ParseQueryError> {
    let dt = tz.to_datetime(ts);
    let time = Time::new(dt.hour(), 0, 0, 0).map_err(|_| bucket_error())?;
    Ok(dt.date().to_datetime(time))
}

fn shift_hours(dt: DateTime, hours: i32) -> Result<DateTime, ParseQueryError> {
    dt.checked_add(hours.hours()).map_err(|_| bucket_error())
}

/// The latest hour boundary at or before `ts`.
fn hour_floor(tz: &TimeZone, ts: Timestamp) -> Result<Timestamp, ParseQueryError> {
    let hour = hour_of(tz, ts)?;
    for back in 0..=2 {
        let found = instants_at(tz, shift_hours(hour, -back)?)?
            .into_iter()
            .filter(|&t| t <= ts)
            .max();
        if let Some(found) = found {
            return Ok(found);
        }
    }
    Err(bucket_error())
}

/// The earliest hour boundary after `ts`. Looking at the current civil hour
/// too is what finds the second pass through a repeated hour.
fn hour_after(tz: &TimeZone, ts: Timestamp) -> Result<Timestamp, ParseQueryError> {
    let hour = hour_of(tz, ts)?;
    let mut best: Option<Timestamp> = None;
    for ahead in 0..=2 {
        for t in instants_at(tz, shift_hours(hour, ahead)?)? {
            if t > ts && best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        }
    }
    best.ok_or_else(bucket_error)
}

/// Bucket boundaries covering `[start, end)`, ascending: each bucket's start,
/// then the end of the last bucket, so `windows(2)` yields the buckets.
///
/// Buckets follow the viewer's clock in `tz`: day buckets start at the start
/// of each calendar day (a 23- or 25-hour DST day is one bucket), hour
/// buckets at each top of the hour the clock shows (a skipped hour has no
/// bucket, a repeated hour has two). The first bucket starts at the boundary
/// at or before `start` and the last ends at the boundary at or after `end`,
/// so every bucket is whole; count only events inside the query's range.
/// `Auto` is resolved against `[start, end)` first. An empty range
/// (`end <= start`) has no buckets and gives an empty vector.
///
/// Refuses ranges needing more than [`MAX_BUCKETS`] buckets.
pub fn bucket_bounds(
    start: Timestamp,
    end: Timestamp,
    bucket: Bucket,
    tz: &TimeZone,
    week_start: WeekStart,
) -> Result<Vec<Timestamp>, ParseQueryError> {
    if end <= start {
        return Ok(Vec::new());
    }
    let bucket = bucket.resolve(&ResolvedRange {
        start: Some(start),
        end: Some(end),
    });
    let too_many = || {
        ParseQueryError::new(
            "bucket",
            format!(
                "the range needs more than {MAX_BUCKETS} {bucket} buckets; \
                 use a shorter range{}",
                if bucket == Bucket::Year {
                    ""
                } else {
                    " or a wider bucket (bucket=auto picks one)"
                }
            ),
        )
    };
    let mut bounds = Vec::new();
    match bucket {
        // `resolve` never returns `Auto`; it shares the hour arm only to
        // keep the match exhaustive without a panic.
        Bucket::Hour | Bucket::Auto => {
            let mut cur = hour_floor(tz, start)?;
            bounds.push(cur);
            while cur < end {
                if bounds.len() > MAX_BUCKETS {
                    return Err(too_many());
                }
                cur = hour_after(tz, cur)?;
                bounds.push(cur);
            }
        }
        Bucket::Day | Bucket::Week | Bucket::Month | Bucket::Year => {
            // The first day of the calendar unit holding `day`, and the
            // first day of the next one.
            let unit_start = |day: Date| -> Result<Date, ParseQueryError> {
                Ok(match bucket {
                    Bucket::Week => {
                        let into_week = match week_start {
                            WeekStart::Monday => day.weekday().to_monday_zero_offset(),
                            WeekStart::Sunday => day.weekday().to_sunday_zero_offset(),
                        };
                        add_days(day, -i32::from(into_week), "bucket")?
                    }
                    Bucket::Month => day.first_of_month(),
                    Bucket::Year => day.first_of_year(),
                    _ => day,
                })
            };
            let step = |day: Date, n: i32| -> Result<Date, ParseQueryError> {
                match bucket {
                    Bucket::Week => add_days(day, 7 * n, "bucket"),
                    Bucket::Month => day.checked_add(n.months()).map_err(|_| bucket_error()),
                    Bucket::Year => day.checked_add(n.years()).map_err(|_| bucket_error()),
                    _ => add_days(day, n, "bucket"),
                }
            };
            let mut day = unit_start(tz.to_datetime(start).date())?;
            let mut cur = start_of(day, tz, "bucket")?;
            // Only in a zone whose clocks went back across midnight can the
            // day's start lie after an instant carrying that date.
            if cur > start {
                day = step(day, -1)?;
                cur = start_of(day, tz, "bucket")?;
            }
            bounds.push(cur);
            while cur < end {
                if bounds.len() > MAX_BUCKETS {
                    return Err(too_many());
                }
                day = step(day, 1)?;
                let next = start_of(day, tz, "bucket")?;
                // A day skipped entirely (Pacific/Apia, 2011-12-30) starts
                // when the next one does: it gets no bucket.
                if next > cur {
                    cur = next;
                    bounds.push(cur);
                }
            }
        }
    }
    Ok(bounds)
}
