//! Query semantics shared by list, count, histogram and export: time-range
//! presets resolved in the viewer's zone, column filters, the keyset cursor
//! and histogram buckets, all parsed from URL query pairs (PRODUCT.md §4).
//!
//! Everything here is pure: `now` is always a parameter, so the presets can be
//! tested at fixed instants (DST days, leap days, year boundaries).
//!
//! Every day boundary is the *start of the day* in the viewer's zone, which is
//! midnight except in the few zones whose clocks jump over midnight (then it
//! is the first instant of that date). Ranges are half-open `[start, end)`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};
use sha2::{Digest, Sha256};

/// Default page size of `limit`.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u32 = 1000;
/// Most filters one query may carry; far more than the dashboard produces,
/// low enough that evaluating a row stays cheap.
pub const MAX_FILTERS: usize = 50;
/// Longest filter value, in characters. No stored field is longer (the
/// description limit is 4,096), so a longer value could never match.
pub const MAX_FILTER_VALUE_CHARS: usize = 4096;
/// Most buckets [`bucket_bounds`] will produce.
pub const MAX_BUCKETS: usize = 20_000;

/// Every query parameter name [`parse_query`] accepts.
pub const KNOWN_PARAMS: [&str; 11] = [
    "range",
    "from",
    "to",
    "tz",
    "week_start",
    "filter",
    "join",
    "limit",
    "cursor",
    "bucket",
    "format",
];

/// A query parameter a client got wrong: which one, what was wrong and what
/// is accepted, in words a client can act on (the server answers `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{param}`: {message}")]
pub struct ParseQueryError {
    /// The query parameter at fault, e.g. `filter` or `tz`.
    pub param: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl ParseQueryError {
    fn new(param: &str, message: impl Into<String>) -> Self {
        ParseQueryError {
            param: param.to_owned(),
            message: message.into(),
        }
    }
}

/// Quotes client input for an error message, shortened so that a huge
/// parameter cannot turn into a huge error response.
fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("`{}…`", &s[..cut]),
        None => format!("`{s}`"),
    }
}

/// Declares a closed set of wire names: the enum, `ALL`, `as_str`, `Display`
/// and a `FromStr` whose error names the parameter and lists what is accepted.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident (param = $param:literal, what = $what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $wire:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name, as accepted in a URL.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseQueryError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => {
                        let accepted: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        Err(ParseQueryError::new(
                            $param,
                            format!(
                                "unknown {} {}; accepted: {}",
                                $what,
                                quoted(s),
                                accepted.join(", ")
                            ),
                        ))
                    }
                }
            }
        }
    };
}

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
/// [`parse_query`] guarantees `from`/`to` are only set for
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
fn start_of(date: Date, tz: &TimeZone, param: &str) -> Result<Timestamp, ParseQueryError> {
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
fn add_days(date: Date, days: i32, param: &str) -> Result<Date, ParseQueryError> {
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

wire_enum! {
    /// A record field a filter can test.
    pub enum Column (param = "filter", what = "column") {
        /// The event name, e.g. "Role created".
        Event => "event",
        /// The event category, e.g. "Roles".
        Category => "category",
        /// The actor's display name (the dashboard's User Name column).
        User => "user",
        /// `actor.id`.
        UserId => "user_id",
        /// The client IP address, as text.
        IpAddress => "ip_address",
        /// `workflow_id`; absent for most account-level events.
        WorkflowId => "workflow_id",
        /// `account` or `workflow`.
        Level => "level",
        /// The event's description sentence.
        Description => "description",
    }
}

impl Column {
    /// The column's name as the dashboard shows it.
    pub fn label(self) -> &'static str {
        match self {
            Column::Event => "Event",
            Column::Category => "Category",
            Column::User => "User",
            Column::UserId => "User ID",
            Column::IpAddress => "IP Address",
            Column::WorkflowId => "Workflow ID",
            Column::Level => "Level",
            Column::Description => "Description",
        }
    }
}

wire_enum! {
    /// How a filter compares its column with its value.
    pub enum Op (param = "filter", what = "operator") {
        /// Equal after normalization.
        Eq => "eq",
        /// Not equal after normalization; keeps events without the field.
        Ne => "ne",
        /// Contains the value after normalization.
        Contains => "contains",
        /// Does not contain the value; keeps events without the field.
        NotContains => "not_contains",
    }
}

impl Op {
    /// The operator's name as the dashboard shows it (the seed's wording for
    /// the first two).
    pub fn label(self) -> &'static str {
        match self {
            Op::Eq => "Is Equal To",
            Op::Ne => "Is Not Equal To",
            Op::Contains => "Contains",
            Op::NotContains => "Does Not Contain",
        }
    }
}

wire_enum! {
    /// How several filters combine. One join covers the whole set: the seed
    /// forbids mixing AND and OR.
    #[derive(Default)]
    pub enum Join (param = "join", what = "join") {
        /// Every filter must match; the default.
        #[default]
        And => "and",
        /// At least one filter must match.
        Or => "or",
    }
}

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

wire_enum! {
    /// The body format of an export.
    #[derive(Default)]
    pub enum ExportFormat (param = "format", what = "format") {
        /// RFC 4180 CSV with the seed's six columns; the default.
        #[default]
        Csv => "csv",
        /// One full record per line, the input of offline verification.
        Jsonl => "jsonl",
    }
}

/// The normal form every comparison uses: surrounding white space trimmed,
/// then Unicode lowercase, so "  Role Created " equals "role created".
pub fn normalize(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Whether a field value passes `op` against an already-normalized `needle`.
///
/// An absent field compares as the empty string. That one rule gives what
/// the spec asks for (`eq`/`contains` never keep an absent field for a
/// non-empty value, `ne`/`not_contains` always do) and makes `eq` with an
/// empty value mean "absent or blank" and `ne` with one mean "has a value".
pub fn op_matches(op: Op, field: Option<&str>, needle: &str) -> bool {
    let field = field.unwrap_or("").trim();
    match op {
        Op::Eq => normalized_eq(field, needle),
        Op::Ne => !normalized_eq(field, needle),
        Op::Contains => normalize(field).contains(needle),
        Op::NotContains => !normalize(field).contains(needle),
    }
}

/// `normalize(field) == needle` for a trimmed `field`, without allocating in
/// the common all-ASCII case (equality is evaluated for every row scanned).
fn normalized_eq(field: &str, needle: &str) -> bool {
    if field.is_ascii() {
        // An ASCII string lowercases byte for byte, and `needle` is already
        // lowercase, so an ASCII case-insensitive comparison is exact.
        field.eq_ignore_ascii_case(needle)
    } else {
        field.to_lowercase() == needle
    }
}

/// One `COLUMN:OP:VALUE` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub column: Column,
    pub op: Op,
    /// The value exactly as the client gave it; comparisons use
    /// [`Filter::needle`].
    pub value: String,
}

impl Filter {
    /// Parses `COLUMN:OP:VALUE`, split at the first two colons so the value
    /// may itself contain colons (IPv6 addresses, descriptions).
    ///
    /// An empty (or blank) value is accepted for `eq` and `ne` — "field is
    /// absent or blank" and "field has a value" — but refused for `contains`
    /// and `not_contains`, where it would match every event or none.
    pub fn parse(s: &str) -> Result<Filter, ParseQueryError> {
        let mut parts = s.splitn(3, ':');
        let (Some(column), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseQueryError::new(
                "filter",
                format!(
                    "{} is not COLUMN:OP:VALUE (e.g. `event:eq:Role created`)",
                    quoted(s)
                ),
            ));
        };
        let column: Column = column.parse()?;
        let op: Op = op.parse()?;
        if value.chars().count() > MAX_FILTER_VALUE_CHARS {
            return Err(ParseQueryError::new(
                "filter",
                format!(
                    "the value of a filter on `{column}` is longer than {MAX_FILTER_VALUE_CHARS} characters"
                ),
            ));
        }
        if matches!(op, Op::Contains | Op::NotContains) && value.trim().is_empty() {
            return Err(ParseQueryError::new(
                "filter",
                format!(
                    "`{column}:{op}` needs a non-empty value; to test for an absent \
                     field use `{column}:eq:` or `{column}:ne:`"
                ),
            ));
        }
        Ok(Filter {
            column,
            op,
            value: value.to_owned(),
        })
    }

    /// The normalized value comparisons use (see [`normalize`]).
    pub fn needle(&self) -> String {
        normalize(&self.value)
    }

    /// The `COLUMN:OP:VALUE` form, which [`Filter::parse`] reads back.
    pub fn to_wire(&self) -> String {
        self.to_string()
    }

    /// Whether a record whose `column` holds `field` passes this filter.
    pub fn matches(&self, field: Option<&str>) -> bool {
        op_matches(self.op, field, &self.needle())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.column, self.op, self.value)
    }
}

