//! A seeded generator of realistic audit events for every catalog entry:
//! the demo account's data and the benchmark's dataset.
//!
//! Realistic means skewed the way real logs are: logins and logouts make up
//! most of the log, configuration changes are rare ("Role created" is about
//! 0.1 %), a few thousand users of whom some are much more active, and every
//! required metadata field filled with a plausible value of its type.

use auditlog_core::catalog::{Catalog, EventEntry, FieldType, Level};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};

const FIRST: &[&str] = &[
    "Jane", "Omar", "Mei", "Lukas", "Amara", "Diego", "Priya", "Noah", "Sofia", "Kenji", "Fatima",
    "Liam", "Elena", "Tariq", "Chloe", "Mateo", "Aisha", "Jonas", "Yuki", "Grace",
];
const LAST: &[&str] = &[
    "Doe", "Haddad", "Chen", "Schmidt", "Okafor", "Alvarez", "Sharma", "Brown", "Rossi", "Tanaka",
    "Khan", "Murphy", "Petrova", "Aziz", "Martin", "Garcia", "Bello", "Berg", "Sato", "Kim",
];
const WORDS: &[&str] = &[
    "invoice",
    "claims",
    "onboarding",
    "support",
    "triage",
    "summary",
    "extraction",
    "routing",
    "review",
    "forecast",
    "intake",
    "renewal",
    "audit",
    "ledger",
    "contract",
    "email",
];

/// One synthetic user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub ip: String,
}

/// The generator; the same seed gives the same events.
pub struct Generator {
    rng: StdRng,
    users: Vec<User>,
    /// Cumulative weights over the catalog's ingestible events.
    events: Vec<(u32, u64)>,
    total_weight: u64,
    workflows: Vec<String>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("users", &self.users.len())
            .finish()
    }
}

/// How common an event is, per million events.
fn weight(e: &EventEntry<'_>) -> u64 {
    match (e.category, e.event.name.as_str()) {
        ("Login/Logout", "Login") => 450_000,
        ("Login/Logout", "Logout") => 300_000,
        ("Roles", "Role created") => 1_000,
        ("Prompts", "Endpoint consumed") => 40_000,
        ("Prompts", _) => 6_000,
        ("Models", _) => 4_000,
        ("Workflows Flow Management: Integration Node", _) => 5_000,
        (_, _) if e.level == Level::Workflow => 3_000,
        _ => 2_000,
    }
}

