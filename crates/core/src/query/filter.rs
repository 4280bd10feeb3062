//! Column filters: `COLUMN:OP:VALUE` conditions, the one join that combines
//! them, and the normalization every comparison goes through.

use std::fmt;

use super::error::{ParseQueryError, quoted, wire_enum};

/// Longest filter value, in characters. No stored field is longer (the
/// description limit is 4,096), so a longer value could never match.
pub const MAX_FILTER_VALUE_CHARS: usize = 4096;

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
