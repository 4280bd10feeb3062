//! PostgreSQL's binary `COPY` format, encoded by hand into one buffer:
//! the writer's group commit and the migration's bulk load send each
//! table's rows as one `COPY … FROM STDIN (FORMAT binary)` message.

use bytes::{BufMut, Bytes, BytesMut};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01), the
/// origin of a binary `timestamptz`.
pub(super) const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// The tuples of one `COPY`, field by field; [`CopyRows::finish`] frames
/// them with the format's header and trailer.
#[derive(Debug)]
pub(super) struct CopyRows {
    out: BytesMut,
    rows: u64,
}

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

impl CopyRows {
    pub(super) fn with_capacity(bytes: usize) -> CopyRows {
        let mut out = BytesMut::with_capacity(HEADER.len() + bytes + 2);
        // Flags and header extension length: both zero.
        out.put_slice(HEADER);
        CopyRows { out, rows: 0 }
    }

    /// Starts a tuple of `fields` fields.
    pub(super) fn row(&mut self, fields: i16) {
        self.out.put_i16(fields);
        self.rows += 1;
    }

    pub(super) fn i64(&mut self, v: i64) {
        self.out.put_i32(8);
        self.out.put_i64(v);
    }

    pub(super) fn i32(&mut self, v: i32) {
        self.out.put_i32(4);
        self.out.put_i32(v);
    }

    pub(super) fn i16(&mut self, v: i16) {
        self.out.put_i32(2);
        self.out.put_i16(v);
    }

    pub(super) fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.i64(v),
            None => self.out.put_i32(-1),
        }
    }

    /// A `timestamptz` from Unix microseconds.
    pub(super) fn timestamptz(&mut self, unix_us: i64) {
        self.i64(unix_us - PG_EPOCH_US);
    }

    pub(super) fn text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.bytes(s.as_bytes()),
            None => self.out.put_i32(-1),
        }
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.out.put_i32(b.len() as i32);
        self.out.put_slice(b);
    }

    /// Tuples written so far.
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes written so far.
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// The whole `COPY` body, trailer included.
    pub(super) fn finish(mut self) -> Bytes {
        self.out.put_i16(-1);
        self.out.freeze()
    }
}
