//! Sealed segments: a full chunk of the index written once to the store and
//! read back on demand, in a compact, versioned, checksummed encoding.
//!
//! A segment is stored as two blobs:
//!
//! - the **summary**, read for every segment when its account opens: row
//!   count, time span, which dictionaries had overflowed, the chunk's share
//!   of the rollups, the rows per actor, and the dictionary entries added
//!   since the previous segment (dictionaries are persisted append-only, a
//!   delta per segment, so a segment's ids are always resolvable from the
//!   summaries up to it). Since version 2 its counts, ids and lengths are
//!   varints, rollup slots and actor ids deltas: 42 KB a segment on average
//!   in the bench's 10M store, where version 1's fixed widths took 193 KB
//!   (mostly rollup entries, 14 bytes each). Version-1 summaries are still
//!   read;
//! - the **columns**, read when a query needs the chunk: since version 2,
//!   the time column as zig-zag varint deltas from the first time, and the
//!   four id columns each packed in the fewest whole bytes (1–4) that hold
//!   its largest id: ~10 bytes a row in the bench's 10M store, where
//!   version 1's fixed-width arrays and stored postings took 24. Decoding
//!   costs about what version 1's larger copy out of the database did
//!   (measured in decision 0020's addendum), so a load costs the same CPU
//!   and reads 59 % fewer bytes. The postings (rows per actor) are rebuilt
//!   on load, not stored. Version-1 columns are still read.
//!
//! Both end with a CRC-32 of everything before it: a torn or flipped byte
//! is detected, never read as data. The version is the first field after
//! the magic; a reader refuses versions it does not know (the caller then
//! rebuilds from rows, which is always possible: segments are derived
//! data).

use std::collections::BTreeMap;
use std::slice::ChunksExact;

use super::column::{self, Col, RegionBuilder, col};
use super::{CHUNK_ROWS, Chunk, SLOT_US};

const SUMMARY_MAGIC: &[u8; 4] = b"ALXM";
const COLUMNS_MAGIC: &[u8; 4] = b"ALXC";
/// Version of the summary encoding written now (version 1 is still read).
pub const SEGMENT_VERSION: u16 = 2;
/// Version of the columns encoding written now (version 1 is still read).
pub const COLUMNS_VERSION: u16 = 2;

/// Bytes a loaded segment holds a row: time, event, actor, IP, workflow
/// and the postings' row offset.
const ROW_BYTES: usize = 8 + 2 + 4 + 4 + 4 + 2;

/// Why a stored segment could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index segment {what}: {why}")]
pub struct SegmentError {
    what: &'static str,
    why: String,
}

fn corrupt(what: &'static str, why: impl Into<String>) -> SegmentError {
    SegmentError {
        what,
        why: why.into(),
    }
}

/// A chunk's rows grouped by actor: `rows[offsets[i]..offsets[i + 1]]` are
/// the offsets in the chunk of actor `actors[i]`'s rows, ascending. It lets
/// a `user` filter that picks a few actors visit their rows alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Postings {
    pub(super) actors: Vec<u32>,
    pub(super) offsets: Vec<u32>,
    pub(super) rows: Col<u16>,
}

impl Postings {
    /// The postings of a chunk held on the heap.
    fn of(chunk: &Chunk) -> Postings {
        let mut rows = vec![0u16; chunk.len()];
        let (actors, offsets) = Postings::fill(&chunk.actor, &mut rows);
        Postings {
            actors,
            offsets,
            rows: rows.into(),
        }
    }

    /// Sorts the row offsets of `actor` by actor into `rows` (its length);
    /// returns the actors and where each one's rows start.
    fn fill(actor: &[u32], rows: &mut [u16]) -> (Vec<u32>, Vec<u32>) {
        match actor.iter().max() {
            Some(&max) if max < 1 << 20 => Postings::dense(actor, max as usize, rows),
            _ => Postings::sparse(actor, rows),
        }
    }

    /// A counting sort over actor ids (they are dictionary ids, below the
    /// distinct-value caps): this runs for every segment a query loads.
    fn dense(actor: &[u32], max: usize, rows: &mut [u16]) -> (Vec<u32>, Vec<u32>) {
        let mut start = vec![0u32; max + 2];
        for &a in actor {
            start[a as usize + 1] += 1;
        }
        let mut actors = Vec::new();
        let mut offsets = Vec::new();
        let mut at = 0u32;
        for (a, n) in start.iter_mut().skip(1).enumerate() {
            if *n > 0 {
                actors.push(a as u32);
                offsets.push(at);
            }
            let count = *n;
            *n = at;
            at += count;
        }
        offsets.push(at);
        for (i, &a) in actor.iter().enumerate() {
            let slot = &mut start[a as usize + 1];
            rows[*slot as usize] = i as u16;
            *slot += 1;
        }
        (actors, offsets)
    }

