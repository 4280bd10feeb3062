//! Export encodings: the seed's CSV (RFC 4180, CRLF, formula-injection
//! guard) and JSONL (one full record per line, the input of `verify`).

use std::borrow::Cow;

use crate::record::{Micros, Record, RecordBody};

/// The CSV header, exactly as the product requires.
pub const CSV_HEADER: [&str; 6] = [
    "Date and Time",
    "Event Name",
    "Event Category",
    "Description",
    "User/App Name",
    "IP Address",
];

/// File name of an account export.
pub const ACCOUNT_CSV_FILE: &str = "Account_Audit_Logs.csv";
/// File name of a workflow export.
pub const WORKFLOW_CSV_FILE: &str = "Workflow_Audit_Logs.csv";
/// File name of an account export as JSONL.
pub const ACCOUNT_JSONL_FILE: &str = "Account_Audit_Logs.jsonl";
/// File name of a workflow export as JSONL.
pub const WORKFLOW_JSONL_FILE: &str = "Workflow_Audit_Logs.jsonl";

/// Neutralises a cell a spreadsheet would run as a formula (OWASP: a
/// leading `=`, `+`, `-`, `@`, tab or carriage return gets a `'` prefix).
/// The full-width forms `＝ ＋ － ＠` get it too: some spreadsheets fold
/// them to their ASCII twins before deciding what a cell is. Nothing else
/// is altered.
pub fn guard_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    if starts_formula(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Whether a spreadsheet could read `cell` as a formula.
pub fn starts_formula(cell: &str) -> bool {
    matches!(
        cell.chars().next(),
        Some(
            '=' | '+' | '-' | '@' | '\t' | '\r' | '\u{FF1D}' | '\u{FF0B}' | '\u{FF0D}' | '\u{FF20}'
        )
    )
}

/// `2026-11-25T11:00:00.123+01:00`: RFC 3339 in the viewer's zone with
/// milliseconds.
pub fn format_in_zone(t: Micros, tz: &jiff::tz::TimeZone) -> String {
    let ts = t.to_timestamp();
    let offset = tz.to_offset(ts).seconds();
    let (sign, abs) = if offset < 0 {
        ('-', -offset)
    } else {
        ('+', offset)
    };
    let dt = tz.to_datetime(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{sign}{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        t.0.rem_euclid(1_000_000) / 1000,
        abs / 3600,
        (abs % 3600) / 60
    )
}

/// Writes CSV rows into an in-memory buffer that the caller drains batch by
/// batch, so a streamed export never holds more than one batch.
///
/// Cells go through the `csv` crate (CRLF, `QuoteStyle::Necessary`); what
/// the export's hot path does by hand is reading the six columns from the
/// canonical JSON (our own format) and printing the time with the zone's
/// offset and the date cached (perf: serde_json and `format!` were most of
/// the encoder's time).
pub struct CsvEncoder {
    writer: csv::Writer<Vec<u8>>,
    clock: ZoneClock,
}

impl std::fmt::Debug for CsvEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvEncoder").finish_non_exhaustive()
    }
}