/// A filter set ready to test many rows: needles are normalized once, not
/// once per row. Every evaluator (the in-memory index, export, tests) should
/// go through this so they agree on join and absent-field semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    conditions: Vec<(Column, Op, String)>,
    join: Join,
}

impl Matcher {
    pub fn new(filters: &[Filter], join: Join) -> Matcher {
        Matcher {
            conditions: filters
                .iter()
                .map(|f| (f.column, f.op, f.needle()))
                .collect(),
            join,
        }
    }

    /// Whether a row passes, given a way to read its columns. No filters
    /// keeps every row, whatever the join.
    pub fn matches<'a>(&self, mut field: impl FnMut(Column) -> Option<&'a str>) -> bool {
        if self.conditions.is_empty() {
            return true;
        }
        let mut results = self
            .conditions
            .iter()
            .map(|(column, op, needle)| op_matches(*op, field(*column), needle));
        match self.join {
            Join::And => results.all(|ok| ok),
            Join::Or => results.any(|ok| ok),
        }
    }
}

/// A parsed list/count/histogram/export query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub range: RangeSpec,
    pub filters: Vec<Filter>,
    pub join: Join,
    /// Page size, 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// The opaque cursor as received. It can only be checked once the
    /// account and scope are known: see [`Query::decode_cursor`].
    pub cursor: Option<String>,
    pub bucket: Bucket,
    pub format: ExportFormat,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            range: RangeSpec::default(),
            filters: Vec::new(),
            join: Join::default(),
            limit: DEFAULT_LIMIT,
            cursor: None,
            bucket: Bucket::default(),
            format: ExportFormat::default(),
        }
    }
}

/// Parses a strict `YYYY-MM-DD` calendar date: four-digit year, real month
/// and day (no 2026-02-30), nothing before or after.
fn parse_date(param: &str, s: &str) -> Result<Date, ParseQueryError> {
    let bad = |why: &str| {
        ParseQueryError::new(
            param,
            format!("{} is not a date: {why}; expected YYYY-MM-DD", quoted(s)),
        )
    };
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(bad("wrong format"));
    }
    // The shape check guarantees ASCII digits, so these parses cannot fail
    // and the values fit their types.
    let num = |r: std::ops::Range<usize>| s[r].parse::<i16>().map_err(|_| bad("wrong format"));
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let month = i8::try_from(month).map_err(|_| bad("no such month"))?;
    let day = i8::try_from(day).map_err(|_| bad("no such day"))?;
    if !(1..=12).contains(&month) {
        return Err(bad("no such month"));
    }
    Date::new(year, month, day).map_err(|_| bad("no such day in that month"))
}

/// Looks up an IANA zone name, returning the zone and its canonical name.
fn parse_tz(s: &str) -> Result<(TimeZone, String), ParseQueryError> {
    let unknown = || {
        ParseQueryError::new(
            "tz",
            format!(
                "unknown time zone {}; expected an IANA name such as `UTC`, \
                 `Europe/Paris` or `America/New_York`",
                quoted(s)
            ),
        )
    };
    // IANA names are short and use a small alphabet; refusing anything else
    // up front keeps odd input (paths, huge strings) away from the database.
    let plausible = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'-' | b'+'))
        && !s.starts_with('/')
        && !s.split('/').any(|part| part.is_empty());
    if !plausible {
        return Err(unknown());
    }
    let tz = TimeZone::get(s).map_err(|_| unknown())?;
    // `Etc/Unknown` is jiff's marker for "no zone", not a zone.
    if tz.is_unknown() {
        return Err(unknown());
    }
    let name = tz.iana_name().unwrap_or(s).to_owned();
    Ok((tz, name))
}

fn parse_limit(s: &str) -> Result<u32, ParseQueryError> {
    let bad = || {
        ParseQueryError::new(
            "limit",
            format!("{} is not an integer from 1 to {MAX_LIMIT}", quoted(s)),
        )
    };
    // Digits only: `u32::from_str` would also take `+50`.
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u32 = s.parse().map_err(|_| bad())?;
    if (1..=MAX_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

/// Parses the URL query pairs of list, count, histogram and export.
///
/// `filter` may repeat; every other parameter may appear at most once. An
/// unknown parameter is an error rather than silently ignored, so a typo
/// (`fliter=`) never shows an unfiltered view that looks filtered.
///
/// `from`/`to` are only accepted with `range=custom`: given with another
/// preset they would be ignored, and a client that sent them surely meant
/// something else.
pub fn parse_query(pairs: &[(String, String)]) -> Result<Query, ParseQueryError> {
    let mut single: [Option<&str>; KNOWN_PARAMS.len()] = [None; KNOWN_PARAMS.len()];
    let mut filters = Vec::new();
    for (name, value) in pairs {
        if name == "filter" {
            if filters.len() == MAX_FILTERS {
                return Err(ParseQueryError::new(
                    "filter",
                    format!("at most {MAX_FILTERS} filters are accepted"),
                ));
            }
            filters.push(Filter::parse(value)?);
            continue;
        }
        let Some(slot) = KNOWN_PARAMS.iter().position(|known| known == name) else {
            return Err(ParseQueryError::new(
                name,
                format!("unknown parameter; accepted: {}", KNOWN_PARAMS.join(", ")),
            ));
        };
        if single[slot].is_some() {
            return Err(ParseQueryError::new(
                name,
                "given more than once; only `filter` may repeat",
            ));
        }
        single[slot] = Some(value.as_str());
    }
    let get = |name: &str| {
        KNOWN_PARAMS
            .iter()
            .position(|known| *known == name)
            .and_then(|slot| single[slot])
    };

    let preset = get("range")
        .map(RangePreset::from_str)
        .transpose()?
        .unwrap_or_default();
    let week_start = get("week_start")
        .map(WeekStart::from_str)
        .transpose()?
        .unwrap_or_default();
    let (tz, tz_name) = match get("tz") {
        Some(s) => parse_tz(s)?,
        None => (TimeZone::UTC, "UTC".to_owned()),
    };
    let from = get("from").map(|s| parse_date("from", s)).transpose()?;
    let to = get("to").map(|s| parse_date("to", s)).transpose()?;
    if preset == RangePreset::Custom {
        match (from, to) {
            (None, _) => {
                return Err(ParseQueryError::new(
                    "from",
                    "range=custom needs `from` (YYYY-MM-DD); `to` defaults to today",
                ));
            }
            (Some(from), Some(to)) if from > to => {
                return Err(ParseQueryError::new(
                    "from",
                    format!("`from` {from} is after `to` {to}"),
                ));
            }
            _ => {}
        }
    } else {
        for (param, given) in [("from", from.is_some()), ("to", to.is_some())] {
            if given {
                return Err(ParseQueryError::new(
                    param,
                    format!(
                        "only used with range=custom, but range is `{preset}`; \
                         add range=custom or remove `{param}`"
                    ),
                ));
            }
        }
    }

    let join = get("join")
        .map(Join::from_str)
        .transpose()?
        .unwrap_or_default();
    let limit = get("limit")
        .map(parse_limit)
        .transpose()?
        .unwrap_or(DEFAULT_LIMIT);
    let bucket = get("bucket")
        .map(Bucket::from_str)
        .transpose()?
        .unwrap_or_default();
    let format = get("format")
        .map(ExportFormat::from_str)
        .transpose()?
        .unwrap_or_default();
    let cursor = match get("cursor") {
        Some("") => {
            return Err(ParseQueryError::new(
                "cursor",
                "empty; omit `cursor` for the first page",
            ));
        }
        other => other.map(str::to_owned),
    };

    Ok(Query {
        range: RangeSpec {
            preset,
            from,
            to,
            tz,
            tz_name,
            week_start,
        },
        filters,
        join,
        limit,
        cursor,
        bucket,
        format,
    })
}

/// A position in the newest-first order, `(occurred_at, seq)` descending:
/// the last event of a page. The next page holds the events strictly before
/// it, i.e. `(occurred_at_us, seq) < (cursor.occurred_at_us, cursor.seq)`.
/// Because the key is unique and an event's key never changes, paging visits
/// every matching event exactly once even while new (newer) events arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// `occurred_at` in microseconds since the Unix epoch.
    pub occurred_at_us: i64,
    pub seq: u64,
}

/// The key cursors are authenticated with (derived from the server's
/// secret, [`crate::secret::ServerSecret`]).
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl CursorKey {
    pub fn new(key: [u8; 32]) -> CursorKey {
        CursorKey(key)
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(<secret>)")
    }
}

/// Bytes of an encoded cursor: occurred_at and seq, 8 each, then 16 bytes
/// of the tag.
const CURSOR_BYTES: usize = 32;
/// Length of [`CURSOR_BYTES`] in unpadded base64.
const CURSOR_CHARS: usize = 43;
/// Cursor format version, bound into the tag: a cursor of another version
/// fails the check instead of being read wrongly.
const CURSOR_VERSION: &[u8] = b"auditlog cursor v2\0";

fn cursor_mac(key: &CursorKey, fingerprint: &[u8; 32], position: &[u8]) -> hmac::Hmac<Sha256> {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key.0)
        .expect("HMAC takes a key of any length");
    mac.update(CURSOR_VERSION);
    mac.update(fingerprint);
    mac.update(position);
    mac
}

