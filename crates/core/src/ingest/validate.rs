//! Ingest validation: a JSON event body checked against the catalog and the
//! field limits, turned into a [`ValidEvent`] or a list of every problem.
//!
//! Validation is exhaustive on purpose: a client fixing its integration
//! should see all that is wrong with an event at once, each problem with a
//! path (`events[3].metadata.role_type`) and a message saying what is
//! accepted.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use crate::ingest::catalog::{Catalog, EventId, FieldType, Level};
use crate::ingest::redact::Redactor;
use crate::ingest::wire::{ActorField, Body, Field, MetadataField};
use crate::record::{Actor, ActorKind, MetaValue, Micros};

pub use super::limits::{
    MAX_BATCH_EVENTS, MAX_DESCRIPTION_CHARS, MAX_FUTURE_MICROS, MAX_HINT_INPUT_CHARS,
    MAX_IDEMPOTENCY_KEY_CHARS, MAX_METADATA_KEY_CHARS, MAX_METADATA_KEYS, MAX_QUOTED_CHARS,
    MAX_REPORTED_PROBLEMS, MAX_STRING_CHARS, MIN_OCCURRED_AT, RESERVED_CATEGORY, quote,
};

const ALLOWED_KEYS: &[&str] = &[
    "level",
    "category",
    "event",
    "occurred_at",
    "actor",
    "ip_address",
    "workflow_id",
    "description",
    "metadata",
    "idempotency_key",
];
const SERVER_KEYS: &[&str] = &["id", "seq", "recorded_at", "leaf_hash", "account_id"];

/// One problem with one item of the input.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// An event that passed validation: everything the store needs except what
/// the store itself assigns (`id`, `seq`, `recorded_at`, `account_id`).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEvent {
    pub event_id: EventId,
    pub level: Level,
    pub category: String,
    pub event: String,
    pub occurred_at: Micros,
    pub actor: Actor,
    pub ip_address: Option<String>,
    pub workflow_id: Option<String>,
    pub description: String,
    pub metadata: BTreeMap<String, MetaValue>,
    pub idempotency_key: Option<String>,
    /// Which fields the server filled in because the body left them out;
    /// an idempotent retry does not compare them (the clock and the
    /// client's address may differ between a request and its retry).
    pub defaulted: Defaulted,
}

/// Fields of a [`ValidEvent`] that took a server default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defaulted {
    /// `occurred_at` was absent or null: it is the time of the request.
    pub occurred_at: bool,
    /// `ip_address` was absent or null: it is the caller's address.
    pub ip_address: bool,
}

/// What validation needs from the request: the time, the caller's address
/// and the key secrets are fingerprinted with.
#[derive(Clone, Copy, Debug)]
pub struct IngestContext<'a> {
    pub now: Micros,
    /// The client address (after trusted-proxy resolution), the default
    /// `ip_address`.
    pub client_ip: Option<IpAddr>,
    pub redactor: &'a Redactor,
}

/// The problems found in a request: every one is counted, the first
/// [`MAX_REPORTED_PROBLEMS`] are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    list: Vec<FieldError>,
    total: usize,
}

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    /// Number of problems found (kept or not).
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn is_full(&self) -> bool {
        self.list.len() >= MAX_REPORTED_PROBLEMS
    }

    pub fn push(&mut self, error: FieldError) {
        self.total += 1;
        if !self.is_full() {
            self.list.push(error);
        }
    }

    /// The problems to answer with: the kept ones, then a line saying how
    /// many more there were.
    pub fn into_list(mut self) -> Vec<FieldError> {
        let more = self.total - self.list.len();
        if more > 0 {
            self.list.push(FieldError {
                path: String::new(),
                message: format!("… and {more} more problems not listed"),
            });
        }
        self.list
    }
}

struct Errors<'a> {
    prefix: &'a str,
    list: &'a mut Problems,
}

impl Errors<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        if self.list.is_full() {
            self.list.total += 1;
            return;
        }
        let path = match (self.prefix.is_empty(), field.is_empty()) {
            (true, _) => field.to_owned(),
            (false, true) => self.prefix.to_owned(),
            (false, false) => format!("{}.{field}", self.prefix),
        };
        self.list.push(FieldError {
            path,
            message: message.into(),
        });
    }

    fn count(&self) -> usize {
        self.list.total
    }
}