impl CsvEncoder {
    fn writer() -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            // A batch of 1,000 rows is ~150–200 KiB of CSV: one allocation
            // instead of growing (and copying) from 64 KiB twice.
            .from_writer(Vec::with_capacity(256 * 1024))
    }

    /// A new encoder; its first bytes are the header.
    pub fn new(tz: jiff::tz::TimeZone) -> CsvEncoder {
        let mut writer = CsvEncoder::writer();
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(CSV_HEADER);
        CsvEncoder {
            writer,
            clock: ZoneClock::new(tz),
        }
    }

    /// Appends one row.
    pub fn push(&mut self, r: &RecordBody) {
        self.push_fields(
            r.occurred_at,
            &r.event,
            &r.category,
            &r.description,
            r.actor.display_name(),
            r.ip_address.as_deref(),
        );
    }

    /// Appends the row of a record given as its canonical JSON, reading
    /// only the six columns (strings without escapes are borrowed, the
    /// metadata is not read): the export's hot path. The canonical form's
    /// fixed key order lets a cursor pick the columns without a JSON
    /// parser; anything unexpected goes through `serde_json` instead. Bytes
    /// that are not UTF-8 where a column is read are an error; the metadata
    /// is not printed, so it is not checked.
    pub fn push_canonical(&mut self, canonical: &[u8]) -> Result<(), serde_json::Error> {
        if let Some(r) = CanonicalColumns::read(canonical) {
            let user = r.actor_name.as_deref().unwrap_or(&r.actor_id);
            self.push_fields(
                r.occurred_at,
                &r.event,
                &r.category,
                &r.description,
                user,
                r.ip_address.as_deref(),
            );
            return Ok(());
        }
        let r: CsvView<'_> = serde_json::from_slice(canonical)?;
        let user = r.actor.name.as_deref().unwrap_or(&r.actor.id);
        self.push_fields(
            r.occurred_at,
            &r.event,
            &r.category,
            &r.description,
            user,
            r.ip_address.as_deref(),
        );
        Ok(())
    }

    fn push_fields(
        &mut self,
        at: Micros,
        event: &str,
        category: &str,
        description: &str,
        user: &str,
        ip: Option<&str>,
    ) {
        let mut buf = [0u8; 32];
        let when: Cow<'_, [u8]> = match self.clock.format(at, &mut buf) {
            // Digits and separators only: nothing to guard or quote.
            Some(n) => Cow::Borrowed(&buf[..n]),
            None => Cow::Owned(
                guard_formula(&format_in_zone(at, &self.clock.tz))
                    .into_owned()
                    .into_bytes(),
            ),
        };
        // Writing to a Vec cannot fail.
        let w = &mut self.writer;
        let _ = w.write_field(&when);
        for cell in [event, category, description, user, ip.unwrap_or("")] {
            let _ = w.write_field(guard_formula(cell).as_bytes());
        }
        let _ = w.write_record(None::<&[u8]>);
    }

    /// Takes the bytes written so far.
    pub fn take(&mut self) -> Vec<u8> {
        let writer = std::mem::replace(&mut self.writer, CsvEncoder::writer());
        writer.into_inner().unwrap_or_default()
    }
}

/// [`format_in_zone`] without `format!` and with the zone's work cached:
/// the offset holds between two transitions of the zone, and the date
/// between two local midnights, so consecutive rows of an export (close in
/// time) mostly reuse both and only print the time of day.
struct ZoneClock {
    tz: jiff::tz::TimeZone,
    /// `[from, until)` in Unix microseconds where `offset` holds.
    from: i64,
    until: i64,
    offset: i64,
    /// `+01:00`: the offset as [`format_in_zone`] prints it.
    suffix: [u8; 6],
    /// The local day (days since 1970-01-01) `date` holds, `YYYY-MM-DDT`.
    day: i64,
    date: [u8; 11],
}

impl ZoneClock {
    fn new(tz: jiff::tz::TimeZone) -> ZoneClock {
        ZoneClock {
            tz,
            from: 0,
            until: 0,
            offset: 0,
            suffix: *b"+00:00",
            day: i64::MIN,
            date: [0; 11],
        }
    }

    /// Writes the time into `buf` and returns its length, or `None` for
    /// years outside 0..=9999 (left to [`format_in_zone`]).
    fn format(&mut self, at: Micros, buf: &mut [u8; 32]) -> Option<usize> {
        let t = at.0;
        if !(self.from <= t && t < self.until) {
            self.learn_offset(at);
        }
        let local = t.div_euclid(1_000_000) + self.offset;
        let day = local.div_euclid(86_400);
        if day != self.day {
            let d = self.tz.to_datetime(at.to_timestamp()).date();
            if !(0..=9999).contains(&d.year()) {
                return None;
            }
            let mut date = *b"0000-00-00T";
            put_digits(&mut date[0..4], d.year() as u32);
            put_digits(&mut date[5..7], d.month() as u32);
            put_digits(&mut date[8..10], d.day() as u32);
            (self.day, self.date) = (day, date);
        }
        let secs = local.rem_euclid(86_400) as u32;
        let ms = (t.rem_euclid(1_000_000) / 1000) as u32;
        buf[..11].copy_from_slice(&self.date);
        let mut tod = *b"00:00:00.000";
        put_digits(&mut tod[0..2], secs / 3600);
        put_digits(&mut tod[3..5], secs / 60 % 60);
        put_digits(&mut tod[6..8], secs % 60);
        put_digits(&mut tod[9..12], ms);
        buf[11..23].copy_from_slice(&tod);
        buf[23..29].copy_from_slice(&self.suffix);
        Some(29)
    }

