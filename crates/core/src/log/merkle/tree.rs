//! The incremental appender: the right edge of the tree and the tiles that
//! appends fill, ready for a store to upsert.

use super::hash::Hash;
use super::range::CompactRange;
use super::tile::{
    FULL, ReadTileError, TILE_HEIGHT, TILE_WIDTH, TileId, TileReader, perfect_root, read_checked,
    tile_bytes,
};

/// The incremental appender of one account's log: the compact range (for the
/// root) plus the current partial tile of every tile level (for persisting).
///
/// The store appends the leaf hashes of a batch of events, then calls
/// [`take_full_tiles`](Self::take_full_tiles) and writes the tiles that
/// filled up in the same transaction as the events (partial tiles are
/// derived from the full ones below when read), so the stored tiles always
/// describe exactly the stored events. A store that keeps partial tiles
/// too would upsert [`take_dirty_tiles`](Self::take_dirty_tiles) instead.
#[derive(Clone, Debug, Default)]
pub struct TreeState {
    range: CompactRange,
    /// `partial[L]`: the hashes of the last, not yet full, tile of level `L`
    /// (empty right after a tile fills up). At most 255 each.
    partial: Vec<Vec<Hash>>,
    /// `dirty[L]`: the partial tile of level `L` changed since the last take.
    dirty: Vec<bool>,
    /// Tiles that filled up since the last take; they are out of `partial`.
    filled: Vec<(TileId, Vec<u8>)>,
}

impl TreeState {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The root hash of the tree (RFC 9162 MTH).
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// Bytes it holds on the heap: the compact range, the partial tiles
    /// (at most 255 hashes a level) and tiles not yet taken. What an open
    /// account's tree costs, for the store's bound on open accounts.
    pub fn heap_bytes(&self) -> usize {
        let hashes =
            self.range.hashes().len() + self.partial.iter().map(Vec::capacity).sum::<usize>();
        hashes * std::mem::size_of::<Hash>()
            + self.partial.capacity() * std::mem::size_of::<Vec<Hash>>()
            + self.dirty.capacity()
            + self
                .filled
                .iter()
                .map(|(_, b)| b.capacity() + 32)
                .sum::<usize>()
    }

    /// The right-edge subtree roots, largest first.
    pub fn compact_range(&self) -> &[Hash] {
        self.range.hashes()
    }

    /// Appends one leaf hash (see [`hash_leaf`](super::hash_leaf)) and records which tiles
    /// changed.
    pub fn append(&mut self, leaf: Hash) {
        let new_size = self.range.size() + 1;
        let partial = &mut self.partial;
        let dirty = &mut self.dirty;
        let filled = &mut self.filled;
        self.range.append_with(leaf, |level, hash| {
            if level % TILE_HEIGHT != 0 {
                return;
            }
            let tl = (level / TILE_HEIGHT) as usize;
            if partial.len() <= tl {
                partial.resize_with(tl + 1, Vec::new);
                dirty.resize(tl + 1, false);
            }
            partial[tl].push(*hash);
            dirty[tl] = true;
            if partial[tl].len() == usize::from(TILE_WIDTH) {
                let count = new_size >> level;
                let id = TileId {
                    level: tl as u8,
                    index: count / FULL - 1,
                    width: TILE_WIDTH,
                };
                filled.push((id, tile_bytes(&partial[tl])));
                partial[tl].clear();
                // The full tile carries the content; the now-empty partial
                // tile of this level has nothing to store until it grows.
                dirty[tl] = false;
            }
        });
    }

    /// The tiles that filled up since the last call (width 256), for a store
    /// that keeps only full tiles: each is written once and never changes,
    /// and partial tiles are derived on demand (see [`full_tile_root`](super::full_tile_root)).
    pub fn take_full_tiles(&mut self) -> Vec<(TileId, Vec<u8>)> {
        self.dirty.fill(false);
        std::mem::take(&mut self.filled)
    }

    /// The tiles changed since the last call, each with its whole content so
    /// far (`width * 32` bytes): every tile that filled up (width 256), then
    /// the current partial tile of every level that grew. Upsert each by
    /// `(level, index)`; a later version of a tile always extends an earlier
    /// one.
    pub fn take_dirty_tiles(&mut self) -> Vec<(TileId, Vec<u8>)> {
        let mut out = std::mem::take(&mut self.filled);
        let size = self.size();
        for (tl, dirty) in self.dirty.iter_mut().enumerate() {
            if !*dirty {
                continue;
            }
            *dirty = false;
            let hashes = &self.partial[tl];
            let count = size >> (TILE_HEIGHT * tl as u32);
            debug_assert_eq!(count % FULL, hashes.len() as u64);
            let id = TileId {
                level: tl as u8,
                index: count / FULL,
                width: hashes.len() as u16,
            };
            out.push((id, tile_bytes(hashes)));
        }
        out
    }

    /// Rebuilds the state of a tree of `size` leaves from its stored tiles,
    /// reading only the last, partial tile of each level (at most 8 reads).
    ///
    /// It does not re-verify the tiles against a checkpoint; compare
    /// [`root`](Self::root) with the last signed checkpoint for that.
    pub fn restore<R: TileReader>(size: u64, reader: &R) -> Result<Self, ReadTileError<R::Error>> {
        let mut partial = Vec::new();
        let mut tl: u32 = 0;
        while tl < 8 {
            let count = size >> (TILE_HEIGHT * tl);
            if count == 0 {
                break;
            }
            let width = (count % FULL) as u16;
            let hashes = if width == 0 {
                Vec::new()
            } else {
                let tile = TileId {
                    level: tl as u8,
                    index: count / FULL,
                    width,
                };
                read_checked(reader, tile)?
            };
            partial.push(hashes);
            tl += 1;
        }

        // Each set bit k of the size is a right-edge subtree. Its 2^r
        // children at tree level 8L (k = 8L + r) all sit in the partial tile
        // of level L: bit r of that level's count is set, so the count is at
        // least 2^r past the start of its last tile.
        let mut hashes = Vec::new();
        for k in (0..64u32).rev() {
            if size >> k & 1 == 0 {
                continue;
            }
            let (l, r) = ((k / TILE_HEIGHT) as usize, k % TILE_HEIGHT);
            let count = size >> (TILE_HEIGHT * l as u32);
            let tile_start = count / FULL * FULL;
            let first = ((size >> k) - 1) << r;
            let offset = (first - tile_start) as usize;
            hashes.push(perfect_root(&partial[l][offset..offset + (1 << r)]));
        }

        let dirty = vec![false; partial.len()];
        Ok(Self {
            range: CompactRange { size, hashes },
            partial,
            dirty,
            filled: Vec::new(),
        })
    }
}