    fn sparse(actor: &[u32], rows: &mut [u16]) -> (Vec<u32>, Vec<u32>) {
        let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
        for &a in actor {
            *counts.entry(a).or_default() += 1;
        }
        let mut actors = Vec::with_capacity(counts.len());
        let mut offsets = Vec::with_capacity(counts.len() + 1);
        let mut start = std::collections::HashMap::with_capacity(counts.len());
        let mut at = 0u32;
        for (a, n) in counts {
            start.insert(a, at);
            actors.push(a);
            offsets.push(at);
            at += n;
        }
        offsets.push(at);
        for (i, a) in actor.iter().enumerate() {
            let slot = start.get_mut(a).expect("counted above");
            rows[*slot as usize] = i as u16;
            *slot += 1;
        }
        (actors, offsets)
    }

    /// Row offsets of every actor `pick` says yes to, in no particular
    /// order across actors; and how many there are, first, so the caller can
    /// prefer a column walk when they are many.
    pub(super) fn picked<'a>(
        &'a self,
        pick: &'a [bool],
    ) -> impl Iterator<Item = &'a [u16]> + Clone + 'a {
        self.actors
            .iter()
            .enumerate()
            .filter(|(_, a)| pick.get(**a as usize).copied().unwrap_or(false))
            .map(|(i, _)| &self.rows[self.offsets[i] as usize..self.offsets[i + 1] as usize])
    }
}

/// A sealed chunk held in memory: what the segment cache keeps.
#[derive(Debug)]
pub struct Segment {
    pub(super) chunk: Chunk,
    pub(super) postings: Postings,
}

impl Segment {
    pub(super) fn of(chunk: Chunk) -> Segment {
        let postings = Postings::of(&chunk);
        Segment { chunk, postings }
    }

    /// Bytes it holds in memory (what the cache's budget counts).
    pub fn heap_bytes(&self) -> usize {
        self.chunk.bytes()
            + (self.postings.actors.capacity() + self.postings.offsets.capacity()) * 4
            + self.postings.rows.bytes()
            + std::mem::size_of::<Segment>()
    }

    /// The columns blob (version [`COLUMNS_VERSION`]).
    pub(super) fn encode_columns(&self) -> Vec<u8> {
        Segment::encode_chunk(&self.chunk)
    }

    /// The columns blob of any chunk, full or not (a stored tail's).
    pub(super) fn encode_chunk(c: &Chunk) -> Vec<u8> {
        let mut out = Writer::with_capacity(40 + c.len() * 12);
        out.bytes(COLUMNS_MAGIC);
        out.u16(COLUMNS_VERSION);
        out.u16(0);
        out.u32(c.len() as u32);
        out.i64(c.min_time);
        out.i64(c.max_time);
        out.times(&c.time);
        out.packed(c.event.iter().map(|&v| u32::from(v)));
        out.packed(c.actor.iter().copied());
        out.packed(c.ip.iter().copied());
        out.packed(c.workflow.iter().copied());
        out.finish()
    }

    /// Reads a columns blob of either version, checking its checksum,
    /// version and shape.
    pub(super) fn decode_columns(bytes: &[u8]) -> Result<Segment, SegmentError> {
        let what = "columns";
        let (mut r, version) = Reader::checked(bytes, COLUMNS_MAGIC, what, &[1, COLUMNS_VERSION])?;
        if version == 1 {
            return Segment::decode_columns_v1(r);
        }
        r.u16()?; // reserved
        let n = r.u32()? as usize;
        if n > CHUNK_ROWS {
            return Err(corrupt(what, format!("{n} rows, more than a chunk holds")));
        }
        let min_time = r.i64()?;
        let max_time = r.i64()?;
        // Decoded straight into the segment's own region (see `column`):
        // the five columns, then the postings' rows.
        let bytes = n * ROW_BYTES + column::padding(6);
        let mut region = if n == CHUNK_ROWS {
            RegionBuilder::reusable(bytes)
        } else {
            RegionBuilder::new(bytes)
        };
        let (time, out) = region.take::<i64>(n);
        r.times(out)?;
        let (event, out) = region.take::<u16>(n);
        r.packed(out)?;
        let (actor, out) = region.take::<u32>(n);
        r.packed(out)?;
        let (ip, out) = region.take::<u32>(n);
        r.packed(out)?;
        let (workflow, out) = region.take::<u32>(n);
        r.packed(out)?;
        r.end()?;
        let (rows, _) = region.take::<u16>(n);
        let (actor_values, rows_out) = region.split::<u32, u16>(actor, rows);
        let (actors, offsets) = Postings::fill(actor_values, rows_out);
        let region = region.finish();
        Ok(Segment {
            chunk: Chunk {
                time: col(&region, time),
                event: col(&region, event),
                actor: col(&region, actor),
                ip: col(&region, ip),
                workflow: col(&region, workflow),
                min_time,
                max_time,
            },
            postings: Postings {
                actors,
                offsets,
                rows: col(&region, rows),
            },
        })
    }

