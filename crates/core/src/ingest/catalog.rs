//! The event catalog: every (level, category, event) auditlog knows, with its description and metadata fields.
//!
//! The catalog lives in one place, `catalog.json` beside this file, embedded at build
//! time and parsed once ([`Catalog::get`]). The file has exactly the shape that
//! `GET /v1/catalog` returns, so the server serialises [`Catalog`] as is.
//!
//! # Where the entries come from
//!
//! Every entry marked [`Source::Seed`] is an event of the seed document's "Audit log
//! event reference", with the seed's exact event name, category name and description
//! (including its capitalisation and its typographic apostrophes); the integration test
//! `tests/catalog_seed.rs` compares the file against the seed itself. Entries marked
//! [`Source::Extension`] are the product's own, currently only "Audit Logs" / "Audit logs
//! exported" ([`Catalog::EXPORT_EVENT`]), which the server records after each export.
//!
//! An event is identified by (level, category, event): the same name appears in several
//! categories ("API Key created" exists under Models, Prompts and Workflow Management).
//! Inside the process an event is also a dense [`EventId`], its position in catalog order,
//! small enough to be a `u16` column in the in-memory index. Ids are stable only for one
//! build of the catalog; anything persisted stores the names.
//!
//! # Metadata fields
//!
//! Each event lists all its metadata fields: the category's "shown for all events"
//! lines first, then the seed's conditional lines ("Model Type is also shown for: …"),
//! then the event's "Additional Metadata" column. The seed's User ID, User Name, Email ID,
//! IP Address and Workflow ID are *not* metadata fields: the record carries them itself
//! (`actor.id`, `actor.name`, `actor.email`, `ip_address`, `workflow_id`). Every other
//! identifier (Role ID, Model ID, Node ID, …) is a field.
//!
//! Rules used to turn a seed label into a [`FieldDef`]:
//!
//! - **key**: the label without any parenthetical, lowercased, with every run of
//!   characters other than `a-z0-9` replaced by one `_` and no leading or trailing `_`
//!   ("No. of epochs" → `no_of_epochs`, "File type (extension)" → `file_type`). Keys
//!   are what clients send in `metadata`, so they never change once published.
//! - **label**: the seed's label, except that a parenthetical which is a *condition*
//!   ("(if yes)", "(open-source/fine-tuned models)") or a *type hint* ("(yes/no)") is
//!   dropped, because `required` and `type` already say it. A parenthetical that says
//!   what the value is ("File type (extension)") stays, since it helps the reader.
//! - **required**: true, unless the seed makes the field conditional: alternatives that
//!   depend on the kind of model ("Deployment Name (open-source/fine-tuned models),
//!   Connection Name (commercial models)") or an "(if yes)" field.
//! - **type**: `number` for counts and numeric settings (epochs, batch size, learning
//!   rate, temperature, max length, top p/k, replicas, delays, tokens consumed, hours or
//!   time of usage, timeout value), `boolean` for yes/no fields, `string` otherwise.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The catalog file, compiled into the binary so the catalog can never be missing or
/// out of step with the code that reads it.
const CATALOG_JSON: &str = include_str!("catalog.json");

/// Whether an event concerns the whole account or one workflow.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Account,
    Workflow,
}

impl Level {
    /// Every level, in catalog order.
    pub const ALL: [Level; 2] = [Level::Account, Level::Workflow];

    /// The wire name: `"account"` or `"workflow"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Account => "account",
            Level::Workflow => "workflow",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is neither `"account"` nor `"workflow"`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown level {input:?}, expected \"account\" or \"workflow\"")]
pub struct ParseLevelError {
    input: String,
}

impl FromStr for Level {
    type Err = ParseLevelError;

    /// Accepts exactly the wire names, so a level means the same thing in a URL, a
    /// query and a stored record.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "account" => Ok(Level::Account),
            "workflow" => Ok(Level::Workflow),
            _ => Err(ParseLevelError {
                input: s.to_owned(),
            }),
        }
    }
}

