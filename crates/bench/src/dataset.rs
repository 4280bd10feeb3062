//! The benchmark's dataset: seeded, realistic events generated once into a
//! file of `account<TAB>ingest JSON` lines, oldest first, which both the
//! auditlog ingest and the baseline load read back.
//!
//! Why a file and not memory: ten million ingest bodies are about 7 GB, and
//! generating them on the fly while measuring ingest would spend the client's
//! share of the two cores on JSON building instead of sending. A file read
//! back from the page cache costs little CPU and bounds the bench's memory.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use auditlog_core::record::Micros;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use auditlog_core::datagen::Generator;

/// The account that holds 90 % of the events: the one the dashboard
/// queries, exports and verifies.
pub const MAIN_ACCOUNT: &str = "acme";
/// How many other accounts share the remaining 10 %.
const OTHER_ACCOUNTS: usize = 49;
/// Share of events in the main account.
const MAIN_SHARE: f64 = 0.9;
/// Days the dataset spans, ending a minute before generation.
pub const DAYS: i64 = 400;
/// Users of the generator (shared by every account).
const USERS: usize = 2000;
/// Events generated per time slice: each slice covers an equal share of the
/// 400 days and is sorted on its own, so the file is sorted without holding
/// every timestamp in memory.
const SLICE: usize = 50_000;

/// Client strings for the `user_agent` metadata key (what an SDK or browser
/// would send); with the request and session ids they bring metadata to
/// about 150 bytes, as on a real platform.
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh) Chrome/131.0",
    "Mozilla/5.0 (Windows NT 10.0) Edge/131",
    "python-requests/2.32.3",
    "auditlog-sdk-go/1.4.2",
    "platform-scheduler/7.1",
    "Mozilla/5.0 (X11; Linux) Firefox/133.0",
];

/// One account's name for index `i` (0 is the main account).
pub fn account_name(i: usize) -> String {
    if i == 0 {
        MAIN_ACCOUNT.to_owned()
    } else {
        format!("tenant-{i:02}")
    }
}

/// What was generated, for the report and to check the realism claims.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStats {
    pub events: u64,
    pub main_account_events: u64,
    pub accounts: usize,
    /// Users of the generator, and how many of them appear.
    pub users: usize,
    pub users_seen: usize,
    pub days: i64,
    pub first_at: String,
    pub last_at: String,
    pub file_bytes: u64,
    pub generate_secs: f64,
    /// Share of the main account's events named "Login".
    pub login_share: f64,
    /// Share of the main account's events that are "Role created".
    pub role_created_share: f64,
    pub description_chars_min: usize,
    pub description_chars_mean: f64,
    pub description_chars_max: usize,
    /// Share of descriptions of 80 to 150 characters.
    pub description_in_80_150: f64,
    pub metadata_bytes_mean: f64,
    pub body_bytes_mean: f64,
    /// The user name with the most events in the main account (the
    /// generator's service account, ~20 %): the heavy `user` of the shapes.
    pub busy_user: String,
    pub busy_user_events: u64,
    /// The IP address with the most events in the main account.
    pub busy_ip: String,
    pub busy_ip_events: u64,
    /// The IP address with the fewest events in the main account.
    pub rare_ip: String,
    pub rare_ip_events: u64,
    /// The workflow id with the most events in the main account.
    pub busy_workflow: String,
    pub busy_workflow_events: u64,
}

/// Generates `n` events into `path`; returns the statistics.
pub fn generate(path: &Path, n: u64, seed: u64, now_us: i64) -> Result<DatasetStats> {
    let started = std::time::Instant::now();
    let mut g = Generator::new(seed, USERS).with_heavy_hitters();
    // A second stream for what the bench adds (account, padding), so the
    // generator's own sequence stays what `auditlog demo` would produce.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6265_6e63_6821);
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);

    // Whole milliseconds: the API keeps milliseconds, and the baseline's
    // text timestamps must equal the API's to compare counts.
    let end_ms = now_us / 1000 - 60_000;
    let start_ms = end_ms - DAYS * 86_400_000;
    let slices = (n as usize).div_ceil(SLICE).max(1);
    let span = (end_ms - start_ms) as f64 / slices as f64;

    let mut acc = Accumulator::default();
    let mut remaining = n as usize;
    let mut times = Vec::with_capacity(SLICE);
    let mut line = String::with_capacity(1024);
    for k in 0..slices {
        let in_slice = remaining.div_ceil(slices - k);
        remaining -= in_slice;
        let lo = start_ms + (span * k as f64) as i64;
        let hi = (start_ms + (span * (k + 1) as f64) as i64).max(lo + 1);
        times.clear();
        times.extend((0..in_slice).map(|_| rng.random_range(lo..hi)));
        times.sort_unstable();
        for &ms in &times {
            let at = Micros(ms * 1000).to_rfc3339();
            let account = if rng.random_bool(MAIN_SHARE) {
                0
            } else {
                rng.random_range(1..=OTHER_ACCOUNTS)
            };
            let mut body = g.event(&at);
            pad_metadata(&mut body, &mut rng);
            line.clear();
            line.push_str(&account_name(account));
            line.push('\t');
            line.push_str(&serde_json::to_string(&body)?);
            acc.add(
                account == 0,
                &body,
                line.len() - account_name(account).len() - 1,
                &at,
            );
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
    }
    // On disk before anything is measured: left dirty, the gigabytes would
    // be written back during the ingest that follows, competing with its
    // fsyncs.
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()?;
    let file_bytes = std::fs::metadata(path)?.len();
    let mut stats = acc.finish(n, file_bytes, started.elapsed().as_secs_f64());
    stats.users = g.users().len();
    Ok(stats)
}

