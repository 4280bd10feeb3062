//! Measures the Merkle log: leaf hashing, appends with tiles, and proof
//! latency at a given size. `cargo run --release -p auditlog-core --example
//! merkle_bench -- 10000000`. Prints medians.

use std::time::Instant;

use auditlog_core::merkle::{
    MemoryTiles, TreeState, consistency_proof, hash_leaf, inclusion_proof, verify_consistency,
    verify_inclusion,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    // A typical canonical record is ~550 bytes.
    let mut leaf = vec![b'x'; 550];
    let t = Instant::now();
    let mut leaves = Vec::with_capacity(n as usize);
    for i in 0..n {
        leaf[..8].copy_from_slice(&i.to_le_bytes());
        leaves.push(hash_leaf(&leaf));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "leaf hashes (550-byte leaves): {:.0} leaves/s",
        n as f64 / secs
    );

    let mut tree = TreeState::new();
    let mut tiles = MemoryTiles::new();
    let t = Instant::now();
    for (i, l) in leaves.iter().enumerate() {
        tree.append(*l);
        // Tiles are flushed once per commit; model commits of 1,000 events.
        if i % 1000 == 999 {
            tiles
                .upsert_all(tree.take_dirty_tiles())
                .expect("tiles grow");
        }
    }
    tiles
        .upsert_all(tree.take_dirty_tiles())
        .expect("tiles grow");
    let secs = t.elapsed().as_secs_f64();
    println!("tree appends with tiles: {:.0} leaves/s", n as f64 / secs);
    let root = tree.root();

    let mut x: u64 = 99;
    let mut incl = Vec::new();
    let mut cons = Vec::new();
    for _ in 0..1001 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let seq = x % n;
        let t = Instant::now();
        let proof = inclusion_proof(seq, n, &tiles).expect("proof");
        incl.push(t.elapsed().as_secs_f64() * 1e6);
        verify_inclusion(&leaves[seq as usize], seq, n, &proof, &root).expect("verifies");
        let from = 1 + x % (n - 1);
        let t = Instant::now();
        let proof = consistency_proof(from, n, &tiles).expect("proof");
        cons.push(t.elapsed().as_secs_f64() * 1e6);
        if cons.len() <= 5 {
            let old = auditlog_core::merkle::root_at(from, &tiles).expect("root");
            verify_consistency(from, n, &old, &root, &proof).expect("verifies");
        }
    }
    println!(
        "proofs at {n} leaves (in-memory tiles): inclusion median {:.1} µs, consistency median {:.1} µs",
        median(incl),
        median(cons)
    );
}
