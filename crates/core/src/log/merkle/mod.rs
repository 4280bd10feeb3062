//! The per-account Merkle log: RFC 9162 §2.1 hashing, the incremental
//! appender that keeps the tree as C2SP tlog-tiles, and inclusion and
//! consistency proofs read from those tiles and checked against a root.
//!
//! # Tiles
//!
//! Level `k` of the tree holds the hashes of the complete subtrees of `2^k`
//! leaves (level 0 holds the leaf hashes). Tile level `L` stores tree level
//! `8L`; tile `N` of that level holds the nodes `[256N, 256N + 256)`, and the
//! last tile of a level may be partial (width < 256). Everything above level
//! `8L` and below level `8L + 8` is recomputed from at most 128 hashes of one
//! tile, so any node of a tree of size `n` costs one tile read, and a proof
//! reads O(log n) tiles.
//!
//! **Invariant:** a tile only grows. The content of tile `(L, N)` at width
//! `w` is a prefix of its content at any larger width, because a node hash
//! never changes once its subtree is complete. Stores may therefore upsert a
//! tile by `(level, index)` and answer a read of width `w` with the first `w`
//! hashes of whatever they hold.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node or a root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Tree levels stored per tile level (C2SP tlog-tiles uses 8).
pub const TILE_HEIGHT: u32 = 8;

/// Hashes in a full tile: `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u16 = 256;

const FULL: u64 = TILE_WIDTH as u64;

/// Hashes a leaf: `SHA-256(0x00 ‖ data)`.
pub fn hash_leaf(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// Hashes a leaf given in parts, without concatenating them first:
/// `SHA-256(0x00 ‖ parts[0] ‖ parts[1] ‖ …)`. The verifier uses it to hash a
/// canonical record straight out of an export line.
pub fn hash_leaf_parts(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Hashes an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
///
/// The input always has the same 65-byte length, so the two padded blocks
/// are laid out here and fed straight to the compression function, skipping
/// the generic streaming wrapper. Proofs and root computations are mostly
/// node hashes; this makes them markedly faster, in debug builds above all.
pub fn hash_node(left: &Hash, right: &Hash) -> Hash {
    let mut blocks = [[0u8; 64]; 2];
    blocks[0][0] = 0x01;
    blocks[0][1..33].copy_from_slice(left);
    blocks[0][33..].copy_from_slice(&right[..31]);
    blocks[1][0] = right[31];
    blocks[1][1] = 0x80;
    // Message length in bits, big-endian: 65 * 8 = 520.
    blocks[1][56..].copy_from_slice(&(65u64 * 8).to_be_bytes());
    let mut state = SHA256_IV;
    sha2::block_api::compress256(&mut state, &blocks);
    let mut out = [0u8; 32];
    for i in 0..8 {
        out[4 * i..4 * i + 4].copy_from_slice(&state[i].to_be_bytes());
    }
    out
}

/// The root of a full tile's subtree: the node one tile level up. A store
/// that keeps only full tiles derives a partial tile of level `L` from the
/// roots of the full tiles below it (and level 0 from the leaf hashes).
pub fn full_tile_root(tile: &[Hash]) -> Hash {
    assert_eq!(tile.len(), usize::from(TILE_WIDTH), "a full tile");
    perfect_root(tile)
}

/// The root of a perfect subtree whose bottom row is `row` (a power of two
/// long, at most one tile): reduces pairwise, in place, like the tree.
fn perfect_root(row: &[Hash]) -> Hash {
    debug_assert!(row.len().is_power_of_two() && row.len() <= usize::from(TILE_WIDTH));
    let mut buf = [[0u8; 32]; TILE_WIDTH as usize / 2];
    let mut len = row.len() / 2;
    if len == 0 {
        return row[0];
    }
    for i in 0..len {
        buf[i] = hash_node(&row[2 * i], &row[2 * i + 1]);
    }
    while len > 1 {
        len /= 2;
        for i in 0..len {
            buf[i] = hash_node(&buf[2 * i], &buf[2 * i + 1]);
        }
    }
    buf[0]
}

/// The largest power of two strictly below `n` (the RFC's `k`); `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// One stored tile: its tile level, index within the level and width (the
/// number of hashes it holds, 1..=256).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Tile level `L`: the tile holds hashes of tree level `8L`.
    pub level: u8,
    /// Tile index `N`: the tile holds nodes `[256N, 256N + width)` of its level.
    pub index: u64,
    /// Number of hashes, 256 for a full tile.
    pub width: u16,
}

impl TileId {
    /// Whether the tile holds all 256 hashes and will never change again.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The C2SP tlog-tiles path: `tile/<L>/<N>[.p/<W>]`, where `N` is written
    /// in zero-padded groups of three digits, all but the last prefixed with
    /// `x` (`1234067` → `x001/x234/067`).
    pub fn path(&self) -> String {
        let mut groups = Vec::new();
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        let mut out = format!("tile/{}/", self.level);
        for (i, g) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                out.push_str(&format!("x{g:03}/"));
            } else {
                out.push_str(&format!("{g:03}"));
            }
        }
        if !self.is_full() {
            out.push_str(&format!(".p/{}", self.width));
        }
        out
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Splits stored tile bytes into hashes; `None` unless the length is a whole
/// number of hashes.
pub fn tile_hashes(data: &[u8]) -> Option<Vec<Hash>> {
    let chunks = data.chunks_exact(32);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect(),
    )
}

fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// The state of a tree that only needs its root: the "compact range", one
/// hash per complete subtree along the right edge (one per set bit of the
/// size, largest first), at most 64 hashes. Appending costs one leaf plus,
/// on average, one node hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right-edge subtree roots, largest (leftmost) first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash.
    pub fn append(&mut self, leaf: Hash) {
        self.append_with(leaf, |_, _| {});
    }

    /// Appends one leaf hash and reports every subtree it completes, from the
    /// leaf itself (level 0) upwards, with its level.
    fn append_with(&mut self, leaf: Hash, mut on_node: impl FnMut(u32, &Hash)) {
        let mut node = leaf;
        let mut level = 0;
        on_node(level, &node);
        // Each trailing one bit of the old size is a subtree of the new
        // leaf's size waiting for a right sibling: merge with it.
        let mut s = self.size;
        while s & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                unreachable!("compact range holds one hash per set bit of the size");
            };
            node = hash_node(&left, &node);
            level += 1;
            on_node(level, &node);
            s >>= 1;
        }
        self.hashes.push(node);
        self.size += 1;
    }

    /// Appends a whole perfect subtree of `2^level` leaves, given its root:
    /// the same as appending its leaves one by one. The size must be a
    /// multiple of `2^level` (the subtree is aligned, as every node of a
    /// [`Span`] is).
    pub fn append_subtree(&mut self, level: u32, root: Hash) {
        assert!(
            level < 64 && self.size.trailing_zeros() >= level,
            "a subtree of 2^{level} leaves cannot start at leaf {}",
            self.size
        );
        let mut node = root;
        let mut s = self.size >> level;
        while s & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                unreachable!("compact range holds one hash per set bit of the size");
            };
            node = hash_node(&left, &node);
            s >>= 1;
        }
        self.hashes.push(node);
        self.size += 1 << level;
    }

    /// The root hash (RFC 9162 MTH) of the leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else {
            return EMPTY_ROOT;
        };
        it.fold(*last, |acc, left| hash_node(left, &acc))
    }
}

/// The leaves `[lo, hi)` of a larger tree, reduced to the roots of the
/// aligned perfect subtrees that tile them (at most two per level), and
/// grown one leaf at a time at either end. The offline verifier hashes an
/// export into one as it reads it, oldest first or newest first, in
/// O(log n) memory; [`CompactRange::append_subtree`] then places it in the
/// tree.
///
/// **Invariant:** `nodes` is the canonical tiling of `[lo, hi)`: the aligned
/// perfect subtrees inside the span whose parents are not, left to right.
/// Growing an end by a leaf only merges the new leaf with its ancestors'
/// other halves, which are then the nodes at that end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    lo: u64,
    hi: u64,
    /// `(level, root)`: the subtree of leaves `[i·2^level, (i+1)·2^level)`.
    nodes: std::collections::VecDeque<(u32, Hash)>,
}

impl Span {
    /// The span holding only leaf `at`.
    pub fn new(at: u64, leaf: Hash) -> Self {
        assert!(
            at < u64::MAX,
            "leaf index {at} leaves no room for the span's end"
        );
        Self {
            lo: at,
            hi: at + 1,
            nodes: [(0, leaf)].into(),
        }
    }

    /// The first leaf index held.
    pub fn lo(&self) -> u64 {
        self.lo
    }

    /// One past the last leaf index held.
    pub fn hi(&self) -> u64 {
        self.hi
    }

    /// Adds leaf `hi` at the right end.
    pub fn push_back(&mut self, leaf: Hash) {
        assert!(self.hi < u64::MAX, "the span is at the last leaf index");
        let (mut node, mut level, mut pos) = (leaf, 0u32, u128::from(self.hi));
        // A right child whose left sibling lies inside the span: that
        // sibling is the last node (the tiling is canonical).
        while pos & 1 == 1 && (pos - 1) << level >= u128::from(self.lo) {
            let Some((left_level, left)) = self.nodes.pop_back() else {
                unreachable!("the left sibling is in the span");
            };
            debug_assert_eq!(left_level, level);
            node = hash_node(&left, &node);
            pos >>= 1;
            level += 1;
        }
        self.nodes.push_back((level, node));
        self.hi += 1;
    }

    /// Adds leaf `lo - 1` at the left end.
    pub fn push_front(&mut self, leaf: Hash) {
        assert!(self.lo > 0, "the span already starts at leaf 0");
        self.lo -= 1;
        let (mut node, mut level, mut pos) = (leaf, 0u32, u128::from(self.lo));
        // A left child whose right sibling lies inside the span: that
        // sibling is the first node.
        while pos & 1 == 0 && (pos + 2) << level <= u128::from(self.hi) {
            let Some((right_level, right)) = self.nodes.pop_front() else {
                unreachable!("the right sibling is in the span");
            };
            debug_assert_eq!(right_level, level);
            node = hash_node(&node, &right);
            pos >>= 1;
            level += 1;
        }
        self.nodes.push_front((level, node));
    }

    /// The tiling's subtrees, left to right, as `(level, root)`: appended in
    /// order to a [`CompactRange`] of size `lo`, they extend it to `hi`.
    pub fn subtrees(&self) -> impl Iterator<Item = (u32, Hash)> + '_ {
        self.nodes.iter().copied()
    }
}

/// Computes the root of the tree whose leaf hashes are `leaves`, in order.
/// The fast path for whoever needs only a root (the offline verifier, and a
/// convenient function to benchmark).
pub fn root_from_leaves<I: IntoIterator<Item = Hash>>(leaves: I) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaves {
        range.append(leaf);
    }
    range.root()
}

