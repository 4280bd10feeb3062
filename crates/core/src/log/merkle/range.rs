//! Trees built from leaves in memory: the compact range of an append-only
//! prefix, a span that grows at both ends, and the root of a list of leaves.

use super::hash::{EMPTY_ROOT, Hash, hash_node};

/// The state of a tree that only needs its root: the "compact range", one
/// hash per complete subtree along the right edge (one per set bit of the
/// size, largest first), at most 64 hashes. Appending costs one leaf plus,
/// on average, one node hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    pub(super) size: u64,
    pub(super) hashes: Vec<Hash>,
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
    pub(super) fn append_with(&mut self, leaf: Hash, mut on_node: impl FnMut(u32, &Hash)) {
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
