//! Columns of a chunk, and the one memory region a loaded segment's
//! columns share.
//!
//! A segment the cache loads is decoded into a [`Region`]: one anonymous
//! mapping of its own, given back when the last column that points into it
//! is dropped. Kept in the general heap instead, the columns of every
//! evicted segment stayed in the allocator's free pages until its purge
//! delay ran out (mimalloc v3 waits a second). With `--index-memory 128`
//! and ~1,000 loads and evictions a round of dashboard queries at 10M
//! events, peak RSS was 278–296 MiB on the heap and is 221–224 MiB in
//! regions, with rounds ~6 % faster (docs/bench/issue13-paged-10m.md). An
//! immediate purge for the whole heap got close (221 MiB) but cost batch
//! ingest ~20 % more CPU. A few dropped mappings of full segments are kept
//! for the next loads ([`SPARE_REGIONS`]), so a cache that evicts one
//! segment for every one it loads does not map, fault and unmap 1.5 MiB
//! each time.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use bytemuck::Pod;

/// One column: a vector while its chunk grows, or a piece of a loaded
/// segment's [`Region`].
pub(super) enum Col<T> {
    Heap(Vec<T>),
    /// `len` values at byte `start` of the region.
    Region {
        region: Arc<Region>,
        start: usize,
        len: usize,
    },
}

impl<T: Pod> Col<T> {
    /// The vector, to grow: a column in a region is copied out first (a
    /// sealed chunk never grows, so this is not a path queries take).
    pub(super) fn vec_mut(&mut self) -> &mut Vec<T> {
        if let Col::Region { .. } = self {
            *self = Col::Heap(self.to_vec());
        }
        match self {
            Col::Heap(v) => v,
            Col::Region { .. } => unreachable!("replaced above"),
        }
    }

    pub(super) fn push(&mut self, value: T) {
        self.vec_mut().push(value);
    }

    /// Bytes it holds: a vector's capacity, or its share of a region.
    pub(super) fn bytes(&self) -> usize {
        match self {
            Col::Heap(v) => v.capacity() * size_of::<T>(),
            Col::Region { len, .. } => len * size_of::<T>(),
        }
    }
}

impl<T: Pod> Deref for Col<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Col::Heap(v) => v,
            Col::Region { region, start, len } => {
                bytemuck::cast_slice(&region.bytes()[*start..*start + len * size_of::<T>()])
            }
        }
    }
}

/// Writing through a column in a region copies it out first, as
/// [`Col::vec_mut`] does.
impl<T: Pod> DerefMut for Col<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.vec_mut()
    }
}

impl<'a, T: Pod> IntoIterator for &'a Col<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> Default for Col<T> {
    fn default() -> Self {
        Col::Heap(Vec::new())
    }
}

impl<T> From<Vec<T>> for Col<T> {
    fn from(v: Vec<T>) -> Self {
        Col::Heap(v)
    }
}