/// Read access to stored tiles, for proofs and for restoring a
/// [`TreeState`] after a restart.
///
/// Contract, which every store must honour:
///
/// - `read_tile(level, index, width)` returns exactly `width` hashes: the
///   first `width` hashes of the stored tile `(level, index)`. A stored tile
///   may be wider than asked (tiles only grow), never narrower.
/// - If the tile is missing or narrower than `width`, it returns an error;
///   it never pads or returns fewer hashes (the callers check, and report a
///   short answer as [`ReadTileError::ShortTile`]).
/// - Reads are pure: the same arguments always give the same hashes, whatever
///   was appended since, because a tile's prefix never changes.
pub trait TileReader {
    /// Why a tile could not be read (missing, I/O, …).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The first `width` hashes of tile `index` at tile level `level`.
    fn read_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, Self::Error>;
}

impl<R: TileReader + ?Sized> TileReader for &R {
    type Error = R::Error;

    fn read_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, Self::Error> {
        (**self).read_tile(level, index, width)
    }
}

/// A tile could not be read, or the store answered with the wrong width.
#[derive(Debug, thiserror::Error)]
pub enum ReadTileError<E> {
    /// The store failed to read the tile.
    #[error("could not read tile {tile}")]
    Read {
        /// The tile asked for.
        tile: TileId,
        /// The store's error.
        #[source]
        source: E,
    },
    /// The store returned a number of hashes other than the width asked for.
    #[error("tile {tile} was read with {got} hashes, expected {}", tile.width)]
    ShortTile {
        /// The tile asked for.
        tile: TileId,
        /// How many hashes came back.
        got: usize,
    },
}

fn read_checked<R: TileReader>(
    reader: &R,
    tile: TileId,
) -> Result<Vec<Hash>, ReadTileError<R::Error>> {
    let hashes = reader
        .read_tile(tile.level, tile.index, tile.width)
        .map_err(|source| ReadTileError::Read { tile, source })?;
    if hashes.len() != usize::from(tile.width) {
        return Err(ReadTileError::ShortTile {
            tile,
            got: hashes.len(),
        });
    }
    Ok(hashes)
}

/// The tile of level `level` holding node `node` of tree level `8 * level`,
/// as it is in a tree of `size` leaves.
fn tile_for(size: u64, level: u8, node: u64) -> TileId {
    let count = size >> (TILE_HEIGHT * u32::from(level));
    let index = node / FULL;
    // Nodes of that level in this tile: all 256 unless it is the last one.
    // Callers only ask for nodes inside the tree, so this is at least 1; a 0
    // would come back as a short tile, not a panic.
    let width = count.saturating_sub(index * FULL).min(FULL);
    TileId {
        level,
        index,
        width: width as u16,
    }
}

/// The incremental appender of one account's log: the compact range (for the
/// root) plus the current partial tile of every tile level (for persisting).
///
/// The store appends the leaf hashes of a batch of events, then calls
/// [`take_dirty_tiles`](Self::take_dirty_tiles) and upserts what it returns in
/// the same transaction as the events, so the stored tiles always describe
/// exactly the stored events.
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

    /// The right-edge subtree roots, largest first.
    pub fn compact_range(&self) -> &[Hash] {
        self.range.hashes()
    }

    /// Appends one leaf hash (see [`hash_leaf`]) and records which tiles
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
    /// and partial tiles are derived on demand (see [`full_tile_root`]).
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

/// A proof could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildProofError<E> {
    /// Inclusion asked for a leaf outside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size asked for.
        size: u64,
    },
    /// Consistency asked from a larger tree to a smaller one.
    #[error("old tree size {from} is larger than new tree size {to}")]
    SizesOutOfOrder {
        /// The old tree size.
        from: u64,
        /// The new tree size.
        to: u64,
    },
    /// A tile could not be read.
    #[error(transparent)]
    Tile(#[from] ReadTileError<E>),
}

/// Node hashes of one tree size, computed from tiles read once each.
struct TileNodes<'r, R: TileReader> {
    reader: &'r R,
    size: u64,
    tiles: HashMap<(u8, u64), Vec<Hash>>,
}

impl<'r, R: TileReader> TileNodes<'r, R> {
    fn new(reader: &'r R, size: u64) -> Self {
        Self {
            reader,
            size,
            tiles: HashMap::new(),
        }
    }

    /// The hash of the complete subtree at tree level `level`, position
    /// `index`; it must lie within the tree.
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, ReadTileError<R::Error>> {
        let (tl, r) = ((level / TILE_HEIGHT) as u8, level % TILE_HEIGHT);
        let first = index << r;
        let tile = tile_for(self.size, tl, first);
        let hashes = match self.tiles.entry((tile.level, tile.index)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(read_checked(self.reader, tile)?)
            }
        };
        let offset = (first % FULL) as usize;
        match hashes.get(offset..offset + (1 << r)) {
            Some(row) => Ok(perfect_root(row)),
            // Unreachable for in-tree nodes: the width was computed to cover them.
            None => Err(ReadTileError::ShortTile {
                tile,
                got: hashes.len(),
            }),
        }
    }

    /// MTH of the leaves `[lo, hi)`, where `lo` is a multiple of the largest
    /// power of two not above `hi - lo` (true of every range the RFC's
    /// recursions visit): the fold of its maximal aligned complete subtrees.
    fn range(&mut self, lo: u64, hi: u64) -> Result<Hash, ReadTileError<R::Error>> {
        let mut nodes = Vec::new();
        let mut at = lo;
        while at < hi {
            let k = at.trailing_zeros().min(63 - (hi - at).leading_zeros());
            nodes.push(self.node(k, at >> k)?);
            at += 1 << k;
        }
        let mut it = nodes.into_iter().rev();
        let Some(last) = it.next() else {
            return Ok(EMPTY_ROOT);
        };
        Ok(it.fold(last, |acc, left| hash_node(&left, &acc)))
    }
}

