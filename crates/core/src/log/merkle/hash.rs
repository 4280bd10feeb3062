//! RFC 9162 §2.1 hashing: leaves, interior nodes, and the root of a perfect
//! subtree.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node or a root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

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

/// The largest power of two strictly below `n` (the RFC's `k`); `n >= 2`.
pub(super) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}