/// Validates one event body. `prefix` is the path of the item (`""` for a
/// single event, `events[3]` in a batch). Problems are appended to `errors`;
/// `None` is returned when there was at least one. The body is consumed:
/// its strings and metadata move into the event instead of being copied.
pub fn validate_event(
    catalog: &Catalog,
    body: Value,
    prefix: &str,
    ctx: &IngestContext,
    errors: &mut Problems,
) -> Option<ValidEvent> {
    validate_body(catalog, Body::from_value(body), prefix, ctx, errors)
}

/// [`validate_event`] of a body read straight from the request bytes (see
/// [`crate::ingest::wire`]): the same rules and messages, without a `Value`
/// tree.
pub fn validate_body(
    catalog: &Catalog,
    body: Body<'_>,
    prefix: &str,
    ctx: &IngestContext,
    errors: &mut Problems,
) -> Option<ValidEvent> {
    let before = errors.total();
    let mut errs = Errors {
        prefix,
        list: errors,
    };
    let Body::Object(mut obj) = body else {
        errs.push("", "an event must be a JSON object");
        return None;
    };
    // In key order, once per key, as a parsed object lists them.
    obj.other_keys.sort_unstable();
    obj.other_keys.dedup();
    for key in &obj.other_keys {
        if SERVER_KEYS.contains(&&**key) {
            errs.push(key, "is assigned by the server and must not be sent");
        } else {
            errs.push(
                &quote(key),
                format!("unknown field; accepted: {}", ALLOWED_KEYS.join(", ")),
            );
        }
    }
    if obj.more_keys > 0 {
        errs.push("", format!("has {} more unknown fields", obj.more_keys));
    }

    let level = match &obj.level {
        Field::Absent | Field::Null => {
            errs.push("level", "is required; accepted: account, workflow");
            None
        }
        Field::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "account" => Some(Level::Account),
            "workflow" => Some(Level::Workflow),
            _ => {
                errs.push(
                    "level",
                    format!("unknown level `{}`; accepted: account, workflow", quote(s)),
                );
                None
            }
        },
        Field::Other => {
            errs.push("level", "must be a string: account or workflow");
            None
        }
    };
    let category = required_string(std::mem::take(&mut obj.category), "category", &mut errs);
    let event_name = required_string(std::mem::take(&mut obj.event), "event", &mut errs);

    let mut entry = None;
    if let (Some(level), Some(category), Some(event_name)) = (level, &category, &event_name) {
        if category.trim().eq_ignore_ascii_case(RESERVED_CATEGORY) {
            errs.push(
                "category",
                format!("`{RESERVED_CATEGORY}` events are recorded by the server itself and cannot be ingested"),
            );
        } else if let Some(id) = find_ci(catalog, level, category, event_name) {
            entry = Some(catalog.entry(id));
        } else if let Some(cat) = canonical_category(catalog, level, category) {
            let hint = hint(event_name, |name| catalog.suggest_event(level, &cat, name));
            errs.push(
                "event",
                format!(
                    "unknown event `{}` in {} category `{cat}`{hint} (GET /v1/catalog lists every event)",
                    quote(event_name),
                    level.as_str()
                ),
            );
        } else {
            let hint = hint(category, |name| catalog.suggest_category(level, name));
            errs.push(
                "category",
                format!(
                    "unknown {} category `{}`{hint} (GET /v1/catalog lists every category)",
                    level.as_str(),
                    quote(category)
                ),
            );
        }
    }

    let defaulted = Defaulted {
        occurred_at: matches!(obj.occurred_at, Field::Absent | Field::Null),
        ip_address: matches!(obj.ip_address, Field::Absent | Field::Null),
    };
    let occurred_at = match &obj.occurred_at {
        Field::Absent | Field::Null => Some(ctx.now),
        Field::Str(s) => match Micros::parse_rfc3339(s) {
            Ok(t) if t < MIN_OCCURRED_AT || t.0 > ctx.now.0 + MAX_FUTURE_MICROS => {
                let why = if t < MIN_OCCURRED_AT {
                    "is before the earliest accepted time"
                } else {
                    "is more than 5 minutes in the future"
                };
                errs.push(
                    "occurred_at",
                    format!(
                        "`{}` {why}; accepted: from {} to 5 minutes after the server's clock (now {})",
                        quote(s),
                        MIN_OCCURRED_AT.to_rfc3339(),
                        ctx.now.to_rfc3339()
                    ),
                );
                None
            }
            Ok(t) => Some(t),
            Err(_) => {
                errs.push(
                    "occurred_at",
                    format!(
                        "`{}` is not an RFC 3339 instant such as 2026-11-25T10:00:00.123Z",
                        quote(s)
                    ),
                );
                None
            }
        },
        Field::Other => {
            errs.push("occurred_at", "must be an RFC 3339 string");
            None
        }
    };

    let actor = validate_actor(std::mem::take(&mut obj.actor), &mut errs);
    if let (Some(e), Some(a)) = (&entry, &actor)
        && e.category == "Login/Logout"
        && a.email.is_none()
    {
        errs.push("actor.email", "is required for Login/Logout events");
    }

    let ip_address = match &obj.ip_address {
        Field::Absent | Field::Null => ctx.client_ip.map(|ip| ip.to_string()),
        Field::Str(s) => match s.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip.to_string()),
            Err(_) => {
                errs.push(
                    "ip_address",
                    format!("`{}` is not an IPv4 or IPv6 address", quote(s)),
                );
                None
            }
        },
        Field::Other => {
            errs.push("ip_address", "must be a string");
            None
        }
    };

    let workflow_id = optional_string(
        std::mem::take(&mut obj.workflow_id),
        "workflow_id",
        MAX_STRING_CHARS,
        &mut errs,
    );
    if let Some(e) = &entry {
        let needs_workflow = e.level == Level::Workflow || e.category == "Workflows";
        if needs_workflow && workflow_id.is_none() {
            let why = if e.level == Level::Workflow {
                "workflow-level events"
            } else {
                "account-level events of the Workflows category"
            };
            errs.push("workflow_id", format!("is required for {why}"));
        }
    }

    let description = optional_string(
        std::mem::take(&mut obj.description),
        "description",
        MAX_DESCRIPTION_CHARS,
        &mut errs,
    );
    let metadata = validate_metadata(
        std::mem::take(&mut obj.metadata),
        entry.as_ref(),
        ctx.redactor,
        &mut errs,
    );
    let idempotency_key = optional_string(
        std::mem::take(&mut obj.idempotency_key),
        "idempotency_key",
        MAX_IDEMPOTENCY_KEY_CHARS,
        &mut errs,
    );

    if errs.count() > before {
        return None;
    }
    let (entry, occurred_at, actor, metadata) = (entry?, occurred_at?, actor?, metadata?);
    let description = description.unwrap_or_else(|| {
        render_description(entry.event.name.as_str(), &actor, entry.event, &metadata)
    });
    Some(ValidEvent {
        event_id: entry.id,
        level: entry.level,
        category: entry.category.to_owned(),
        event: entry.event.name.clone(),
        occurred_at,
        actor,
        ip_address,
        workflow_id,
        description,
        metadata,
        idempotency_key,
        defaulted,
    })
}

