//! Tests of offline verification: exports, consistency and proof bundles.

use proptest::prelude::*;
use serde_json::Value;

use super::export::Entry;
use super::line::{LineOutcome, check_lines};
use super::reader::BLOCK_BYTES;
use super::testkit::*;
use super::*;
use crate::log::checkpoint::{Checkpoint, OpenNoteError, open_note};
use crate::log::merkle::VerifyProofError;
use crate::record::Record;

fn verify(export: &[u8], cp: &Checkpoint) -> Result<VerifyReport, VerifyExportError> {
    verify_export(export, cp)
}

#[test]
fn a_good_export_verifies_in_any_order() {
    let records = sample_records(300);
    let cp = checkpoint_of(&records, 300);
    let report = verify(&export_lines(&records), &cp).expect("verifies");
    assert_eq!(
        report,
        VerifyReport {
            covered: 300,
            not_yet_covered: vec![],
            records: 300,
            reserialized: 0
        }
    );
    let mut reversed = records.clone();
    reversed.reverse();
    verify(&export_lines(&reversed), &cp).expect("newest first verifies");
    let mut shuffled = records.clone();
    for i in 0..shuffled.len() {
        let j = (i * 7919 + 13) % shuffled.len();
        shuffled.swap(i, j);
    }
    verify(&export_lines(&shuffled), &cp).expect("any order verifies");

    // CRLF line ends, a missing final newline and blank lines are fine.
    let crlf = String::from_utf8(export_lines(&records[..5]))
        .expect("utf8")
        .replace('\n', "\r\n");
    verify(crlf.as_bytes(), &checkpoint_of(&records, 5)).expect("CRLF");
    let mut no_final = export_lines(&records[..5]);
    no_final.pop();
    verify(&no_final, &checkpoint_of(&records, 5)).expect("no final newline");
    let mut blank = b"\n".to_vec();
    blank.extend_from_slice(&export_lines(&records[..5]));
    blank.extend_from_slice(b"\n\n");
    verify(&blank, &checkpoint_of(&records, 5)).expect("blank lines");

    // The empty log.
    verify(b"", &checkpoint_of(&records, 0)).expect("empty");
}

#[test]
fn records_past_the_checkpoint_are_not_yet_covered() {
    let records = sample_records(10);
    let cp = checkpoint_of(&records, 6);
    let report = verify(&export_lines(&records), &cp).expect("verifies");
    assert_eq!(report.covered, 6);
    assert_eq!(report.not_yet_covered, vec![6, 7, 8, 9]);
    // A newer record still has to be intact.
    let mut bad = records.clone();
    bad[8].body.description.push('!');
    assert!(matches!(
        verify(&export_lines(&bad), &cp),
        Err(VerifyExportError::Edited {
            seq: 8,
            line: 9,
            ..
        })
    ));
}