impl Cursor {
    /// URL-safe base64 (no padding) of `occurred_at_us`, `seq` (both
    /// big-endian) and a tag: HMAC-SHA-256 under the server's cursor key of
    /// the query's fingerprint and the position, truncated to 16 bytes. A
    /// cursor is therefore bound to the account, scope and query, and
    /// cannot be forged or edited to point elsewhere.
    pub fn encode(&self, key: &CursorKey, fingerprint: &[u8; 32]) -> String {
        use hmac::Mac;
        let mut bytes = [0u8; CURSOR_BYTES];
        bytes[..8].copy_from_slice(&self.occurred_at_us.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.seq.to_be_bytes());
        let tag = cursor_mac(key, fingerprint, &bytes[..16])
            .finalize()
            .into_bytes();
        bytes[16..].copy_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a cursor back, refusing one whose tag does not check out: it
    /// was issued for another account, scope or query, by another server,
    /// or edited (constant-time comparison).
    pub fn decode(
        s: &str,
        key: &CursorKey,
        fingerprint: &[u8; 32],
    ) -> Result<Cursor, ParseQueryError> {
        use hmac::Mac;
        let not_ours =
            || ParseQueryError::new("cursor", "cursor was not issued for this account and query");
        if s.len() != CURSOR_CHARS {
            return Err(not_ours());
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| not_ours())?;
        let bytes: [u8; CURSOR_BYTES] = bytes.try_into().map_err(|_| not_ours())?;
        cursor_mac(key, fingerprint, &bytes[..16])
            .verify_truncated_left(&bytes[16..])
            .map_err(|_| not_ours())?;
        let mut occurred_at_us = [0u8; 8];
        occurred_at_us.copy_from_slice(&bytes[..8]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[8..16]);
        Ok(Cursor {
            occurred_at_us: i64::from_be_bytes(occurred_at_us),
            seq: u64::from_be_bytes(seq),
        })
    }
}

/// Feeds one length-prefixed field to the hash, so that field boundaries
/// are unambiguous (`"ab" + "c"` and `"a" + "bc"` differ).
fn hash_field(hasher: &mut Sha256, field: &[u8]) {
    hasher.update((field.len() as u64).to_be_bytes());
    hasher.update(field);
}

impl Query {
    /// The first 8 bytes of a SHA-256 over the account, the scope (a
    /// workflow id, or "" for the account view) and a normal form of what
    /// selects events: range, from, to, tz, week_start, filters and join.
    /// `limit`, `cursor`, `bucket` and `format` are left out because they do
    /// not change which events match, so a client may change its page size
    /// mid-way.
    ///
    /// The normal form makes equivalent queries share cursors: filters are
    /// compared by normalized value and sorted (with one join for the set,
    /// order cannot matter), duplicates dropped, and the join ignored when
    /// there is at most one filter.
    pub fn fingerprint(&self, account: &str, scope: &str) -> [u8; 32] {
        let mut filters: Vec<(Column, Op, String)> = self
            .filters
            .iter()
            .map(|f| (f.column, f.op, f.needle()))
            .collect();
        filters.sort();
        filters.dedup();
        let join = if filters.len() <= 1 {
            Join::And
        } else {
            self.join
        };
        let date = |d: Option<Date>| d.map(|d| d.to_string()).unwrap_or_default();

        let mut hasher = Sha256::new();
        hash_field(&mut hasher, b"auditlog cursor v1");
        hash_field(&mut hasher, account.as_bytes());
        hash_field(&mut hasher, scope.as_bytes());
        hash_field(&mut hasher, self.range.preset.as_str().as_bytes());
        hash_field(&mut hasher, date(self.range.from).as_bytes());
        hash_field(&mut hasher, date(self.range.to).as_bytes());
        hash_field(&mut hasher, self.range.tz_name.as_bytes());
        hash_field(&mut hasher, self.range.week_start.as_str().as_bytes());
        hash_field(&mut hasher, join.as_str().as_bytes());
        hash_field(&mut hasher, &(filters.len() as u64).to_be_bytes());
        for (column, op, needle) in &filters {
            hash_field(&mut hasher, column.as_str().as_bytes());
            hash_field(&mut hasher, op.as_str().as_bytes());
            hash_field(&mut hasher, needle.as_bytes());
        }
        hasher.finalize().into()
    }

    /// The cursor of this query, checked against its fingerprint; `None`
    /// for the first page.
    pub fn decode_cursor(
        &self,
        key: &CursorKey,
        account: &str,
        scope: &str,
    ) -> Result<Option<Cursor>, ParseQueryError> {
        match &self.cursor {
            None => Ok(None),
            Some(s) => Cursor::decode(s, key, &self.fingerprint(account, scope)).map(Some),
        }
    }

    /// The `next_cursor` to return after a page ending at `last`.
    pub fn encode_cursor(
        &self,
        key: &CursorKey,
        last: Cursor,
        account: &str,
        scope: &str,
    ) -> String {
        last.encode(key, &self.fingerprint(account, scope))
    }