/// "; did you mean `X`?" for a near miss, or nothing; long input gets no
/// hint (see [`MAX_HINT_INPUT_CHARS`]).
fn hint<'c>(name: &str, suggest: impl FnOnce(&str) -> Option<&'c str>) -> String {
    if name.chars().count() > MAX_HINT_INPUT_CHARS {
        return String::new();
    }
    suggest(name)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Exact match first, then a case- and space-insensitive one, so that
/// "role Created" is stored under its catalog spelling "Role created".
fn find_ci(catalog: &Catalog, level: Level, category: &str, event: &str) -> Option<EventId> {
    catalog.find(level, category, event).or_else(|| {
        let cat = category.trim().to_lowercase();
        let ev = event.trim().to_lowercase();
        catalog.entries().find_map(|e| {
            (e.level == level
                && e.category.to_lowercase() == cat
                && e.event.name.to_lowercase() == ev)
                .then_some(e.id)
        })
    })
}

fn canonical_category(catalog: &Catalog, level: Level, category: &str) -> Option<String> {
    let cat = category.trim().to_lowercase();
    catalog
        .entries()
        .find(|e| e.level == level && e.category.to_lowercase() == cat)
        .map(|e| e.category.to_owned())
}

fn check_text(s: &str, max_chars: usize, field: &str, errs: &mut Errors<'_>) -> bool {
    if s.contains('\0') {
        errs.push(field, "must not contain NUL characters");
        return false;
    }
    // No more bytes than the limit: no more characters either.
    if s.len() <= max_chars {
        return true;
    }
    let n = s.chars().count();
    if n > max_chars {
        errs.push(
            field,
            format!("is {n} characters long; at most {max_chars} are accepted"),
        );
        return false;
    }
    true
}

/// A required string field (named `key` in messages).
fn required_string<'a>(field: Field<'a>, key: &str, errs: &mut Errors<'_>) -> Option<Cow<'a, str>> {
    match field {
        Field::Absent | Field::Null => {
            errs.push(key, "is required");
            None
        }
        Field::Str(s) if s.trim().is_empty() => {
            errs.push(key, "must not be empty");
            None
        }
        Field::Str(s) => check_text(&s, MAX_STRING_CHARS, key, errs).then_some(s),
        Field::Other => {
            errs.push(key, "must be a string");
            None
        }
    }
}

/// An optional string field (named `key` in messages), owned.
fn optional_string(
    field: Field<'_>,
    key: &str,
    max_chars: usize,
    errs: &mut Errors<'_>,
) -> Option<String> {
    match field {
        Field::Absent | Field::Null => None,
        Field::Str(s) if s.trim().is_empty() => {
            errs.push(key, "must not be empty (omit it or send null instead)");
            None
        }
        Field::Str(s) => check_text(&s, max_chars, key, errs).then(|| s.into_owned()),
        Field::Other => {
            errs.push(key, "must be a string");
            None
        }
    }
}

fn validate_actor(v: ActorField<'_>, errs: &mut Errors<'_>) -> Option<Actor> {
    let mut obj = match v {
        ActorField::Absent | ActorField::Null => {
            errs.push("actor", "is required: {\"kind\": \"user\"|\"app\"|\"system\", \"id\": …, \"name\": …, \"email\": …}");
            return None;
        }
        ActorField::Object(o) => o,
        ActorField::Other => {
            errs.push("actor", "must be an object");
            return None;
        }
    };
    let before = errs.count();
    let prefix = nested(errs.prefix, "actor");
    let mut errs = Errors {
        prefix: &prefix,
        list: &mut *errs.list,
    };
    obj.other_keys.sort_unstable();
    obj.other_keys.dedup();
    for key in &obj.other_keys {
        errs.push(
            &quote(key),
            "unknown field; accepted: kind, id, name, email",
        );
    }
    if obj.more_keys > 0 {
        errs.push("", format!("has {} more unknown fields", obj.more_keys));
    }
    let kind = match &obj.kind {
        Field::Absent | Field::Null => Some(ActorKind::User),
        Field::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "user" => Some(ActorKind::User),
            "app" => Some(ActorKind::App),
            "system" => Some(ActorKind::System),
            _ => {
                errs.push(
                    "kind",
                    format!("unknown kind `{}`; accepted: user, app, system", quote(s)),
                );
                None
            }
        },
        Field::Other => {
            errs.push("kind", "must be a string: user, app or system");
            None
        }
    };
    let id = required_string(obj.id, "id", &mut errs).map(Cow::into_owned);
    let name = optional_string(obj.name, "name", MAX_STRING_CHARS, &mut errs);
    let email = optional_string(obj.email, "email", MAX_STRING_CHARS, &mut errs);
    if errs.count() > before {
        return None;
    }
    Some(Actor {
        kind: kind?,
        id: id?,
        name,
        email,
    })
}

