//! Inclusion and consistency proofs: built from tiles a store reads, and
//! checked against a root (RFC 9162 §2.1.3 and §2.1.4).

use std::collections::HashMap;

use super::hash::{EMPTY_ROOT, Hash, hash_node, split_point};
use super::tile::{
    FULL, ReadTileError, TILE_HEIGHT, TileReader, perfect_root, read_checked, tile_for,
};

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