    /// Finds the offset at `at` and the span between the zone's
    /// transitions around it, where it holds.
    fn learn_offset(&mut self, at: Micros) {
        let ts = at.to_timestamp();
        let offset = self.tz.to_offset(ts).seconds();
        // A transition exactly at `at` is not "preceding" it; the one
        // before it may be, with another offset: then the span starts here.
        let from = self
            .tz
            .preceding(ts)
            .next()
            .map_or(i64::MIN, |tr| tr.timestamp().as_microsecond());
        let from = if from == i64::MIN
            || self.tz.to_offset(Micros(from).to_timestamp()).seconds() == offset
        {
            from
        } else {
            at.0
        };
        let until = self
            .tz
            .following(ts)
            .next()
            .map_or(i64::MAX, |tr| tr.timestamp().as_microsecond());
        let abs = offset.unsigned_abs();
        let mut suffix = *b"+00:00";
        if offset < 0 {
            suffix[0] = b'-';
        }
        // Hours of an offset are below 26 and print as two digits.
        put_digits(&mut suffix[1..3], abs / 3600);
        put_digits(&mut suffix[4..6], abs % 3600 / 60);
        (self.from, self.until, self.offset, self.suffix) = (from, until, offset.into(), suffix);
        // The date cache belongs to the old offset's local days.
        self.day = i64::MIN;
    }
}

/// Writes `v` as `dst.len()` decimal digits, zero-padded (higher digits
/// than fit are dropped; callers pass values that fit).
fn put_digits(dst: &mut [u8], mut v: u32) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The six columns of a record read straight from its canonical JSON (the
/// key order of `record.rs`), or `None` when the bytes do not have exactly
/// that shape.
///
/// Only the bytes up to the description are checked to be UTF-8, once: the
/// CSV prints nothing after them (the metadata), and checking the whole
/// record was a quarter of the encoder's time (perf, 1M-row export).
struct CanonicalColumns<'a> {
    category: Cow<'a, str>,
    event: Cow<'a, str>,
    occurred_at: Micros,
    actor_id: Cow<'a, str>,
    actor_name: Option<Cow<'a, str>>,
    ip_address: Option<Cow<'a, str>>,
    description: Cow<'a, str>,
}

impl<'a> CanonicalColumns<'a> {
    fn read(b: &'a [u8]) -> Option<CanonicalColumns<'a>> {
        let mut c = Cursor { b, i: 0 };
        c.field("{\"id\":")?;
        c.lit(",\"seq\":")?;
        c.digits()?;
        c.field(",\"account_id\":")?;
        c.field(",\"level\":")?;
        let category = c.field(",\"category\":")?;
        let event = c.field(",\"event\":")?;
        let occurred_at = c.field(",\"occurred_at\":")?;
        c.field(",\"recorded_at\":")?;
        c.field(",\"actor\":{\"kind\":")?;
        let actor_id = c.field(",\"id\":")?;
        let actor_name = c.nullable_field(",\"name\":")?;
        c.nullable_field(",\"email\":")?;
        let ip_address = c.nullable_field("},\"ip_address\":")?;
        c.nullable_field(",\"workflow_id\":")?;
        let description = c.field(",\"description\":")?;
        c.lit(",\"metadata\":{")?;
        if !b.ends_with(b"}") {
            return None;
        }
        // Everything read so far, checked once; each cell is then a slice
        // of it (the cursor only stops on ASCII quotes, so on boundaries).
        let head = std::str::from_utf8(&b[..c.i]).ok()?;
        let occurred_at = occurred_at.into_str(head)?;
        let occurred_at = Micros::parse_canonical(&occurred_at)
            .or_else(|| Micros::parse_rfc3339(&occurred_at).ok())?;
        Some(CanonicalColumns {
            category: category.into_str(head)?,
            event: event.into_str(head)?,
            occurred_at,
            actor_id: actor_id.into_str(head)?,
            actor_name: match actor_name {
                Some(v) => Some(v.into_str(head)?),
                None => None,
            },
            ip_address: match ip_address {
                Some(v) => Some(v.into_str(head)?),
                None => None,
            },
            description: description.into_str(head)?,
        })
    }
}

/// A JSON string value found by the [`Cursor`]: where it lies when it has
/// no escapes (checked as UTF-8 later, with the rest), else decoded.
enum Cell {
    At(std::ops::Range<usize>),
    Decoded(String),
}

impl Cell {
    fn into_str(self, head: &str) -> Option<Cow<'_, str>> {
        match self {
            Cell::At(r) => head.get(r).map(Cow::Borrowed),
            Cell::Decoded(s) => Some(Cow::Owned(s)),
        }
    }
}

