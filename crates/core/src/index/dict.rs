//! The dictionaries of the index's text columns: each distinct value once,
//! with its normalized form, up to the caps of [`IndexLimits`]; past them
//! the shared overflow ids ([`OVERFLOW`], [`ACTOR_OVERFLOW`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::{ABSENT, ACTOR_OVERFLOW, IndexLimits, OVERFLOW};
use crate::query::{Filter, op_matches};

/// What one distinct value costs besides its text: the `Arc<str>` header
/// (16), its place in the look-up map (key, id and control byte, ~40 with
/// the map's spare room) and in `values` and `normalized` (16 each, ~24
/// with a vector's spare room), and the allocator's rounding: 112, within
/// 7 % of what the `open_bytes` example measures.
const VALUE_OVERHEAD: usize = 112;

/// What one actor pair costs: its map entry (~24 with spare room), its
/// place in `pairs` and in the index's rows per actor (8 each, ~12 with
/// spare room).
pub(super) const ACTOR_OVERHEAD: usize = 48;

/// Distinct strings of one column, each with its normalized form.
///
/// Each distinct string is allocated once: the look-up map and the list
/// share it, and its normalized form shares it too when normalizing
/// changes nothing (ids, addresses, most workflow ids). An ingest token can
/// send many distinct values, so what each costs is what it must cost.
pub(super) struct Dict {
    pub(super) ids: HashMap<Arc<str>, u32>,
    /// Index 0 is the absent value, 1 the overflow (both empty here).
    pub(super) values: Vec<Arc<str>>,
    pub(super) normalized: Vec<Arc<str>>,
    /// Most distinct values held, and most bytes of their text.
    cap: usize,
    cap_bytes: usize,
    bytes: usize,
    /// Whether a value was refused for the cap: rows with [`OVERFLOW`].
    pub(super) overflowed: bool,
}

impl Dict {
    pub(super) fn new(limits: IndexLimits) -> Dict {
        let empty: Arc<str> = "".into();
        Dict {
            ids: HashMap::new(),
            values: vec![empty.clone(), empty.clone()],
            normalized: vec![empty.clone(), empty],
            cap: limits.max_distinct,
            cap_bytes: limits.max_distinct_bytes,
            bytes: 0,
            overflowed: false,
        }
    }

    pub(super) fn intern(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return ABSENT };
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        // Past the count cap every new value costs one look-up, not a
        // normalization: that is the ingest path of a flooding client.
        if self.ids.len() >= self.cap || self.bytes + s.len() > self.cap_bytes {
            self.overflowed = true;
            return OVERFLOW;
        }
        let normalized = crate::query::normalize(s);
        let text = s.len() + if normalized == s { 0 } else { normalized.len() };
        if self.bytes + text > self.cap_bytes {
            self.overflowed = true;
            return OVERFLOW;
        }
        self.bytes += text;
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        let value: Arc<str> = s.into();
        let normalized = if *normalized == *s {
            value.clone()
        } else {
            normalized.into()
        };
        self.values.push(value.clone());
        self.normalized.push(normalized);
        self.ids.insert(value, id);
        id
    }

    /// The id `s` was given, without adding it: a value that is not here
    /// arrived past the cap (the row holds [`OVERFLOW`]).
    pub(super) fn lookup(&self, s: Option<&str>) -> u32 {
        match s {
            None => ABSENT,
            Some(s) => self.ids.get(s).copied().unwrap_or(OVERFLOW),
        }
    }

    /// Bytes it holds, estimated from its counts (no walk): each value's
    /// text once, plus [`VALUE_OVERHEAD`].
    pub(super) fn heap_estimate(&self) -> usize {
        self.bytes + self.values.len() * VALUE_OVERHEAD
    }

    /// Appends to `out` whether the filter holds for each value id in
    /// `ids` (so `out[id]`, when filled from 0 up).
    pub(super) fn table_part(
        &self,
        filter: &Filter,
        needle: &str,
        ids: std::ops::Range<usize>,
        out: &mut Vec<bool>,
    ) {
        out.extend(ids.map(|i| {
            let field = (i as u32 != ABSENT).then_some(&*self.normalized[i]);
            op_matches(filter.op, field, needle)
        }));
    }
}

/// Actors are interned as (id, name) pairs; the pair id is the row's value.
/// Pair 0 is [`ACTOR_OVERFLOW`]: an actor whose id or name overflowed its
/// dictionary, or that arrived when the pairs were full.
pub(super) struct Actors {
    ids: HashMap<(u32, u32), u32>,
    /// Per actor: (user id in `user_ids`, display name in `names`).
    pub(super) pairs: Vec<(u32, u32)>,
    cap: usize,
    pub(super) overflowed: bool,
}

impl Actors {
    /// No actor but the overflow one (pair 0), at most `cap` others.
    pub(super) fn new(cap: usize) -> Actors {
        Actors {
            ids: HashMap::new(),
            pairs: vec![(OVERFLOW, OVERFLOW)],
            cap,
            overflowed: false,
        }
    }

    /// The pair's id without adding it ([`ACTOR_OVERFLOW`] if absent).
    pub(super) fn lookup(&self, user: u32, name: u32) -> u32 {
        self.ids
            .get(&(user, name))
            .copied()
            .unwrap_or(ACTOR_OVERFLOW)
    }

    /// The pair's id; a new one is `pairs.len()` (the caller pushes it).
    pub(super) fn intern(&mut self, user: u32, name: u32) -> u32 {
        if user == OVERFLOW || name == OVERFLOW {
            self.overflowed = true;
            return ACTOR_OVERFLOW;
        }
        if let Some(&id) = self.ids.get(&(user, name)) {
            return id;
        }
        if self.ids.len() >= self.cap {
            self.overflowed = true;
            return ACTOR_OVERFLOW;
        }
        let id = u32::try_from(self.pairs.len()).expect("fewer than 2^32 actors");
        self.ids.insert((user, name), id);
        id
    }
}
