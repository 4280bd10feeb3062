//! `auditlog bench`: the benchmark harness.

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// About 100k events, a few minutes: the CI mode.
    #[arg(long)]
    pub quick: bool,
}

pub async fn run(_args: BenchArgs) -> Result<()> {
    anyhow::bail!("bench is being wired in")
}
