//! Measures `verify_export` on a generated export of `N` records written the
//! way the server writes one (newest first, ~700-byte lines), against a
//! checkpoint of its true root. `cargo run --release -p auditlog-core
//! --example verify_bench -- 9000000 /tmp/export.jsonl [asc|desc]`. The file
//! is written once and reused; drop the page cache between runs to measure a
//! cold read.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use auditlog_core::checkpoint::Checkpoint;
use auditlog_core::merkle::{CompactRange, hash_leaf};
use auditlog_core::verify::verify_export;

// The binary's allocator, so the figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A canonical-looking record body (without its closing brace) for `seq`.
fn body(seq: u64) -> String {
    format!(
        "{{\"id\":\"evt_{seq:016x}\",\"seq\":{seq},\"account\":\"acc_main\",\"level\":\"account\",\
         \"category\":\"Login/Logout\",\"event\":\"Login\",\"occurred_at\":\"2026-01-01T00:00:00.{:06}Z\",\
         \"received_at\":\"2026-01-01T00:00:01.000000Z\",\"actor\":{{\"kind\":\"user\",\"id\":\"u_{}\",\
         \"name\":\"User Number {}\",\"email\":\"user{}@example.com\"}},\"ip_address\":\"203.0.113.7\",\
         \"description\":\"User Number {} signed in with single sign-on from the office network; session {seq} started on the web console\",\
         \"metadata\":{{\"login_method\":\"sso\",\"session\":\"s_{seq}\",\"agent\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0\"}},\
         \"workflow\":null,\"request_id\":\"req_{seq:012}\",\"pad\":\"{}\"",
        seq % 1_000_000,
        seq % 2000,
        seq % 2000,
        seq % 2000,
        seq % 2000,
        "x".repeat(120)
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let path = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/tmp/verify_bench.jsonl".into()),
    );
    let ascending = args.next().as_deref() == Some("asc");

    let root_path = path.with_extension("root");
    let write = !path.exists() || !root_path.exists();
    let mut range = CompactRange::new();
    let t = Instant::now();
    let mut leaves = Vec::with_capacity(if write { n as usize } else { 0 });
    for seq in 0..if write { n } else { 0 } {
        let b = body(seq);
        let leaf = hash_leaf(format!("{b}}}").as_bytes());
        range.append(leaf);
        if write {
            leaves.push(leaf);
        }
    }
    if write {
        let mut out = BufWriter::new(std::fs::File::create(&path).expect("create"));
        let order: Box<dyn Iterator<Item = u64>> = if ascending {
            Box::new(0..n)
        } else {
            Box::new((0..n).rev())
        };
        for seq in order {
            writeln!(
                out,
                "{},\"leaf_hash\":\"{}\"}}",
                body(seq),
                hex::encode(leaves[seq as usize])
            )
            .expect("write");
        }
        out.into_inner().expect("flush").sync_all().expect("sync");
        drop(leaves);
        std::fs::write(&root_path, hex::encode(range.root())).expect("write the root");
    }
    let mut root = [0u8; 32];
    let hex_root = std::fs::read_to_string(&root_path).expect("read the root");
    hex::decode_to_slice(hex_root.trim(), &mut root).expect("a hex root");
    eprintln!("prepared in {:.1} s", t.elapsed().as_secs_f64());

    let checkpoint = Checkpoint {
        origin: "bench/acc_main".into(),
        size: n,
        root,
    };
    for _ in 0..3 {
        let file = std::fs::File::open(&path).expect("open");
        let t = Instant::now();
        let report = verify_export(BufReader::with_capacity(1 << 20, file), &checkpoint)
            .expect("the export verifies");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(report.covered, n);
        println!(
            "{n} records in {secs:.2} s: {:.2}M records/s",
            n as f64 / secs / 1e6
        );
    }
}
