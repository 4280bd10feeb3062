//! `auditlog verify`: offline checks of exports, consistency proofs and
//! single-event proof bundles.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A JSONL export to check against the checkpoint.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// A signed checkpoint (twice with --proof for a consistency check).
    #[arg(long)]
    pub checkpoint: Vec<PathBuf>,
    /// The verifier key (as served by GET /v1/public-key).
    #[arg(long)]
    pub public_key: PathBuf,
    /// A consistency proof (with two checkpoints) or a proof bundle (alone).
    #[arg(long)]
    pub proof: Option<PathBuf>,
}

pub fn run(_args: VerifyArgs) -> Result<()> {
    anyhow::bail!("verify is being wired in")
}
