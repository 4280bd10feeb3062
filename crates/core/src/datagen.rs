//! A seeded generator of realistic audit events for every catalog entry:
//! the demo account's data (`auditlog demo`) and the benchmark's dataset
//! (`auditlog-bench`).
//!
//! It lives here rather than in either binary because both need it and it is
//! pure: seeded randomness, no I/O, no clock (callers pass the instants), so
//! the bench can use it without the product binary carrying the bench.
//!
//! Realistic means skewed the way real logs are: logins and logouts make up
//! most of the log, configuration changes are rare ("Role created" is about
//! 0.1 %), a few thousand users of whom some are much more active, each with
//! their own device and city, every required metadata field filled with a
//! plausible value (model, prompt and workflow names, not random words), and
//! descriptions that read like a person wrote them: the server's default
//! sentence for the event plus where and from which device it was done.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, EventEntry, FieldType, Level};
use crate::describe;
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
/// Where people work from: a browser and system per user, the way an
/// account's log shows the same few devices again and again.
const DEVICES: &[&str] = &[
    "Chrome 131 on macOS",
    "Chrome 131 on Windows 11",
    "Edge 131 on Windows 11",
    "Firefox 133 on Ubuntu",
    "Safari 18 on macOS",
    "Chrome 131 on ChromeOS",
];
#[rustfmt::skip]
const CITIES: &[&str] = &[
    "Berlin", "London", "Mumbai", "Austin", "Toronto", "Singapore", "Madrid", "Lagos",
];
const WORKFLOW_NAMES: &[&str] = &[
    "Invoice intake",
    "Claims triage",
    "Customer onboarding",
    "Support email routing",
    "Contract review",
    "Expense audit",
    "Vendor due diligence",
    "Renewal forecast",
];

/// Plausible values of the catalog's string fields, by key.
#[rustfmt::skip]
fn pool(key: &str) -> Option<&'static [&'static str]> {
    Some(match key {
        "login_method" => &["password", "SSO", "Google", "a passkey"],
        "role_type" => &["custom", "standard"],
        "role_name" => &["Viewer", "Editor", "Admin", "Compliance Reviewer", "Billing Admin"],
        "integration_name" => &["Salesforce", "SharePoint", "Slack", "SAP S/4HANA", "Zendesk", "Google Drive"],
        "integration_type" => &["CRM", "storage", "messaging", "ERP", "ticketing"],
        "model_name" => &["gpt-4o", "llama-3.1-8b-instruct", "mistral-7b-instruct", "claude-3.5-sonnet", "qwen2.5-14b"],
        "model_type" => &["commercial", "open-source", "fine-tuned"],
        "hardware_type" => &["NVIDIA A100 80GB", "NVIDIA L4", "NVIDIA T4", "8 vCPU"],
        "training_method" => &["LoRA", "QLoRA", "full fine-tuning"],
        "training_dataset" => &["invoices-2026-q3.jsonl", "claims-labelled.csv", "support-replies.jsonl"],
        "test_dataset" => &["invoices-holdout.jsonl", "claims-test.csv", "support-eval.jsonl"],
        "weights_and_biases" => &["acme/finetune-invoices", "acme/claims-lora", "acme/support-tone"],
        "stop_sequence" => &["</answer>", "###", "END"],
        "prompt_name" => &["Invoice field extraction", "Claims triage summary", "Support reply draft", "Contract clause finder", "Expense policy check"],
        "version_name" => &["v2", "v3", "v4", "v5", "v6"],
        "file_type" => &["CSV", "JSONL", "PDF", "XLSX"],
        "custom_script_name" => &["normalize_invoice.py", "dedupe_claims.py", "mask_pii.py", "split_pdf.py"],
        "guardrail_name" => &["PII redaction", "Toxicity filter", "Prompt injection shield"],
        "connection_name" => &["Invoices OCR", "Receipts OCR", "Azure DI West Europe", "ID documents OCR"],
        "deployment_name" => &["prod-eu-1", "prod-us-2", "staging"],
        "node_name" => &["Extract fields", "Route ticket", "Send to ERP", "Scan document", "Summarize claim", "Check policy"],
        "node_type" => &["integration", "ocr", "llm", "script"],
        "api_mode" => &["sync", "async"],
        _ => return None,
    })
}

/// One synthetic user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub ip: String,
    /// The browser and system this user works from, and their city.
    pub device: &'static str,
    pub city: &'static str,
}

/// The service account of [`Generator::with_heavy_hitters`]: an app that
/// writes a fifth of the log, as a directory sync or a scheduler does.
pub const SERVICE_ACCOUNT_NAME: &str = "Directory Sync";
/// The corporate egress address of [`Generator::with_heavy_hitters`]: the
/// service account's and a quarter of the people's events come from it.
pub const OFFICE_IP: &str = "198.51.100.20";
/// The workflow of [`Generator::with_heavy_hitters`] that takes half of the
/// workflow events.
pub const BUSY_WORKFLOW: &str = "wf_000";
/// Shares of the heavy hitters (see [`Generator::with_heavy_hitters`]).
const SERVICE_SHARE: f64 = 0.2;
const OFFICE_SHARE: f64 = 0.25;
const BUSY_WORKFLOW_SHARE: f64 = 0.5;