    /// Version 1: fixed-width arrays, then the stored postings.
    fn decode_columns_v1(mut r: Reader<'_>) -> Result<Segment, SegmentError> {
        let what = "columns";
        r.u16()?; // reserved
        let n = r.u32()? as usize;
        if n > CHUNK_ROWS {
            return Err(corrupt(what, format!("{n} rows, more than a chunk holds")));
        }
        let min_time = r.i64()?;
        let max_time = r.i64()?;
        let chunk = Chunk {
            time: r.array(n)?.into(),
            event: r.array(n)?.into(),
            actor: r.array(n)?.into(),
            ip: r.array(n)?.into(),
            workflow: r.array(n)?.into(),
            min_time,
            max_time,
        };
        let actors = r.u32()? as usize;
        if actors > n {
            return Err(corrupt(what, "more actors than rows"));
        }
        let postings = Postings {
            actors: r.array(actors)?,
            offsets: r.array(actors + 1)?,
            rows: r.array(n)?.into(),
        };
        r.end()?;
        let offsets_ok = postings.offsets.first() == Some(&0)
            && postings.offsets.last() == Some(&(n as u32))
            && postings.offsets.windows(2).all(|w| w[0] <= w[1]);
        let rows_ok = postings.rows.iter().all(|&o| (o as usize) < n);
        if !offsets_ok || !rows_ok {
            return Err(corrupt(what, "postings out of range"));
        }
        Ok(Segment { chunk, postings })
    }
}

/// Whether two stored columns blobs hold the same chunk, whichever version
/// encoded each: a store written before version 2 holds version-1 blobs,
/// which `auditlog index rebuild` must not call different from the rows'
/// for their encoding alone. An unreadable blob is never the same.
pub fn same_columns(a: &[u8], b: &[u8]) -> bool {
    a == b
        || matches!(
            (Segment::decode_columns(a), Segment::decode_columns(b)),
            (Ok(x), Ok(y)) if x.chunk == y.chunk
        )
}

/// Dictionary entries added since the previous segment: for the text
/// dictionaries (user ids, display names, IP addresses, workflow ids, in
/// that order) the first new id and the values; for the actor pairs the
/// first new id and the (user id, name) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DictDelta {
    pub(super) texts: [(u32, Vec<String>); 4],
    pub(super) actors: (u32, Vec<(u32, u32)>),
}

/// What start-up reads of every segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Summary {
    pub(super) rows: u32,
    pub(super) min_time: i64,
    pub(super) max_time: i64,
    /// Bit 0 actors, 1 IP addresses, 2 workflows: the dictionary had
    /// overflowed when the segment was sealed (rows may hold its overflow id).
    pub(super) overflowed: u8,
    /// (15-minute slot, catalog event, rows).
    pub(super) rollup: Vec<(i64, u16, u32)>,
    pub(super) dicts: DictDelta,
    /// (actor pair id, rows of the chunk): the index keeps every actor's
    /// row count in memory to choose between its postings and a scan.
    pub(super) actor_rows: Vec<(u32, u32)>,
}

impl Summary {
    /// The rollup entries of a chunk.
    pub(super) fn rollup_of(chunk: &Chunk) -> Vec<(i64, u16, u32)> {
        let mut m: BTreeMap<(i64, u16), u32> = BTreeMap::new();
        for (t, e) in chunk.time.iter().zip(&chunk.event) {
            *m.entry((t.div_euclid(SLOT_US), *e)).or_default() += 1;
        }
        m.into_iter().map(|((s, e), n)| (s, e, n)).collect()
    }

    /// The (actor, rows) pairs of a chunk, by actor.
    pub(super) fn actor_rows_of(chunk: &Chunk) -> Vec<(u32, u32)> {
        let mut m: BTreeMap<u32, u32> = BTreeMap::new();
        for &a in &chunk.actor {
            *m.entry(a).or_default() += 1;
        }
        m.into_iter().collect()
    }

