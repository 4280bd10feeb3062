//! The token cache: every request authenticates, and a database read per
//! request would cost more than the rest of a small ingest, so tokens found
//! are trusted for a while, revocations (ours at once, other processes'
//! within a poll) clear the cache, and uses are persisted at most once a
//! minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auditlog_core::merkle::Hash;

use crate::{TOKEN_REVOCATION_POLL, TOKEN_USE_PERSIST_EVERY, TokenRecord};

/// How long a token found in the database is trusted without asking again.
/// Revocation through this store clears the cache at once; the TTL bounds
/// staleness for anything else.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);

pub(super) struct TokenCache {
    /// Live tokens by secret hash, with the time they were read.
    found: Mutex<HashMap<Hash, (TokenRecord, Instant)>>,
    /// Bumped by every revocation, so a look-up that raced one does not
    /// cache what it read before it.
    generation: AtomicU64,
    /// When the database was last asked whether another process revoked a
    /// token (see [`TOKEN_REVOCATION_POLL`]), and how many revoked tokens it
    /// had.
    revocations_seen: Mutex<(Instant, i64)>,
    /// The backend's revocation counter when last read (see
    /// [`LogBackend::revocations_notified`](crate::backend::LogBackend::revocations_notified)).
    notified: AtomicU64,
    /// Per token id, the last use time written (or queued to be written):
    /// a use is persisted only [`TOKEN_USE_PERSIST_EVERY`] after the last.
    uses: Mutex<HashMap<String, i64>>,
}

impl TokenCache {
    /// A cache for a database that has `revoked` revoked tokens now.
    pub(super) fn new(revoked: i64) -> TokenCache {
        TokenCache {
            found: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            notified: AtomicU64::new(0),
            revocations_seen: Mutex::new((Instant::now(), revoked)),
            uses: Mutex::new(HashMap::new()),
        }
    }

    /// The cached live token of `hash`, if read recently enough.
    pub(super) fn get(&self, hash: &Hash) -> Option<TokenRecord> {
        self.found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(t, _)| t.clone())
    }

    /// The generation to pass to [`TokenCache::insert`] for a look-up
    /// starting now.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `token`, read by a look-up that started at `generation`,
    /// unless a revocation happened since.
    pub(super) fn insert(&self, hash: Hash, token: TokenRecord, generation: u64) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            found.insert(hash, (token, Instant::now()));
        }
    }

    /// Drops every cached token, so the next look-up of each reads the
    /// database.
    pub(super) fn forget(&self) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        found.clear();
    }

    /// Takes the backend's revocation counter: if it moved, another
    /// process revoked a token, and the cache is forgotten.
    pub(super) fn notified_is(&self, count: u64) {
        if self.notified.swap(count, Ordering::SeqCst) != count {
            self.forget();
        }
    }

    /// Whether it is time to poll for revocations by other processes; if
    /// so, the caller polls and the others go on meanwhile.
    pub(super) fn poll_due(&self) -> bool {
        let mut seen = self
            .revocations_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.0.elapsed() < TOKEN_REVOCATION_POLL {
            return false;
        }
        seen.0 = Instant::now();
        true
    }

    /// Takes the polled count of revoked tokens: a change means another
    /// process revoked one, and the cache is forgotten.
    pub(super) fn revoked_count_is(&self, count: i64) {
        let changed = {
            let mut seen = self
                .revocations_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let changed = seen.1 != count;
            seen.1 = count;
            changed
        };
        if changed {
            self.forget();
        }
    }

    /// Whether a use of token `id` at `at_us` should be persisted: not
    /// within [`TOKEN_USE_PERSIST_EVERY`] of the last one. `persist` queues
    /// the write; only if it could is the use remembered.
    pub(super) fn note_use(&self, id: &str, at_us: i64, persist: impl FnOnce() -> bool) {
        let every = TOKEN_USE_PERSIST_EVERY.as_micros() as i64;
        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        if uses.get(id).is_some_and(|&last| at_us < last + every) {
            return;
        }
        if persist() {
            uses.insert(id.to_owned(), at_us);
        }
    }
}
