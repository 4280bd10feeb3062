//! `auditlog verify`: offline checks of exports, consistency proofs and
//! single-event proof bundles. Nothing here talks to a server: the auditor
//! needs only the files and the public key.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use auditlog_core::checkpoint::{NoteVerifier, open_note};
use auditlog_core::verify::{verify_consistency_bundle, verify_export, verify_proof_bundle};

#[derive(Args, Debug)]
#[command(after_help = "\
Modes:
  --export FILE.jsonl --checkpoint CP --public-key KEY      an export against a checkpoint
  --checkpoint OLD --checkpoint NEW --proof P --public-key KEY   consistency of two checkpoints
  --proof BUNDLE --public-key KEY                           one event's proof bundle")]
pub struct VerifyArgs {
    /// A JSONL export (`GET …/events/export?format=jsonl&range=all_time`), in any line order.
    #[arg(long, env = "AUDITLOG_EXPORT_FILE")]
    pub export: Option<PathBuf>,
    /// A signed checkpoint (`GET …/checkpoint`); give two, oldest first, for a consistency check.
    #[arg(long, env = "AUDITLOG_CHECKPOINT", value_delimiter = ',')]
    pub checkpoint: Vec<PathBuf>,
    /// The verifier key (`GET /v1/public-key`).
    #[arg(long, env = "AUDITLOG_PUBLIC_KEY")]
    pub public_key: PathBuf,
    /// A consistency proof (`GET …/proof/consistency`) with two checkpoints,
    /// or a proof bundle (`GET …/events/{id}/proof`) alone.
    #[arg(long, env = "AUDITLOG_PROOF")]
    pub proof: Option<PathBuf>,
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading the {what} {}", path.display()))
}

/// Runs the check the arguments name; an error (non-zero exit) says exactly
/// what is wrong.
pub fn run(args: VerifyArgs) -> Result<()> {
    let key = read_text(&args.public_key, "public key")?;
    let verifier = NoteVerifier::parse(key.trim())
        .with_context(|| format!("parsing the public key {}", args.public_key.display()))?;
    match (&args.export, args.checkpoint.as_slice(), &args.proof) {
        (Some(export), [checkpoint], None) => {
            let note = read_text(checkpoint, "checkpoint")?;
            let cp = open_note(&note, &verifier).with_context(|| {
                format!(
                    "the checkpoint {} is not signed by this key or is malformed",
                    checkpoint.display()
                )
            })?;
            let file = std::fs::File::open(export)
                .with_context(|| format!("opening the export {}", export.display()))?;
            let started = std::time::Instant::now();
            let report = verify_export(std::io::BufReader::with_capacity(1 << 20, file), &cp)
                .map_err(|e| anyhow::anyhow!("FAILED: {}: {e}", export.display()))?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "OK: {} records verified against checkpoint {} of size {} (root matches, signature valid)",
                report.covered, cp.origin, cp.size
            );
            if !report.not_yet_covered.is_empty() {
                let first = report.not_yet_covered[0];
                let last = report.not_yet_covered[report.not_yet_covered.len() - 1];
                println!(
                    "not yet covered: {} newer records (seq {first}..={last}) — the checkpoint predates them; verify again with a newer checkpoint",
                    report.not_yet_covered.len()
                );
            }
            if report.reserialized > 0 {
                println!(
                    "note: {} lines were not in canonical form and were re-canonicalized before hashing",
                    report.reserialized
                );
            }
            eprintln!(
                "{} records in {:.3} s ({:.0} records/s)",
                report.records,
                secs,
                report.records as f64 / secs.max(1e-9)
            );
            Ok(())
        }
        (None, [old, new], Some(proof)) => {
            let old_note = read_text(old, "old checkpoint")?;
            let new_note = read_text(new, "new checkpoint")?;
            let proof_json = std::fs::read(proof)
                .with_context(|| format!("reading the proof {}", proof.display()))?;
            let report = verify_consistency_bundle(&old_note, &new_note, &proof_json, &verifier)
                .map_err(|e| anyhow::anyhow!("FAILED: {:#}", anyhow::Error::new(e)))?;
            println!(
                "OK: the log of size {} is a prefix of the log of size {} ({}): nothing was changed or removed",
                report.old.size, report.new.size, report.new.origin
            );
            Ok(())
        }
        (None, [], Some(bundle)) => {
            let json = std::fs::read(bundle)
                .with_context(|| format!("reading the bundle {}", bundle.display()))?;
            let ok = verify_proof_bundle(&json, &verifier)
                .map_err(|e| anyhow::anyhow!("FAILED: {:#}", anyhow::Error::new(e)))?;
            println!(
                "OK: event {} (seq {}, {} / {}) is included in {} of size {}",
                ok.record.body.id,
                ok.record.body.seq,
                ok.record.body.category,
                ok.record.body.event,
                ok.checkpoint.origin,
                ok.checkpoint.size
            );
            Ok(())
        }
        _ => bail!(
            "say what to verify: --export F --checkpoint C, or --checkpoint OLD --checkpoint NEW --proof P, or --proof BUNDLE (each with --public-key K)"
        ),
    }
}
