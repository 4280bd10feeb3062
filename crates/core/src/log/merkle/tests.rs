//! Tests of the Merkle log: hashing, the appender, tiles and proofs.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::hash::split_point;
use super::*;

// The RFC 9162 §2.1 definitions, written recursively and naively: the
// reference every optimised function of this module is checked against.
// `D[n]` is a range `[lo, hi)` of `leaves`; MTH is memoized by range (the
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
            verify_consistency(m as u64, n as u64, &rfc.mth(0, m), &root, &p).expect("verifies");
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
            verify_consistency(m as u64, n as u64, &rfc.mth(0, m), &root, &p).expect("verifies");
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
