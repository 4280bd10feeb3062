//! The pool of read connections: at most [`MAX_READERS`] open at once.
//!
//! Each connection holds a page cache of its own (up to
//! [`super::SqliteOptions::cache_kib`]), and a read holds a blocking thread.
//! Unbounded, a burst of slow reads (description filters over all time,
//! twenty at once, 1M events) opened a connection each and kept them all,
//! each allowed 16 MiB of cache that no budget covered. Bounded, the caches
//! cost at most `MAX_READERS × cache_kib` whatever the clients do, and a
//! read beyond the bound waits for a connection, within [`READER_WAIT`],
//! then answers "unavailable" (503 with `Retry-After`).
//!
//! A read may take a second connection while it holds one: a query runs
//! with a reader in hand and loads index segments through another. Such a
//! nested read never waits (all eight queries could hold a connection and
//! wait for a second one, none ever freed), so about `2 × MAX_READERS` are
//! open at most (reads nest one deep).

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::SqliteReader;
use crate::{Result, StoreError, StoreErrorKind};

/// Read connections open at most (nested reads aside). A read is SQLite
/// work on a blocking thread: eight keep a few cores busy while some wait
/// on the disk, and hold at most 32 MiB of page cache.
pub const MAX_READERS: usize = 8;

/// How long a read waits for a connection before it gives up: as long as
/// a query may run (its deadline), so a waiting read gives up no sooner
/// than the reads ahead of it must end.
pub const READER_WAIT: Duration = Duration::from_secs(10);

struct Slots {
    idle: Vec<SqliteReader>,
    /// Connections open: idle ones and those in use.
    open: usize,
}

pub(super) struct Readers {
    slots: Mutex<Slots>,
    freed: Condvar,
}

/// A connection taken from the pool, returned when dropped (closed instead
/// if the read panicked: it may have left a transaction open).
pub(super) struct Pooled<'a> {
    pool: &'a Readers,
    reader: Option<SqliteReader>,
    /// Counted in this thread's [`HELD`]: stays on the thread.
    _here: PhantomData<*const ()>,
}

thread_local! {
    /// Pooled connections this thread holds.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

impl std::ops::Deref for Pooled<'_> {
    type Target = SqliteReader;

    fn deref(&self) -> &SqliteReader {
        self.reader.as_ref().expect("held until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get() - 1));
        let reader = self.reader.take();
        let mut slots = self.pool.lock();
        match reader {
            Some(r) if !std::thread::panicking() => slots.idle.push(r),
            _ => slots.open -= 1,
        }
        drop(slots);
        self.pool.freed.notify_one();
    }
}

impl Readers {
    pub(super) fn new() -> Readers {
        Readers {
            slots: Mutex::new(Slots {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hand(&self, reader: SqliteReader) -> Pooled<'_> {
        HELD.with(|h| h.set(h.get() + 1));
        Pooled {
            pool: self,
            reader: Some(reader),
            _here: PhantomData,
        }
    }

    /// An idle connection, a new one (`open`) while fewer than `max` are
    /// open (or this thread already holds one: see the module's doc), or
    /// the first one freed within `wait`.
    pub(super) fn take(
        &self,
        max: usize,
        wait: Duration,
        open: impl FnOnce() -> Result<SqliteReader>,
    ) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + wait;
        let mut slots = self.lock();
        loop {
            if let Some(reader) = slots.idle.pop() {
                return Ok(self.hand(reader));
            }
            if slots.open < max || HELD.with(Cell::get) > 0 {
                slots.open += 1;
                drop(slots);
                return match open() {
                    Ok(reader) => Ok(self.hand(reader)),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!(
                        "all {max} read connections stayed busy for {} s; retry, or narrow the queries running now",
                        wait.as_secs()
                    ),
                ));
            }
            slots = self
                .freed
                .wait_timeout(slots, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Connections open now (idle and in use).
    #[cfg(test)]
    pub(super) fn open(&self) -> usize {
        self.lock().open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Result<SqliteReader> {
        Ok(SqliteReader {
            conn: rusqlite::Connection::open_in_memory().expect("in-memory database"),
            write_order: true,
        })
    }

    #[test]
    fn a_read_past_the_bound_waits_for_a_connection_or_gives_up() {
        let pool = Readers::new();
        let wait = Duration::from_millis(50);
        let a = pool.take(2, wait, open).unwrap();
        let b = pool.take(2, wait, open).unwrap();
        // Another thread's read (this one holds connections, so its own
        // reads would be nested ones).
        let err = std::thread::scope(|s| {
            s.spawn(|| {
                pool.take(2, wait, || panic!("a third connection was opened"))
                    .map(drop)
            })
            .join()
            .unwrap()
        })
        .expect_err("both connections are busy");
        assert_eq!(err.kind, StoreErrorKind::Unavailable);
        assert!(err.to_string().contains("all 2 read connections"), "{err}");
        // One freed while a read waits: the read takes it, and opens none
        // (the bound holds while it waits).
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                pool.take(2, Duration::from_secs(60), || {
                    panic!("opened past the bound")
                })
                .map(drop)
            });
            // Most likely waiting by now; if not, it finds the freed one idle.
            std::thread::sleep(Duration::from_millis(50));
            drop(a);
            waiter.join().unwrap().unwrap();
        });
        drop(b);
        assert_eq!(
            pool.open(),
            2,
            "freed connections are kept for the next reads"
        );
        // A read that panics closes its connection instead of returning it.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = pool.take(2, wait, open).unwrap();
            panic!("a read failed");
        }));
        assert!(caught.is_err());
        assert_eq!(pool.open(), 1);
        // A read holding a connection takes a second one past the bound,
        // without waiting.
        {
            let _outer = pool.take(1, wait, open).unwrap();
            let _nested = pool
                .take(1, Duration::from_secs(600), open)
                .expect("a nested read never waits");
            assert_eq!(pool.open(), 2);
        }
        // A connection that cannot be opened frees its slot.
        let pool = Readers::new();
        assert!(
            pool.take(1, wait, || Err(StoreError::new(
                StoreErrorKind::Internal,
                "no file"
            )))
            .is_err()
        );
        assert_eq!(pool.open(), 0);
        pool.take(1, wait, open).unwrap();
    }
}