/// The JSON type a metadata value must have; a value of another type is rejected.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Number,
    Boolean,
}

impl FieldType {
    /// The wire name: `"string"`, `"number"` or `"boolean"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a catalog entry comes from: the seed document, or the product itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Seed,
    Extension,
}

/// One metadata field of an event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Stable snake_case name used in a record's `metadata` object.
    pub key: String,
    /// The seed's label, for display.
    pub label: String,
    /// Whether every event of this kind must carry the field.
    pub required: bool,
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// A credential: its value is replaced by a fingerprint before anything
    /// is hashed or stored (see [`crate::ingest::redact`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One event of the catalog.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    pub name: String,
    pub description: String,
    pub source: Source,
    pub fields: Vec<FieldDef>,
}

impl EventDef {
    /// The field with this exact key, if the event has one.
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }
}

/// A category and its events, in catalog order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryDef {
    pub name: String,
    pub events: Vec<EventDef>,
}

/// A level and its categories, in catalog order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelDef {
    pub level: Level,
    pub categories: Vec<CategoryDef>,
}

/// Dense index of an event in the catalog, usable as a small integer column (u16).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct EventId(pub u16);

/// An event together with where it sits in the catalog.
#[derive(Clone, Copy, Debug)]
pub struct EventEntry<'a> {
    pub id: EventId,
    pub level: Level,
    pub category: &'a str,
    pub event: &'a EventDef,
}

/// Why a catalog file was rejected.
#[derive(Debug, Error)]
pub enum ParseCatalogError {
    #[error("catalog is not valid json")]
    Json(#[source] serde_json::Error),
    #[error("level {level} appears more than once")]
    DuplicateLevel { level: Level },
    #[error("{what} name {name:?} is empty or has surrounding whitespace")]
    InvalidName { what: &'static str, name: String },
    #[error(
        "category {category:?} appears more than once in level {level} (names compare case-insensitively)"
    )]
    DuplicateCategory { level: Level, category: String },
    #[error(
        "event {event:?} appears more than once in {level}/{category:?} (names compare case-insensitively)"
    )]
    DuplicateEvent {
        level: Level,
        category: String,
        event: String,
    },
    #[error("field key {key:?} of {level}/{category:?}/{event:?} is not snake_case")]
    InvalidFieldKey {
        level: Level,
        category: String,
        event: String,
        key: String,
    },
    #[error("field key {key:?} appears more than once in {level}/{category:?}/{event:?}")]
    DuplicateFieldKey {
        level: Level,
        category: String,
        event: String,
        key: String,
    },
    #[error("catalog has {count} events, more than an event id can number")]
    TooManyEvents { count: usize },
}

/// The file as written, before the checks and the flat table that make it a [`Catalog`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    levels: Vec<LevelDef>,
}

/// One row of the flat table behind [`EventId`]: indices into `levels`, plus the
/// normalised names that the case-insensitive lookups compare against, computed once.
#[derive(Clone, Debug)]
struct Slot {
    level: usize,
    category: usize,
    event: usize,
    category_ci: String,
    event_ci: String,
}

/// The event catalog. Serialises to exactly the `GET /v1/catalog` shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "CatalogFile")]
pub struct Catalog {
    pub levels: Vec<LevelDef>,
    #[serde(skip)]
    table: Vec<Slot>,
}

impl TryFrom<CatalogFile> for Catalog {
    type Error = ParseCatalogError;

    fn try_from(file: CatalogFile) -> Result<Self, Self::Error> {
        Catalog::build(file.levels)
    }
}

impl Catalog {
    /// The (category, event) of the event the server records after each export of the
    /// log. It is account-level, comes from the product rather than the seed, and
    /// clients may not ingest it.
    pub const EXPORT_EVENT: (&'static str, &'static str) = ("Audit Logs", "Audit logs exported");

