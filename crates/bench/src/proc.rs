//! What the bench reads from the operating system: the machine, a process's
//! memory and CPU time from `/proc`, sizes on disk, and evicting files from
//! the page cache for cold measurements.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// The machine the bench ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = status_kib(&meminfo, "MemTotal:").unwrap_or(0) as f64 / (1024.0 * 1024.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib,
            kernel,
        }
    }
}

/// A `Key:   123 kB` line of a `/proc` status file, in KiB.
fn status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rss {
    /// VmRSS: everything resident.
    pub total: u64,
    /// RssAnon: heap and stacks, what the process itself allocated.
    pub anon: u64,
    /// RssFile: pages of mapped files — with SQLite's `mmap_size`, database
    /// pages the page cache holds anyway, reclaimable under pressure.
    pub file: u64,
}

/// Resident memory of `pid` now.
pub fn rss(pid: u32) -> Option<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |k| status_kib(&text, k).map(|v| v * 1024);
    Some(Rss {
        total: kib("VmRSS:")?,
        anon: kib("RssAnon:").unwrap_or(0),
        file: kib("RssFile:").unwrap_or(0),
    })
}

/// User plus system CPU time of `pid` (or `self`), in seconds.
pub fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at `)`.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12
    // after the state field that follows `)`.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second() as f64;
    (ticks(11) + ticks(12)) as f64 / hz.max(1.0)
}

/// Samples a process's resident memory in the background; the peaks are
/// read when the sampler stops. VmHWM cannot be used for one phase: it is
/// the peak of the process's whole life.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<[AtomicU64; 3]>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        record_peak(&peak, pid);
        let task = tokio::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    record_peak(&peak, pid);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        RssSampler { stop, peak, task }
    }

    /// Stops sampling; returns the peaks (each its own maximum).
    pub async fn finish(self, pid: u32) -> Rss {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        record_peak(&self.peak, pid);
        let [total, anon, file] = &*self.peak;
        Rss {
            total: total.load(Ordering::Relaxed),
            anon: anon.load(Ordering::Relaxed),
            file: file.load(Ordering::Relaxed),
        }
    }
}

fn record_peak(peak: &[AtomicU64; 3], pid: u32) {
    if let Some(r) = rss(pid) {
        peak[0].fetch_max(r.total, Ordering::Relaxed);
        peak[1].fetch_max(r.anon, Ordering::Relaxed);
        peak[2].fetch_max(r.file, Ordering::Relaxed);
    }
}

/// Total size of the files that exist among `paths`.
pub fn files_size(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Total size of the regular files directly in `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Drops the clean pages of `paths` from the page cache
/// (`posix_fadvise(DONTNEED)` after an `fsync`), so the next read comes from
/// the disk. Only these files are affected, unlike `drop_caches`, which would
/// slow everything else on the machine.
pub fn evict(paths: &[PathBuf]) {
    for p in paths {
        let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(p) else {
            continue;
        };
        let _ = f.sync_all();
        if let Err(e) = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed) {
            crate::step(format_args!(
                "warning: could not evict {} from the page cache: {e}",
                p.display()
            ));
        }
    }
}

/// Every regular file directly in `dir`.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}
