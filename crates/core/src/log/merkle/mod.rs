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
//!
//! # Layout
//!
//! `hash` is RFC 9162 hashing, `range` builds roots from leaves in memory,
//! `tile` is the tile format and the [`TileReader`] a store implements,
//! `tree` the appender that fills tiles, and `proof` builds proofs from
//! tiles and checks them.

mod hash;
mod proof;
mod range;
#[cfg(test)]
mod tests;
mod tile;
mod tree;

pub use hash::{EMPTY_ROOT, Hash, hash_leaf, hash_leaf_parts, hash_node};
pub use proof::{
    BuildProofError, VerifyProofError, consistency_proof, inclusion_proof, root_at,
    verify_consistency, verify_inclusion,
};
pub use range::{CompactRange, Span, root_from_leaves};
pub use tile::{
    MemoryTiles, MissingTileError, ReadTileError, TILE_HEIGHT, TILE_WIDTH, TileId, TileReader,
    UpsertTileError, full_tile_root, tile_hashes,
};
pub use tree::TreeState;