/// Adds a request id, a session id and a client string to the metadata.
fn pad_metadata(body: &mut Value, rng: &mut StdRng) {
    const B32: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let request: String = (0..20)
        .map(|_| B32[rng.random_range(0..B32.len())] as char)
        .collect();
    let session: u64 = rng.random();
    let agent = AGENTS[rng.random_range(0..AGENTS.len())];
    if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("request_id".into(), json!(format!("req_{request}")));
        m.insert("session_id".into(), json!(format!("s_{session:016x}")));
        m.insert("user_agent".into(), json!(agent));
    }
}

#[derive(Default)]
struct Accumulator {
    main: u64,
    login: u64,
    role_created: u64,
    desc_min: usize,
    desc_max: usize,
    desc_sum: u64,
    desc_in_range: u64,
    meta_sum: u64,
    body_sum: u64,
    seen: u64,
    users: HashSet<String>,
    names: HashMap<String, u64>,
    ips: HashMap<String, u64>,
    workflows: HashMap<String, u64>,
    first_at: Option<String>,
    last_at: String,
}

impl Accumulator {
    fn add(&mut self, main: bool, body: &Value, body_bytes: usize, at: &str) {
        self.seen += 1;
        if self.first_at.is_none() {
            self.first_at = Some(at.to_owned());
        }
        at.clone_into(&mut self.last_at);
        let desc = body["description"]
            .as_str()
            .map_or(0, |d| d.chars().count());
        self.desc_min = if self.seen == 1 {
            desc
        } else {
            self.desc_min.min(desc)
        };
        self.desc_max = self.desc_max.max(desc);
        self.desc_sum += desc as u64;
        self.desc_in_range += u64::from((80..=150).contains(&desc));
        self.meta_sum += serde_json::to_string(&body["metadata"]).map_or(0, |s| s.len()) as u64;
        self.body_sum += body_bytes as u64;
        if let Some(id) = body["actor"]["id"].as_str()
            && !self.users.contains(id)
        {
            self.users.insert(id.to_owned());
        }
        if main {
            self.main += 1;
            match body["event"].as_str() {
                Some("Login") => self.login += 1,
                Some("Role created") => self.role_created += 1,
                _ => {}
            }
            for (key, map) in [
                (&body["actor"]["name"], &mut self.names),
                (&body["ip_address"], &mut self.ips),
                (&body["workflow_id"], &mut self.workflows),
            ] {
                if let Some(v) = key.as_str() {
                    match map.get_mut(v) {
                        Some(n) => *n += 1,
                        None => {
                            map.insert(v.to_owned(), 1);
                        }
                    }
                }
            }
        }
    }

    fn finish(self, n: u64, file_bytes: u64, secs: f64) -> DatasetStats {
        let nf = n.max(1) as f64;
        let mf = self.main.max(1) as f64;
        // Ties go to the smallest name, so a seed always picks the same.
        let busiest = |m: &HashMap<String, u64>| {
            m.iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(k, v)| (k.clone(), *v))
                .unwrap_or_default()
        };
        let (busy_user, busy_user_events) = busiest(&self.names);
        let (busy_ip, busy_ip_events) = busiest(&self.ips);
        let (busy_workflow, busy_workflow_events) = busiest(&self.workflows);
        let (rare_ip, rare_ip_events) = self
            .ips
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))
            .map(|(k, v)| (k.clone(), *v))
            .unwrap_or_default();
        DatasetStats {
            events: n,
            main_account_events: self.main,
            accounts: OTHER_ACCOUNTS + 1,
            users: 0,
            users_seen: self.users.len(),
            days: DAYS,
            first_at: self.first_at.unwrap_or_default(),
            last_at: self.last_at,
            file_bytes,
            generate_secs: secs,
            login_share: self.login as f64 / mf,
            role_created_share: self.role_created as f64 / mf,
            description_chars_min: self.desc_min,
            description_chars_mean: self.desc_sum as f64 / nf,
            description_chars_max: self.desc_max,
            description_in_80_150: self.desc_in_range as f64 / nf,
            metadata_bytes_mean: self.meta_sum as f64 / nf,
            body_bytes_mean: self.body_sum as f64 / nf,
            busy_user,
            busy_user_events,
            busy_ip,
            busy_ip_events,
            rare_ip,
            rare_ip_events,
            busy_workflow,
            busy_workflow_events,
        }
    }
}

/// Reads the dataset file line by line: `(account, ingest JSON)`.
#[derive(Debug)]
pub struct Reader {
    lines: std::io::Lines<BufReader<std::fs::File>>,
}

impl Reader {
    pub fn open(path: &PathBuf) -> Result<Reader> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Reader {
            lines: BufReader::with_capacity(1 << 20, file).lines(),
        })
    }
}

impl Iterator for Reader {
    type Item = Result<(String, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next()? {
            Ok(l) => l,
            Err(e) => return Some(Err(e.into())),
        };
        Some(match line.split_once('\t') {
            Some((a, j)) => Ok((a.to_owned(), j.to_owned())),
            None => Err(anyhow::anyhow!("dataset line without an account")),
        })
    }
}
