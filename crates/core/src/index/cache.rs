//! The segment cache: sealed segments of every account's index held in
//! memory within one byte budget, least recently used evicted first.
//!
//! One cache serves every account of a process, so the operator sets one
//! number (`--index-memory`) and a large account's old segments cost
//! nothing until a query reads them. The lock is held for a look-up or an
//! insert only (a hash-map operation), never while a segment is read from
//! the store or decoded. Queries missing the same segment at once load it
//! once: the dashboard asks for a count, a histogram and a page together,
//! and after a restart all three want the same segments.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::segment::Segment;

/// Counters of a [`SegmentCache`], for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Segments read from the store (misses that loaded, repairs included).
    pub loads: u64,
    pub evictions: u64,
    /// Bytes of the segments held now.
    pub bytes: u64,
    /// The budget.
    pub budget: u64,
}

/// Key of a segment: the index's id in this process, the segment's number.
type Key = (u64, u32);

struct Lru {
    map: LruCache<Key, Arc<Segment>>,
    bytes: usize,
}

/// Sealed segments in memory, within a byte budget.
pub struct SegmentCache {
    budget: usize,
    lru: Mutex<Lru>,
    /// Segments being loaded, each with the gate that the queries waiting
    /// for it queue on.
    loading: Mutex<HashMap<Key, Arc<Mutex<()>>>>,
    next_index: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for SegmentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl SegmentCache {
    /// A cache holding at most `budget` bytes of segments (0 holds none:
    /// every read loads).
    pub fn new(budget: usize) -> Arc<SegmentCache> {
        Arc::new(SegmentCache {
            budget,
            lru: Mutex::new(Lru {
                map: LruCache::unbounded(),
                bytes: 0,
            }),
            loading: Mutex::new(HashMap::new()),
            next_index: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            loads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    /// A fresh id for an index using this cache.
    pub(super) fn index_id(&self) -> u64 {
        self.next_index.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Segment `key` from memory, or from `load` (then held): one load at a
    /// time per segment, the queries that miss it meanwhile wait for that
    /// load and take its result from the cache. (If the budget evicted it
    /// at once, a waiter loads it again: a read, never a wrong answer.)
    pub(super) fn get_or_load(
        &self,
        key: Key,
        load: impl FnOnce() -> Result<Segment, String>,
    ) -> Result<Arc<Segment>, String> {
        if let Some(s) = self.get(key) {
            return Ok(s);
        }
        let gate = self
            .loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let turn = gate.lock().unwrap_or_else(|e| e.into_inner());
        // The query before this one in line may have loaded it.
        let loaded = self.lock().map.get(&key).cloned();
        let result = match loaded {
            Some(s) => Ok(s),
            None => load().map(|s| {
                let s = Arc::new(s);
                self.insert(key, s.clone(), true);
                s
            }),
        };
        drop(turn);
        let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if loading.get(&key).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
            loading.remove(&key);
        }
        result
    }

    pub(super) fn get(&self, key: Key) -> Option<Arc<Segment>> {
        let found = self.lock().map.get(&key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Holds `segment` (just loaded or sealed), evicting the least recently
    /// used ones past the budget — possibly `segment` itself, which its
    /// caller still holds for the query at hand.
    pub(super) fn insert(&self, key: Key, segment: Arc<Segment>, loaded: bool) {
        if loaded {
            self.loads.fetch_add(1, Ordering::Relaxed);
        }
        let bytes = segment.heap_bytes();
        let mut evicted = Vec::new();
        {
            let mut g = self.lock();
            if let Some(old) = g.map.put(key, segment) {
                g.bytes -= old.heap_bytes();
            }
            g.bytes += bytes;
            while g.bytes > self.budget {
                let Some((_, old)) = g.map.pop_lru() else {
                    break;
                };
                g.bytes -= old.heap_bytes();
                evicted.push(old);
            }
        }
        self.evictions
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
        // Freed outside the lock.
        drop(evicted);
    }

    /// Drops segments `0..segments` of index `index` (an index that is
    /// gone: its account was closed): nobody can ask for them again, since
    /// a reopened account's index gets a new id, so they would only hold
    /// the budget until least recently used. Not counted as evictions.
    pub(super) fn forget(&self, index: u64, segments: u32) {
        let mut dropped = Vec::new();
        {
            let mut g = self.lock();
            for no in 0..segments {
                if let Some(old) = g.map.pop(&(index, no)) {
                    g.bytes -= old.heap_bytes();
                    dropped.push(old);
                }
            }
        }
        // Freed outside the lock.
        drop(dropped);
    }

    pub fn stats(&self) -> CacheStats {
        let bytes = self.lock().bytes as u64;
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes,
            budget: self.budget as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::super::Chunk;
    use super::*;

    #[test]
    fn queries_missing_one_segment_together_load_it_once() {
        let cache = SegmentCache::new(1 << 20);
        let reads = AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    cache
                        .get_or_load((0, 7), || {
                            reads.fetch_add(1, Ordering::SeqCst);
                            // A read from the store takes a while: the
                            // other queries arrive meanwhile.
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(Segment::of(Chunk::empty()))
                        })
                        .unwrap();
                });
            }
        });
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!((stats.loads, stats.misses + stats.hits), (1, 8));
        assert!(
            cache.loading.lock().unwrap().is_empty(),
            "no gate left behind"
        );
        // A failed load is not cached, and the next query tries again.
        let fail = cache.get_or_load((0, 8), || Err("unreadable".into()));
        assert_eq!(fail.err().as_deref(), Some("unreadable"));
        assert!(
            cache
                .get_or_load((0, 8), || Ok(Segment::of(Chunk::empty())))
                .is_ok()
        );
    }
}
