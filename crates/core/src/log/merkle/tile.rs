//! Tiles as C2SP tlog-tiles stores them: their ids and bytes, the reader
//! trait a store implements, and an in-memory store for tests and tools.

use std::collections::HashMap;
use std::fmt;

use super::hash::{Hash, hash_node};

/// Tree levels stored per tile level (C2SP tlog-tiles uses 8).
pub const TILE_HEIGHT: u32 = 8;

/// Hashes in a full tile: `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u16 = 256;

pub(super) const FULL: u64 = TILE_WIDTH as u64;

/// The root of a full tile's subtree: the node one tile level up. A store
/// that keeps only full tiles derives a partial tile of level `L` from the
/// roots of the full tiles below it (and level 0 from the leaf hashes).
pub fn full_tile_root(tile: &[Hash]) -> Hash {
    assert_eq!(tile.len(), usize::from(TILE_WIDTH), "a full tile");
    perfect_root(tile)
}

/// The root of a perfect subtree whose bottom row is `row` (a power of two
/// long, at most one tile): reduces pairwise, in place, like the tree.
pub(super) fn perfect_root(row: &[Hash]) -> Hash {
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

pub(super) fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// Read access to stored tiles, for proofs and for restoring a
/// [`TreeState`](super::TreeState) after a restart.
///
/// Contract, which every store must honour:
///
/// - `read_tile(level, index, width)` returns exactly `width` hashes: the
///   first `width` hashes of the stored tile `(level, index)`. A stored tile
///   may be wider than asked (tiles only grow), never narrower.
/// - A partial tile (`width` below [`TILE_WIDTH`]) need not be stored: a
///   reader may derive it from the full tiles below it, as stores do, since
///   only full tiles are written. A full tile that is missing, or a stored
///   one narrower than `width`, is an error; a reader never pads or returns
///   fewer hashes (the callers check, and report a short answer as
///   [`ReadTileError::ShortTile`]).
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

pub(super) fn read_checked<R: TileReader>(
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
pub(super) fn tile_for(size: u64, level: u8, node: u64) -> TileId {
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

    /// Stores every tile of a
    /// [`TreeState::take_dirty_tiles`](super::TreeState::take_dirty_tiles)
    /// batch.
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