impl Generator {
    pub fn new(seed: u64, n_users: usize) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        let users = (0..n_users.max(1))
            .map(|i| {
                let first = FIRST[rng.random_range(0..FIRST.len())];
                let last = LAST[rng.random_range(0..LAST.len())];
                User {
                    id: format!("u_{i}"),
                    name: format!("{first} {last}"),
                    email: format!(
                        "{}.{}{i}@example.com",
                        first.to_lowercase(),
                        last.to_lowercase()
                    ),
                    ip: format!(
                        "{}.{}.{}.{}",
                        [203, 198, 192, 100][i % 4],
                        rng.random_range(0..=255u8),
                        rng.random_range(0..=255u8),
                        rng.random_range(1..=254u8)
                    ),
                }
            })
            .collect();
        let mut events = Vec::new();
        let mut total = 0;
        for e in Catalog::get().entries() {
            if e.category == auditlog_core::validate::RESERVED_CATEGORY {
                continue;
            }
            total += weight(&e);
            events.push((u32::from(e.id.0), total));
        }
        let workflows = (0..40).map(|i| format!("wf_{i:03}")).collect();
        Generator {
            rng,
            users,
            events,
            total_weight: total,
            workflows,
        }
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// A user, skewed: a fifth of the users do most of the work.
    fn pick_user(&mut self) -> User {
        let n = self.users.len();
        let i = if self.rng.random_bool(0.8) {
            self.rng.random_range(0..n.div_ceil(5))
        } else {
            self.rng.random_range(0..n)
        };
        self.users[i].clone()
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[self.rng.random_range(0..WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn string_value(&mut self, key: &str) -> String {
        let n: u32 = self.rng.random_range(1..5000);
        if key.ends_with("_ids") {
            format!("u_{n}, u_{}", n + 1)
        } else if let Some(entity) = key.strip_suffix("_id") {
            format!("{entity}_{n}")
        } else if key.contains("type") {
            [
                "custom",
                "standard",
                "commercial",
                "open-source",
                "gpu-a100",
                "cpu",
            ][self.rng.random_range(0..6usize)]
            .to_owned()
        } else if key.contains("url") {
            format!("https://hooks.example.com/{}", self.words(1))
        } else if key.contains("method") {
            ["password", "sso", "google", "api-key"][self.rng.random_range(0..4usize)].to_owned()
        } else {
            let w = self.words(2);
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or(w)
        }
    }

    /// One ingest body for an event at `occurred_at` (RFC 3339).
    pub fn event(&mut self, occurred_at: &str) -> Value {
        let r = self.rng.random_range(0..self.total_weight);
        let i = self.events.partition_point(|(_, c)| *c <= r);
        let catalog = Catalog::get();
        let entry = catalog.entry(auditlog_core::catalog::EventId(self.events[i].0 as u16));
        self.event_of(&entry, occurred_at)
    }

    /// One ingest body for a given catalog entry.
    pub fn event_of(&mut self, entry: &EventEntry<'_>, occurred_at: &str) -> Value {
        let user = self.pick_user();
        let mut metadata = Map::new();
        for f in &entry.event.fields {
            if !f.required && self.rng.random_bool(0.5) {
                continue;
            }
            let v = match f.ty {
                FieldType::String => json!(self.string_value(&f.key)),
                FieldType::Number => {
                    if f.key.contains("rate")
                        || f.key.contains("temperature")
                        || f.key.contains("top_p")
                    {
                        json!((self.rng.random_range(1..100u32) as f64) / 100.0)
                    } else {
                        json!(self.rng.random_range(1..512u32))
                    }
                }
                FieldType::Boolean => json!(self.rng.random_bool(0.5)),
            };
            metadata.insert(f.key.clone(), v);
        }
        let needs_wf = entry.level == Level::Workflow || entry.category == "Workflows";
        let workflow = (needs_wf || self.rng.random_bool(0.05))
            .then(|| self.workflows[self.rng.random_range(0..self.workflows.len())].clone());
        let description = format!(
            "{} {} — {}{}",
            user.name,
            entry
                .event
                .description
                .trim_end_matches('.')
                .to_lowercase()
                .replacen("tracks", "performed", 1),
            self.words(6),
            workflow
                .as_deref()
                .map(|w| format!(" in workflow {w}"))
                .unwrap_or_default(),
        );
        let mut body = json!({
            "level": entry.level.as_str(),
            "category": entry.category,
            "event": entry.event.name,
            "occurred_at": occurred_at,
            "actor": {"kind": "user", "id": user.id, "name": user.name, "email": user.email},
            "ip_address": user.ip,
            "description": description,
            "metadata": metadata,
        });
        if let Some(w) = workflow {
            body["workflow_id"] = json!(w);
        }
        body
    }

    /// A random instant in `[start_us, end_us)`.
    pub fn instant(&mut self, start_us: i64, end_us: i64) -> i64 {
        self.rng.random_range(start_us..end_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlog_core::record::Micros;
    use auditlog_core::redact::Redactor;
    use auditlog_core::validate::{IngestContext, Problems, validate_event};

    #[test]
    fn every_catalog_entry_generates_a_valid_event() {
        let mut g = Generator::new(7, 50);
        let redactor = Redactor::new([1; 32]);
        let ctx = IngestContext {
            now: Micros::parse_rfc3339("2026-11-25T10:00:00Z").unwrap(),
            client_ip: None,
            redactor: &redactor,
        };
        let catalog = Catalog::get();
        for e in catalog.entries() {
            if e.category == auditlog_core::validate::RESERVED_CATEGORY {
                continue;
            }
            let body = g.event_of(&e, "2026-11-20T10:00:00Z");
            let mut errors = Problems::new();
            let v = validate_event(catalog, body, "", &ctx, &mut errors);
            assert!(v.is_some(), "{} / {}: {errors:?}", e.category, e.event.name);
        }
        // And weighted picks are valid too.
        for _ in 0..500 {
            let body = g.event("2026-11-20T10:00:00Z");
            let mut errors = Problems::new();
            assert!(
                validate_event(catalog, body, "", &ctx, &mut errors).is_some(),
                "{errors:?}"
            );
        }
    }
}