    /// A matcher for this query's filters and join.
    pub fn matcher(&self) -> Matcher {
        Matcher::new(&self.filters, self.join)
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

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn spec(preset: RangePreset, tz: &str) -> RangeSpec {
        let (tz, tz_name) = parse_tz(tz).expect("test zone");
        RangeSpec {
            preset,
            tz,
            tz_name,
            ..RangeSpec::default()
        }
    }

    /// Resolves and renders both ends in the zone, for readable assertions.
    fn resolved(spec: &RangeSpec, now: &str) -> (String, String) {
        let range = spec.resolve(ts(now)).expect("resolve");
        let echo = range.to_json_echo(spec);
        (
            echo["from"].as_str().expect("from").to_owned(),
            echo["to"].as_str().expect("to").to_owned(),
        )
    }

    fn check(preset: RangePreset, tz: &str, now: &str, from: &str, to: &str) {
        assert_eq!(
            resolved(&spec(preset, tz), now),
            (from.to_owned(), to.to_owned()),
            "{preset} in {tz} at {now}"
        );
    }

    fn hours(range: &ResolvedRange) -> i64 {
        let (Some(start), Some(end)) = (range.start, range.end) else {
            panic!("unbounded range");
        };
        (end.as_second() - start.as_second()) / 3600
    }

    fn parse_err(items: &[(&str, &str)]) -> ParseQueryError {
        parse_query(&pairs(items)).expect_err("should be rejected")
    }

    #[test]
    fn wire_names_round_trip_and_labels_match_the_seed() {
        for preset in RangePreset::ALL {
            assert_eq!(preset.as_str().parse::<RangePreset>(), Ok(*preset));
        }
        let labels: Vec<&str> = RangePreset::ALL.iter().map(|p| p.label()).collect();
        assert_eq!(
            labels,
            [
                "All Time",
                "Today",
                "Yesterday",
                "This Week",
                "This Month",
                "Last Month",
                "Last 30 Days",
                "Last 90 Days",
                "This Year",
                "Last Year",
                "Custom"
            ]
        );
        assert_eq!(RangePreset::default(), RangePreset::Last30Days);
        assert_eq!(Op::Eq.label(), "Is Equal To");
        assert_eq!(Op::Ne.label(), "Is Not Equal To");
        assert_eq!(Op::NotContains.label(), "Does Not Contain");
        for column in Column::ALL {
            assert_eq!(column.as_str().parse::<Column>(), Ok(*column));
        }
    }

    #[test]
    fn presets_in_utc() {
        let now = "2026-05-20T13:45:00Z"; // a Wednesday
        let z = "+00:00";
        let c = |p, from: &str, to: &str| {
            check(
                p,
                "UTC",
                now,
                &format!("{from}T00:00:00{z}"),
                &format!("{to}T00:00:00{z}"),
            )
        };
        c(RangePreset::Today, "2026-05-20", "2026-05-21");
        c(RangePreset::Yesterday, "2026-05-19", "2026-05-20");
        c(RangePreset::ThisWeek, "2026-05-18", "2026-05-25");
        c(RangePreset::ThisMonth, "2026-05-01", "2026-06-01");
        c(RangePreset::LastMonth, "2026-04-01", "2026-05-01");
        c(RangePreset::Last30Days, "2026-04-21", "2026-05-21");
        c(RangePreset::Last90Days, "2026-02-20", "2026-05-21");
        c(RangePreset::ThisYear, "2026-01-01", "2027-01-01");
        c(RangePreset::LastYear, "2025-01-01", "2026-01-01");
        let all = spec(RangePreset::AllTime, "UTC").resolve(ts(now)).unwrap();
        assert_eq!(
            all,
            ResolvedRange {
                start: None,
                end: None
            }
        );
        assert!(all.contains(ts("1970-01-01T00:00:00Z")));
    }

    #[test]
    fn today_on_paris_dst_days_lasts_23_and_25_hours() {
        check(
            RangePreset::Today,
            "Europe/Paris",
            "2026-03-29T12:00:00Z",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
        );
        let spring = spec(RangePreset::Today, "Europe/Paris")
            .resolve(ts("2026-03-29T12:00:00Z"))
            .unwrap();
        assert_eq!(hours(&spring), 23);
        check(
            RangePreset::Today,
            "Europe/Paris",
            "2026-10-25T12:00:00Z",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
        );
        let autumn = spec(RangePreset::Today, "Europe/Paris")
            .resolve(ts("2026-10-25T12:00:00Z"))
            .unwrap();
        assert_eq!(hours(&autumn), 25);
        check(
            RangePreset::Yesterday,
            "Europe/Paris",
            "2026-10-26T08:00:00Z",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
        );
    }

    #[test]
    fn presets_in_new_york_across_dst() {
        // 2026-03-08 and 2026-11-01 are New York's DST days.
        check(
            RangePreset::Today,
            "America/New_York",
            "2026-03-08T15:00:00Z",
            "2026-03-08T00:00:00-05:00",
            "2026-03-09T00:00:00-04:00",
        );
        check(
            RangePreset::ThisMonth,
            "America/New_York",
            "2026-11-15T15:00:00Z",
            "2026-11-01T00:00:00-04:00",
            "2026-12-01T00:00:00-05:00",
        );
        // 03:30 UTC on 1 Nov is still 31 October in New York.
        check(
            RangePreset::Today,
            "America/New_York",
            "2026-11-01T03:30:00Z",
            "2026-10-31T00:00:00-04:00",
            "2026-11-01T00:00:00-04:00",
        );
        check(
            RangePreset::Last30Days,
            "America/New_York",
            "2026-03-20T12:00:00Z",
            "2026-02-19T00:00:00-05:00",
            "2026-03-21T00:00:00-04:00",
        );
    }

    #[test]
    fn zone_where_midnight_is_skipped_starts_the_day_at_the_jump() {
        // Sao Paulo jumped from 00:00 to 01:00 on 2018-11-04.
        check(
            RangePreset::Today,
            "America/Sao_Paulo",
            "2018-11-04T15:00:00Z",
            "2018-11-04T01:00:00-02:00",
            "2018-11-05T00:00:00-02:00",
        );
    }

    #[test]
    fn year_boundary_in_both_directions() {
        // Already 2027 in Paris while UTC is still in 2026.
        let now = "2026-12-31T23:30:00Z";
        check(
            RangePreset::ThisYear,
            "Europe/Paris",
            now,
            "2027-01-01T00:00:00+01:00",
            "2028-01-01T00:00:00+01:00",
        );
        check(
            RangePreset::LastYear,
            "Europe/Paris",
            now,
            "2026-01-01T00:00:00+01:00",
            "2027-01-01T00:00:00+01:00",
        );
        check(
            RangePreset::Yesterday,
            "Europe/Paris",
            now,
            "2026-12-31T00:00:00+01:00",
            "2027-01-01T00:00:00+01:00",
        );
        check(
            RangePreset::ThisYear,
            "UTC",
            now,
            "2026-01-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
        );
        // Already 2027 in UTC while New York is still in 2026.
        let now = "2027-01-01T00:30:00Z";
        check(
            RangePreset::ThisYear,
            "America/New_York",
            now,
            "2026-01-01T00:00:00-05:00",
            "2027-01-01T00:00:00-05:00",
        );
        check(
            RangePreset::LastMonth,
            "America/New_York",
            now,
            "2026-11-01T00:00:00-04:00",
            "2026-12-01T00:00:00-05:00",
        );
        check(
            RangePreset::ThisYear,
            "UTC",
            now,
            "2027-01-01T00:00:00+00:00",
            "2028-01-01T00:00:00+00:00",
        );
    }

    #[test]
    fn leap_years() {
        check(
            RangePreset::Today,
            "UTC",
            "2028-02-29T10:00:00Z",
            "2028-02-29T00:00:00+00:00",
            "2028-03-01T00:00:00+00:00",
        );
        check(
            RangePreset::LastMonth,
            "UTC",
            "2028-03-31T10:00:00Z",
            "2028-02-01T00:00:00+00:00",
            "2028-03-01T00:00:00+00:00",
        );
        check(
            RangePreset::ThisMonth,
            "UTC",
            "2028-02-10T10:00:00Z",
            "2028-02-01T00:00:00+00:00",
            "2028-03-01T00:00:00+00:00",
        );
        check(
            RangePreset::Last30Days,
            "UTC",
            "2028-03-15T10:00:00Z",
            "2028-02-15T00:00:00+00:00",
            "2028-03-16T00:00:00+00:00",
        );
        check(
            RangePreset::LastYear,
            "UTC",
            "2029-02-28T10:00:00Z",
            "2028-01-01T00:00:00+00:00",
            "2029-01-01T00:00:00+00:00",
        );
    }

    #[test]
    fn this_week_with_monday_and_sunday_starts() {
        let week = |now: &str, week_start| {
            let mut s = spec(RangePreset::ThisWeek, "UTC");
            s.week_start = week_start;
            resolved(&s, now)
        };
        let range = |from: &str, to: &str| {
            (
                format!("{from}T00:00:00+00:00"),
                format!("{to}T00:00:00+00:00"),
            )
        };
        // 2026-05-17 is a Sunday, 2026-05-18 a Monday.
        let sunday = "2026-05-17T12:00:00Z";
        let monday = "2026-05-18T12:00:00Z";
        assert_eq!(
            week(sunday, WeekStart::Monday),
            range("2026-05-11", "2026-05-18")
        );
        assert_eq!(
            week(sunday, WeekStart::Sunday),
            range("2026-05-17", "2026-05-24")
        );
        assert_eq!(
            week(monday, WeekStart::Monday),
            range("2026-05-18", "2026-05-25")
        );
        assert_eq!(
            week(monday, WeekStart::Sunday),
            range("2026-05-17", "2026-05-24")
        );
        // A week spanning Paris' spring change lasts 7 days minus an hour.
        let mut s = spec(RangePreset::ThisWeek, "Europe/Paris");
        s.week_start = WeekStart::Monday;
        let r = s.resolve(ts("2026-03-27T12:00:00Z")).unwrap();
        assert_eq!(hours(&r), 7 * 24 - 1);
    }

    #[test]
    fn last_30_days_is_30_calendar_days_including_today() {
        for (tz, now) in [
            ("UTC", "2026-05-20T23:59:59Z"),
            ("Europe/Paris", "2026-04-10T08:00:00Z"),
            ("America/New_York", "2026-11-20T08:00:00Z"),
        ] {
            let s = spec(RangePreset::Last30Days, tz);
            let r = s.resolve(ts(now)).unwrap();
            let (start, end) = (r.start.unwrap(), r.end.unwrap());
            let first = s.tz.to_datetime(start).date();
            let after = s.tz.to_datetime(end).date();
            assert_eq!(first.until(after).unwrap().get_days(), 30, "{tz}");
            assert!(r.contains(ts(now)));
        }
        let s = spec(RangePreset::Last90Days, "UTC");
        let r = s.resolve(ts("2026-05-20T10:00:00Z")).unwrap();
        assert_eq!(hours(&r), 90 * 24);
    }

    #[test]
    fn custom_with_and_without_to() {
        let q = parse_query(&pairs(&[
            ("range", "custom"),
            ("from", "2026-03-01"),
            ("to", "2026-03-31"),
            ("tz", "Europe/Paris"),
        ]))
        .unwrap();
        assert_eq!(
            resolved(&q.range, "2026-06-01T00:00:00Z"),
            (
                "2026-03-01T00:00:00+01:00".to_owned(),
                "2026-04-01T00:00:00+02:00".to_owned()
            )
        );
        // Without `to`, the range ends with today in the viewer's zone.
        let q = parse_query(&pairs(&[
            ("range", "custom"),
            ("from", "2026-03-01"),
            ("tz", "America/New_York"),
        ]))
        .unwrap();
        assert_eq!(
            resolved(&q.range, "2026-03-10T02:00:00Z"),
            (
                "2026-03-01T00:00:00-05:00".to_owned(),
                "2026-03-10T00:00:00-04:00".to_owned()
            )
        );
        // A single day.
        let q = parse_query(&pairs(&[
            ("range", "custom"),
            ("from", "2026-03-01"),
            ("to", "2026-03-01"),
        ]))
        .unwrap();
        assert_eq!(
            hours(&q.range.resolve(ts("2026-06-01T00:00:00Z")).unwrap()),
            24
        );
        // `from` after today (with `to` defaulted) is an error at resolve time.
        let q = parse_query(&pairs(&[("range", "custom"), ("from", "2026-07-01")])).unwrap();
        let err = q.range.resolve(ts("2026-06-01T00:00:00Z")).unwrap_err();
        assert_eq!(err.param, "from");
        assert!(err.message.contains("after today"), "{err}");
    }

    #[test]
    fn echo_has_the_spec_shape() {
        let q = parse_query(&pairs(&[("tz", "europe/paris")])).unwrap();
        let r = q.range.resolve(ts("2026-11-15T10:00:00Z")).unwrap();
        assert_eq!(
            r.to_json_echo(&q.range),
            serde_json::json!({
                "preset": "last_30_days",
                "from": "2026-10-17T00:00:00+02:00",
                "to": "2026-11-16T00:00:00+01:00",
                "tz": "Europe/Paris",
            })
        );
        let all = spec(RangePreset::AllTime, "UTC");
        let r = all.resolve(ts("2026-11-15T10:00:00Z")).unwrap();
        assert_eq!(
            r.to_json_echo(&all),
            serde_json::json!({"preset": "all_time", "from": null, "to": null, "tz": "UTC"})
        );
    }

    #[test]
    fn skipped_day_gives_an_empty_range_not_an_error() {
        // Pacific/Apia went from 2011-12-29 straight to 2011-12-31.
        let r = spec(RangePreset::Yesterday, "Pacific/Apia")
            .resolve(ts("2011-12-30T12:00:00Z"))
            .unwrap();
        assert_eq!(r.start, r.end);
    }

    #[test]
    fn defaults() {
        let q = parse_query(&[]).unwrap();
        assert_eq!(q, Query::default());
        assert_eq!(q.range.preset, RangePreset::Last30Days);
        assert_eq!(q.range.tz_name, "UTC");
        assert_eq!(q.limit, 50);
        assert_eq!(q.join, Join::And);
        assert_eq!(q.bucket, Bucket::Auto);
        assert_eq!(q.format, ExportFormat::Csv);
    }

    #[test]
    fn full_query_parses() {
        let q = parse_query(&pairs(&[
            ("range", "this_week"),
            ("tz", "America/New_York"),
            ("week_start", "sunday"),
            ("filter", "event:eq:Role created"),
            ("filter", "user:ne:Jane Doe"),
            ("join", "or"),
            ("limit", "1000"),
            ("cursor", "abc"),
            ("bucket", "hour"),
            ("format", "jsonl"),
        ]))
        .unwrap();
        assert_eq!(q.range.preset, RangePreset::ThisWeek);
        assert_eq!(q.range.week_start, WeekStart::Sunday);
        assert_eq!(q.filters.len(), 2);
        assert_eq!(q.join, Join::Or);
        assert_eq!(q.limit, 1000);
        assert_eq!(q.cursor.as_deref(), Some("abc"));
        assert_eq!(q.bucket, Bucket::Hour);
        assert_eq!(q.format, ExportFormat::Jsonl);
    }

    /// Splits `a=1&b=2` into pairs (no percent-decoding: tests only).
    fn query_pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (pair.to_owned(), String::new()),
            })
            .collect()
    }

    #[test]
    fn every_bad_input_names_its_parameter() {
        // (query string, parameter blamed, part of the message)
        let cases = [
            (
                "fliter=x",
                "fliter",
                "unknown parameter; accepted: range, from",
            ),
            ("range=last_week", "range", "unknown range `last_week`"),
            ("range=", "range", "unknown range"),
            ("range=Today", "range", "unknown range"),
            (
                "week_start=friday",
                "week_start",
                "accepted: monday, sunday",
            ),
            ("join=xor", "join", "unknown join `xor`; accepted: and, or"),
            ("bucket=minute", "bucket", "unknown bucket"),
            ("format=xml", "format", "unknown format"),
            (
                "filter=foo:eq:x",
                "filter",
                "unknown column `foo`; accepted: event, category, user, user_id",
            ),
            ("filter=event:like:x", "filter", "unknown operator `like`"),
            ("filter=event:eq", "filter", "COLUMN:OP:VALUE"),
            ("filter=", "filter", "COLUMN:OP:VALUE"),
            ("filter=event:contains:  ", "filter", "non-empty value"),
            ("filter=event:not_contains:", "filter", "non-empty value"),
            ("from=2026-01-01", "from", "range=custom"),
            ("range=today&to=2026-01-01", "to", "range=custom"),
            ("range=custom", "from", "needs `from`"),
            ("range=custom&to=2026-01-01", "from", "needs `from`"),
            (
                "range=custom&from=2026-02-02&to=2026-02-01",
                "from",
                "after `to`",
            ),
            ("range=custom&from=2026-02-30", "from", "no such day"),
            ("range=custom&from=2027-02-29", "from", "no such day"),
            ("range=custom&from=2026-13-01", "from", "no such month"),
            ("range=custom&from=2026-00-10", "from", "no such month"),
            ("range=custom&from=10000-01-01", "from", "YYYY-MM-DD"),
            ("range=custom&from=2026-1-01", "from", "YYYY-MM-DD"),
            ("range=custom&from=2026-01-01T00:00", "from", "YYYY-MM-DD"),
            ("range=custom&from=２０２６-01-01", "from", "YYYY-MM-DD"),
            (
                "range=custom&from=2026-01-01&to=2026-04-31",
                "to",
                "no such day",
            ),
            ("tz=Mars/Olympus_Mons", "tz", "unknown time zone"),
            ("tz=../../etc/passwd", "tz", "unknown time zone"),
            ("tz=Etc/Unknown", "tz", "unknown time zone"),
            ("tz=", "tz", "unknown time zone"),
            ("limit=0", "limit", "from 1 to 1000"),
            ("limit=1001", "limit", "from 1 to 1000"),
            ("limit=-1", "limit", "from 1 to 1000"),
            ("limit=+5", "limit", "from 1 to 1000"),
            ("limit=ten", "limit", "from 1 to 1000"),
            ("limit=99999999999", "limit", "from 1 to 1000"),
            ("cursor=", "cursor", "empty"),
            ("range=today&range=today", "range", "more than once"),
        ];
        for (query, param, fragment) in cases {
            let err = parse_query(&query_pairs(query)).expect_err(query);
            assert_eq!(err.param, param, "{query}: {err}");
            assert!(err.message.contains(fragment), "{query}: {err}");
            assert!(err.to_string().starts_with(&format!("invalid `{param}`: ")));
        }
    }

    #[test]
    fn error_messages_do_not_echo_huge_input() {
        let huge = "x".repeat(10_000);
        let err = parse_err(&[("range", &huge)]);
        assert!(err.message.len() < 300, "{}", err.message.len());
    }

    #[test]
    fn too_many_filters_or_too_long_values_are_refused() {
        let many: Vec<(String, String)> = (0..=MAX_FILTERS)
            .map(|i| ("filter".to_owned(), format!("event:eq:{i}")))
            .collect();
        assert_eq!(parse_query(&many).unwrap_err().param, "filter");
        let long = format!(
            "description:contains:{}",
            "a".repeat(MAX_FILTER_VALUE_CHARS + 1)
        );
        assert_eq!(Filter::parse(&long).unwrap_err().param, "filter");
    }

    #[test]
    fn filter_splits_at_the_first_two_colons() {
        let f = Filter::parse("description:contains:a:b:c").unwrap();
        assert_eq!(f.column, Column::Description);
        assert_eq!(f.op, Op::Contains);
        assert_eq!(f.value, "a:b:c");
        assert_eq!(f.to_wire(), "description:contains:a:b:c");
        assert_eq!(Filter::parse(&f.to_wire()).unwrap(), f);
        let ip = Filter::parse("ip_address:eq:2001:db8::1").unwrap();
        assert_eq!(ip.value, "2001:db8::1");
        let empty = Filter::parse("workflow_id:eq:").unwrap();
        assert_eq!(empty.value, "");
    }

    #[test]
    fn matching_ignores_case_and_surrounding_white_space() {
        let f = Filter::parse("event:eq:  Role Created ").unwrap();
        assert_eq!(f.needle(), "role created");
        assert!(f.matches(Some("Role created")));
        assert!(f.matches(Some(" ROLE CREATED\t")));
        assert!(!f.matches(Some("Role created!")));
        assert!(!f.matches(None));
        // Unicode case folding, not just ASCII.
        let f = Filter::parse("user:eq:ÉLODIE").unwrap();
        assert!(f.matches(Some("élodie")));
        let f = Filter::parse("description:contains:JANE").unwrap();
        assert!(f.matches(Some("Jane Doe created the role")));
        assert!(!f.matches(None));
    }

    #[test]
    fn negative_operators_keep_absent_fields() {
        assert!(op_matches(Op::Ne, None, "wf_1"));
        assert!(op_matches(Op::NotContains, None, "wf"));
        assert!(!op_matches(Op::Eq, None, "wf_1"));
        assert!(!op_matches(Op::Contains, None, "wf"));
        assert!(!op_matches(Op::Ne, Some(" WF_1 "), "wf_1"));
        assert!(op_matches(Op::Ne, Some("wf_2"), "wf_1"));
        assert!(!op_matches(Op::NotContains, Some("my wf"), "wf"));
        // An empty value tests presence.
        assert!(op_matches(Op::Eq, None, ""));
        assert!(op_matches(Op::Eq, Some("  "), ""));
        assert!(!op_matches(Op::Eq, Some("wf_1"), ""));
        assert!(op_matches(Op::Ne, Some("wf_1"), ""));
        assert!(!op_matches(Op::Ne, None, ""));
    }

    #[test]
    fn matcher_applies_one_join_to_the_whole_set() {
        let filters = [
            Filter::parse("event:eq:Role created").unwrap(),
            Filter::parse("user:eq:jane doe").unwrap(),
        ];
        let row = |column| match column {
            Column::Event => Some("Role created"),
            Column::User => Some("John Roe"),
            _ => None,
        };
        assert!(!Matcher::new(&filters, Join::And).matches(row));
        assert!(Matcher::new(&filters, Join::Or).matches(row));
        assert!(Matcher::new(&[], Join::Or).matches(row));
        assert!(Matcher::new(&[], Join::And).matches(row));
    }

    fn query(items: &[(&str, &str)]) -> Query {
        parse_query(&pairs(items)).unwrap()
    }

    static KEY: CursorKey = CursorKey([1; 32]);

    #[test]
    fn cursor_round_trips() {
        let q = query(&[("filter", "event:eq:Login")]);
        let c = Cursor {
            occurred_at_us: 1_780_000_000_123_456,
            seq: 42,
        };
        let s = q.encode_cursor(&KEY, c, "acme", "");
        assert_eq!(s.len(), 43);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let mut next = q.clone();
        next.cursor = Some(s.clone());
        assert_eq!(next.decode_cursor(&KEY, "acme", ""), Ok(Some(c)));
        assert_eq!(q.decode_cursor(&KEY, "acme", ""), Ok(None));
        // Another server's key: refused.
        let other = CursorKey::new([2; 32]);
        assert!(next.decode_cursor(&other, "acme", "").is_err());
        // Negative times (before 1970) and extreme values survive too.
        let edge = Cursor {
            occurred_at_us: -1,
            seq: u64::MAX,
        };
        let fp = q.fingerprint("acme", "");
        assert_eq!(Cursor::decode(&edge.encode(&KEY, &fp), &KEY, &fp), Ok(edge));
    }

    #[test]
    fn cursor_is_refused_elsewhere_and_when_garbled() {
        let q = query(&[("filter", "event:eq:Login")]);
        let c = Cursor {
            occurred_at_us: 1_780_000_000_123_456,
            seq: 42,
        };
        let s = q.encode_cursor(&KEY, c, "acme", "");
        let refused = |q: &Query, account: &str, scope: &str, s: &str| {
            let mut q = q.clone();
            q.cursor = Some(s.to_owned());
            let err = q.decode_cursor(&KEY, account, scope).unwrap_err();
            assert_eq!(err.param, "cursor");
            assert_eq!(
                err.message,
                "cursor was not issued for this account and query"
            );
        };
        refused(&q, "other", "", &s);
        refused(&q, "acme", "wf_1", &s);
        refused(&query(&[("filter", "event:eq:Logout")]), "acme", "", &s);
        refused(&query(&[]), "acme", "", &s);
        refused(
            &query(&[("filter", "event:eq:Login"), ("range", "today")]),
            "acme",
            "",
            &s,
        );
        refused(
            &query(&[("filter", "event:eq:Login"), ("tz", "Europe/Paris")]),
            "acme",
            "",
            &s,
        );
        refused(&q, "acme", "", "garbage");
        refused(&q, "acme", "", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        refused(&q, "acme", "", &format!("{s}AA"));
        refused(&q, "acme", "", &s[..42]);
        refused(&q, "acme", "", "");
        // A forged position: seq edited, tag kept.
        let mut bytes = URL_SAFE_NO_PAD.decode(&s).unwrap();
        bytes[15] ^= 1;
        refused(&q, "acme", "", &URL_SAFE_NO_PAD.encode(&bytes));
    }

    #[test]
    fn fingerprint_ignores_paging_and_equivalent_spellings() {
        let base = query(&[
            ("filter", "event:eq:Login"),
            ("filter", "user:ne:Jane"),
            ("join", "or"),
            ("tz", "Europe/Paris"),
        ]);
        let same = query(&[
            ("tz", "europe/paris"),
            ("filter", "user:ne:  JANE "),
            ("filter", "event:eq:login"),
            ("join", "or"),
            ("limit", "7"),
            ("cursor", "x"),
            ("bucket", "day"),
            ("format", "jsonl"),
        ]);
        assert_eq!(base.fingerprint("acme", ""), same.fingerprint("acme", ""));
        let and = query(&[
            ("filter", "event:eq:Login"),
            ("filter", "user:ne:Jane"),
            ("tz", "Europe/Paris"),
        ]);
        assert_ne!(base.fingerprint("acme", ""), and.fingerprint("acme", ""));
        // With a single filter the join cannot matter.
        assert_eq!(
            query(&[("filter", "event:eq:Login"), ("join", "or")]).fingerprint("a", ""),
            query(&[("filter", "event:eq:Login")]).fingerprint("a", "")
        );
        // Field boundaries are unambiguous.
        assert_ne!(base.fingerprint("ab", "c"), base.fingerprint("a", "bc"));
    }

    #[test]
    fn auto_bucket_is_hour_up_to_two_days() {
        let range = |s: &str, e: &str| ResolvedRange {
            start: Some(ts(s)),
            end: Some(ts(e)),
        };
        let day = range("2026-05-20T00:00:00Z", "2026-05-21T00:00:00Z");
        let two = range("2026-05-20T00:00:00Z", "2026-05-22T00:00:00Z");
        let three = range("2026-05-20T00:00:00Z", "2026-05-23T00:00:00Z");
        assert_eq!(Bucket::Auto.resolve(&day), Bucket::Hour);
        assert_eq!(Bucket::Auto.resolve(&two), Bucket::Hour);
        assert_eq!(Bucket::Auto.resolve(&three), Bucket::Day);
        assert_eq!(Bucket::Hour.resolve(&three), Bucket::Hour);
        assert_eq!(Bucket::Day.resolve(&day), Bucket::Day);
        let all = ResolvedRange {
            start: None,
            end: None,
        };
        assert_eq!(Bucket::Auto.resolve(&all), Bucket::Day);
        // Two Paris days including the 25-hour one are still "two days".
        let mut s = spec(RangePreset::Custom, "Europe/Paris");
        s.from = Some(date(2026, 10, 24));
        s.to = Some(date(2026, 10, 25));
        let r = s.resolve(ts("2026-11-01T00:00:00Z")).unwrap();
        assert_eq!(hours(&r), 49);
        assert_eq!(Bucket::Auto.resolve(&r), Bucket::Hour);
    }

    /// Regression: one event dated 1970 made the all-time histogram answer
    /// 400 ("needs more than 20000 day buckets"); auto now widens the
    /// bucket with the span, and every span ingest accepts fits.
    #[test]
    fn auto_bucket_widens_with_the_span() {
        let range = |s: &str, e: &str| ResolvedRange {
            start: Some(ts(s)),
            end: Some(ts(e)),
        };
        let cases = [
            ("2025-01-01T00:00:00Z", Bucket::Day),
            ("2020-01-01T00:00:00Z", Bucket::Week),
            ("1990-01-01T00:00:00Z", Bucket::Month),
            ("1970-01-01T00:00:00Z", Bucket::Month),
            ("1900-01-01T00:00:00Z", Bucket::Year),
        ];
        for (from, want) in cases {
            let r = range(from, "2026-12-02T00:00:00Z");
            assert_eq!(Bucket::Auto.resolve(&r), want, "{from}");
            let b = bucket_bounds(
                r.start.unwrap(),
                r.end.unwrap(),
                Bucket::Auto,
                &TimeZone::get("America/New_York").unwrap(),
                WeekStart::Monday,
            )
            .unwrap();
            assert!(b.len() <= 1_300, "{from}: {} buckets", b.len());
            assert!(b[0] <= r.start.unwrap() && *b.last().unwrap() >= r.end.unwrap());
        }
    }

    #[test]
    fn week_month_and_year_buckets_follow_the_calendar() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let start = ts("2026-03-04T12:00:00Z"); // a Wednesday
        let end = ts("2026-04-02T00:00:00Z");
        let weeks = bucket_bounds(start, end, Bucket::Week, &tz, WeekStart::Monday).unwrap();
        assert_eq!(
            rendered(&weeks[..2], &tz),
            ["2026-03-02T00:00:00+01:00", "2026-03-09T00:00:00+01:00"]
        );
        // The week of the DST change is 167 hours long, and still one bucket.
        assert!(rendered(&weeks, &tz).contains(&"2026-03-30T00:00:00+02:00".to_owned()));
        let sundays = bucket_bounds(start, end, Bucket::Week, &tz, WeekStart::Sunday).unwrap();
        assert_eq!(rendered(&sundays[..1], &tz), ["2026-03-01T00:00:00+01:00"]);
        let months = bucket_bounds(start, end, Bucket::Month, &tz, WeekStart::Monday).unwrap();
        assert_eq!(
            rendered(&months, &tz),
            [
                "2026-03-01T00:00:00+01:00",
                "2026-04-01T00:00:00+02:00",
                "2026-05-01T00:00:00+02:00"
            ]
        );
        let years = bucket_bounds(start, end, Bucket::Year, &tz, WeekStart::Monday).unwrap();
        assert_eq!(
            rendered(&years, &tz),
            ["2026-01-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00"]
        );
    }

    fn rendered(bounds: &[Timestamp], tz: &TimeZone) -> Vec<String> {
        bounds
            .iter()
            .map(|t| t.display_with_offset(tz.to_offset(*t)).to_string())
            .collect()
    }

    #[test]
    fn day_buckets_over_dst_changes_are_23_and_25_hours() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let b = bucket_bounds(
            ts("2026-03-28T10:00:00Z"),
            ts("2026-03-30T12:00:00Z"),
            Bucket::Day,
            &tz,
            WeekStart::Monday,
        )
        .unwrap();
        assert_eq!(
            rendered(&b, &tz),
            [
                "2026-03-28T00:00:00+01:00",
                "2026-03-29T00:00:00+01:00",
                "2026-03-30T00:00:00+02:00",
                "2026-03-31T00:00:00+02:00",
            ]
        );
        assert_eq!(b[2].as_second() - b[1].as_second(), 23 * 3600);
        let b = bucket_bounds(
            ts("2026-10-24T22:00:00Z"),
            ts("2026-10-25T23:00:00Z"),
            Bucket::Day,
            &tz,
            WeekStart::Monday,
        )
        .unwrap();
        assert_eq!(
            rendered(&b, &tz),
            ["2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"]
        );
        assert_eq!(b[1].as_second() - b[0].as_second(), 25 * 3600);
    }

    #[test]
    fn hour_buckets_skip_and_repeat_hours_with_the_clock() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        // Spring: 02:00 does not exist.
        let b = bucket_bounds(
            ts("2026-03-29T00:30:00Z"),
            ts("2026-03-29T02:00:00Z"),
            Bucket::Hour,
            &tz,
            WeekStart::Monday,
        )
        .unwrap();
        assert_eq!(
            rendered(&b, &tz),
            [
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00",
            ]
        );
        // Autumn: 02:00 happens twice.
        let b = bucket_bounds(
            ts("2026-10-24T23:10:00Z"),
            ts("2026-10-25T02:00:00Z"),
            Bucket::Hour,
            &tz,
            WeekStart::Monday,
        )
        .unwrap();
        assert_eq!(
            rendered(&b, &tz),
            [
                "2026-10-25T01:00:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T03:00:00+01:00",
            ]
        );
        // Starting inside the second 02:00 floors to the second 02:00.
        let b = bucket_bounds(
            ts("2026-10-25T01:30:00Z"),
            ts("2026-10-25T01:45:00Z"),
            Bucket::Hour,
            &tz,
            WeekStart::Monday,
        )
        .unwrap();
        assert_eq!(
            rendered(&b, &tz),
            ["2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
        );
        // A whole 25-hour day has 25 hour buckets, a 23-hour one 23.
        for (day, n) in [("2026-10-25", 25), ("2026-03-29", 23)] {
            let mut s = spec(RangePreset::Custom, "Europe/Paris");
            let d: Date = day.parse().unwrap();
            s.from = Some(d);
            s.to = Some(d);
            let r = s.resolve(ts("2027-01-01T00:00:00Z")).unwrap();
            let b = bucket_bounds(
                r.start.unwrap(),
                r.end.unwrap(),
                Bucket::Auto,
                &tz,
                WeekStart::Monday,
            )
            .unwrap();
            assert_eq!(b.len(), n + 1, "{day}");
            assert_eq!(b.last(), r.end.as_ref());
        }
    }

    #[test]
    fn hour_buckets_follow_half_hour_zones() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap();
        let b = bucket_bounds(
            ts("2026-05-20T00:00:00Z"),
            ts("2026-05-20T01:00:00Z"),
            Bucket::Hour,
            &tz,
            WeekStart::Monday,
        )
        .unwrap();
        assert_eq!(
            rendered(&b, &tz),
            [
                "2026-05-20T05:00:00+05:30",
                "2026-05-20T06:00:00+05:30",
                "2026-05-20T07:00:00+05:30",
            ]
        );
    }

    #[test]
    fn bucket_bounds_edges() {
        let t = ts("2026-05-20T00:00:00Z");
        assert_eq!(
            bucket_bounds(t, t, Bucket::Day, &TimeZone::UTC, WeekStart::Monday),
            Ok(vec![])
        );
        let far = ts("2026-05-20T00:00:00Z")
            .checked_add(jiff::SignedDuration::from_hours(20_001))
            .unwrap();
        let err =
            bucket_bounds(t, far, Bucket::Hour, &TimeZone::UTC, WeekStart::Monday).unwrap_err();
        assert_eq!(err.param, "bucket");
        let exactly = ts("2026-05-20T00:00:00Z")
            .checked_add(jiff::SignedDuration::from_hours(20_000))
            .unwrap();
        let b = bucket_bounds(t, exactly, Bucket::Hour, &TimeZone::UTC, WeekStart::Monday).unwrap();
        assert_eq!(b.len(), MAX_BUCKETS + 1);
        // Apia's skipped day has no bucket.
        let apia = TimeZone::get("Pacific/Apia").unwrap();
        let b = bucket_bounds(
            ts("2011-12-29T12:00:00Z"),
            ts("2011-12-30T12:00:00Z"),
            Bucket::Day,
            &apia,
            WeekStart::Monday,
        )
        .unwrap();
        let days: Vec<Date> = b.iter().map(|t| apia.to_datetime(*t).date()).collect();
        assert_eq!(
            days,
            [date(2011, 12, 29), date(2011, 12, 31), date(2012, 1, 1)]
        );
    }

    const ZONES: &[&str] = &[
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "America/Sao_Paulo",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "Pacific/Chatham",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever a client puts in the query string, parsing answers a
        /// query or an error naming a parameter; it never panics, and a
        /// parsed range resolves or errs without panicking either.
        #[test]
        fn query_parsing_never_panics(
            pairs in prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "filter", "join", "range", "from", "to", "tz", "week_start",
                        "limit", "cursor", "bucket", "format", "other",
                    ]),
                    prop_oneof![
                        "[a-z_:]{0,24}",
                        "(event|category|user|user_id|ip_address|workflow_id|level|description|x):(eq|ne|contains|not_contains|x):.{0,12}",
                        "[0-9-]{0,12}",
                        "(all_time|today|custom|last_30_days|this_week)",
                        "(UTC|Europe/Paris|Etc/GMT\\+12|../etc|\\PC{0,8})",
                        "\\PC{0,40}",
                    ],
                ),
                0..8,
            ),
            secs in 0i64..4_102_444_800,
        ) {
            let pairs: Vec<(String, String)> =
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Ok(q) = parse_query(&pairs) {
                let now = Timestamp::from_second(secs).unwrap();
                if let Ok(r) = q.range.resolve(now)
                    && let (Some(start), Some(end)) = (r.start, r.end)
                {
                    let _ = bucket_bounds(start, end, q.bucket, &q.range.tz, q.range.week_start);
                }
            }
        }

        #[test]
        fn resolve_gives_start_before_end(
            secs in 0i64..4_102_444_800,
            zone in 0..ZONES.len(),
            preset in 0..RangePreset::ALL.len(),
            back in 0i32..400,
            sunday in any::<bool>(),
        ) {
            let now = Timestamp::from_second(secs).unwrap();
            let mut s = spec(RangePreset::ALL[preset], ZONES[zone]);
            s.week_start = if sunday { WeekStart::Sunday } else { WeekStart::Monday };
            if s.preset == RangePreset::Custom {
                let today = now.to_zoned_datetime(s.tz.clone()).date();
                s.from = Some(today.checked_sub(back.days()).unwrap());
            }
            let r = s.resolve(now).unwrap();
            match (r.start, r.end) {
                (None, None) => prop_assert_eq!(s.preset, RangePreset::AllTime),
                (Some(start), Some(end)) => {
                    prop_assert!(start < end);
                    // Every preset except the past ones contains `now`.
                    if !matches!(
                        s.preset,
                        RangePreset::Yesterday | RangePreset::LastMonth | RangePreset::LastYear
                    ) {
                        prop_assert!(r.contains(now));
                    } else {
                        prop_assert!(end <= now);
                    }
                }
                _ => prop_assert!(false, "half-bounded range"),
            }
        }

        #[test]
        fn bucket_bounds_are_ascending_and_cover_the_range(
            secs in 0i64..4_102_444_800,
            span in 1i64..(5 * 86_400),
            zone in 0..ZONES.len(),
            hourly in any::<bool>(),
        ) {
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            let start = Timestamp::from_second(secs).unwrap();
            let end = Timestamp::from_second(secs + span).unwrap();
            let bucket = if hourly { Bucket::Hour } else { Bucket::Day };
            let b = bucket_bounds(start, end, bucket, &tz, WeekStart::Monday).unwrap();
            prop_assert!(b.len() >= 2);
            prop_assert!(b[0] <= start);
            prop_assert!(*b.last().unwrap() >= end);
            prop_assert!(b[b.len() - 2] < end);
            for w in b.windows(2) {
                prop_assert!(w[0] < w[1]);
                let len = w[1].as_second() - w[0].as_second();
                if hourly {
                    prop_assert!(len <= 2 * 3600, "hour bucket of {}s", len);
                } else {
                    prop_assert!((22 * 3600..=26 * 3600).contains(&len), "day bucket of {}s", len);
                }
            }
            if !hourly {
                for t in &b {
                    // Day buckets start on a day's first instant.
                    let dt = tz.to_datetime(*t);
                    let before = tz.to_datetime(t.checked_sub(jiff::SignedDuration::from_secs(1)).unwrap());
                    prop_assert!(before.date() < dt.date());
                }
            }
        }
    }
}