/// The root of the tree as it was at `size` leaves, from the stored tiles.
pub fn root_at<R: TileReader>(size: u64, reader: &R) -> Result<Hash, ReadTileError<R::Error>> {
    TileNodes::new(reader, size).range(0, size)
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162
/// §2.1.3.1 `PATH(m, D[n])`), deepest sibling first.
///
/// `size` must not exceed the stored tree; a larger size shows up as a tile
/// read error, so check it against the current size first.
pub fn inclusion_proof<R: TileReader>(
    index: u64,
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, BuildProofError<R::Error>> {
    if index >= size {
        return Err(BuildProofError::IndexOutOfRange { index, size });
    }
    let mut nodes = TileNodes::new(reader, size);
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            out.push(nodes.range(lo + k, hi)?);
            hi = lo + k;
        } else {
            out.push(nodes.range(lo, lo + k)?);
            lo += k;
        }
    }
    out.reverse();
    Ok(out)
}

/// The consistency proof from the tree of `from` leaves to the tree of `to`
/// leaves (RFC 9162 §2.1.4.1 `PROOF(m, D[n])`).
///
/// The RFC defines proofs for `0 < from < to`; at the edges, a proof from
/// the empty tree and a proof between equal sizes are empty (the checks are
/// then on the roots alone, see [`verify_consistency`]). `from > to` is an
/// error.
pub fn consistency_proof<R: TileReader>(
    from: u64,
    to: u64,
    reader: &R,
) -> Result<Vec<Hash>, BuildProofError<R::Error>> {
    if from > to {
        return Err(BuildProofError::SizesOutOfOrder { from, to });
    }
    if from == 0 || from == to {
        return Ok(Vec::new());
    }
    let mut nodes = TileNodes::new(reader, to);
    let mut out = Vec::new();
    // SUBPROOF(m, D[lo:hi], whole) iteratively: `m` counts old leaves in
    // [lo, hi), `whole` is the RFC's b (the subtree is an old subtree root).
    let (mut lo, mut hi, mut m, mut whole) = (0, to, from, true);
    loop {
        if m == hi - lo {
            if !whole {
                out.push(nodes.range(lo, hi)?);
            }
            break;
        }
        let k = split_point(hi - lo);
        if m <= k {
            out.push(nodes.range(lo + k, hi)?);
            hi = lo + k;
        } else {
            out.push(nodes.range(lo, lo + k)?);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// A proof did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old tree size {from} is larger than new tree size {to}")]
    SizesOutOfOrder {
        /// The old tree size.
        from: u64,
        /// The new tree size.
        to: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// Hashes a proof for these sizes has.
        expected: usize,
        /// Hashes the proof has.
        got: usize,
    },
    /// The proof leads to another root than the (new) root given.
    #[error("proof does not lead to the root hash")]
    RootMismatch,
    /// The consistency proof leads to another old root than the one given.
    #[error("proof does not lead to the old root hash")]
    OldRootMismatch,
}

/// Number of hashes in `PATH(index, D[size])`; `index < size`.
fn inclusion_len(index: u64, size: u64) -> usize {
    let (mut lo, mut hi, mut n) = (0, size, 0);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            hi = lo + k;
        } else {
            lo += k;
        }
        n += 1;
    }
    n
}