/// The generator; the same seed gives the same events.
pub struct Generator {
    rng: StdRng,
    users: Vec<User>,
    /// The service account, when heavy hitters are on.
    service: Option<User>,
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
                    device: DEVICES[rng.random_range(0..DEVICES.len())],
                    city: CITIES[rng.random_range(0..CITIES.len())],
                }
            })
            .collect();
        let mut events = Vec::new();
        let mut total = 0;
        for e in Catalog::get().entries() {
            if e.category == crate::validate::RESERVED_CATEGORY {
                continue;
            }
            total += weight(&e);
            events.push((u32::from(e.id.0), total));
        }
        let workflows = (0..40).map(|i| format!("wf_{i:03}")).collect();
        Generator {
            rng,
            users,
            service: None,
            events,
            total_weight: total,
            workflows,
        }
    }

    /// Adds the heavy hitters a real account has and the benchmark needs
    /// (issue 13): a service account ([`SERVICE_ACCOUNT_NAME`], an `app`)
    /// writing ~20 % of the events, one egress address ([`OFFICE_IP`])
    /// carrying its events and a quarter of everyone else's (~40 % in all),
    /// and one workflow ([`BUSY_WORKFLOW`]) taking half of the workflow
    /// events. Off by default, so `auditlog demo` keeps its data; the same
    /// seed still gives the same events.
    pub fn with_heavy_hitters(mut self) -> Generator {
        self.service = Some(User {
            id: "svc_directory_sync".to_owned(),
            name: SERVICE_ACCOUNT_NAME.to_owned(),
            email: "directory-sync@acme-corp.example".to_owned(),
            ip: OFFICE_IP.to_owned(),
            device: "a service token",
            city: "Frankfurt",
        });
        self
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The actor of the next event: the service account for its share when
    /// heavy hitters are on (its kind is `app`), else a user, who works
    /// from the office's address a quarter of the time.
    fn pick_actor(&mut self) -> (User, &'static str) {
        let Some(service) = &self.service else {
            return (self.pick_user(), "user");
        };
        if self.rng.random_bool(SERVICE_SHARE) {
            return (service.clone(), "app");
        }
        let mut user = self.pick_user();
        if self.rng.random_bool(OFFICE_SHARE) {
            OFFICE_IP.clone_into(&mut user.ip);
        }
        (user, "user")
    }

    /// A workflow id: one is busy when heavy hitters are on.
    fn pick_workflow(&mut self) -> String {
        if self.service.is_some() && self.rng.random_bool(BUSY_WORKFLOW_SHARE) {
            return BUSY_WORKFLOW.to_owned();
        }
        self.workflows[self.rng.random_range(0..self.workflows.len())].clone()
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

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[self.rng.random_range(0..from.len())]
    }

    fn string_value(&mut self, key: &str, workflow: Option<&str>) -> String {
        let n: u32 = self.rng.random_range(1..5000);
        if let Some(values) = pool(key) {
            return self.pick(values).to_owned();
        }
        match key {
            "workflow_name" => {
                // The workflow's own name, the same every time it appears.
                let i = workflow.and_then(|w| w.strip_prefix("wf_")?.parse::<usize>().ok());
                let i = i.unwrap_or(n as usize);
                return format!(
                    "{} {}",
                    WORKFLOW_NAMES[i % WORKFLOW_NAMES.len()],
                    i / WORKFLOW_NAMES.len() + 1
                );
            }
            "version_id" | "workflow_version" => return format!("v{}", n % 40 + 1),
            "url" => {
                let w = workflow.unwrap_or("wf_000");
                return format!("https://hooks.acme-corp.example/workflows/{w}/callback");
            }
            // A made-up credential: the field the catalog marks sensitive,
            // which the server keeps only as a fingerprint.
            "access_token" => return format!("whsec_{:016x}{:08x}", self.rng.random::<u64>(), n),
            "added_user_ids" | "removed_user_ids" => {
                let a = self.pick_user().email;
                return if self.rng.random_bool(0.6) {
                    a
                } else {
                    format!("{a}, {}", self.pick_user().email)
                };
            }
            _ => {}
        }
        if let Some(entity) = key.strip_suffix("_id") {
            let prefix: String = entity.chars().filter(|c| *c != '_').take(4).collect();
            format!("{prefix}_{n}")
        } else {
            format!("{} {n}", key.replace('_', " "))
        }
    }

    /// One ingest body for an event at `occurred_at` (RFC 3339).
    pub fn event(&mut self, occurred_at: &str) -> Value {
        let r = self.rng.random_range(0..self.total_weight);
        let i = self.events.partition_point(|(_, c)| *c <= r);
        let catalog = Catalog::get();
        let entry = catalog.entry(crate::catalog::EventId(self.events[i].0 as u16));
        self.event_of(&entry, occurred_at)
    }

    /// One ingest body for a given catalog entry.
    pub fn event_of(&mut self, entry: &EventEntry<'_>, occurred_at: &str) -> Value {
        let (user, kind) = self.pick_actor();
        let needs_wf = entry.level == Level::Workflow || entry.category == "Workflows";
        let workflow = (needs_wf || self.rng.random_bool(0.05)).then(|| self.pick_workflow());
        let mut metadata = Map::new();
        for f in &entry.event.fields {
            if !f.required && self.rng.random_bool(0.5) {
                continue;
            }
            let v = match f.ty {
                FieldType::String => json!(self.string_value(&f.key, workflow.as_deref())),
                FieldType::Number => {
                    if f.key.contains("rate")
                        || f.key.contains("temperature")
                        || f.key.contains("top_p")
                    {
                        json!((self.rng.random_range(1..100u32) as f64) / 100.0)
                    } else if f.key == "tokens_consumed" {
                        json!(self.rng.random_range(500..50_000u32))
                    } else if f.key.contains("usage") {
                        json!(self.rng.random_range(1..720u32))
                    } else {
                        json!(self.rng.random_range(1..512u32))
                    }
                }
                FieldType::Boolean => json!(self.rng.random_bool(0.5)),
            };
            metadata.insert(f.key.clone(), v);
        }
        // The sentence the server would write by default, and what a real
        // client adds to it: where the change was made and from which device.
        let fields: BTreeMap<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut description = describe::sentence(&entry.event.name, &user.name, &fields);
        if let Some(w) = workflow.as_deref()
            && !description.contains("workflow")
        {
            description.push_str(&format!(" in workflow {w}"));
        }
        description.push_str(&format!(", from {} in {}", user.device, user.city));
        let mut body = json!({
            "level": entry.level.as_str(),
            "category": entry.category,
            "event": entry.event.name,
            "occurred_at": occurred_at,
            "actor": {"kind": kind, "id": user.id, "name": user.name, "email": user.email},
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
    use crate::record::Micros;
    use crate::redact::Redactor;
    use crate::validate::{IngestContext, Problems, validate_event};

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
            if e.category == crate::validate::RESERVED_CATEGORY {
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

    /// The benchmark's heavy hitters come out at their shares and are
    /// valid events (the service account is an `app`); they are off by
    /// default.
    #[test]
    fn heavy_hitters_take_their_shares() {
        let mut g = Generator::new(5, 200).with_heavy_hitters();
        let redactor = Redactor::new([1; 32]);
        let ctx = IngestContext {
            now: Micros::parse_rfc3339("2026-11-25T10:00:00Z").unwrap(),
            client_ip: None,
            redactor: &redactor,
        };
        let n = 20_000;
        let (mut service, mut office, mut wf, mut busy_wf) = (0, 0, 0, 0);
        for i in 0..n {
            let body = g.event("2026-11-20T10:00:00Z");
            if body["actor"]["name"] == SERVICE_ACCOUNT_NAME {
                service += 1;
                assert_eq!(body["actor"]["kind"], "app");
            }
            office += usize::from(body["ip_address"] == OFFICE_IP);
            if let Some(w) = body["workflow_id"].as_str() {
                wf += 1;
                busy_wf += usize::from(w == BUSY_WORKFLOW);
            }
            if i < 200 {
                let mut errors = Problems::new();
                let v = validate_event(Catalog::get(), body, "", &ctx, &mut errors);
                assert!(v.is_some(), "{errors:?}");
            }
        }
        let share = |k: usize, of: usize| k as f64 / of as f64;
        assert!((0.18..0.22).contains(&share(service, n)), "{service}");
        assert!((0.36..0.44).contains(&share(office, n)), "{office}");
        assert!(
            (0.45..0.55).contains(&share(busy_wf, wf)),
            "{busy_wf} of {wf}"
        );
        // Off by default: the demo has no service account.
        let mut a = Generator::new(9, 50);
        assert!(
            (0..1000)
                .all(|_| a.event("2026-11-20T10:00:00Z")["actor"]["name"] != SERVICE_ACCOUNT_NAME)
        );
    }

    #[test]
    fn descriptions_read_like_sentences_and_never_show_the_access_token() {
        let mut g = Generator::new(11, 50);
        for e in Catalog::get().entries() {
            if e.category == crate::validate::RESERVED_CATEGORY {
                continue;
            }
            let body = g.event_of(&e, "2026-11-20T10:00:00Z");
            let d = body["description"].as_str().unwrap();
            let name = body["actor"]["name"].as_str().unwrap();
            // "Ana Silva deployed the model gpt-4o on NVIDIA L4, from Safari
            // 18 on macOS in Madrid": the actor, a verb, what, where from.
            assert!(d.starts_with(&format!("{name} ")), "{d}");
            assert!(d.contains(", from "), "{d}");
            if let Some(secret) = body["metadata"]["access_token"].as_str() {
                assert!(!d.contains(secret), "{d}");
            }
        }
    }
}
