//! The query as a whole: its parameters, their limits, and the parser of
//! the URL query pairs of list, count, histogram and export.

use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::bucket::Bucket;
use super::error::{ParseQueryError, quoted, wire_enum};
use super::filter::{Filter, Join, Matcher};
use super::range::{RangePreset, RangeSpec, WeekStart};

/// Default page size of `limit`.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u32 = 1000;
/// Most filters one query may carry; far more than the dashboard produces,
/// low enough that evaluating a row stays cheap.
pub const MAX_FILTERS: usize = 50;

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
pub(super) fn parse_tz(s: &str) -> Result<(TimeZone, String), ParseQueryError> {
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

impl Query {
    /// A matcher for this query's filters and join.
    pub fn matcher(&self) -> Matcher {
        Matcher::new(&self.filters, self.join)
    }
}
