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

/// Neutralises a cell a spreadsheet would run as a formula (OWASP: a
/// leading `=`, `+`, `-`, `@`, tab or carriage return gets a `'` prefix).
/// Nothing else is altered.
pub fn guard_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
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
pub struct CsvEncoder {
    writer: csv::Writer<Vec<u8>>,
    tz: jiff::tz::TimeZone,
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
            .from_writer(Vec::with_capacity(64 * 1024))
    }

    /// A new encoder; its first bytes are the header.
    pub fn new(tz: jiff::tz::TimeZone) -> CsvEncoder {
        let mut writer = CsvEncoder::writer();
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(CSV_HEADER);
        CsvEncoder { writer, tz }
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
    /// metadata is skipped): the export's hot path.
    pub fn push_canonical(&mut self, canonical: &str) -> Result<(), serde_json::Error> {
        let r: CsvView<'_> = serde_json::from_str(canonical)?;
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
        let when = format_in_zone(at, &self.tz);
        let row = [
            guard_formula(&when),
            guard_formula(event),
            guard_formula(category),
            guard_formula(description),
            guard_formula(user),
            guard_formula(ip.unwrap_or("")),
        ];
        let _ = self.writer.write_record(row.iter().map(|c| c.as_bytes()));
    }

    /// Takes the bytes written so far.
    pub fn take(&mut self) -> Vec<u8> {
        let writer = std::mem::replace(&mut self.writer, CsvEncoder::writer());
        writer.into_inner().unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
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
            b.push_canonical(std::str::from_utf8(&r.canonical_bytes()).unwrap())
                .unwrap();
        }
        assert_eq!(a.take(), b.take());
    }

    #[test]
    fn zone_formatting_handles_negative_offsets() {
        let tz = jiff::tz::TimeZone::get("America/St_Johns").unwrap();
        let t = Micros::parse_rfc3339("2026-01-01T00:00:00.005Z").unwrap();
        assert_eq!(format_in_zone(t, &tz), "2025-12-31T20:30:00.005-03:30");
    }
}