fn nested(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Checks the metadata against the event's catalog fields and the limits,
/// then replaces its secrets by fingerprints (see [`crate::ingest::redact`]):
/// after the checks, so that the limits apply to what the client sent, and
/// before anything else sees the values. No message quotes a metadata value.
fn validate_metadata(
    v: MetadataField,
    entry: Option<&crate::ingest::catalog::EventEntry<'_>>,
    redactor: &Redactor,
    errs: &mut Errors<'_>,
) -> Option<BTreeMap<String, MetaValue>> {
    let mut obj = match v {
        MetadataField::Absent | MetadataField::Null => BTreeMap::new(),
        MetadataField::Object(o) => o,
        MetadataField::TooManyKeys(n) => {
            errs.push(
                "metadata",
                format!("has {n} keys; at most {MAX_METADATA_KEYS} are accepted"),
            );
            return None;
        }
        MetadataField::Other => {
            errs.push(
                "metadata",
                "must be an object of string, number, boolean or null values",
            );
            return None;
        }
    };
    let before = errs.count();
    if obj.len() > MAX_METADATA_KEYS {
        errs.push(
            "metadata",
            format!(
                "has {} keys; at most {MAX_METADATA_KEYS} are accepted",
                obj.len()
            ),
        );
    }
    // Required catalog fields are looked up before the map is consumed;
    // their problems are reported after the per-key ones.
    let missing: Vec<_> = entry
        .map(|e| {
            e.event
                .fields
                .iter()
                .filter(|f| f.required && obj.get(&f.key).is_none_or(Value::is_null))
                .collect()
        })
        .unwrap_or_default();
    // The entries are checked in place and kept as they are: the map is the
    // event's metadata when nothing is wrong.
    for (key, value) in &obj {
        // The path is spelled out only for a message.
        let path = || format!("metadata.{}", quote(key));
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_CHARS || key.contains('\0') {
            errs.push(
                &path(),
                format!(
                    "metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} characters without NUL"
                ),
            );
            continue;
        }
        match value {
            Value::String(s) => {
                if s.len() > MAX_STRING_CHARS || s.contains('\0') {
                    check_text(s, MAX_STRING_CHARS, &path(), errs);
                }
            }
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
            Value::Array(_) | Value::Object(_) => {
                errs.push(&path(), "must be a string, number, boolean or null");
                continue;
            }
        }
        if let Some(field) = entry.and_then(|e| e.event.fields.iter().find(|f| f.key == *key)) {
            let ok = matches!(
                (field.ty, value),
                (_, Value::Null)
                    | (FieldType::String, Value::String(_))
                    | (FieldType::Number, Value::Number(_))
                    | (FieldType::Boolean, Value::Bool(_))
            );
            if !ok {
                let ty = match field.ty {
                    FieldType::String => "a string",
                    FieldType::Number => "a number",
                    FieldType::Boolean => "a boolean",
                };
                errs.push(&path(), format!("{} must be {ty}", field.label));
            }
        }
    }
    if let Some(e) = entry {
        for field in missing {
            errs.push(
                &format!("metadata.{}", field.key),
                format!("{} is required for `{}` events", field.label, e.event.name),
            );
        }
    }
    if errs.count() > before {
        return None;
    }
    redactor.metadata(&mut obj, entry.map(|e| e.event));
    Some(obj)
}

/// The default description: the sentence a person would write, "Jane Doe
/// created the custom role r_9", from the event's template in `describe.rs`
/// (its most specific one whose fields have values), so it reads well in a
/// CSV without the metadata. Templates name the fields they show: a field
/// that holds a secret never appears in a description.
pub fn render_description(
    event: &str,
    actor: &Actor,
    def: &crate::ingest::catalog::EventDef,
    metadata: &BTreeMap<String, MetaValue>,
) -> String {
    debug_assert_eq!(event, def.name);
    let mut s = crate::ingest::describe::sentence(event, actor.display_name(), metadata);
    if s.chars().count() > MAX_DESCRIPTION_CHARS {
        s = s.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use serde_json::json;

    static REDACTOR: std::sync::LazyLock<Redactor> =
        std::sync::LazyLock::new(|| Redactor::new([3; 32]));

    fn ctx() -> IngestContext<'static> {
        IngestContext {
            now: Micros::parse_rfc3339("2026-11-25T10:00:00Z").unwrap(),
            client_ip: Some("198.51.100.4".parse().unwrap()),
            redactor: &REDACTOR,
        }
    }

    fn check(v: Value) -> Result<ValidEvent, Vec<FieldError>> {
        let mut errors = Problems::new();
        match validate_event(Catalog::get(), v, "", &ctx(), &mut errors) {
            Some(e) => Ok(e),
            None => Err(errors.into_list()),
        }
    }

    fn paths(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn a_good_event_gets_defaults() {
        let e = check(json!({
            "level": "account", "category": "Roles", "event": "role CREATED",
            "actor": {"kind": "user", "id": "u_1", "name": "Jane Doe"},
            "metadata": {"role_id": "r_9", "role_type": "custom"}
        }))
        .unwrap();
        assert_eq!(e.event, "Role created");
        assert_eq!(e.ip_address.as_deref(), Some("198.51.100.4"));
        assert_eq!(e.occurred_at, ctx().now);
        assert_eq!(e.description, "Jane Doe created the custom role r_9");
    }

    #[test]
    fn every_problem_is_named() {
        let errs = check(json!({
            "level": "account", "category": "Roles", "event": "Role craeted",
            "actor": {"kind": "robot"}, "ip_address": "999.1.1.1", "seq": 4,
            "occurred_at": "2026-11-25T10:06:00Z", "bogus": 1
        }))
        .unwrap_err();
        let p = paths(&errs);
        for want in [
            "seq",
            "bogus",
            "event",
            "occurred_at",
            "actor.kind",
            "actor.id",
            "ip_address",
        ] {
            assert!(p.contains(&want), "{want} missing from {errs:?}");
        }
        let ev = errs.iter().find(|e| e.path == "event").unwrap();
        assert!(
            ev.message.contains("did you mean `Role created`"),
            "{}",
            ev.message
        );
    }

    #[test]
    fn required_metadata_and_types() {
        let errs = check(json!({
            "level": "account", "category": "Roles", "event": "Role created",
            "actor": {"id": "u_1"}, "metadata": {"role_id": 5}
        }))
        .unwrap_err();
        assert_eq!(paths(&errs), ["metadata.role_id", "metadata.role_type"]);
    }

    #[test]
    fn workflow_pairing_and_login_email() {
        let errs = check(json!({
            "level": "workflow", "category": "Workflow Management", "event": "Workflow deployed",
            "actor": {"id": "u_1"}
        }))
        .unwrap_err();
        assert!(paths(&errs).contains(&"workflow_id"), "{errs:?}");
        let errs = check(json!({
            "level": "account", "category": "Login/Logout", "event": "Logout",
            "actor": {"id": "u_1"}
        }))
        .unwrap_err();
        assert_eq!(paths(&errs), ["actor.email"]);
    }

    #[test]
    fn reserved_category_and_limits() {
        let errs = check(json!({
            "level": "account", "category": "Audit Logs", "event": "Audit logs exported",
            "actor": {"id": "u_1"}
        }))
        .unwrap_err();
        assert_eq!(paths(&errs), ["category"]);
        let errs = check(json!({
            "level": "account", "category": "Login/Logout", "event": "Logout",
            "actor": {"id": "u_1", "email": "a@b"}, "description": "x".repeat(4097),
            "metadata": {"k": "y".repeat(1025), "nul": "a\u{0}b"}
        }))
        .unwrap_err();
        assert_eq!(paths(&errs), ["description", "metadata.k", "metadata.nul"]);
    }

    fn login_at(occurred_at: &str) -> Value {
        json!({
            "level": "account", "category": "Login/Logout", "event": "Logout",
            "actor": {"id": "u_1", "email": "a@b.example"},
            "occurred_at": occurred_at
        })
    }

    /// Regression: `-000001-01-01T00:00:00Z` was accepted and the stored
    /// time did not parse back, so the account's list answered 500 forever.
    #[test]
    fn occurred_at_is_accepted_only_inside_the_window() {
        for ok in [
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00.001Z",
            "2026-11-25T10:05:00Z",
            "2026-11-25T11:04:59+01:00",
        ] {
            assert!(
                check(login_at(ok)).is_ok(),
                "{ok}: {:?}",
                check(login_at(ok))
            );
        }
        for bad in [
            "-000001-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "1970-01-01T00:30:00+01:00",
            "2026-11-25T10:05:00.001Z",
            "9000-01-01T00:00:00Z",
        ] {
            let errs = check(login_at(bad)).unwrap_err();
            assert_eq!(paths(&errs), ["occurred_at"], "{bad}");
            assert!(
                errs[0]
                    .message
                    .contains("accepted: from 1970-01-01T00:00:00.000Z to 5 minutes after"),
                "{bad}: {errs:?}"
            );
        }
    }

    #[test]
    fn problems_are_capped_and_counted() {
        let mut problems = Problems::new();
        for i in 0..MAX_REPORTED_PROBLEMS + 50 {
            let body = json!({"level": format!("nope{i}")});
            validate_event(
                Catalog::get(),
                body,
                &format!("events[{i}]"),
                &ctx(),
                &mut problems,
            );
        }
        let total = problems.total();
        assert!(total > MAX_REPORTED_PROBLEMS + 50, "{total}");
        let list = problems.into_list();
        assert_eq!(list.len(), MAX_REPORTED_PROBLEMS + 1);
        assert_eq!(
            list.last().unwrap().message,
            format!(
                "… and {} more problems not listed",
                total - MAX_REPORTED_PROBLEMS
            )
        );
    }

    #[test]
    fn long_input_is_not_echoed_and_gets_no_hint() {
        let long = "Role creat".to_owned() + &"e".repeat(900);
        let errs = check(json!({
            "level": "x".repeat(5000), "category": "Roles", "event": long,
            "actor": {"id": "u_1", "kind": "k".repeat(3000)}, "ip_address": "9".repeat(4000)
        }))
        .unwrap_err();
        for e in &errs {
            assert!(e.message.len() < 400, "{e:?}");
        }
        let errs = check(json!({
            "level": "account", "category": "Roles", "event": long,
            "actor": {"id": "u_1"}
        }))
        .unwrap_err();
        let ev = errs.iter().find(|e| e.path == "event").unwrap();
        assert!(!ev.message.contains("did you mean"), "{ev:?}");
    }

    /// Issue 16: a catalog field marked sensitive, a URL with a password or
    /// a secret query parameter, and a secret-named unknown key are stored
    /// as fingerprints; the default description leaves the token out.
    #[test]
    fn secrets_become_fingerprints_before_anything_else_sees_them() {
        let token = "sk_live_51Habcdefghijklmnop7731";
        let e = check(json!({
            "level": "workflow", "category": "Workflow Management",
            "event": "API async enabled", "workflow_id": "wf_1",
            "actor": {"id": "u_1", "name": "Jane Doe"},
            "metadata": {
                "url": "https://svc:hunter2-pass@hooks.example.com/run?token=tok_abc123def&x=1",
                "access_token": token,
                "version_id": "v_3",
                "timeout": false,
                "api_secret": "s3cr3t-value",
                "session_count": 3
            }
        }))
        .unwrap();
        let stored = serde_json::to_string(&e.metadata).unwrap();
        for secret in [token, "hunter2-pass", "tok_abc123def", "s3cr3t-value"] {
            assert!(!stored.contains(secret), "{secret} in {stored}");
            assert!(
                !e.description.contains(secret),
                "{secret} in {}",
                e.description
            );
        }
        let fp = e.metadata["access_token"].as_str().unwrap();
        assert!(crate::ingest::redact::is_fingerprint(fp), "{fp}");
        assert!(fp.ends_with(" …7731]"), "{fp}");
        assert_eq!(e.metadata["session_count"], json!(3));
        assert!(!e.description.contains("Access token"), "{}", e.description);
        // A wrongly typed secret is refused without being quoted.
        let errs = check(json!({
            "level": "workflow", "category": "Workflow Management",
            "event": "API async enabled", "workflow_id": "wf_1",
            "actor": {"id": "u_1"},
            "metadata": {"url": "https://h.example", "access_token": 123456789,
                         "version_id": "v_3", "timeout": false}
        }))
        .unwrap_err();
        assert!(
            errs.iter().all(|e| !e.message.contains("123456789")),
            "{errs:?}"
        );
    }

    #[test]
    fn batch_prefix_goes_into_paths() {
        let mut errors = Problems::new();
        let r = validate_event(
            Catalog::get(),
            json!({"actor": {}}),
            "events[3]",
            &ctx(),
            &mut errors,
        );
        assert!(r.is_none());
        let errors = errors.into_list();
        let p = paths(&errors);
        assert!(p.contains(&"events[3].level"));
        assert!(p.contains(&"events[3].actor.id"), "{p:?}");
    }

    /// JSON text of an object with these entries, in this order, keys
    /// possibly repeated (a `Value` could not hold that).
    fn object_text(entries: &[(String, String)]) -> String {
        let fields: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("42".to_owned()),
            Just("-1.5e3".to_owned()),
            Just("[1,{\"a\":[]}]".to_owned()),
            Just("{\"x\":1}".to_owned()),
            Just("\"\"".to_owned()),
            Just("\"   \"".to_owned()),
            Just("\"account\"".to_owned()),
            Just("\" Workflow \"".to_owned()),
            Just("\"Roles\"".to_owned()),
            Just("\"Login/Logout\"".to_owned()),
            Just("\"Role created\"".to_owned()),
            Just("\"role CREATED\"".to_owned()),
            Just("\"Login\"".to_owned()),
            Just("\"2026-11-25T09:00:00Z\"".to_owned()),
            Just("\"2026-11-25T10:06:00Z\"".to_owned()),
            Just("\"203.0.113.7\"".to_owned()),
            Just("\"wf_1\"".to_owned()),
            Just("\"esc\\u00e9\\\"q\\n\"".to_owned()),
            Just("\"nul\\u0000\"".to_owned()),
            Just(format!("\"{}\"", "y".repeat(1100))),
            Just(format!("\"{}\"", "é".repeat(600))),
            Just("\"r_9\"".to_owned()),
            Just("\"custom\"".to_owned()),
        ]
    }

    fn keyed(
        keys: Vec<&'static str>,
        value: BoxedStrategy<String>,
    ) -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (prop::sample::select(keys).prop_map(str::to_owned), value),
            0..8,
        )
    }

    fn event_text() -> impl Strategy<Value = String> {
        let actor = keyed(
            vec!["kind", "id", "name", "email", "zz", "Kind"],
            scalar().boxed(),
        )
        .prop_map(|e| object_text(&e));
        let metadata = keyed(
            vec!["role_id", "role_type", "k", "", "é", "login_method"],
            scalar().boxed(),
        )
        .prop_map(|e| object_text(&e));
        let value = prop_oneof![
            4 => scalar(),
            1 => actor,
            1 => metadata,
        ]
        .boxed();
        // Every accepted and server key, and some unknown ones.
        let keys: Vec<&'static str> = [ALLOWED_KEYS, SERVER_KEYS, &["bogus", "Level"]].concat();
        // A good event, then a few of its entries replaced, added or
        // dropped: most such bodies are close to valid, some are.
        let good = || -> Vec<(String, String)> {
            [
                ("level", "\"account\""),
                ("category", "\"Roles\""),
                ("event", "\"Role created\""),
                (
                    "actor",
                    "{\"kind\":\"user\",\"id\":\"u_1\",\"name\":\"Jane \\\"JD\\\" Doe\"}",
                ),
                (
                    "metadata",
                    "{\"role_id\":\"r_9\",\"role_type\":\"custom\",\"n\":3}",
                ),
                ("description", "\"Made a role\\nfor \\u00e9quipe\""),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
        };
        let edits = prop::collection::vec(
            (
                0u8..3,
                any::<prop::sample::Index>(),
                prop::sample::select(keys.clone()),
                value.clone(),
            ),
            0..3,
        );
        let near_valid = edits.prop_map(move |edits| {
            let mut entries = good();
            for (op, at, key, v) in edits {
                match op {
                    0 if !entries.is_empty() => {
                        let i = at.index(entries.len());
                        entries[i].1 = v;
                    }
                    1 if !entries.is_empty() => {
                        entries.remove(at.index(entries.len()));
                    }
                    _ => entries.push((key.to_owned(), v)),
                }
            }
            object_text(&entries)
        });
        prop_oneof![
            6 => keyed(keys, value).prop_map(|e| object_text(&e)),
            6 => near_valid,
            1 => scalar(),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Validating the body read straight from its bytes and validating
        /// it parsed as a `Value` agree exactly: the same event, or the same
        /// problems in the same order.
        #[test]
        fn bytes_and_value_validate_alike(text in event_text()) {
            let mut from_bytes = Problems::new();
            let body: Body<'_> = serde_json::from_str(&text).expect("valid JSON");
            let a = validate_body(Catalog::get(), body, "events[2]", &ctx(), &mut from_bytes);
            let mut from_value = Problems::new();
            let value: Value = serde_json::from_str(&text).expect("valid JSON");
            let b = validate_event(Catalog::get(), value, "events[2]", &ctx(), &mut from_value);
            proptest::prop_assert_eq!(a, b);
            proptest::prop_assert_eq!(from_bytes, from_value);
        }
    }
}