    /// Version 2: the header, then every count, id and length as a LEB128
    /// varint, the rollup's slots and the actors' ids as deltas from the
    /// previous entry (both are written in ascending order). A summary of
    /// the bench's 10M store took ~190 KB in version 1's fixed widths
    /// (14 bytes a rollup entry), read for every segment when an account
    /// opens; see the module doc for what version 2 takes.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(64 + self.rollup.len() * 4 + self.actor_rows.len() * 4);
        out.bytes(SUMMARY_MAGIC);
        out.u16(SEGMENT_VERSION);
        out.u16(0);
        out.u32(self.rows);
        out.i64(self.min_time);
        out.i64(self.max_time);
        out.u8(self.overflowed);
        out.varint(self.rollup.len() as u64);
        let mut prev = self.min_time.div_euclid(SLOT_US);
        for &(slot, e, n) in &self.rollup {
            let d = slot.wrapping_sub(prev);
            out.varint(((d << 1) ^ (d >> 63)) as u64);
            prev = slot;
            out.varint(u64::from(e));
            out.varint(u64::from(n));
        }
        for (first, values) in &self.dicts.texts {
            out.varint(u64::from(*first));
            out.varint(values.len() as u64);
            for v in values {
                out.varint(v.len() as u64);
                out.bytes(v.as_bytes());
            }
        }
        let (first, pairs) = &self.dicts.actors;
        out.varint(u64::from(*first));
        out.varint(pairs.len() as u64);
        for &(u, n) in pairs {
            out.varint(u64::from(u));
            out.varint(u64::from(n));
        }
        out.varint(self.actor_rows.len() as u64);
        let mut prev = 0u32;
        for &(a, n) in &self.actor_rows {
            out.varint(u64::from(a.wrapping_sub(prev)));
            prev = a;
            out.varint(u64::from(n));
        }
        out.finish()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Summary, SegmentError> {
        let (mut r, version) =
            Reader::checked(bytes, SUMMARY_MAGIC, "summary", &[1, SEGMENT_VERSION])?;
        r.u16()?; // reserved
        let rows = r.u32()?;
        let min_time = r.i64()?;
        let max_time = r.i64()?;
        let overflowed = r.u8()?;
        let (rollup, dicts, actor_rows) = if version == 1 {
            Summary::body_v1(&mut r)?
        } else {
            Summary::body_v2(&mut r, min_time)?
        };
        r.end()?;
        Ok(Summary {
            rows,
            min_time,
            max_time,
            overflowed,
            rollup,
            dicts,
            actor_rows,
        })
    }

    /// What follows the header in version 2 (see [`Summary::encode`]).
    fn body_v2(r: &mut Reader<'_>, min_time: i64) -> Result<SummaryBody, SegmentError> {
        let n = r.count(3)?;
        let mut rollup = Vec::with_capacity(n);
        let mut slot = min_time.div_euclid(SLOT_US);
        for _ in 0..n {
            let z = r.varint()?;
            slot = slot.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
            let e = r.varint_as::<u16>("event id")?;
            let n = r.varint_as::<u32>("rollup count")?;
            rollup.push((slot, e, n));
        }
        let mut texts: [(u32, Vec<String>); 4] = Default::default();
        for t in &mut texts {
            let first = r.varint_as::<u32>("dictionary id")?;
            let n = r.count(1)?;
            let values = (0..n)
                .map(|_| {
                    let len = r.count(1)?;
                    r.text(len)
                })
                .collect::<Result<_, _>>()?;
            *t = (first, values);
        }
        let first = r.varint_as::<u32>("actor id")?;
        let n = r.count(2)?;
        let pairs = (0..n)
            .map(|_| {
                Ok((
                    r.varint_as::<u32>("user id")?,
                    r.varint_as::<u32>("name id")?,
                ))
            })
            .collect::<Result<_, SegmentError>>()?;
        let n = r.count(2)?;
        let mut actor_rows = Vec::with_capacity(n);
        let mut actor = 0u32;
        for _ in 0..n {
            actor = actor.wrapping_add(r.varint_as::<u32>("actor id")?);
            actor_rows.push((actor, r.varint_as::<u32>("actor rows")?));
        }
        let dicts = DictDelta {
            texts,
            actors: (first, pairs),
        };
        Ok((rollup, dicts, actor_rows))
    }

    /// What follows the header in version 1: fixed-width fields.
    fn body_v1(r: &mut Reader<'_>) -> Result<SummaryBody, SegmentError> {
        let n = r.len(14)?;
        let rollup = r
            .records(n, 14)?
            .map(|e| {
                (
                    i64::read_le(&e[..8]),
                    u16::read_le(&e[8..10]),
                    u32::read_le(&e[10..]),
                )
            })
            .collect();
        let mut texts: [(u32, Vec<String>); 4] = Default::default();
        for t in &mut texts {
            let first = r.u32()?;
            let n = r.len(4)?;
            let values = (0..n)
                .map(|_| {
                    let len = r.len(1)?;
                    r.text(len)
                })
                .collect::<Result<_, _>>()?;
            *t = (first, values);
        }
        let first = r.u32()?;
        let n = r.len(8)?;
        let pairs = r.records(n, 8)?.map(u32_pair).collect();
        let n = r.len(8)?;
        let actor_rows = r.records(n, 8)?.map(u32_pair).collect();
        let dicts = DictDelta {
            texts,
            actors: (first, pairs),
        };
        Ok((rollup, dicts, actor_rows))
    }
}