impl<T: Clone> Clone for Col<T> {
    fn clone(&self) -> Self {
        match self {
            Col::Heap(v) => Col::Heap(v.clone()),
            Col::Region { region, start, len } => Col::Region {
                region: Arc::clone(region),
                start: *start,
                len: *len,
            },
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Col<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Pod + PartialEq> PartialEq for Col<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Pod + Eq> Eq for Col<T> {}

/// The memory a loaded segment's columns live in: an anonymous mapping,
/// or, where the kernel refuses one, a heap block (the same answers, with
/// the allocator's retention back). Shared read-only once built.
pub(super) struct Region {
    memory: Memory,
    /// Whether its mapping goes back to the spares when dropped (a full
    /// segment's: the size every later load asks for).
    reuse: bool,
}

/// Mappings of dropped regions kept for the next loads, at most
/// [`SPARE_REGIONS`]: without them, mapping, faulting and unmapping 1.5 MiB
/// a load made a script of queries that thrash the cache take 7.3–7.6 s
/// instead of 6.3 s. They hold at most 12 MiB, outside `--index-memory`.
static SPARE: Mutex<Vec<memmap2::MmapMut>> = Mutex::new(Vec::new());

/// Bytes between one piece's end and the next one's start (beyond
/// rounding to a cache line).
const STAGGER: usize = 64;

/// Bytes a region needs beyond its pieces for `pieces` of them.
pub(super) const fn padding(pieces: usize) -> usize {
    pieces * (64 + STAGGER)
}

/// At most this many spare mappings (a full segment's is 1.5 MiB).
const SPARE_REGIONS: usize = 8;

impl Drop for Region {
    fn drop(&mut self) {
        if !self.reuse {
            return;
        }
        if let Memory::Mapped(m) = std::mem::replace(&mut self.memory, Memory::Heap(Box::new([]))) {
            let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
            if spare.len() < SPARE_REGIONS {
                spare.push(m);
            }
        }
    }
}

enum Memory {
    Mapped(memmap2::MmapMut),
    Heap(Box<[u64]>),
}

impl Region {
    fn bytes(&self) -> &[u8] {
        match &self.memory {
            Memory::Mapped(m) => m,
            Memory::Heap(b) => bytemuck::cast_slice(b),
        }
    }
}

/// Lays out columns in a new region: each [`RegionBuilder::take`] hands
/// out the next piece, aligned for its type, to fill; [`RegionBuilder::finish`]
/// shares the region.
pub(super) struct RegionBuilder {
    memory: Memory,
    at: usize,
    reuse: bool,
}

/// Where a piece of a region starts and how many values it holds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Piece {
    start: usize,
    len: usize,
}

impl RegionBuilder {
    /// A region of `bytes` (rounded up to 8), mapped for it and unmapped
    /// when dropped.
    pub(super) fn new(bytes: usize) -> RegionBuilder {
        RegionBuilder::build(bytes, false)
    }

    /// The same for a size many loads ask for (a full segment's): from a
    /// spare mapping of that size if there is one, and kept as a spare
    /// when dropped (at most [`SPARE_REGIONS`] are).
    pub(super) fn reusable(bytes: usize) -> RegionBuilder {
        RegionBuilder::build(bytes, true)
    }

    fn build(bytes: usize, reuse: bool) -> RegionBuilder {
        let bytes = bytes.div_ceil(8) * 8;
        let spare = reuse
            .then(|| {
                let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
                let fits = spare.iter().position(|m| m.len() == bytes);
                fits.map(|i| spare.swap_remove(i))
            })
            .flatten();
        // A spare mapping is not zeroed again: every piece taken from it is
        // written in full before it is read.
        let mapped = spare.or_else(|| {
            (bytes > 0)
                .then(|| {
                    memmap2::MmapOptions::new()
                        .len(bytes)
                        .populate()
                        .map_anon()
                        .ok()
                })
                .flatten()
        });
        match mapped {
            Some(m) => RegionBuilder {
                memory: Memory::Mapped(m),
                at: 0,
                reuse,
            },
            None => RegionBuilder::on_heap(bytes),
        }
    }

    /// A region of `bytes` on the heap.
    fn on_heap(bytes: usize) -> RegionBuilder {
        RegionBuilder {
            memory: Memory::Heap(vec![0u64; bytes.div_ceil(8)].into_boxed_slice()),
            at: 0,
            reuse: false,
        }
    }

    /// The next `len` values of type `T`, to be written in full: a spare
    /// mapping still holds what its last segment held.
    ///
    /// # Panics
    /// When the region is too small: callers size it for exactly what they
    /// take.
    pub(super) fn take<T: Pod>(&mut self, len: usize) -> (Piece, &mut [T]) {
        // Each piece starts one cache line further from a page boundary
        // than the one before, so that columns read side by side do not
        // all map to the same cache sets.
        let start = (self.at.next_multiple_of(64) + STAGGER).next_multiple_of(align_of::<T>());
        let end = start + len * size_of::<T>();
        self.at = end;
        let bytes: &mut [u8] = match &mut self.memory {
            Memory::Mapped(m) => &mut m[start..end],
            Memory::Heap(b) => &mut bytemuck::cast_slice_mut(b)[start..end],
        };
        (Piece { start, len }, bytemuck::cast_slice_mut(bytes))
    }

    /// Reads piece `read` while filling piece `write`, which comes after it.
    ///
    /// # Panics
    /// When `write` does not start after `read` ends.
    pub(super) fn split<R: Pod, W: Pod>(&mut self, read: Piece, write: Piece) -> (&[R], &mut [W]) {
        let read_end = read.start + read.len * size_of::<R>();
        let write_end = write.start + write.len * size_of::<W>();
        assert!(read_end <= write.start, "pieces out of order");
        let bytes: &mut [u8] = match &mut self.memory {
            Memory::Mapped(m) => m,
            Memory::Heap(b) => bytemuck::cast_slice_mut(b),
        };
        let (head, tail) = bytes.split_at_mut(write.start);
        (
            bytemuck::cast_slice(&head[read.start..read_end]),
            bytemuck::cast_slice_mut(&mut tail[..write_end - write.start]),
        )
    }

    /// The filled region, shared (and only read) from here on.
    pub(super) fn finish(self) -> Arc<Region> {
        Arc::new(Region {
            memory: self.memory,
            reuse: self.reuse,
        })
    }
}

/// A column of `region` at `piece`.
pub(super) fn col<T: Pod>(region: &Arc<Region>, piece: Piece) -> Col<T> {
    Col::Region {
        region: Arc::clone(region),
        start: piece.start,
        len: piece.len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a region as a segment load does and reads it back.
    fn round_trip(mut b: RegionBuilder) -> Arc<Region> {
        let (times, out) = b.take::<i64>(1_001);
        out.iter_mut()
            .enumerate()
            .for_each(|(i, t)| *t = -(i as i64) << 40);
        let (events, out) = b.take::<u16>(1_001);
        out.iter_mut().enumerate().for_each(|(i, e)| *e = i as u16);
        let (ids, out) = b.take::<u32>(1_001);
        out.iter_mut()
            .enumerate()
            .for_each(|(i, a)| *a = u32::MAX - i as u32);
        let (rows, _) = b.take::<u16>(1_001);
        let (read, write) = b.split::<u32, u16>(ids, rows);
        for (w, r) in write.iter_mut().zip(read) {
            *w = (*r % 7) as u16;
        }
        let region = b.finish();
        let t: Col<i64> = col(&region, times);
        let e: Col<u16> = col(&region, events);
        let a: Col<u32> = col(&region, ids);
        let r: Col<u16> = col(&region, rows);
        assert_eq!(t.len(), 1_001);
        assert!(t.iter().enumerate().all(|(i, &v)| v == -(i as i64) << 40));
        assert!(e.iter().enumerate().all(|(i, &v)| v == i as u16));
        assert!(a.iter().enumerate().all(|(i, &v)| v == u32::MAX - i as u32));
        assert!(r.iter().zip(a.iter()).all(|(&r, &a)| r == (a % 7) as u16));
        assert_eq!(a.bytes(), 4_004);
        region
    }

    const BYTES: usize = 1_001 * (8 + 2 + 4 + 2) + padding(4);

    #[test]
    fn mapped_and_heap_regions_hold_the_same_columns() {
        let mapped = round_trip(RegionBuilder::new(BYTES));
        assert!(matches!(mapped.memory, Memory::Mapped(_)));
        let heap = round_trip(RegionBuilder::on_heap(BYTES));
        assert!(matches!(heap.memory, Memory::Heap(_)));
        assert_eq!(mapped.bytes()[..BYTES], heap.bytes()[..BYTES]);
    }

    #[test]
    fn a_dropped_region_is_mapped_again_by_the_next_load_of_its_size() {
        // Sizes no other test uses, so that no other test takes them.
        let bytes = BYTES + 8 * 977;
        let region = round_trip(RegionBuilder::reusable(bytes));
        let at = region.bytes().as_ptr();
        drop(region);
        let again = round_trip(RegionBuilder::reusable(bytes));
        assert_eq!(again.bytes().as_ptr(), at);
        // A region of a size few loads ask for (a stored tail's) is not
        // kept: it would hold a spare's place for nothing.
        let odd = BYTES + 8 * 983;
        drop(round_trip(RegionBuilder::new(odd)));
        let spare = SPARE.lock().unwrap();
        assert!(spare.iter().all(|m| m.len() != odd));
    }

    #[test]
    fn columns_of_whole_pages_start_at_different_places_in_a_page() {
        let mut b = RegionBuilder::on_heap(4 * 8_192 + padding(4));
        let starts: Vec<usize> = (0..4)
            .map(|_| b.take::<u64>(1_024).0.start % 4_096)
            .collect();
        assert_eq!(starts, [64, 128, 192, 256]);
    }

    #[test]
    fn a_column_written_to_leaves_its_region() {
        let region = round_trip(RegionBuilder::new(BYTES));
        let mut c: Col<i64> = col(
            &region,
            Piece {
                start: STAGGER,
                len: 3,
            },
        );
        c.push(7);
        assert!(matches!(c, Col::Heap(_)));
        assert_eq!(*c, [0, -(1 << 40), -(2 << 40), 7]);
        assert_eq!(Arc::strong_count(&region), 1);
    }
}