    /// The catalog embedded in this build.
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            // The file is compiled in and checked by this module's tests, so a failure
            // here is a build defect, not bad input: stopping loudly is the right answer.
            Catalog::from_json(CATALOG_JSON)
                .unwrap_or_else(|e| panic!("embedded catalog.json is invalid: {e}"))
        })
    }

    /// Parses and checks a catalog in the `GET /v1/catalog` shape.
    pub fn from_json(json: &str) -> Result<Catalog, ParseCatalogError> {
        let file: CatalogFile = serde_json::from_str(json).map_err(ParseCatalogError::Json)?;
        Catalog::build(file.levels)
    }

    fn build(levels: Vec<LevelDef>) -> Result<Catalog, ParseCatalogError> {
        let mut table = Vec::new();
        let mut seen_levels = HashSet::new();
        for (li, level) in levels.iter().enumerate() {
            if !seen_levels.insert(level.level) {
                return Err(ParseCatalogError::DuplicateLevel { level: level.level });
            }
            // Names must be unique case-insensitively, not just exactly: query filters
            // compare them case-insensitively and could not tell two apart otherwise.
            let mut seen_categories = HashSet::new();
            for (ci, category) in level.categories.iter().enumerate() {
                check_name("category", &category.name)?;
                let category_ci = normalise(&category.name);
                if !seen_categories.insert(category_ci.clone()) {
                    return Err(ParseCatalogError::DuplicateCategory {
                        level: level.level,
                        category: category.name.clone(),
                    });
                }
                let mut seen_events = HashSet::new();
                for (ei, event) in category.events.iter().enumerate() {
                    check_name("event", &event.name)?;
                    let event_ci = normalise(&event.name);
                    if !seen_events.insert(event_ci.clone()) {
                        return Err(ParseCatalogError::DuplicateEvent {
                            level: level.level,
                            category: category.name.clone(),
                            event: event.name.clone(),
                        });
                    }
                    check_fields(level.level, &category.name, event)?;
                    table.push(Slot {
                        level: li,
                        category: ci,
                        event: ei,
                        category_ci: category_ci.clone(),
                        event_ci,
                    });
                }
            }
        }
        // Every index must fit an EventId, so `entries` can convert without a check.
        if u16::try_from(table.len()).is_err() {
            return Err(ParseCatalogError::TooManyEvents { count: table.len() });
        }
        Ok(Catalog { levels, table })
    }

    /// Number of events (seed and extension).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the catalog has no events at all.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The level's categories, if the catalog has that level.
    pub fn level(&self, level: Level) -> Option<&LevelDef> {
        self.levels.iter().find(|l| l.level == level)
    }

    /// The event with this id.
    ///
    /// # Panics
    ///
    /// If `id` is out of range. Ids come from this catalog's own lookups, so an
    /// out-of-range id is a bug in the caller, never client input.
    pub fn entry(&self, id: EventId) -> EventEntry<'_> {
        let slot = &self.table[usize::from(id.0)];
        self.entry_of(id, slot)
    }

    fn entry_of<'a>(&'a self, id: EventId, slot: &Slot) -> EventEntry<'a> {
        let level = &self.levels[slot.level];
        let category = &level.categories[slot.category];
        EventEntry {
            id,
            level: level.level,
            category: &category.name,
            event: &category.events[slot.event],
        }
    }

    /// Every event, in catalog order (levels, then categories, then events), with ids
    /// counting up from 0.
    pub fn entries(&self) -> impl Iterator<Item = EventEntry<'_>> {
        self.ids().map(|id| self.entry(id))
    }

    fn ids(&self) -> impl Iterator<Item = EventId> + '_ {
        // `build` guarantees the length fits a u16, so the conversion always succeeds.
        (0..self.table.len()).filter_map(|i| u16::try_from(i).ok().map(EventId))
    }

    /// Exact lookup by (level, category, event name), names compared exactly.
    pub fn find(&self, level: Level, category: &str, event: &str) -> Option<EventId> {
        self.ids().find(|&id| {
            let e = self.entry(id);
            e.level == level && e.category == category && e.event.name == event
        })
    }

    /// The id of the "Audit logs exported" event, if this catalog has it (the embedded
    /// one always does).
    pub fn export_event(&self) -> Option<EventId> {
        let (category, event) = Self::EXPORT_EVENT;
        self.find(Level::Account, category, event)
    }

    /// Case-insensitive, whitespace-trimmed lookup used by query filters: all ids whose
    /// event name matches, in catalog order, across every level and category.
    pub fn ids_by_event_name_ci(&self, name: &str) -> Vec<EventId> {
        let wanted = normalise(name);
        self.ids()
            .zip(&self.table)
            .filter(|(_, slot)| slot.event_ci == wanted)
            .map(|(id, _)| id)
            .collect()
    }

    /// Case-insensitive, whitespace-trimmed lookup used by query filters: all ids of the
    /// events in every category of that name, in catalog order, across both levels.
    pub fn ids_by_category_ci(&self, name: &str) -> Vec<EventId> {
        let wanted = normalise(name);
        self.ids()
            .zip(&self.table)
            .filter(|(_, slot)| slot.category_ci == wanted)
            .map(|(id, _)| id)
            .collect()
    }

    /// "Did you mean": the nearest known event name within this level and category (or
    /// anywhere in the catalog if the category is unknown), if it is reasonably close.
    ///
    /// Names are compared case-insensitively, so a mis-cased name is suggested in its
    /// catalog spelling. A candidate is close enough when its edit distance is at most
    /// `max(2, len / 3)`, `len` being the candidate's length in characters: a third of
    /// the word may be wrong, and short names still tolerate two typos. Ties go to the
    /// first candidate in catalog order.
    pub fn suggest_event(&self, level: Level, category: &str, event: &str) -> Option<&str> {
        let category_ci = normalise(category);
        let in_category: Vec<&str> = self
            .level(level)
            .and_then(|l| {
                l.categories
                    .iter()
                    .find(|c| normalise(&c.name) == category_ci)
            })
            .map(|c| c.events.iter().map(|e| e.name.as_str()).collect())
            .unwrap_or_default();
        if in_category.is_empty() {
            nearest(event, self.entries().map(|e| e.event.name.as_str()))
        } else {
            nearest(event, in_category)
        }
    }

    /// "Did you mean": the nearest category name of this level, by the same rule as
    /// [`Catalog::suggest_event`].
    pub fn suggest_category(&self, level: Level, category: &str) -> Option<&str> {
        let candidates = self
            .level(level)
            .into_iter()
            .flat_map(|l| l.categories.iter().map(|c| c.name.as_str()));
        nearest(category, candidates)
    }
}