/// A summary's rollup, dictionary delta and rows per actor.
type SummaryBody = (Vec<(i64, u16, u32)>, DictDelta, Vec<(u32, u32)>);

/// Little-endian writer that appends a CRC-32 at the end.
struct Writer(Vec<u8>);

impl Writer {
    fn with_capacity(n: usize) -> Writer {
        Writer(Vec::with_capacity(n + 4))
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }
    /// LEB128: seven bits a byte, low first, the high bit set on all but
    /// the last.
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    /// The first time, then each next one as a zig-zag LEB128 delta.
    fn times(&mut self, times: &[i64]) {
        let Some((&first, rest)) = times.split_first() else {
            return;
        };
        self.i64(first);
        let mut prev = first;
        for &t in rest {
            let d = t.wrapping_sub(prev);
            prev = t;
            let mut z = ((d << 1) ^ (d >> 63)) as u64;
            while z >= 0x80 {
                self.0.push((z as u8) | 0x80);
                z >>= 7;
            }
            self.0.push(z as u8);
        }
    }

    /// A byte width (1–4, the fewest that hold the largest value), then
    /// every value in that many little-endian bytes.
    fn packed(&mut self, values: impl Iterator<Item = u32> + Clone) {
        let max = values.clone().max().unwrap_or(0);
        let width = match max {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xff_ffff => 3,
            _ => 4,
        };
        self.0.push(width as u8);
        for v in values {
            self.0.extend_from_slice(&v.to_le_bytes()[..width]);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.0);
        self.u32(crc);
        self.0
    }
}

/// A fixed-size little-endian value of a blob; `read_le` takes exactly
/// [`Le::SIZE`] bytes (the callers slice them with `chunks_exact`).
trait Le: Sized {
    const SIZE: usize;
    fn read_le(b: &[u8]) -> Self;
}

impl Le for u16 {
    const SIZE: usize = 2;
    fn read_le(b: &[u8]) -> u16 {
        u16::from_le_bytes(b.try_into().expect("2 bytes"))
    }
}

impl Le for u32 {
    const SIZE: usize = 4;
    fn read_le(b: &[u8]) -> u32 {
        u32::from_le_bytes(b.try_into().expect("4 bytes"))
    }
}

impl Le for i64 {
    const SIZE: usize = 8;
    fn read_le(b: &[u8]) -> i64 {
        i64::from_le_bytes(b.try_into().expect("8 bytes"))
    }
}

fn u32_pair(b: &[u8]) -> (u32, u32) {
    (u32::read_le(&b[..4]), u32::read_le(&b[4..]))
}