/// A position in canonical JSON.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn lit(&mut self, lit: &str) -> Option<()> {
        let rest = self.b.get(self.i..)?;
        rest.starts_with(lit.as_bytes())
            .then(|| self.i += lit.len())
    }

    fn digits(&mut self) -> Option<()> {
        let rest = self.b.get(self.i..)?;
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        (n > 0).then(|| self.i += n)
    }

    /// A JSON string: its place when it has no escapes, else decoded by
    /// `serde_json` (which checks its UTF-8).
    fn string(&mut self) -> Option<Cell> {
        let b = self.b;
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let stop = start + memchr::memchr2(b'"', b'\\', &b[start..])?;
        if b[stop] == b'"' {
            self.i = stop + 1;
            return Some(Cell::At(start..stop));
        }
        // Escapes: find the closing quote (one not escaped), then decode.
        let mut j = stop;
        loop {
            match *b.get(j)? {
                b'\\' => j += 2,
                b'"' => break,
                _ => j += 1,
            }
        }
        let decoded: String = serde_json::from_slice(b.get(self.i..=j)?).ok()?;
        self.i = j + 1;
        Some(Cell::Decoded(decoded))
    }

    fn nullable_string(&mut self) -> Option<Option<Cell>> {
        if self.lit("null").is_some() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// `key` (the literal up to the value), then a string value.
    fn field(&mut self, key: &str) -> Option<Cell> {
        self.lit(key)?;
        self.string()
    }

    /// `key`, then a string or `null`.
    fn nullable_field(&mut self, key: &str) -> Option<Option<Cell>> {
        self.lit(key)?;
        self.nullable_string()
    }
}

/// The columns of a record the CSV needs.
#[derive(serde::Deserialize)]
struct CsvView<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    category: Cow<'a, str>,
    occurred_at: Micros,
    #[serde(borrow)]
    actor: ActorView<'a>,
    #[serde(borrow)]
    ip_address: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Cow<'a, str>,
}

#[derive(serde::Deserialize)]
struct ActorView<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// Appends one JSONL line (the API JSON of the record and `\n`).
pub fn push_jsonl(canonical: &[u8], leaf_hash: &crate::record::Hash, out: &mut Vec<u8>) {
    Record::json_from_canonical(canonical, leaf_hash, out);
    out.push(b'\n');
}

/// How an export ended, for its "Audit logs exported" record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportEnd {
    /// Every matching row went out.
    Complete,
    /// The client closed the connection before the end.
    ClientGone,
    /// The client read nothing for the send deadline and was dropped.
    SendDeadline,
    /// The export stopped on an error or its query deadline.
    Failed,
}

impl ExportEnd {
    /// The `stop_reason` metadata value (the empty string when complete).
    pub fn as_str(self) -> &'static str {
        match self {
            ExportEnd::Complete => "",
            ExportEnd::ClientGone => "client_gone",
            ExportEnd::SendDeadline => "send_deadline",
            ExportEnd::Failed => "failed",
        }
    }
}

/// What an export was and how it went: the input of [`export_event`].
#[derive(Clone, Copy, Debug)]
pub struct ExportSummary<'a> {
    pub token_id: &'a str,
    /// `csv` or `jsonl`.
    pub format: &'a str,
    /// The range as the list endpoint echoes it (JSON text).
    pub range: &'a str,
    /// The filters in their wire form (`column:op:value`).
    pub filters: &'a [String],
    pub join: crate::query::Join,
    /// Rows handed to the client (all of them when complete).
    pub rows: u64,
    pub end: ExportEnd,
}

