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

mod bucket;
mod cursor;
mod error;
mod filter;
mod parse;
mod range;
#[cfg(test)]
mod tests;

pub use bucket::{Bucket, MAX_BUCKETS, bucket_bounds};
pub use cursor::{CursorKey, RowKey};
pub use error::ParseQueryError;
pub use filter::{
    Column, Filter, Join, MAX_FILTER_VALUE_CHARS, Matcher, Op, normalize, op_matches,
};
pub use parse::{
    DEFAULT_LIMIT, ExportFormat, KNOWN_PARAMS, MAX_FILTERS, MAX_LIMIT, Query, parse_query,
};
pub use range::{RangePreset, RangeSpec, ResolvedRange, WeekStart};
