//! The wire shapes of the API as OpenAPI schemas: what the handlers'
//! `#[utoipa::path]` annotations name as bodies and parameters, and what
//! `openapi` lists as components.
//!
//! A leaf: it imports nothing of this crate, so handlers and the document
//! can both use it. The shapes are descriptions only (the handlers build the
//! real answers from the core types, which stay free of HTTP concerns), and
//! the API tests check that the two agree.

use utoipa::ToSchema;

/// An event record as returned (spec §2).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EventRecord {
    /// ULID assigned by the server.
    id: String,
    /// 0-based index in the account's append-only log.
    seq: u64,
    account_id: String,
    /// `account` or `workflow`.
    level: String,
    category: String,
    event: String,
    /// RFC 3339, UTC, milliseconds.
    occurred_at: String,
    recorded_at: String,
    actor: Actor,
    ip_address: Option<String>,
    workflow_id: Option<String>,
    description: String,
    /// Flat object of string, number, boolean or null values.
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    /// SHA-256 leaf hash (64 lowercase hex) of the record's canonical form.
    leaf_hash: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Actor {
    /// `user`, `app` or `system`.
    kind: String,
    id: String,
    name: Option<String>,
    email: Option<String>,
}

/// An event to ingest: the record's fields without the server-assigned ones.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct IngestEvent {
    level: String,
    category: String,
    event: String,
    /// RFC 3339; defaults to now. Accepted from 1970-01-01T00:00:00Z to 5
    /// minutes after the server's clock.
    occurred_at: Option<String>,
    actor: Actor,
    /// Defaults to the caller's address.
    ip_address: Option<String>,
    workflow_id: Option<String>,
    /// Defaults to a sentence rendered from the catalog entry (never with
    /// a sensitive field). A description sent is stored as sent: it is the
    /// client's words, and no secret belongs in it.
    description: Option<String>,
    /// Flat object of string, number, boolean or null values (≤ 64 keys).
    /// Secrets are stored as fingerprints, `[REDACTED hmac-sha256:<16 hex>
    /// …<last 4>]`: catalog fields marked `sensitive`, string values of
    /// unknown keys named like secrets (password, secret, token, api_key,
    /// private_key, authorization, cookie, session…), and in URLs the
    /// password and secret query parameters (`REDACTED-<16 hex>`).
    #[schema(value_type = Object)]
    metadata: Option<serde_json::Value>,
    /// A retry with the same key returns the first record (≤ 128 chars).
    idempotency_key: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct IngestBatch {
    events: Vec<IngestEvent>,
}

/// RFC 9457 problem details.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Problem {
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    errors: Option<Vec<FieldProblem>>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct FieldProblem {
    /// The item at fault, e.g. `events[3].metadata.role_type`.
    path: String,
    message: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EventList {
    events: Vec<EventRecord>,
    next_cursor: Option<String>,
    #[schema(value_type = Object)]
    range: serde_json::Value,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Count {
    count: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Histogram {
    /// `hour`, `day`, `week`, `month` or `year` (what `auto` chose).
    bucket: String,
    buckets: Vec<HistogramBucket>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct HistogramBucket {
    start: String,
    count: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ProofHashes {
    /// Hex SHA-256 hashes, RFC 9162 order.
    hashes: Vec<String>,
}

/// The query parameters every view takes (list, count, histogram, export).
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewParams {
    /// all_time, today, yesterday, this_week, this_month, last_month,
    /// last_30_days (default), last_90_days, this_year, last_year, custom
    range: Option<String>,
    /// YYYY-MM-DD, with range=custom
    from: Option<String>,
    /// YYYY-MM-DD, with range=custom (default today)
    to: Option<String>,
    /// IANA time zone of the viewer (default UTC)
    tz: Option<String>,
    /// monday (default) or sunday
    week_start: Option<String>,
    /// COLUMN:OP:VALUE, repeatable; columns event, category, user, user_id,
    /// ip_address, workflow_id, level, description; ops eq, ne, contains,
    /// not_contains
    filter: Option<Vec<String>>,
    /// and (default) or or: one join for the whole set
    join: Option<String>,
}

/// The body of `POST …/tokens`: a role, and optionally an expiry (one of
/// `expires_at` or `ttl`).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct NewToken {
    /// `ingest`, `read` or `admin`.
    #[schema(pattern = "^(ingest|read|admin)$")]
    role: String,
    /// RFC 3339 instant, in the future, at most ten years away.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// Lifetime in seconds (1 to ten years).
    #[schema(minimum = 1, maximum = 316_224_000)]
    ttl: Option<u64>,
}

/// A token just issued: its secret is shown this once.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct IssuedToken {
    id: String,
    /// The secret, `alog_…`; only its hash is stored.
    token: String,
    account: String,
    role: String,
    expires_at: Option<String>,
}

/// A token as listed: never its secret or hash.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TokenEntry {
    id: String,
    /// The account, or `*` for a platform token.
    account: String,
    role: String,
    created_at: String,
    /// The id of the admin token that issued it, or `operator`.
    created_by: String,
    expires_at: Option<String>,
    /// Whether `expires_at` has passed (the token answers 401).
    expired: bool,
    /// Persisted at most once a minute per token.
    last_used_at: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenEntry>,
}