/// Number of hashes in `PROOF(from, D[to])`; `0 < from < to`.
fn consistency_len(from: u64, to: u64) -> usize {
    let (mut lo, mut hi, mut m, mut whole, mut n) = (0, to, from, true, 0);
    loop {
        if m == hi - lo {
            return n + usize::from(!whole);
        }
        let k = split_point(hi - lo);
        if m <= k {
            hi = lo + k;
        } else {
            lo += k;
            m -= k;
            whole = false;
        }
        n += 1;
    }
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size`
/// leaves whose root is `root`, by RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyProofError> {
    if index >= size {
        return Err(VerifyProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_len(index, size);
    if proof.len() != expected {
        return Err(VerifyProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        // The length check above makes this unreachable; kept because it is
        // the RFC's own guard.
        if snode == 0 {
            return Err(VerifyProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = hash_node(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = hash_node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 || r != *root {
        return Err(VerifyProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `from` leaves with root `root_from` is a prefix of
/// the tree of `to` leaves with root `root_to`, by RFC 9162 §2.1.4.2.
///
/// Edge cases the RFC leaves out: from the empty tree (`from == 0`) the
/// proof must be empty and `root_from` must be [`EMPTY_ROOT`]; between equal
/// sizes the proof must be empty and the roots equal.
pub fn verify_consistency(
    from: u64,
    to: u64,
    root_from: &Hash,
    root_to: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyProofError> {
    if from > to {
        return Err(VerifyProofError::SizesOutOfOrder { from, to });
    }
    if from == 0 || from == to {
        if !proof.is_empty() {
            return Err(VerifyProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if from == 0 && *root_from != EMPTY_ROOT {
            return Err(VerifyProofError::OldRootMismatch);
        }
        if from == to && root_from != root_to {
            return Err(VerifyProofError::RootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_len(from, to);
    if proof.len() != expected {
        return Err(VerifyProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // When the old tree is a perfect subtree, its root is the first hash of
    // the path and the proof leaves it out.
    let (first, rest) = if from.is_power_of_two() {
        (*root_from, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => {
                return Err(VerifyProofError::WrongProofLength { expected, got: 0 });
            }
        }
    };
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in rest {
        if snode == 0 {
            return Err(VerifyProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = hash_node(c, &fr);
            sr = hash_node(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = hash_node(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if fr != *root_from {
        return Err(VerifyProofError::OldRootMismatch);
    }
    if snode != 0 || sr != *root_to {
        return Err(VerifyProofError::RootMismatch);
    }
    Ok(())
}

/// A tile upsert broke the tile contract.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpsertTileError {
    /// The width is 0 or above 256, or the data is not `width * 32` bytes.
    #[error("tile {tile} has {len} bytes of data")]
    BadShape {
        /// The tile.
        tile: TileId,
        /// Bytes given.
        len: usize,
    },
    /// The new content does not extend the stored content.
    #[error("tile {tile} does not extend the stored tile of width {stored}")]
    NotAnExtension {
        /// The tile.
        tile: TileId,
        /// Width already stored.
        stored: usize,
    },
}

/// A tile [`MemoryTiles`] does not hold, at least not that wide.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tile {level}/{index} is not stored with width {width} (stored width {stored})")]
pub struct MissingTileError {
    /// Tile level asked for.
    pub level: u8,
    /// Tile index asked for.
    pub index: u64,
    /// Width asked for.
    pub width: u16,
    /// Width stored (0 when absent).
    pub stored: usize,
}

/// Tiles kept in memory: the reference [`TileReader`], for tests, benches
/// and anything that holds a whole tree in RAM.
#[derive(Clone, Debug, Default)]
pub struct MemoryTiles {
    tiles: HashMap<(u8, u64), Vec<Hash>>,
}

impl MemoryTiles {
    /// No tiles.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a tile, checking the contract a real store must also keep: the
    /// data is `width * 32` bytes and extends what is stored.
    pub fn upsert(&mut self, tile: TileId, data: &[u8]) -> Result<(), UpsertTileError> {
        let hashes = match tile_hashes(data) {
            Some(h)
                if !h.is_empty()
                    && h.len() <= usize::from(TILE_WIDTH)
                    && h.len() == usize::from(tile.width) =>
            {
                h
            }
            _ => {
                return Err(UpsertTileError::BadShape {
                    tile,
                    len: data.len(),
                });
            }
        };
        let slot = self.tiles.entry((tile.level, tile.index)).or_default();
        if slot.len() > hashes.len() || hashes[..slot.len()] != slot[..] {
            return Err(UpsertTileError::NotAnExtension {
                tile,
                stored: slot.len(),
            });
        }
        *slot = hashes;
        Ok(())
    }

    /// Stores every tile of a [`TreeState::take_dirty_tiles`] batch.
    pub fn upsert_all(
        &mut self,
        tiles: impl IntoIterator<Item = (TileId, Vec<u8>)>,
    ) -> Result<(), UpsertTileError> {
        tiles
            .into_iter()
            .try_for_each(|(tile, data)| self.upsert(tile, &data))
    }

    /// Number of tiles stored.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tile is stored.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }
}

impl TileReader for MemoryTiles {
    type Error = MissingTileError;

    fn read_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, Self::Error> {
        let stored = self.tiles.get(&(level, index));
        match stored {
            Some(h) if h.len() >= usize::from(width) => Ok(h[..usize::from(width)].to_vec()),
            _ => Err(MissingTileError {
                level,
                index,
                width,
                stored: stored.map_or(0, Vec::len),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The RFC 9162 §2.1 definitions, written recursively and naively: the
    // reference every optimised function above is checked against. `D[n]`
    // is a range `[lo, hi)` of `leaves`; MTH is memoized by range (the
    // definition is unchanged, it only keeps the suite fast).

    struct Rfc<'a> {
        leaves: &'a [Hash],
        memo: HashMap<(usize, usize), Hash>,
    }

    impl<'a> Rfc<'a> {
        fn new(leaves: &'a [Hash]) -> Self {
            Self {
                leaves,
                memo: HashMap::new(),
            }
        }

        fn mth(&mut self, lo: usize, hi: usize) -> Hash {
            if let Some(h) = self.memo.get(&(lo, hi)) {
                return *h;
            }
            let h = match hi - lo {
                0 => EMPTY_ROOT,
                1 => self.leaves[lo],
                n => {
                    let k = split_point(n as u64) as usize;
                    let (l, r) = (self.mth(lo, lo + k), self.mth(lo + k, hi));
                    let mut buf = vec![1u8];
                    buf.extend_from_slice(&l);
                    buf.extend_from_slice(&r);
                    // Independent of hash_node: the plain SHA-256 of 0x01‖l‖r.
                    Sha256::digest(&buf).into()
                }
            };
            self.memo.insert((lo, hi), h);
            h
        }

        /// PATH(m, D[lo:hi]).
        fn path(&mut self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
            let n = hi - lo;
            if n <= 1 {
                return Vec::new();
            }
            let k = split_point(n as u64) as usize;
            if m < k {
                let mut p = self.path(m, lo, lo + k);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.path(m - k, lo + k, hi);
                p.push(self.mth(lo, lo + k));
                p
            }
        }

        /// SUBPROOF(m, D[lo:hi], b).
        fn subproof(&mut self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
            let n = hi - lo;
            if m == n {
                return if b {
                    Vec::new()
                } else {
                    vec![self.mth(lo, hi)]
                };
            }
            let k = split_point(n as u64) as usize;
            if m <= k {
                let mut p = self.subproof(m, lo, lo + k, b);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.subproof(m - k, lo + k, hi, false);
                p.push(self.mth(lo, lo + k));
                p
            }
        }

        /// PROOF(m, D[n]).
        fn proof(&mut self, m: usize, n: usize) -> Vec<Hash> {
            self.subproof(m, 0, n, true)
        }
    }

    fn mth(d: &[Hash]) -> Hash {
        Rfc::new(d).mth(0, d.len())
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| hash_leaf(format!("leaf {i}").as_bytes()))
            .collect()
    }

    /// A tree of `n` leaves built through `TreeState`, with its tiles stored,
    /// flushing tiles every `flush_every` appends.
    fn build(d: &[Hash], flush_every: usize) -> (TreeState, MemoryTiles) {
        let mut state = TreeState::new();
        let mut tiles = MemoryTiles::new();
        for (i, leaf) in d.iter().enumerate() {
            state.append(*leaf);
            if (i + 1) % flush_every == 0 {
                tiles
                    .upsert_all(state.take_dirty_tiles())
                    .expect("tiles extend");
            }
        }
        tiles
            .upsert_all(state.take_dirty_tiles())
            .expect("tiles extend");
        (state, tiles)
    }

    fn hx(s: &str) -> Hash {
        let mut h = [0u8; 32];
        hex::decode_to_slice(s, &mut h).expect("test hex");
        h
    }

    #[test]
    fn hashes_match_known_values() {
        assert_eq!(
            EMPTY_ROOT,
            hx("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        let digest: Hash = Sha256::digest(b"").into();
        assert_eq!(EMPTY_ROOT, digest);
        // RFC 6962 / Certificate Transparency test vector: the leaf hash of
        // the empty string is SHA-256(0x00).
        assert_eq!(
            hash_leaf(b""),
            hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        );
        assert_eq!(hash_leaf_parts(&[b"ab", b"", b"c"]), hash_leaf(b"abc"));
        let (a, b) = (hash_leaf(b"a"), hash_leaf(b"b"));
        let mut buf = vec![1u8];
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&b);
        let want: Hash = Sha256::digest(&buf).into();
        assert_eq!(hash_node(&a, &b), want);
    }

    #[test]
    fn hand_checked_small_trees() {
        let d = leaves(7);
        let h = |l: &Hash, r: &Hash| hash_node(l, r);
        assert_eq!(root_from_leaves([]), EMPTY_ROOT);
        assert_eq!(root_from_leaves(d[..1].to_vec()), d[0]);
        assert_eq!(root_from_leaves(d[..2].to_vec()), h(&d[0], &d[1]));
        // Three leaves: the right subtree is the lone third leaf.
        assert_eq!(
            root_from_leaves(d[..3].to_vec()),
            h(&h(&d[0], &d[1]), &d[2])
        );
        // Seven leaves: ((01)(23)) ((45) 6).
        let want = h(
            &h(&h(&d[0], &d[1]), &h(&d[2], &d[3])),
            &h(&h(&d[4], &d[5]), &d[6]),
        );
        assert_eq!(root_from_leaves(d.clone()), want);

        let (state, tiles) = build(&d, 1);
        assert_eq!(state.root(), want);
        // Leaf 4 of 7: sibling 5, then leaf 6, then the left half.
        let p = inclusion_proof(4, 7, &tiles).expect("proof");
        assert_eq!(p, vec![d[5], d[6], h(&h(&d[0], &d[1]), &h(&d[2], &d[3]))]);
        // Consistency 3 → 7 (RFC example shape): c, d, g·h… here: leaf 2,
        // leaf 3, the pair (0 1), then the right half of the new tree.
        let p = consistency_proof(3, 7, &tiles).expect("proof");
        assert_eq!(
            p,
            vec![d[2], d[3], h(&d[0], &d[1]), h(&h(&d[4], &d[5]), &d[6])]
        );
        // Consistency 4 → 7: the old tree is a perfect subtree, left out.
        let p = consistency_proof(4, 7, &tiles).expect("proof");
        assert_eq!(p, vec![h(&h(&d[4], &d[5]), &d[6])]);
    }

    #[test]
    fn tree_state_matches_reference_roots_and_restores() {
        let d = leaves(700);
        let mut rfc = Rfc::new(&d);
        let mut state = TreeState::new();
        let mut tiles = MemoryTiles::new();
        for (i, leaf) in d.iter().enumerate() {
            state.append(*leaf);
            let n = i + 1;
            // Flush at irregular points so partial tiles get rewritten.
            if n % 37 == 0 || n % 256 == 0 || n == 255 || n == 257 {
                tiles
                    .upsert_all(state.take_dirty_tiles())
                    .expect("tiles extend");
            }
            if n <= 300 || n % 50 == 0 {
                assert_eq!(state.root(), rfc.mth(0, n), "root at {n}");
            }
        }
        tiles
            .upsert_all(state.take_dirty_tiles())
            .expect("tiles extend");
        assert!(state.take_dirty_tiles().is_empty());

        for n in [0usize, 1, 2, 3, 255, 256, 257, 511, 512, 513, 600, 699, 700] {
            let restored = TreeState::restore(n as u64, &tiles).expect("restore");
            assert_eq!(restored.size(), n as u64);
            assert_eq!(restored.root(), rfc.mth(0, n), "restored root at {n}");
            assert_eq!(root_at(n as u64, &tiles).expect("root_at"), rfc.mth(0, n));

            // Continuing from a restored state writes the same tiles as an
            // uninterrupted run.
            let mut cont = restored;
            let mut tiles2 = tiles.clone();
            for leaf in &d[n..] {
                cont.append(*leaf);
            }
            tiles2
                .upsert_all(cont.take_dirty_tiles())
                .expect("tiles extend");
            assert_eq!(cont.root(), state.root());
            assert_eq!(cont.compact_range(), state.compact_range());
        }
    }

    #[test]
    fn dirty_tiles_have_the_tlog_tiles_shape() {
        let d = leaves(513);
        let mut state = TreeState::new();
        for leaf in &d[..255] {
            state.append(*leaf);
        }
        let got = state.take_dirty_tiles();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].0,
            TileId {
                level: 0,
                index: 0,
                width: 255
            }
        );
        assert_eq!(got[0].1, d[..255].concat());

        state.append(d[255]);
        state.append(d[256]);
        let got: Vec<TileId> = state.take_dirty_tiles().into_iter().map(|t| t.0).collect();
        assert_eq!(
            got,
            vec![
                TileId {
                    level: 0,
                    index: 0,
                    width: 256
                },
                TileId {
                    level: 0,
                    index: 1,
                    width: 1
                },
                TileId {
                    level: 1,
                    index: 0,
                    width: 1
                },
            ]
        );
        for leaf in &d[257..513] {
            state.append(*leaf);
        }
        let got = state.take_dirty_tiles();
        let ids: Vec<TileId> = got.iter().map(|t| t.0).collect();
        assert_eq!(
            ids,
            vec![
                TileId {
                    level: 0,
                    index: 1,
                    width: 256
                },
                TileId {
                    level: 0,
                    index: 2,
                    width: 1
                },
                TileId {
                    level: 1,
                    index: 0,
                    width: 2
                },
            ]
        );
        assert_eq!(got[2].1, [mth(&d[..256]), mth(&d[256..512])].concat());
    }

    #[test]
    fn tile_paths_follow_c2sp() {
        let t = |level, index, width| {
            TileId {
                level,
                index,
                width,
            }
            .path()
        };
        assert_eq!(t(0, 0, 256), "tile/0/000");
        assert_eq!(t(0, 1234067, 256), "tile/0/x001/x234/067");
        assert_eq!(t(1, 1234067, 8), "tile/1/x001/x234/067.p/8");
        assert_eq!(t(2, 999, 1), "tile/2/999.p/1");
        assert_eq!(t(3, 1000, 256), "tile/3/x001/000");
    }

    #[test]
    fn every_proof_up_to_200_matches_the_rfc_definitions() {
        let d = leaves(200);
        let (_, tiles) = build(&d, 7);
        let mut rfc = Rfc::new(&d);
        for n in 1..=200usize {
            let root = rfc.mth(0, n);
            assert_eq!(root_at(n as u64, &tiles).expect("root"), root);
            for (m, leaf) in d[..n].iter().enumerate() {
                let p = inclusion_proof(m as u64, n as u64, &tiles).expect("inclusion");
                assert_eq!(p, rfc.path(m, 0, n), "PATH({m}, D[{n}])");
                verify_inclusion(leaf, m as u64, n as u64, &p, &root).expect("verifies");
            }
            for m in 1..=n {
                let p = consistency_proof(m as u64, n as u64, &tiles).expect("consistency");
                let want = if m == n { Vec::new() } else { rfc.proof(m, n) };
                assert_eq!(p, want, "PROOF({m}, D[{n}])");
                verify_consistency(m as u64, n as u64, &rfc.mth(0, m), &root, &p)
                    .expect("verifies");
            }
        }
    }

    #[test]
    fn proofs_across_tile_levels_match_the_rfc_definitions() {
        // Sizes around 256 and 65536 exercise tile levels 1 and 2 and the
        // interior levels recomputed from them.
        let d = leaves(66_000);
        let (_, tiles) = build(&d, 1000);
        let mut rfc = Rfc::new(&d);
        let sizes = [
            255usize, 256, 257, 300, 511, 512, 4097, 65_535, 65_536, 65_537, 66_000,
        ];
        for &n in &sizes {
            let root = rfc.mth(0, n);
            assert_eq!(root_at(n as u64, &tiles).expect("root"), root);
            for m in [0, 1, 128, 254, 255, 256, n / 2, n - 2, n - 1] {
                if m >= n {
                    continue;
                }
                let p = inclusion_proof(m as u64, n as u64, &tiles).expect("inclusion");
                assert_eq!(p, rfc.path(m, 0, n), "PATH({m}, D[{n}])");
                verify_inclusion(&d[m], m as u64, n as u64, &p, &root).expect("verifies");
            }
            for &m in &sizes {
                if m >= n {
                    continue;
                }
                let p = consistency_proof(m as u64, n as u64, &tiles).expect("consistency");
                assert_eq!(p, rfc.proof(m, n), "PROOF({m}, D[{n}])");
                verify_consistency(m as u64, n as u64, &rfc.mth(0, m), &root, &p)
                    .expect("verifies");
            }
        }
    }

    #[test]
    fn wrong_proofs_are_rejected() {
        let d = leaves(20);
        let (_, tiles) = build(&d, 3);
        let root = mth(&d);
        let other = hash_leaf(b"other");

        // Inclusion: every single changed hash, a wrong index, size or leaf.
        for m in 0..20u64 {
            let p = inclusion_proof(m, 20, &tiles).expect("inclusion");
            let leaf = d[m as usize];
            for i in 0..p.len() {
                let mut bad = p.clone();
                bad[i][i % 32] ^= 1;
                assert_eq!(
                    verify_inclusion(&leaf, m, 20, &bad, &root),
                    Err(VerifyProofError::RootMismatch)
                );
            }
            assert!(verify_inclusion(&other, m, 20, &p, &root).is_err());
            assert!(verify_inclusion(&leaf, (m + 1) % 20, 20, &p, &root).is_err());
            // A size whose paths have another shape fails. (One with the same
            // shape cannot be told apart from the path alone: the RFC
            // algorithm takes the size from the caller, and it is the signed
            // checkpoint that binds a root to its size.)
            assert!(verify_inclusion(&leaf, m, 40, &p, &root).is_err());
            assert!(verify_inclusion(&leaf, m, 20, &p[..p.len() - 1], &root).is_err());
            let mut longer = p.clone();
            longer.push(other);
            assert!(verify_inclusion(&leaf, m, 20, &longer, &root).is_err());
        }
        assert_eq!(
            verify_inclusion(&d[0], 20, 20, &[], &root),
            Err(VerifyProofError::IndexOutOfRange {
                index: 20,
                size: 20
            })
        );

        // Consistency: every single changed hash, swapped roots, wrong sizes.
        for m in 1..20u64 {
            let p = consistency_proof(m, 20, &tiles).expect("consistency");
            let old = mth(&d[..m as usize]);
            for i in 0..p.len() {
                let mut bad = p.clone();
                bad[i][0] ^= 0x80;
                assert!(
                    verify_consistency(m, 20, &old, &root, &bad).is_err(),
                    "{m} {i}"
                );
            }
            assert!(verify_consistency(m, 20, &other, &root, &p).is_err());
            assert!(verify_consistency(m, 20, &old, &other, &p).is_err());
            assert!(verify_consistency(m + 1, 20, &old, &root, &p).is_err());
        }
        assert_eq!(
            verify_consistency(5, 4, &root, &root, &[]),
            Err(VerifyProofError::SizesOutOfOrder { from: 5, to: 4 })
        );
    }

    #[test]
    fn consistency_edge_cases_follow_the_documented_rules() {
        let d = leaves(5);
        let (_, tiles) = build(&d, 1);
        let root = mth(&d);
        assert_eq!(
            consistency_proof(0, 5, &tiles).expect("empty"),
            Vec::<Hash>::new()
        );
        assert_eq!(
            consistency_proof(5, 5, &tiles).expect("empty"),
            Vec::<Hash>::new()
        );
        assert!(matches!(
            consistency_proof(6, 5, &tiles),
            Err(BuildProofError::SizesOutOfOrder { from: 6, to: 5 })
        ));
        assert!(matches!(
            inclusion_proof(5, 5, &tiles),
            Err(BuildProofError::IndexOutOfRange { index: 5, size: 5 })
        ));
        // A size beyond the stored tree is a tile read error, not a panic.
        assert!(matches!(
            inclusion_proof(0, 300, &tiles),
            Err(BuildProofError::Tile(ReadTileError::Read { .. }))
        ));

        verify_consistency(0, 5, &EMPTY_ROOT, &root, &[]).expect("from empty");
        verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]).expect("empty to empty");
        verify_consistency(5, 5, &root, &root, &[]).expect("equal");
        assert_eq!(
            verify_consistency(0, 5, &root, &root, &[]),
            Err(VerifyProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(5, 5, &root, &EMPTY_ROOT, &[]),
            Err(VerifyProofError::RootMismatch)
        );
        assert!(verify_consistency(5, 5, &root, &root, &[root]).is_err());
    }

    #[test]
    fn memory_tiles_enforce_the_store_contract() {
        let mut tiles = MemoryTiles::new();
        let a = hash_leaf(b"a");
        let b = hash_leaf(b"b");
        let t = |width| TileId {
            level: 0,
            index: 0,
            width,
        };
        tiles.upsert(t(1), &a).expect("first");
        tiles.upsert(t(2), &[a, b].concat()).expect("grows");
        assert!(matches!(
            tiles.upsert(t(1), &b),
            Err(UpsertTileError::NotAnExtension { .. })
        ));
        assert!(matches!(
            tiles.upsert(t(3), &[a, b].concat()),
            Err(UpsertTileError::BadShape { .. })
        ));
        assert_eq!(tiles.read_tile(0, 0, 1).expect("prefix"), vec![a]);
        assert!(tiles.read_tile(0, 0, 3).is_err());
        assert!(tiles.read_tile(0, 1, 1).is_err());
    }

    /// A reader that answers with the wrong number of hashes.
    struct Liar;

    impl TileReader for Liar {
        type Error = MissingTileError;

        fn read_tile(&self, _: u8, _: u64, _: u16) -> Result<Vec<Hash>, MissingTileError> {
            Ok(vec![EMPTY_ROOT])
        }
    }

    #[test]
    fn short_tiles_are_errors_not_panics() {
        assert!(matches!(
            TreeState::restore(10, &Liar),
            Err(ReadTileError::ShortTile { got: 1, .. })
        ));
        assert!(matches!(
            inclusion_proof(3, 10, &Liar),
            Err(BuildProofError::Tile(ReadTileError::ShortTile { .. }))
        ));
    }

    /// A span grown from any leaf, by any sequence of front and back
    /// pushes, placed in a compact range between the leaves before and
    /// after it, gives the root of the whole tree.
    #[test]
    fn spans_grown_either_way_place_exactly() {
        let d = leaves(70);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for n in 1..=70u64 {
            for start in 0..n {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let mut span = Span::new(start, d[start as usize]);
                let mut bits = rng;
                while span.hi() - span.lo() < n && bits != 0 {
                    let front = span.lo() > 0 && (bits & 1 == 1 || span.hi() == n);
                    if front {
                        span.push_front(d[span.lo() as usize - 1]);
                    } else {
                        span.push_back(d[span.hi() as usize]);
                    }
                    bits >>= 1;
                }
                let (lo, hi) = (span.lo(), span.hi());
                assert!(span.subtrees().count() <= 2 * 64);
                let mut range = CompactRange::new();
                for leaf in &d[..lo as usize] {
                    range.append(*leaf);
                }
                for (level, root) in span.subtrees() {
                    range.append_subtree(level, root);
                }
                assert_eq!(range.size(), hi);
                for leaf in &d[hi as usize..n as usize] {
                    range.append(*leaf);
                }
                assert_eq!(
                    range.root(),
                    root_from_leaves(d[..n as usize].to_vec()),
                    "n {n}, span [{lo}, {hi}) from {start}"
                );
            }
        }
    }
}