/// `text` when it fits in `max` characters; else its start, cut to leave
/// room for `… [N chars, sha256 <hex>]`: the length and the SHA-256 of the
/// whole text, so the record still pins exactly what was asked (whoever
/// holds the full text can check it) while staying within the limits of
/// any ingested string.
pub fn bounded_summary(text: &str, max: usize) -> String {
    use sha2::{Digest, Sha256};
    let chars = text.chars().count();
    if chars <= max {
        return text.to_owned();
    }
    let tail = format!(
        "… [{chars} chars, sha256 {}]",
        hex::encode(Sha256::digest(text.as_bytes()))
    );
    let keep = max.saturating_sub(tail.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(&tail);
    out
}

/// The "Audit logs exported" record of an export, complete or not.
///
/// Pure (the caller passes the time): the export handler and anything else
/// that records an export build the same event. Every field obeys the
/// limits of an ingested event (`validate`): range and filters longer than
/// [`crate::validate::MAX_STRING_CHARS`] are summarized with their hash
/// ([`bounded_summary`]); a test checks the event against the catalog entry
/// and those limits.
pub fn export_event(s: &ExportSummary<'_>, now: Micros) -> crate::validate::ValidEvent {
    use crate::catalog::{Catalog, Level};
    use crate::record::{Actor, ActorKind};
    use crate::validate::{MAX_STRING_CHARS, RESERVED_CATEGORY};
    use serde_json::json;

    let id = Catalog::get()
        .export_event()
        .expect("the catalog has the export event");
    let join = match s.join {
        crate::query::Join::And => " AND ",
        crate::query::Join::Or => " OR ",
    };
    let filters = bounded_summary(&s.filters.join(join), MAX_STRING_CHARS);
    let complete = s.end == ExportEnd::Complete;
    let mut metadata = std::collections::BTreeMap::from([
        (
            "token_id".to_owned(),
            json!(bounded_summary(s.token_id, MAX_STRING_CHARS)),
        ),
        ("format".to_owned(), json!(s.format)),
        (
            "range".to_owned(),
            json!(bounded_summary(s.range, MAX_STRING_CHARS)),
        ),
        ("filters".to_owned(), json!(filters)),
        ("row_count".to_owned(), json!(s.rows)),
        (
            "status".to_owned(),
            json!(if complete { "complete" } else { "partial" }),
        ),
    ]);
    if !complete {
        metadata.insert("stop_reason".to_owned(), json!(s.end.as_str()));
    }
    let entries = |n: u64| if n == 1 { "entry" } else { "entries" };
    let format = s.format.to_uppercase();
    let token: String = s.token_id.chars().take(64).collect();
    let description = match s.end {
        ExportEnd::Complete => format!(
            "Exported {} audit log {} as {format} with token {token}",
            s.rows,
            entries(s.rows)
        ),
        end => format!(
            "Partial export: {} audit log {} sent as {format} with token {token} before it stopped ({})",
            s.rows,
            entries(s.rows),
            match end {
                ExportEnd::ClientGone => "the client went away",
                ExportEnd::SendDeadline => "the client stopped reading",
                _ => "an error",
            }
        ),
    };
    crate::validate::ValidEvent {
        event_id: id,
        level: Level::Account,
        category: RESERVED_CATEGORY.into(),
        event: "Audit logs exported".into(),
        occurred_at: now,
        actor: Actor {
            kind: ActorKind::App,
            id: token,
            name: None,
            email: None,
        },
        ip_address: None,
        workflow_id: None,
        description,
        metadata,
        idempotency_key: None,
        defaulted: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 11): the export's own record copied up to 50
    /// filters of 4,096 characters into the immutable log. Now every field
    /// obeys the limits of an ingested event and the catalog entry.
    #[test]
    fn export_event_obeys_the_catalog_and_the_ingest_limits() {
        use crate::catalog::{Catalog, FieldType};
        use crate::validate::{MAX_DESCRIPTION_CHARS, MAX_STRING_CHARS};
        let long: Vec<String> = (0..50)
            .map(|i| format!("description:contains:{i}{}", "é".repeat(4096)))
            .collect();
        let range = format!("{{\"tz\":\"{}\"}}", "x".repeat(5000));
        for (filters, end) in [
            (long.clone(), ExportEnd::Complete),
            (long.clone(), ExportEnd::SendDeadline),
            (vec!["user:eq:Jane".to_owned()], ExportEnd::ClientGone),
            (Vec::new(), ExportEnd::Failed),
        ] {
            let summary = ExportSummary {
                token_id: "tok_1",
                format: "csv",
                range: &range,
                filters: &filters,
                join: crate::query::Join::Or,
                rows: 7,
                end,
            };
            let ev = export_event(&summary, Micros(1_700_000_000_000_000));
            let entry = Catalog::get().entry(ev.event_id);
            assert_eq!(entry.event.name, "Audit logs exported");
            assert!(ev.description.chars().count() <= MAX_DESCRIPTION_CHARS);
            for (key, value) in &ev.metadata {
                let field = entry
                    .event
                    .field(key)
                    .unwrap_or_else(|| panic!("`{key}` is not a field of the catalog entry"));
                match field.ty {
                    FieldType::String => {
                        let v = value.as_str().expect("a string");
                        assert!(v.chars().count() <= MAX_STRING_CHARS, "{key}: {}", v.len());
                    }
                    FieldType::Number => assert!(value.is_number(), "{key}"),
                    FieldType::Boolean => assert!(value.is_boolean(), "{key}"),
                }
            }
            for f in entry.event.fields.iter().filter(|f| f.required) {
                assert!(ev.metadata.contains_key(&f.key), "{} missing", f.key);
            }
            assert_eq!(ev.metadata["row_count"], 7);
            let partial = end != ExportEnd::Complete;
            assert_eq!(
                ev.metadata["status"],
                if partial { "partial" } else { "complete" }
            );
            assert_eq!(ev.metadata.contains_key("stop_reason"), partial);
            assert_eq!(ev.description.starts_with("Partial export"), partial);
        }
    }

    #[test]
    fn bounded_summary_keeps_short_text_and_hashes_long_text() {
        assert_eq!(bounded_summary("user:eq:Jane", 1024), "user:eq:Jane");
        let exact = "a".repeat(1024);
        assert_eq!(bounded_summary(&exact, 1024), exact);
        let long = "ü".repeat(3000);
        let s = bounded_summary(&long, 1024);
        assert_eq!(s.chars().count(), 1024);
        assert!(s.starts_with("üüü"));
        assert!(s.contains("[3000 chars, sha256 "), "{s}");
        // Another long text of the same start and length hashes apart.
        let other = format!("{}x", "ü".repeat(2999));
        assert_ne!(bounded_summary(&other, 1024), s);
    }
    use crate::catalog::Level;
    use crate::record::{Actor, ActorKind};

    fn body(desc: &str, name: &str) -> RecordBody {
        RecordBody {
            id: "01JDX3Q6Z0M3A5V4S2R1N0P9QK".into(),
            seq: 0,
            account_id: "acme".into(),
            level: Level::Account,
            category: "Roles".into(),
            event: "Role created".into(),
            occurred_at: Micros::parse_rfc3339("2026-11-25T10:00:00.123Z").unwrap(),
            recorded_at: Micros::parse_rfc3339("2026-11-25T10:00:00.123Z").unwrap(),
            actor: Actor {
                kind: ActorKind::User,
                id: "u".into(),
                name: Some(name.into()),
                email: None,
            },
            ip_address: Some("203.0.113.7".into()),
            workflow_id: None,
            description: desc.into(),
            metadata: Default::default(),
        }
    }

    #[test]
    fn csv_round_trips_through_a_parser_with_guards() {
        let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        let mut enc = CsvEncoder::new(tz);
        let nasty = "He said \"hi\", then\r\nleft; =cmd|' /C calc'!A0";
        enc.push(&body(nasty, "=HYPERLINK(\"x\")"));
        enc.push(&body("-2+3", "@SUM(A1)"));
        enc.push(&body("\tx", "Bob"));
        let bytes = enc.take();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(
            "Date and Time,Event Name,Event Category,Description,User/App Name,IP Address\r\n"
        ));
        let mut rdr = csv::Reader::from_reader(bytes.as_slice());
        let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][0], "2026-11-25T11:00:00.123+01:00");
        assert_eq!(
            &rows[0][3], nasty,
            "only a leading formula character is guarded"
        );
        assert_eq!(&rows[0][4], "'=HYPERLINK(\"x\")");
        assert_eq!(&rows[1][3], "'-2+3");
        assert_eq!(&rows[1][4], "'@SUM(A1)");
        assert_eq!(&rows[2][3], "'\tx");
        assert_eq!(&rows[2][5], "203.0.113.7");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Whatever the text, a CSV export parses back to the same cells,
        /// each guarded exactly when a spreadsheet could read it as a
        /// formula, and no cell a spreadsheet sees starts with a trigger.
        #[test]
        fn csv_cells_round_trip_and_never_start_a_formula(
            desc in "[=+\\-@\t\r\n\",;a-z \u{FF1D}\u{FF0B}\u{FF0D}\u{FF20}é']{0,12}",
            name in "[=+\\-@\t\r\n\",;A-Z \u{FF1D}\u{FF20}']{1,8}",
        ) {
            let tz = jiff::tz::TimeZone::UTC;
            let (a, b) = encoded(&[body(&desc, &name)], &tz);
            proptest::prop_assert_eq!(&a, &b);
            let mut rdr = csv::Reader::from_reader(a.as_slice());
            let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
            proptest::prop_assert_eq!(rows.len(), 1);
            for (cell, sent) in [(&rows[0][3], &desc), (&rows[0][4], &name)] {
                if starts_formula(sent) {
                    proptest::prop_assert_eq!(cell.to_owned(), format!("'{sent}"));
                } else {
                    proptest::prop_assert_eq!(cell, sent.as_str());
                }
                proptest::prop_assert!(!starts_formula(cell), "{:?}", cell);
            }
        }
    }

    #[test]
    fn canonical_rows_equal_parsed_rows() {
        let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
        let mut a = CsvEncoder::new(tz.clone());
        let mut b = CsvEncoder::new(tz);
        for r in [
            body("plain", "Jane"),
            body("=x, \"q\"\n", "Bob \\ \u{1F600}"),
        ] {
            a.push(&r);
            b.push_canonical(&r.canonical_bytes()).unwrap();
        }
        assert_eq!(a.take(), b.take());
    }

    /// The encoder as it was before it was written by hand: `serde_json`
    /// view, `format_in_zone`, the `csv` crate. The reference every fast
    /// path is held to.
    fn reference_csv(rows: &[RecordBody], tz: &jiff::tz::TimeZone) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::new());
        w.write_record(CSV_HEADER).unwrap();
        for r in rows {
            let when = format_in_zone(r.occurred_at, tz);
            let row = [
                guard_formula(&when),
                guard_formula(&r.event),
                guard_formula(&r.category),
                guard_formula(&r.description),
                guard_formula(r.actor.display_name()),
                guard_formula(r.ip_address.as_deref().unwrap_or("")),
            ];
            w.write_record(row.iter().map(|c| c.as_bytes())).unwrap();
        }
        w.into_inner().unwrap()
    }

    /// Both of the encoder's entry points, on `rows`.
    fn encoded(rows: &[RecordBody], tz: &jiff::tz::TimeZone) -> (Vec<u8>, Vec<u8>) {
        let (mut a, mut b) = (CsvEncoder::new(tz.clone()), CsvEncoder::new(tz.clone()));
        for r in rows {
            a.push(r);
            b.push_canonical(&r.canonical_bytes()).unwrap();
        }
        (a.take(), b.take())
    }

    /// A small deterministic generator.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn text(&mut self) -> String {
            const PIECES: [&str; 20] = [
                "a",
                "Z",
                " ",
                ",",
                "\"",
                "\r",
                "\n",
                "\r\n",
                "=",
                "+",
                "-",
                "@",
                "\t",
                "'",
                "\\",
                "é",
                "\u{1F600}",
                "\u{1}",
                "\u{7f}",
                "0",
            ];
            let n = self.next() % 9;
            (0..n)
                .map(|_| PIECES[(self.next() % 20) as usize])
                .collect()
        }
    }

    const ZONES: [&str; 14] = [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Asia/Kathmandu",
        "America/St_Johns",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "Europe/Dublin",
        "Africa/Casablanca",
        "America/Sao_Paulo",
        "Pacific/Kiritimati",
        "Europe/Amsterdam",
        "America/Caracas",
    ];

    #[test]
    fn awkward_cells_equal_the_reference_encoder() {
        let tz = jiff::tz::TimeZone::get("Asia/Kathmandu").unwrap();
        let mut g = Lcg(7);
        let rows: Vec<RecordBody> = (0..3000)
            .map(|i| {
                let mut r = body(&g.text(), &g.text());
                r.event = g.text();
                r.category = g.text();
                r.actor.id = g.text();
                if i % 3 == 0 {
                    r.actor.name = None;
                }
                r.ip_address = (i % 4 != 0).then(|| g.text());
                r.occurred_at = Micros(r.occurred_at.0 - (g.next() as i64) * 1000);
                r
            })
            .collect();
        let (a, b) = encoded(&rows, &tz);
        let reference = reference_csv(&rows, &tz);
        assert!(a == reference && b == reference);
    }

    #[test]
    fn fast_times_equal_format_in_zone_across_transitions() {
        let mut g = Lcg(11);
        let mut zones: Vec<jiff::tz::TimeZone> = ZONES
            .iter()
            .map(|z| jiff::tz::TimeZone::get(z).unwrap())
            .collect();
        for hours in [-12, -3, 5, 14] {
            zones.push(jiff::tz::TimeZone::fixed(jiff::tz::offset(hours)));
        }
        zones.push(jiff::tz::TimeZone::fixed(
            jiff::tz::Offset::from_seconds(-(3 * 3600 + 30 * 60 + 17)).unwrap(),
        ));
        for tz in &zones {
            // Every transition from 1890 to 2045, the instants around it,
            // in export order (newest first) and shuffled.
            let mut instants = Vec::new();
            let start = jiff::Timestamp::from_second(-2_524_521_600).unwrap();
            for tr in tz.following(start).take(400) {
                let t = tr.timestamp().as_microsecond();
                if t > 2_366_841_600_000_000 {
                    break;
                }
                for d in [
                    -3_600_000_000,
                    -1_000_000,
                    -1000,
                    -1,
                    0,
                    1,
                    999,
                    1_000_000,
                    7_200_000_000,
                ] {
                    instants.push(t + d);
                }
            }
            // Leap days, year ends, the extremes the clock prints itself,
            // and random instants over years 1 to 9999.
            for s in [
                "2024-02-29T23:59:59.999Z",
                "2000-02-29T12:00:00Z",
                "1900-03-01T00:00:00Z",
                "2026-12-31T23:30:00.5Z",
                "0000-01-01T12:00:00Z",
                "0001-01-01T00:00:00Z",
                "9999-12-30T12:59:59.999Z",
                "1969-12-31T23:59:59.999Z",
            ] {
                instants.push(Micros::parse_rfc3339(s).unwrap().0);
            }
            for _ in 0..3000 {
                instants.push(
                    -62_135_596_800_000_000
                        + (g.next() << 31 | g.next()) as i64 % 315_537_000_000_000_000,
                );
            }
            let mut newest_first = instants.clone();
            newest_first.sort_unstable_by(|a, b| b.cmp(a));
            for order in [newest_first, instants] {
                let mut clock = ZoneClock::new(tz.clone());
                let mut buf = [0u8; 32];
                for &t in &order {
                    let expected = format_in_zone(Micros(t), tz);
                    let n = clock.format(Micros(t), &mut buf).expect("year in 0..=9999");
                    assert_eq!(
                        std::str::from_utf8(&buf[..n]).unwrap(),
                        expected,
                        "{t} in {tz:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn years_the_clock_does_not_print_fall_back_to_format_in_zone() {
        let tz = jiff::tz::TimeZone::get("America/St_Johns").unwrap();
        let rows: Vec<RecordBody> = [
            "-000005-06-01T10:00:00.001Z",
            "0000-01-01T01:00:00Z",
            "9999-12-30T20:59:59.999Z",
            "-009999-01-03T00:00:00Z",
        ]
        .iter()
        .map(|s| {
            let mut r = body("d", "n");
            r.occurred_at = Micros::parse_rfc3339(s).unwrap();
            r
        })
        .collect();
        // Only `push`: the canonical form of a negative year (`-005-…`) is
        // not RFC 3339 and never was readable back.
        let mut enc = CsvEncoder::new(tz.clone());
        rows.iter().for_each(|r| enc.push(r));
        let a = enc.take();
        let reference = reference_csv(&rows, &tz);
        assert_eq!(
            String::from_utf8(a).unwrap(),
            String::from_utf8(reference.clone()).unwrap()
        );
        // A negative year starts with `-`: guarded like any other cell.
        assert!(String::from_utf8(reference).unwrap().contains("\r\n'-005-"));
    }

    #[test]
    fn canonical_columns_fall_back_to_serde_on_another_shape() {
        let tz = jiff::tz::TimeZone::UTC;
        let r = body("x", "y");
        let canonical = String::from_utf8(r.canonical_bytes()).unwrap();
        assert!(CanonicalColumns::read(canonical.as_bytes()).is_some());
        // The same record with keys spaced out still encodes, via serde.
        let spaced = canonical.replace("\",\"", "\", \"");
        assert!(CanonicalColumns::read(spaced.as_bytes()).is_none());
        let mut a = CsvEncoder::new(tz.clone());
        let mut b = CsvEncoder::new(tz);
        a.push(&r);
        b.push_canonical(spaced.as_bytes()).unwrap();
        assert_eq!(a.take(), b.take());
    }

    #[test]
    fn bytes_that_are_not_utf8_fail_a_row_only_where_it_prints_them() {
        let tz = jiff::tz::TimeZone::UTC;
        let r = body("a description", "Ann");
        let canonical = r.canonical_bytes();
        let at = |needle: &str| {
            canonical
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap()
        };
        // In a printed cell: an error, by the fast path and by serde alike.
        let mut bad = canonical.clone();
        bad[at("a description")] = 0xff;
        assert!(CanonicalColumns::read(&bad).is_none());
        assert!(CsvEncoder::new(tz.clone()).push_canonical(&bad).is_err());
        // In the metadata, which the CSV does not print: the row as usual.
        let mut meta = canonical.clone();
        let m = at("\"metadata\":{") + "\"metadata\":{".len();
        meta.splice(m..m, *b"\"k\":\"\xff\"");
        let (mut a, mut b) = (CsvEncoder::new(tz.clone()), CsvEncoder::new(tz));
        a.push(&r);
        b.push_canonical(&meta).unwrap();
        assert_eq!(a.take(), b.take());
    }

    #[test]
    fn zone_formatting_handles_negative_offsets() {
        let tz = jiff::tz::TimeZone::get("America/St_Johns").unwrap();
        let t = Micros::parse_rfc3339("2026-01-01T00:00:00.005Z").unwrap();
        assert_eq!(format_in_zone(t, &tz), "2025-12-31T20:30:00.005-03:30");
    }
}
