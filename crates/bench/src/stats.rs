//! Latency summaries and the repeat-until-budget loop shared by every
//! timed measurement.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

/// Percentiles of a set of durations, in milliseconds (nearest rank).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub n: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let rank = |p: f64| {
            let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            ms(samples[i])
        };
        Latency {
            n: samples.len(),
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            max_ms: ms(samples[samples.len() - 1]),
            mean_ms: samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64,
        }
    }
}

/// How many times a warm measurement repeats: `reps` runs after one
/// untimed warm-up, but no more once `budget` is spent (at least one run).
/// The budget keeps a ten-second baseline query from turning thirty
/// repetitions into an hour; the report says how many runs each figure has.
#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    pub reps: usize,
    pub budget: Duration,
}

impl Repeat {
    pub async fn run<F, Fut>(self, mut f: F) -> Result<Latency>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        f().await?;
        let started = Instant::now();
        let mut samples = Vec::with_capacity(self.reps);
        while samples.len() < self.reps && (samples.is_empty() || started.elapsed() < self.budget) {
            let t = Instant::now();
            f().await?;
            samples.push(t.elapsed());
        }
        Ok(Latency::of(samples))
    }

    /// The same for blocking work (the baseline's SQLite calls).
    pub fn run_blocking(self, mut f: impl FnMut() -> Result<()>) -> Result<Latency> {
        f()?;
        let started = Instant::now();
        let mut samples = Vec::with_capacity(self.reps);
        while samples.len() < self.reps && (samples.is_empty() || started.elapsed() < self.budget) {
            let t = Instant::now();
            f()?;
            samples.push(t.elapsed());
        }
        Ok(Latency::of(samples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latency::of((1..=100).map(Duration::from_millis).collect());
        assert_eq!(
            (l.n, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        let one = Latency::of(vec![Duration::from_millis(7)]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert_eq!(Latency::of(Vec::new()).n, 0);
    }
}