#[test]
fn the_first_wrong_record_is_named() {
    let records = sample_records(10);
    let cp = checkpoint_of(&records, 10);

    // Edited content, leaf_hash left as it was.
    let mut edited = records.clone();
    edited[4].body.description = "nothing happened".into();
    edited[7].body.description = "nothing happened".into();
    match verify(&export_lines(&edited), &cp) {
        Err(VerifyExportError::Edited {
            seq: 4, line: 5, ..
        }) => {}
        other => panic!("{other:?}"),
    }

    // Edited and re-sealed: only the root can tell.
    let mut resealed = records.clone();
    resealed[4].body.description = "nothing happened".into();
    resealed[4] = Record::seal(resealed[4].body.clone());
    assert!(matches!(
        verify(&export_lines(&resealed), &cp),
        Err(VerifyExportError::RootMismatch { .. })
    ));

    // Missing in the middle, cut off at the end.
    let mut missing = records.clone();
    missing.remove(3);
    match verify(&export_lines(&missing), &cp) {
        Err(VerifyExportError::Missing { seq: 3, size: 10 }) => {}
        other => panic!("{other:?}"),
    }
    match verify(&export_lines(&records[..7]), &cp) {
        Err(
            e @ VerifyExportError::CutOff {
                first_missing: 7,
                size: 10,
            },
        ) => {
            assert!(e.to_string().contains("cut off"), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // Duplicated, with both lines named.
    let mut dup = records.clone();
    dup.push(records[2].clone());
    match verify(&export_lines(&dup), &cp) {
        Err(VerifyExportError::Duplicate {
            seq: 2,
            first_line: 3,
            second_line: 11,
        }) => {}
        other => panic!("{other:?}"),
    }

    // Moved: two records trade places and are re-sealed.
    let mut moved = records.clone();
    moved[2].body.seq = 5;
    moved[5].body.seq = 2;
    moved[2] = Record::seal(moved[2].body.clone());
    moved[5] = Record::seal(moved[5].body.clone());
    assert!(matches!(
        verify(&export_lines(&moved), &cp),
        Err(VerifyExportError::RootMismatch { .. })
    ));
    // Moved without re-sealing: the seq is part of the content.
    let mut moved = records.clone();
    moved[6].body.seq = 60;
    assert!(matches!(
        verify(&export_lines(&moved), &cp),
        Err(VerifyExportError::Edited { seq: 60, .. })
            | Err(VerifyExportError::Missing { seq: 6, .. })
    ));

    // Problems are reported lowest seq first.
    let mut two = records.clone();
    two.remove(8);
    two[1].body.description.push('!');
    match verify(&export_lines(&two), &cp) {
        Err(VerifyExportError::Edited { seq: 1, .. }) => {}
        other => panic!("{other:?}"),
    }

    // A checkpoint of another log.
    let mut other = cp.clone();
    other.root = crate::log::merkle::EMPTY_ROOT;
    assert!(matches!(
        verify(&export_lines(&records), &other),
        Err(VerifyExportError::RootMismatch { .. })
    ));
}

/// Exports of several read blocks: the next block is read while one is
/// checked, and line numbers, precedence and errors must not notice.
#[test]
fn exports_of_several_blocks_verify_and_name_lines_across_blocks() {
    let records = sample_records(60_000);
    let cp = checkpoint_of(&records, 60_000);
    let export = export_lines(&records);
    assert!(export.len() > 2 * BLOCK_BYTES, "{} bytes", export.len());
    let report = verify(&export, &cp).expect("verifies");
    assert_eq!((report.covered, report.records), (60_000, 60_000));

    let text = String::from_utf8(export).expect("utf8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    // Line numbers run on across blocks.
    let mut malformed = lines.clone();
    malformed[last] = "not json".into();
    match verify(format!("{}\n", malformed.join("\n")).as_bytes(), &cp) {
        Err(VerifyExportError::Malformed { line, .. }) => assert_eq!(line, last as u64 + 1),
        other => panic!("{other:?}"),
    }
    // An edit in a later block is named by its line.
    lines[45_000] = lines[45_000].replacen("Role", "Rolf", 1);
    match verify(format!("{}\n", lines.join("\n")).as_bytes(), &cp) {
        Err(VerifyExportError::Edited { line, seq, .. }) => {
            assert_eq!((line, seq), (45_001, 45_000))
        }
        other => panic!("{other:?}"),
    }
}

/// A read error stops verification, after the lines read before it.
#[test]
fn a_read_error_is_reported_after_the_lines_before_it() {
    struct FailsAfter(std::io::Cursor<Vec<u8>>, u64);
    impl std::io::Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.position() >= self.1 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let room = (self.1 - self.0.position()) as usize;
            let n = buf.len().min(room);
            self.0.read(&mut buf[..n])
        }
    }
    let records = sample_records(40_000);
    let cp = checkpoint_of(&records, 40_000);
    let export = export_lines(&records);
    let cut = (BLOCK_BYTES + BLOCK_BYTES / 2) as u64;
    let read = |data: Vec<u8>| {
        verify_export(
            std::io::BufReader::new(FailsAfter(std::io::Cursor::new(data), cut)),
            &cp,
        )
    };
    assert!(matches!(
        read(export.clone()),
        Err(VerifyExportError::Read(_))
    ));
    // A malformed line in the first block comes first.
    let mut bad = export;
    bad.splice(0..0, b"not json\n".iter().copied());
    assert!(matches!(
        read(bad),
        Err(VerifyExportError::Malformed { line: 1, .. })
    ));
}

#[test]
fn malformed_lines_are_named_by_line_number() {
    let records = sample_records(3);
    let cp = checkpoint_of(&records, 3);
    let good = String::from_utf8(export_lines(&records)).expect("utf8");
    let lines: Vec<&str> = good.lines().collect();
    let cases = [
        format!("{}\nnot json\n{}\n", lines[0], lines[1]),
        format!("{}\n {}\n{}\n", lines[0], lines[1], lines[2]),
        format!("{}\n{}\t\n{}\n", lines[0], lines[1], lines[2]),
        format!("{}\n[1]\n{}\n", lines[0], lines[2]),
        format!("{}\n{{}}\n{}\n", lines[0], lines[2]),
    ];
    for export in &cases {
        match verify(export.as_bytes(), &cp) {
            Err(VerifyExportError::Malformed { line: 2, .. }) => {}
            other => panic!("{export:?}: {other:?}"),
        }
    }
}

#[test]
fn a_reserialized_export_still_verifies_but_not_with_extra_fields() {
    let records = sample_records(12);
    let cp = checkpoint_of(&records, 12);
    // Another tool's rendering: keys sorted, pretty-ish spacing.
    let mut export = Vec::new();
    for r in &records {
        let v: Value = serde_json::from_slice(&r.to_json_bytes()).expect("json");
        let text = serde_json::to_string(&v)
            .expect("json")
            .replace(",\"", ", \"");
        export.extend_from_slice(text.as_bytes());
        export.push(b'\n');
    }
    let report = verify(&export, &cp).expect("re-serialized verifies");
    assert_eq!(report.reserialized, 12);

    let line = String::from_utf8(records[0].to_json_bytes()).expect("utf8");
    let with_extra = line.replacen("{", "{\"note\":\"hi\",", 1);
    let dup_key = line.replacen("{", "{\"seq\":0,", 1);
    let other_time = line.replacen(".000Z", ".000+00:00", 1);
    let upper_hash = line.replacen(
        &hex::encode(records[0].leaf_hash),
        &hex::encode(records[0].leaf_hash).to_uppercase(),
        1,
    );
    for bad in [with_extra, dup_key, upper_hash] {
        let mut export = export_lines(&records[1..]);
        export.extend_from_slice(bad.as_bytes());
        assert!(
            matches!(
                verify(&export, &cp),
                Err(VerifyExportError::Malformed { line: 12, .. })
            ),
            "{bad}"
        );
    }
    // Same instant, other spelling: still the fast shape, so it is hashed
    // as it stands and no longer matches its leaf_hash.
    let mut export = export_lines(&records[1..]);
    export.extend_from_slice(other_time.as_bytes());
    assert!(matches!(
        verify(&export, &cp),
        Err(VerifyExportError::Edited {
            line: 12,
            seq: 0,
            ..
        })
    ));
}

#[test]
fn consistency_bundles_verify_and_fail_precisely() {
    let f = fixture();
    let report = verify_consistency_bundle(&f.old_note, &f.note, &f.consistency_json, &f.verifier)
        .expect("consistent");
    assert_eq!((report.old.size, report.new.size), (20, 37));
    // Reversed checkpoints.
    assert!(matches!(
        verify_consistency_bundle(&f.note, &f.old_note, &f.consistency_json, &f.verifier),
        Err(VerifyConsistencyError::Inconsistent(
            VerifyProofError::SizesOutOfOrder { .. }
        ))
    ));
    // A forked log: same size 37, different content.
    let signer = signer();
    let mut records = sample_records(37);
    records[25].body.description = "rewritten".into();
    records[25] = Record::seal(records[25].body.clone());
    let forked = signer
        .sign_checkpoint(&checkpoint_of(&records, 37))
        .expect("sign");
    assert!(matches!(
        verify_consistency_bundle(&f.old_note, &forked, &f.consistency_json, &f.verifier),
        Err(VerifyConsistencyError::Inconsistent(_))
    ));
    // Another log's checkpoint.
    let mut other = checkpoint_of(&sample_records(37), 37);
    other.origin = "audit.example.com/other".into();
    let other = signer.sign_checkpoint(&other).expect("sign");
    assert!(matches!(
        verify_consistency_bundle(&f.old_note, &other, &f.consistency_json, &f.verifier),
        Err(VerifyConsistencyError::OriginMismatch { .. })
    ));
    assert!(matches!(
        verify_consistency_bundle(&f.old_note, &f.note, br#"{"hashes":[],"x":1}"#, &f.verifier),
        Err(VerifyConsistencyError::BadProof(_))
    ));
}

#[test]
fn proof_bundles_verify_alone() {
    let f = fixture();
    let event = verify_proof_bundle(&f.bundle_json, &f.verifier).expect("verifies");
    assert_eq!(event.record.body.seq, 11);
    assert_eq!(event.checkpoint.size, 37);
    assert_eq!(
        open_note(&f.note, &f.verifier).expect("note"),
        event.checkpoint
    );

    let bundle: ProofBundle = serde_json::from_slice(&f.bundle_json).expect("bundle");
    let json = |b: &ProofBundle| serde_json::to_vec(b).expect("json");

    let mut edited = bundle.clone();
    edited.record["description"] = Value::from("nothing happened");
    assert!(matches!(
        verify_proof_bundle(&json(&edited), &f.verifier),
        Err(VerifyBundleError::Edited { seq: 11, .. })
    ));
    let mut wrong_seq = bundle.clone();
    wrong_seq.seq = 12;
    assert!(matches!(
        verify_proof_bundle(&json(&wrong_seq), &f.verifier),
        Err(VerifyBundleError::SeqMismatch { .. })
    ));
    let mut wrong_size = bundle.clone();
    wrong_size.size = 36;
    assert!(matches!(
        verify_proof_bundle(&json(&wrong_size), &f.verifier),
        Err(VerifyBundleError::SizeMismatch { .. })
    ));
    let mut wrong_path = bundle.clone();
    wrong_path.hashes[0][0] ^= 1;
    assert!(matches!(
        verify_proof_bundle(&json(&wrong_path), &f.verifier),
        Err(VerifyBundleError::NotIncluded { seq: 11, .. })
    ));
    let mut other_key = bundle.clone();
    other_key.checkpoint =
        crate::log::checkpoint::NoteSigner::from_seed("audit.example.com", &[9; 32])
            .expect("signer")
            .sign_checkpoint(&open_note(&f.note, &f.verifier).expect("note"))
            .expect("sign");
    assert!(matches!(
        verify_proof_bundle(&json(&other_key), &f.verifier),
        Err(VerifyBundleError::Checkpoint(
            OpenNoteError::UnknownKey { .. }
        ))
    ));
    // Another account's record, re-sealed, under this log's checkpoint.
    let mut body = sample_body(11);
    body.account_id = "other".into();
    let mut other_account = bundle.clone();
    other_account.record =
        serde_json::from_slice(&Record::seal(body).to_json_bytes()).expect("json");
    assert!(matches!(
        verify_proof_bundle(&json(&other_account), &f.verifier),
        Err(VerifyBundleError::AccountMismatch { .. })
    ));
    let mut extra = serde_json::from_slice::<Value>(&f.bundle_json).expect("json");
    extra["extra"] = Value::from(1);
    assert!(matches!(
        verify_proof_bundle(&serde_json::to_vec(&extra).expect("json"), &f.verifier),
        Err(VerifyBundleError::Json(_))
    ));
}

/// The fuzz target's property over deterministic mutations of every
/// parser's known-good input (a few thousand each).
#[test]
fn mutated_inputs_are_never_accepted() {
    for target in 0..TARGETS {
        let original = original(target);
        // The originals themselves pass.
        check_target(target, original);
        let mut n = 0;
        // JSON targets are long; sample every third mutation there to
        // keep the suite fast in debug builds.
        let step = if target >= 2 { 3 } else { 1 };
        for m in mutations(original).step_by(step) {
            check_target(target, &m);
            n += 1;
        }
        assert!(n > 1000, "target {target}: {n} mutations");
    }
    let f = fixture();
    assert!(
        verify_consistency_bundle(&f.old_note, &f.note, &f.consistency_json, &f.verifier).is_ok()
    );
    assert!(verify_proof_bundle(&f.bundle_json, &f.verifier).is_ok());
    // The edit-list mode of the fuzz entry point.
    check(&[0x81, 0, 0, 10, b'x', 4, 0, 50, 0]);
    check(&[]);
}

fn lines_of(export: &[u8]) -> Vec<Vec<u8>> {
    export
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut v = l.to_vec();
            v.push(b'\n');
            v
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_byte_change_is_rejected(
        n in 1u64..24,
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let (export, cp) = export_fixture(n);
        let i = pos.index(export.len());
        prop_assume!(export[i] != byte);
        let mut bad = export.clone();
        bad[i] = byte;
        prop_assert!(verify(&bad, &cp).is_err(), "byte {} set to {:?}", i, byte as char);
    }

    #[test]
    fn deleting_a_record_is_rejected(n in 1u64..24, which in any::<prop::sample::Index>()) {
        let (export, cp) = export_fixture(n);
        let mut lines = lines_of(&export);
        lines.remove(which.index(lines.len()));
        prop_assert!(verify(&lines.concat(), &cp).is_err());
    }

    #[test]
    fn duplicating_a_record_is_rejected(
        n in 1u64..24,
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        let (export, cp) = export_fixture(n);
        let mut lines = lines_of(&export);
        let line = lines[which.index(lines.len())].clone();
        let at = at.index(lines.len() + 1);
        lines.insert(at, line);
        let is_duplicate = matches!(verify(&lines.concat(), &cp), Err(VerifyExportError::Duplicate { .. }));
        prop_assert!(is_duplicate);
    }

    #[test]
    fn swapping_two_records_positions_is_rejected(
        n in 2u64..24,
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        reseal in any::<bool>(),
    ) {
        let mut records = sample_records(n);
        let cp = checkpoint_of(&records, n);
        let (a, b) = (a.index(n as usize), b.index(n as usize));
        prop_assume!(a != b);
        records[a].body.seq = b as u64;
        records[b].body.seq = a as u64;
        if reseal {
            records[a] = Record::seal(records[a].body.clone());
            records[b] = Record::seal(records[b].body.clone());
        }
        prop_assert!(verify(&export_lines(&records), &cp).is_err());
    }

    #[test]
    fn truncating_the_export_is_rejected(n in 1u64..24, cut in any::<prop::sample::Index>()) {
        let (export, cp) = export_fixture(n);
        // Every cut but dropping the final newline alone loses data.
        let cut = cut.index(export.len() - 1);
        prop_assert!(verify(&export[..cut], &cp).is_err());
    }

    #[test]
    fn reordering_lines_is_accepted(n in 1u64..24, seed in any::<u64>()) {
        let (export, cp) = export_fixture(n);
        let mut lines = lines_of(&export);
        let mut s = seed;
        for i in (1..lines.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            lines.swap(i, (s >> 33) as usize % (i + 1));
        }
        prop_assert!(verify(&lines.concat(), &cp).is_ok());
    }
}

/// The verifier before it streamed: every record kept and sorted, then
/// placed. The reference the streaming [`Leaves`] must match exactly.
fn reference_verify(export: &[u8], cp: &Checkpoint) -> Result<VerifyReport, VerifyExportError> {
    let mut outcomes = Vec::new();
    check_lines(export, &mut outcomes);
    let (mut entries, mut reserialized, mut edited) = (Vec::new(), 0, None);
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let line = i as u64 + 1;
        let parsed = match outcome {
            LineOutcome::Blank => continue,
            LineOutcome::Malformed(reason) => {
                return Err(VerifyExportError::Malformed { line, reason });
            }
            LineOutcome::Record {
                parsed,
                reserialized: r,
            } => {
                reserialized += u64::from(r);
                parsed
            }
        };
        if parsed.leaf != parsed.claimed && edited.as_ref().is_none_or(|(s, _)| parsed.seq < *s) {
            let err = VerifyExportError::Edited {
                line,
                seq: parsed.seq,
                computed: hex::encode(parsed.leaf),
                claimed: hex::encode(parsed.claimed),
            };
            edited = Some((parsed.seq, err));
        }
        entries.push(Entry {
            seq: parsed.seq,
            line,
            leaf: parsed.leaf,
        });
    }
    entries.sort_by_key(|e| (e.seq, e.line));
    let mut problem = edited;
    let mut consider = |seq: u64, err| {
        if problem.as_ref().is_none_or(|(s, _)| seq < *s) {
            problem = Some((seq, err));
        }
    };
    let (mut leaves, mut not_yet_covered, mut missing) = (Vec::new(), Vec::new(), None);
    for (i, e) in entries.iter().enumerate() {
        if i > 0 && entries[i - 1].seq == e.seq {
            let (first_line, second_line) = (entries[i - 1].line, e.line);
            consider(
                e.seq,
                VerifyExportError::Duplicate {
                    seq: e.seq,
                    first_line,
                    second_line,
                },
            );
            continue;
        }
        if e.seq >= cp.size {
            not_yet_covered.push(e.seq);
        } else if missing.is_none() && e.seq != leaves.len() as u64 {
            missing = Some(leaves.len() as u64);
        } else if missing.is_none() {
            leaves.push(e.leaf);
        }
    }
    let size = cp.size;
    if let Some(seq) = missing {
        consider(seq, VerifyExportError::Missing { seq, size });
    } else if (leaves.len() as u64) < size {
        let first_missing = leaves.len() as u64;
        consider(
            first_missing,
            VerifyExportError::CutOff {
                first_missing,
                size,
            },
        );
    }
    if let Some((_, err)) = problem {
        return Err(err);
    }
    let root = crate::log::merkle::root_from_leaves(leaves);
    if root != cp.root {
        return Err(VerifyExportError::RootMismatch {
            computed: hex::encode(root),
        });
    }
    Ok(VerifyReport {
        covered: size,
        not_yet_covered,
        records: entries.len() as u64,
        reserialized,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Exports in the server's order, the opposite one or shuffled,
    /// then damaged (lines repeated, dropped, moved, blanked, edited),
    /// against checkpoints of every size: streaming reports exactly
    /// what sorting everything reported.
    #[test]
    fn streaming_reports_what_sorting_everything_reported(
        n in 1u64..40,
        size in any::<prop::sample::Index>(),
        order in 0u8..3,
        ops in prop::collection::vec((0u8..6, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..4),
    ) {
        let mut records = sample_records(n);
        let cp = checkpoint_of(&records, size.index(n as usize + 1) as u64);
        match order {
            0 => records.reverse(),
            1 => {}
            _ => {
                let m = records.len();
                for i in 0..m {
                    records.swap(i, (i * 7 + 3) % m);
                }
            }
        }
        let mut lines = lines_of(&export_lines(&records));
        for (op, a, b) in ops {
            let (i, j) = (a.index(lines.len()), b.index(lines.len() + 1));
            match op {
                0 => { let l = lines[i].clone(); lines.insert(j, l); }
                1 if lines.len() > 1 => { lines.remove(i); }
                2 => { let l = lines.remove(i); lines.insert(j.min(lines.len()), l); }
                3 => lines.insert(j, b"\n".to_vec()),
                4 => {
                    let text = String::from_utf8(lines[i].clone()).expect("utf8");
                    lines[i] = text.replacen("\"description\":\"", "\"description\":\"x", 1).into_bytes();
                }
                _ => {
                    let last = lines.len() - 1;
                    lines.swap(i, j.min(last));
                }
            }
        }
        let export = lines.concat();
        let got = format!("{:?}", verify(&export, &cp));
        let want = format!("{:?}", reference_verify(&export, &cp));
        prop_assert_eq!(got, want);
    }
}

/// Rough throughput of the export verifier; run with
/// `cargo test --release -p auditlog-core --lib verify_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a test; run in release"]
fn verify_throughput() {
    let (export, cp) = export_fixture(1_000_000);
    let start = std::time::Instant::now();
    let report = verify_export(&export[..], &cp).expect("verifies");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "verified {} records ({} MB) in {:.3} s: {:.0} records/s",
        report.covered,
        export.len() / 1_000_000,
        secs,
        report.covered as f64 / secs
    );
}