/// The form names are compared in by the case-insensitive lookups.
fn normalise(name: &str) -> String {
    name.trim().to_lowercase()
}

fn check_name(what: &'static str, name: &str) -> Result<(), ParseCatalogError> {
    // Lookups trim their input, so a name with surrounding whitespace could never be
    // matched by a filter.
    if name.is_empty() || name.trim() != name {
        return Err(ParseCatalogError::InvalidName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn check_fields(level: Level, category: &str, event: &EventDef) -> Result<(), ParseCatalogError> {
    let mut seen = HashSet::new();
    for field in &event.fields {
        if !is_snake_case(&field.key) {
            return Err(ParseCatalogError::InvalidFieldKey {
                level,
                category: category.to_owned(),
                event: event.name.clone(),
                key: field.key.clone(),
            });
        }
        if !seen.insert(field.key.as_str()) {
            return Err(ParseCatalogError::DuplicateFieldKey {
                level,
                category: category.to_owned(),
                event: event.name.clone(),
                key: field.key.clone(),
            });
        }
    }
    Ok(())
}

/// `^[a-z][a-z0-9]*(_[a-z0-9]+)*$`: lowercase words joined by single underscores.
fn is_snake_case(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.split('_').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The candidate nearest to `input` if it is close enough (see [`Catalog::suggest_event`]).
fn nearest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let input = normalise(input);
    if input.is_empty() {
        return None;
    }
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&input, &normalise(candidate));
        let limit = (candidate.chars().count() / 3).max(2);
        let better = best.is_none_or(|(d, _)| distance < d);
        if distance <= limit && better {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, name)| name)
}

/// Edit distance between two strings, counted in chars: Levenshtein (insertions,
/// deletions, substitutions) where swapping two adjacent chars also costs one edit (the
/// "optimal string alignment" variant). Transpositions are the commonest typo, and plain
/// Levenshtein would rank "Modles" as close to "Roles" as to "Models". Names are short,
/// so the quadratic time is nothing and no dependency is needed.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the usual table: the one before the previous row is what a
    // transposition looks back to.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 0..a.len() {
        current[0] = i + 1;
        for j in 0..b.len() {
            let substitution = previous[j] + usize::from(a[i] != b[j]);
            let mut best = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                best = best.min(before[j - 1] + 1);
            }
            current[j + 1] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> &'static Catalog {
        Catalog::get()
    }

    fn seed_events(level: Level) -> impl Iterator<Item = EventEntry<'static>> {
        catalog()
            .entries()
            .filter(move |e| e.level == level && e.event.source == Source::Seed)
    }

    fn seed_categories(level: Level) -> usize {
        let mut names: Vec<&str> = seed_events(level).map(|e| e.category).collect();
        names.dedup();
        names.len()
    }

    fn id(level: Level, category: &str, event: &str) -> EventId {
        catalog()
            .find(level, category, event)
            .unwrap_or_else(|| panic!("{level}/{category}/{event} is in the catalog"))
    }

    #[test]
    fn counts_match_the_seed() {
        assert_eq!(seed_events(Level::Account).count(), 57);
        assert_eq!(seed_categories(Level::Account), 15);
        assert_eq!(seed_events(Level::Workflow).count(), 34);
        assert_eq!(seed_categories(Level::Workflow), 4);
        let seed = catalog()
            .entries()
            .filter(|e| e.event.source == Source::Seed)
            .count();
        assert_eq!(seed, 91);
        // The export event and the three token events (Audit Logs).
        assert_eq!(catalog().len(), 95);
        assert!(!catalog().is_empty());
    }

    #[test]
    fn levels_come_in_order_account_then_workflow() {
        let levels: Vec<Level> = catalog().levels.iter().map(|l| l.level).collect();
        assert_eq!(levels, Level::ALL);
    }

    #[test]
    fn ids_are_dense_and_in_catalog_order() {
        for (i, entry) in catalog().entries().enumerate() {
            assert_eq!(usize::from(entry.id.0), i);
            let again = catalog().entry(entry.id);
            assert_eq!(again.event, entry.event);
        }
    }

    #[test]
    fn keys_are_snake_case_and_unique_within_each_event() {
        for entry in catalog().entries() {
            let mut seen = HashSet::new();
            for field in &entry.event.fields {
                assert!(
                    is_snake_case(&field.key),
                    "{}: {:?}",
                    entry.event.name,
                    field.key
                );
                assert!(
                    seen.insert(&field.key),
                    "{}: {:?} twice",
                    entry.event.name,
                    field.key
                );
                assert!(!field.label.is_empty());
            }
        }
    }

    #[test]
    fn record_fields_are_not_metadata() {
        // These live in the record itself (actor, ip_address, workflow_id).
        let record = [
            "user_id",
            "user_name",
            "email_id",
            "ip_address",
            "workflow_id",
        ];
        for entry in catalog().entries() {
            for field in &entry.event.fields {
                assert!(
                    !record.contains(&field.key.as_str()),
                    "{}: {}",
                    entry.event.name,
                    field.key
                );
            }
        }
    }

    #[test]
    fn role_id_is_on_every_roles_event_except_role_changed() {
        for entry in catalog().entries().filter(|e| e.category == "Roles") {
            let has = entry.event.field("role_id").is_some();
            assert_eq!(
                has,
                entry.event.name != "Role changed",
                "{}",
                entry.event.name
            );
        }
    }

    #[test]
    fn field_types_and_conditions_follow_the_seed() {
        let fine_tuning = catalog().entry(id(Level::Account, "Models", "Model fine-tuning"));
        let epochs = fine_tuning.event.field("no_of_epochs").expect("epochs");
        assert_eq!(
            (epochs.label.as_str(), epochs.ty, epochs.required),
            ("No. of epochs", FieldType::Number, true)
        );
        let hardware = fine_tuning
            .event
            .field("hardware_type")
            .expect("hardware type");
        assert_eq!(hardware.ty, FieldType::String);

        let added = catalog().entry(id(Level::Account, "Models", "Model added"));
        let deployment = added
            .event
            .field("deployment_name")
            .expect("deployment name");
        assert_eq!(
            (deployment.label.as_str(), deployment.required),
            ("Deployment Name", false)
        );
        assert!(
            !added
                .event
                .field("connection_name")
                .expect("connection name")
                .required
        );
        assert!(added.event.field("hardware_type").is_none());

        let deployed = catalog().entry(id(Level::Account, "Models", "Model deployed"));
        assert_eq!(
            deployed.event.field("top_p").map(|f| f.ty),
            Some(FieldType::Number)
        );

        let asynchronous = catalog().entry(id(
            Level::Workflow,
            "Workflow Management",
            "API async enabled",
        ));
        let timeout = asynchronous.event.field("timeout").expect("timeout");
        assert_eq!(
            (timeout.label.as_str(), timeout.ty, timeout.required),
            ("Timeout", FieldType::Boolean, true)
        );
        let value = asynchronous
            .event
            .field("timeout_value")
            .expect("timeout value");
        assert_eq!(
            (value.label.as_str(), value.ty, value.required),
            ("Timeout value", FieldType::Number, false)
        );

        let dataset = catalog().entry(id(Level::Account, "Dataset", "Dataset uploaded"));
        let file_type = dataset.event.field("file_type").expect("file type");
        assert_eq!(file_type.label, "File type (extension)");
    }

    #[test]
    fn export_event_is_the_extension() {
        let export = catalog().export_event().expect("export event");
        let entry = catalog().entry(export);
        assert_eq!(
            (entry.level, entry.category, entry.event.name.as_str()),
            (Level::Account, "Audit Logs", "Audit logs exported")
        );
        assert_eq!(entry.event.source, Source::Extension);
        let fields: Vec<(&str, FieldType, bool)> = entry
            .event
            .fields
            .iter()
            .map(|f| (f.key.as_str(), f.ty, f.required))
            .collect();
        assert_eq!(
            fields,
            [
                ("token_id", FieldType::String, true),
                ("format", FieldType::String, true),
                ("range", FieldType::String, true),
                ("filters", FieldType::String, true),
                ("row_count", FieldType::Number, true),
                ("status", FieldType::String, false),
                ("stop_reason", FieldType::String, false),
            ]
        );
        let extensions: Vec<&str> = catalog()
            .entries()
            .filter(|e| e.event.source == Source::Extension)
            .inspect(|e| assert_eq!((e.level, e.category), (Level::Account, "Audit Logs")))
            .map(|e| e.event.name.as_str())
            .collect();
        assert_eq!(
            extensions,
            [
                "Audit logs exported",
                "Token created",
                "Token revoked",
                "Token expired"
            ]
        );
    }

    #[test]
    fn find_compares_exactly_and_tells_same_names_apart() {
        let models = id(Level::Account, "Models", "API Key created");
        let prompts = id(Level::Account, "Prompts", "API Key created");
        let workflow = id(Level::Workflow, "Workflow Management", "API Key created");
        assert!(models != prompts && prompts != workflow && models != workflow);
        assert_eq!(catalog().entry(prompts).category, "Prompts");

        assert_eq!(
            catalog().find(Level::Account, "Roles", "role created"),
            None
        );
        assert_eq!(
            catalog().find(Level::Account, "Roles", " Role created"),
            None
        );
        assert_eq!(
            catalog().find(Level::Workflow, "Roles", "Role created"),
            None
        );
        // The account-level and workflow-level "Role changed" are different events.
        assert_ne!(
            id(Level::Account, "Roles", "Role changed"),
            id(Level::Workflow, "User Management", "Role changed")
        );
    }

    #[test]
    fn case_insensitive_lookups_trim_and_span_levels() {
        let ids = catalog().ids_by_event_name_ci("  api key CREATED ");
        assert_eq!(
            ids,
            [
                id(Level::Account, "Models", "API Key created"),
                id(Level::Account, "Prompts", "API Key created"),
                id(Level::Workflow, "Workflow Management", "API Key created"),
            ]
        );
        assert_eq!(
            catalog().ids_by_event_name_ci("Role Created"),
            [id(Level::Account, "Roles", "Role created")]
        );
        assert!(catalog().ids_by_event_name_ci("no such event").is_empty());
        assert!(catalog().ids_by_event_name_ci("").is_empty());

        // Guardrails exists at both levels: 2 account events and 6 workflow events.
        let guardrails = catalog().ids_by_category_ci("GUARDRAILS");
        assert_eq!(guardrails.len(), 8);
        assert!(guardrails.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(catalog().ids_by_category_ci(" ocr ").len(), 5 + 9);
        assert_eq!(
            catalog()
                .ids_by_category_ci("workflows flow management: integration node")
                .len(),
            5
        );
    }

    #[test]
    fn suggestions_find_near_names() {
        let c = catalog();
        assert_eq!(
            c.suggest_event(Level::Account, "Roles", "Role creatd"),
            Some("Role created")
        );
        assert_eq!(
            c.suggest_event(Level::Account, "Roles", "role CREATED"),
            Some("Role created")
        );
        // The category is known, so only its events are candidates.
        assert_eq!(
            c.suggest_event(Level::Account, "Models", "API Key creatd"),
            Some("API Key created")
        );
        assert_eq!(
            c.suggest_event(Level::Account, "Roles", "Model deployed"),
            None
        );
        // An unknown category searches everywhere.
        assert_eq!(
            c.suggest_event(Level::Account, "Nope", "Workflow deploy"),
            Some("Workflow deployed")
        );
        assert_eq!(
            c.suggest_event(Level::Account, "Roles", "something else entirely"),
            None
        );
        assert_eq!(c.suggest_event(Level::Account, "Roles", "   "), None);

        assert_eq!(c.suggest_category(Level::Account, "Modles"), Some("Models"));
        assert_eq!(c.suggest_category(Level::Account, "role"), Some("Roles"));
        assert_eq!(
            c.suggest_category(Level::Workflow, "Workflow Managment"),
            Some("Workflow Management")
        );
        assert_eq!(c.suggest_category(Level::Workflow, "Roles"), None);
        assert_eq!(c.suggest_category(Level::Account, "zzzzzzzz"), None);
    }

    #[test]
    fn edit_distance_counts_chars_and_transpositions() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("flaw", "lawn"), 2);
        assert_eq!(edit_distance("node’s", "node's"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("modles", "models"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("ca", "abc"), 3);
    }

    #[test]
    fn serde_round_trip_reproduces_the_file() {
        let file: serde_json::Value = serde_json::from_str(CATALOG_JSON).expect("file is json");
        let served = serde_json::to_value(catalog()).expect("catalog serialises");
        assert_eq!(served, file);

        let text = serde_json::to_string(catalog()).expect("catalog serialises");
        let again: Catalog = serde_json::from_str(&text).expect("served catalog parses");
        assert_eq!(again.levels, catalog().levels);
        assert_eq!(again.len(), catalog().len());
    }

    #[test]
    fn level_parses_and_prints_its_wire_name() {
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
            assert_eq!(level.to_string(), level.as_str());
            let json = serde_json::to_string(&level).expect("level serialises");
            assert_eq!(json, format!("\"{level}\""));
        }
        assert!("Account".parse::<Level>().is_err());
        assert!("".parse::<Level>().is_err());
    }

    fn parse_one_event(fields: &str) -> Result<Catalog, ParseCatalogError> {
        Catalog::from_json(&format!(
            r#"{{"levels": [{{"level": "account", "categories": [{{"name": "C", "events": [
                {{"name": "E", "description": "d", "source": "seed", "fields": {fields}}}]}}]}}]}}"#
        ))
    }

    #[test]
    fn bad_catalogs_are_rejected_with_a_reason() {
        let ok = r#"[{"key": "a_b1", "label": "A", "required": true, "type": "string"}]"#;
        assert_eq!(parse_one_event(ok).map(|c| c.len()).ok(), Some(1));

        let bad_key = r#"[{"key": "A b", "label": "A", "required": true, "type": "string"}]"#;
        assert!(matches!(
            parse_one_event(bad_key),
            Err(ParseCatalogError::InvalidFieldKey { .. })
        ));
        let twice = r#"[{"key": "a", "label": "A", "required": true, "type": "string"},
                        {"key": "a", "label": "B", "required": true, "type": "number"}]"#;
        assert!(matches!(
            parse_one_event(twice),
            Err(ParseCatalogError::DuplicateFieldKey { .. })
        ));
        let typo = r#"[{"key": "a", "label": "A", "requird": true, "type": "string"}]"#;
        assert!(matches!(
            parse_one_event(typo),
            Err(ParseCatalogError::Json(_))
        ));
        let bad_type = r#"[{"key": "a", "label": "A", "required": true, "type": "date"}]"#;
        assert!(matches!(
            parse_one_event(bad_type),
            Err(ParseCatalogError::Json(_))
        ));

        let same_event = r#"{"levels": [{"level": "account", "categories": [{"name": "C", "events": [
            {"name": "E", "description": "d", "source": "seed", "fields": []},
            {"name": "e", "description": "d", "source": "seed", "fields": []}]}]}]}"#;
        assert!(matches!(
            Catalog::from_json(same_event),
            Err(ParseCatalogError::DuplicateEvent { .. })
        ));
        let padded =
            r#"{"levels": [{"level": "account", "categories": [{"name": " C", "events": []}]}]}"#;
        assert!(matches!(
            Catalog::from_json(padded),
            Err(ParseCatalogError::InvalidName { .. })
        ));
        let levels_twice = r#"{"levels": [{"level": "account", "categories": []}, {"level": "account", "categories": []}]}"#;
        assert!(matches!(
            Catalog::from_json(levels_twice),
            Err(ParseCatalogError::DuplicateLevel { .. })
        ));
        assert!(matches!(
            Catalog::from_json("{"),
            Err(ParseCatalogError::Json(_))
        ));
    }

    #[test]
    fn snake_case_check() {
        for good in ["a", "top_p", "no_of_epochs", "a1_b2"] {
            assert!(is_snake_case(good), "{good}");
        }
        for bad in ["", "_a", "a_", "a__b", "A", "1a", "a-b", "a b", "é"] {
            assert!(!is_snake_case(bad), "{bad}");
        }
    }
}