/// Little-endian reader over a blob whose checksum, magic and version were
/// checked; every read is bounds-checked.
struct Reader<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// The reader after the magic and version, and the version (one of
    /// `versions`).
    fn checked(
        bytes: &'a [u8],
        magic: &[u8; 4],
        what: &'static str,
        versions: &[u16],
    ) -> Result<(Reader<'a>, u16), SegmentError> {
        if bytes.len() < 10 {
            return Err(corrupt(what, "too short"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
        if crc32fast::hash(body) != stored {
            return Err(corrupt(what, "checksum mismatch"));
        }
        let mut r = Reader { b: body, what };
        if r.take(4)? != magic {
            return Err(corrupt(what, "not a segment"));
        }
        let version = r.u16()?;
        if !versions.contains(&version) {
            return Err(corrupt(
                what,
                format!("version {version}, this binary reads {versions:?}"),
            ));
        }
        Ok((r, version))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SegmentError> {
        if self.b.len() < n {
            return Err(corrupt(self.what, "truncated"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    /// A count of items of at least `min` bytes each, refused when the
    /// blob is too short to hold them (so a flipped length cannot make a
    /// huge allocation).
    fn len(&mut self, min: usize) -> Result<usize, SegmentError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.b.len() {
            return Err(corrupt(self.what, "length past the end"));
        }
        Ok(n)
    }

    /// A count written as a varint of items of at least `min` bytes each,
    /// refused when the blob is too short to hold them (as [`Reader::len`]).
    fn count(&mut self, min: usize) -> Result<usize, SegmentError> {
        let n = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        if n.saturating_mul(min) > self.b.len() {
            return Err(corrupt(self.what, "length past the end"));
        }
        Ok(n)
    }

    /// A value written by [`Writer::varint`].
    fn varint(&mut self) -> Result<u64, SegmentError> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = self.u8()?;
            if shift > 63 {
                return Err(corrupt(self.what, "varint too long"));
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    /// A varint that must fit `T` (`what` names it in the error).
    fn varint_as<T: TryFrom<u64>>(&mut self, what: &str) -> Result<T, SegmentError> {
        T::try_from(self.varint()?).map_err(|_| corrupt(self.what, format!("{what} out of range")))
    }

    /// `len` bytes of UTF-8 text.
    fn text(&mut self, len: usize) -> Result<String, SegmentError> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt(self.what, "value not UTF-8"))
    }

    fn u8(&mut self) -> Result<u8, SegmentError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SegmentError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, SegmentError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64, SegmentError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    /// As many times as `out` holds, written by [`Writer::times`].
    fn times(&mut self, out: &mut [i64]) -> Result<(), SegmentError> {
        let Some((first, rest)) = out.split_first_mut() else {
            return Ok(());
        };
        let mut prev = self.i64()?;
        *first = prev;
        let mut b = self.b;
        for slot in rest {
            let mut z = 0u64;
            let mut shift = 0;
            loop {
                let (&byte, rest) = b
                    .split_first()
                    .ok_or_else(|| corrupt(self.what, "times truncated"))?;
                b = rest;
                if shift > 63 {
                    return Err(corrupt(self.what, "time delta too long"));
                }
                z |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    break;
                }
                shift += 7;
            }
            let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
            prev = prev.wrapping_add(d);
            *slot = prev;
        }
        self.b = b;
        Ok(())
    }

    /// As many ids as `out` holds, written by [`Writer::packed`]; an id
    /// that does not fit `T` is corrupt.
    fn packed<T: TryFrom<u32>>(&mut self, out: &mut [T]) -> Result<(), SegmentError> {
        let width = self.u8()? as usize;
        let raw = match width {
            1..=4 => self.records(out.len(), width)?,
            _ => return Err(corrupt(self.what, format!("id width {width}"))),
        };
        // One loop per width, each with its read inlined.
        let what = self.what;
        match width {
            1 => fill_ids(out, raw, |b| u32::from(b[0])),
            2 => fill_ids(out, raw, |b| u32::from(u16::read_le(b))),
            3 => fill_ids(out, raw, |b| u32::from_le_bytes([b[0], b[1], b[2], 0])),
            _ => fill_ids(out, raw, u32::read_le),
        }
        .map_err(|()| corrupt(what, format!("id past {} bits", 8 * size_of::<T>())))
    }

    /// `n` values in a row. Taken as one slice and converted in a tight
    /// loop: reading them one by one through the bounds-checked readers
    /// above was half of a cold query's CPU (it loads ~140 segments of
    /// 65,536 rows at 10M events).
    fn array<T: Le>(&mut self, n: usize) -> Result<Vec<T>, SegmentError> {
        Ok(self.records(n, T::SIZE)?.map(T::read_le).collect())
    }

    /// `n` records of `size` bytes each, one slice per record.
    fn records(&mut self, n: usize, size: usize) -> Result<ChunksExact<'a, u8>, SegmentError> {
        let len = n
            .checked_mul(size)
            .filter(|&len| len <= self.b.len())
            .ok_or_else(|| corrupt(self.what, "array past the end"))?;
        Ok(self.take(len)?.chunks_exact(size))
    }

    fn end(&self) -> Result<(), SegmentError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(corrupt(self.what, "trailing bytes"))
        }
    }
}

/// `out` from `raw`, one id a record.
#[inline(always)]
fn fill_ids<T: TryFrom<u32>>(
    out: &mut [T],
    raw: ChunksExact<'_, u8>,
    read: impl Fn(&[u8]) -> u32,
) -> Result<(), ()> {
    for (slot, b) in out.iter_mut().zip(raw) {
        *slot = T::try_from(read(b)).map_err(|_| ())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: usize) -> Chunk {
        let mut c = Chunk {
            min_time: i64::MAX,
            max_time: i64::MIN,
            ..Chunk::default()
        };
        for i in 0..n {
            let t = (i as i64 * 7_919) % 100_000 * 1_000_000;
            c.time.push(t);
            c.event.push((i % 17) as u16);
            c.actor.push((i % 5) as u32 * 3);
            c.ip.push((i % 11) as u32);
            c.workflow.push((i % 3) as u32);
            c.min_time = c.min_time.min(t);
            c.max_time = c.max_time.max(t);
        }
        c
    }

    #[test]
    fn columns_round_trip_and_every_flipped_byte_is_caught() {
        let seg = Segment::of(chunk(CHUNK_ROWS - 4));
        let bytes = seg.encode_columns();
        let back = Segment::decode_columns(&bytes).unwrap();
        assert_eq!(back.chunk.time, seg.chunk.time);
        assert_eq!(back.chunk.actor, seg.chunk.actor);
        assert_eq!(back.chunk.workflow, seg.chunk.workflow);
        assert_eq!(back.postings, seg.postings);
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Segment::decode_columns(&bad).is_err(), "byte {i}");
        }
        assert!(Segment::decode_columns(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn postings_list_each_actors_rows() {
        let seg = Segment::of(chunk(100));
        let mut pick = vec![false; 16];
        pick[6] = true;
        let rows: Vec<u16> = seg.postings.picked(&pick).flatten().copied().collect();
        let expected: Vec<u16> = (0..100u16)
            .filter(|&i| seg.chunk.actor[i as usize] == 6)
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn summaries_round_trip() {
        let c = chunk(500);
        let s = Summary {
            rows: 500,
            min_time: c.min_time,
            max_time: c.max_time,
            overflowed: 0b101,
            rollup: Summary::rollup_of(&c),
            dicts: DictDelta {
                texts: [
                    (2, vec!["u1".into(), "ü ñ".into()]),
                    (2, vec![]),
                    (7, vec!["10.0.0.1".into()]),
                    (2, vec!["wf".into()]),
                ],
                actors: (1, vec![(2, 3), (4, 5)]),
            },
            actor_rows: Summary::actor_rows_of(&c),
        };
        let bytes = s.encode();
        assert_eq!(Summary::decode(&bytes).unwrap(), s);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Summary::decode(&bad).is_err(), "byte {i}");
        }
        assert!(Summary::decode(&bytes[..bytes.len() - 1]).is_err());
        let total: u32 = s.rollup.iter().map(|r| r.2).sum();
        assert_eq!(total, 500);

        // What stores written before version 2 hold is still read.
        let v1 = encode_summary_v1(&s);
        assert_eq!(Summary::decode(&v1).unwrap(), s);
        assert!(
            bytes.len() * 3 < v1.len(),
            "{} vs {}",
            bytes.len(),
            v1.len()
        );
    }

    #[test]
    fn summaries_keep_extreme_values() {
        let s = Summary {
            rows: u32::MAX,
            min_time: i64::MIN,
            max_time: i64::MAX,
            overflowed: 0xff,
            rollup: vec![
                (i64::MIN.div_euclid(SLOT_US), 0, u32::MAX),
                (0, u16::MAX, 1),
                (i64::MAX.div_euclid(SLOT_US), 7, 2),
            ],
            dicts: DictDelta {
                texts: [
                    (u32::MAX, vec![String::new()]),
                    (0, vec![]),
                    (1, vec!["x".repeat(300)]),
                    (2, vec![]),
                ],
                actors: (u32::MAX, vec![(u32::MAX, 0)]),
            },
            actor_rows: vec![(0, u32::MAX), (u32::MAX, 1)],
        };
        assert_eq!(Summary::decode(&s.encode()).unwrap(), s);
    }

    /// The version-1 summary encoder, as it was written until version 2.
    fn encode_summary_v1(s: &Summary) -> Vec<u8> {
        let mut out = Writer::with_capacity(64 + s.rollup.len() * 14);
        out.bytes(SUMMARY_MAGIC);
        out.u16(1);
        out.u16(0);
        out.u32(s.rows);
        out.i64(s.min_time);
        out.i64(s.max_time);
        out.u8(s.overflowed);
        out.u32(s.rollup.len() as u32);
        for &(slot, e, n) in &s.rollup {
            out.i64(slot);
            out.u16(e);
            out.u32(n);
        }
        for (first, values) in &s.dicts.texts {
            out.u32(*first);
            out.u32(values.len() as u32);
            for v in values {
                out.u32(v.len() as u32);
                out.bytes(v.as_bytes());
            }
        }
        let (first, pairs) = &s.dicts.actors;
        out.u32(*first);
        out.u32(pairs.len() as u32);
        for &(u, n) in pairs {
            out.u32(u);
            out.u32(n);
        }
        out.u32(s.actor_rows.len() as u32);
        for &(a, n) in &s.actor_rows {
            out.u32(a);
            out.u32(n);
        }
        out.finish()
    }

    /// The version-1 encoder, as it was written until version 2: what
    /// stores made before then hold.
    fn encode_columns_v1(seg: &Segment) -> Vec<u8> {
        let (c, p) = (&seg.chunk, &seg.postings);
        let mut out = Writer::with_capacity(40 + c.len() * 24);
        out.bytes(COLUMNS_MAGIC);
        out.u16(1);
        out.u16(0);
        out.u32(c.len() as u32);
        out.i64(c.min_time);
        out.i64(c.max_time);
        c.time.iter().for_each(|&v| out.i64(v));
        c.event.iter().for_each(|&v| out.u16(v));
        c.actor.iter().for_each(|&v| out.u32(v));
        c.ip.iter().for_each(|&v| out.u32(v));
        c.workflow.iter().for_each(|&v| out.u32(v));
        out.u32(p.actors.len() as u32);
        p.actors.iter().for_each(|&v| out.u32(v));
        p.offsets.iter().for_each(|&v| out.u32(v));
        p.rows.iter().for_each(|&v| out.u16(v));
        out.finish()
    }

    fn assert_same(a: &Segment, b: &Segment) {
        assert_eq!(a.chunk.time, b.chunk.time);
        assert_eq!(a.chunk.event, b.chunk.event);
        assert_eq!(a.chunk.actor, b.chunk.actor);
        assert_eq!(a.chunk.ip, b.chunk.ip);
        assert_eq!(a.chunk.workflow, b.chunk.workflow);
        assert_eq!(
            (a.chunk.min_time, a.chunk.max_time),
            (b.chunk.min_time, b.chunk.max_time)
        );
        assert_eq!(a.postings, b.postings);
    }

    #[test]
    fn version_1_columns_still_decode() {
        let seg = Segment::of(chunk(CHUNK_ROWS - 4));
        let old = encode_columns_v1(&seg);
        assert_same(&Segment::decode_columns(&old).unwrap(), &seg);
        assert!(same_columns(&old, &seg.encode_columns()));
        let mut other = chunk(CHUNK_ROWS - 4);
        other.ip[3] += 1;
        assert!(!same_columns(&old, &Segment::of(other).encode_columns()));
        let mut bad = old.clone();
        bad[100] ^= 1;
        assert!(Segment::decode_columns(&bad).is_err());
    }

    #[test]
    fn version_2_packs_ids_and_time_deltas() {
        let seg = Segment::of(chunk(CHUNK_ROWS));
        let v1 = encode_columns_v1(&seg).len();
        let v2 = seg.encode_columns().len();
        // Times 1-4 bytes, ids one byte each here.
        assert!(v2 * 2 < v1, "v2 {v2} bytes, v1 {v1}");
        // Every id width and extreme time deltas (wrapping both ways).
        let mut c = chunk(CHUNK_ROWS);
        c.time[1] = i64::MIN;
        c.time[2] = i64::MAX;
        c.time[3] = -1;
        c.actor[5] = 0x1_0000;
        c.ip[6] = u32::MAX;
        c.workflow[7] = 0xff_ffff;
        c.event[8] = u16::MAX;
        let seg = Segment::of(c);
        assert_same(
            &Segment::decode_columns(&seg.encode_columns()).unwrap(),
            &seg,
        );
        // An empty chunk too.
        let seg = Segment::of(chunk(0));
        assert_same(
            &Segment::decode_columns(&seg.encode_columns()).unwrap(),
            &seg,
        );
    }

    #[test]
    fn dense_and_sparse_postings_agree() {
        let mut c = chunk(CHUNK_ROWS);
        for (i, a) in c.actor.iter_mut().enumerate() {
            *a = ((i * 7_919) % 613) as u32;
        }
        let mut dense = vec![0; c.len()];
        let mut sparse = vec![0; c.len()];
        assert_eq!(
            Postings::dense(&c.actor, 612, &mut dense),
            Postings::sparse(&c.actor, &mut sparse)
        );
        assert_eq!(dense, sparse);
        // Past the dense bound, the sparse path answers.
        c.actor[10] = 1 << 24;
        let of = Postings::of(&c);
        let (actors, offsets) = Postings::sparse(&c.actor, &mut sparse);
        assert_eq!((of.actors, of.offsets), (actors, offsets));
        assert_eq!(*of.rows, sparse);
    }

    #[test]
    fn a_loaded_segment_lives_in_a_region_of_its_own() {
        let seg = Segment::of(chunk(CHUNK_ROWS));
        let loaded = Segment::decode_columns(&seg.encode_columns()).unwrap();
        assert_same(&loaded, &seg);
        let regions = [
            region_of(&loaded.chunk.time),
            region_of(&loaded.chunk.event),
            region_of(&loaded.chunk.actor),
            region_of(&loaded.chunk.ip),
            region_of(&loaded.chunk.workflow),
            region_of(&loaded.postings.rows),
        ];
        assert!(regions.iter().all(|r| std::ptr::eq(*r, regions[0])));
        // The cache's budget counts it as it counts one built in memory.
        assert_eq!(loaded.heap_bytes(), seg.heap_bytes());
        // Writing to a column copies it out; the segment's stays.
        let mut copy = loaded.chunk.clone();
        copy.ip[3] += 1;
        assert!(matches!(copy.ip, Col::Heap(_)));
        assert_eq!(copy.ip[3], loaded.chunk.ip[3] + 1);
        assert_eq!(copy.actor, loaded.chunk.actor);
    }

    fn region_of<T>(c: &Col<T>) -> *const super::super::column::Region {
        match c {
            Col::Region { region, .. } => std::sync::Arc::as_ptr(region),
            Col::Heap(_) => panic!("a loaded column on the heap"),
        }
    }
}
