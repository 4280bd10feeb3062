//! Checkpoints of the WAL, moved off the writer's path onto a thread of
//! their own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::{SqliteOptions, open_conn, sql_err};
use crate::{Result, StoreError, StoreErrorKind};

/// WAL frames after which the log is checkpointed (SQLite's own default).
const WAL_CHECKPOINT_FRAMES: u32 = 1000;
/// WAL frames at which the writer stops taking work until a checkpoint has
/// caught up (64 MiB of 8 KiB pages): the WAL stays bounded whatever the
/// checkpointer thread's pace.
const WAL_MAX_FRAMES: u32 = 8 * WAL_CHECKPOINT_FRAMES;

const CKPT_IDLE: u8 = 0;
const CKPT_RUNNING: u8 = 1;
const CKPT_DONE: u8 = 2;

/// Checkpoints of the WAL, moved off the writer's path.
///
/// A checkpoint copies every page of the WAL into the main file. Done by the
/// writer inside the commit that crosses the threshold (SQLite's automatic
/// checkpoint), it was a third of the writer's time in batch ingest (perf,
/// 2M-event bench: `pwrite` into new pages of the file), while the second
/// core idled a fifth of the time. So a thread of its own copies the bulk
/// with a PASSIVE checkpoint (it never blocks the writer or readers), and
/// the writer then copies what it committed meanwhile, which is little: that
/// leaves the whole WAL copied, so SQLite rewinds it at the next write and
/// it stays small. (A background checkpointer alone never catches up with a
/// busy writer, and the WAL grows without bound: the first attempt at this,
/// reverted in 071a4f5.)
pub(super) struct WalCheckpoints {
    /// Frames in the WAL after the last commit, from SQLite's WAL hook.
    frames: Arc<std::sync::atomic::AtomicU32>,
    /// `CKPT_IDLE`, `CKPT_RUNNING` (the thread copies) or `CKPT_DONE`.
    phase: Arc<std::sync::atomic::AtomicU8>,
    /// Frames the thread's last checkpoint had copied when it ended.
    copied: Arc<std::sync::atomic::AtomicU32>,
    /// Wakes the checkpointer thread; `None` once it is gone.
    wake: Option<std::sync::mpsc::SyncSender<()>>,
}

impl WalCheckpoints {
    /// Takes over checkpointing from SQLite on the writer's connection (a
    /// WAL hook replaces the automatic checkpoint) and starts the thread.
    pub(super) fn start(
        writer: &mut Connection,
        path: &Path,
        opts: &SqliteOptions,
    ) -> Result<Self> {
        use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
        let frames = Arc::new(AtomicU32::new(0));
        let seen = frames.clone();
        writer
            .wal_hook(Some(
                move |_: &mut rusqlite::hooks::Wal, n: std::ffi::c_int| {
                    seen.store(u32::try_from(n).unwrap_or(0), Ordering::Relaxed);
                    Ok(())
                },
            ))
            .map_err(sql_err("install the WAL hook"))?;
        let phase = Arc::new(AtomicU8::new(CKPT_IDLE));
        let conn = open_conn(path, opts, false)?;
        let (wake, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let copied = Arc::new(AtomicU32::new(0));
        let (done, copied_by_thread) = (phase.clone(), copied.clone());
        std::thread::Builder::new()
            .name("auditlog-wal".into())
            .spawn(move || {
                // Ends when the writer (the only sender) is dropped.
                while rx.recv().is_ok() {
                    match conn.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
                        Ok((_, n)) => {
                            copied_by_thread.store(u32::try_from(n).unwrap_or(0), Ordering::Relaxed)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "WAL checkpoint failed; the writer does it");
                            copied_by_thread.store(0, Ordering::Relaxed);
                        }
                    }
                    done.store(CKPT_DONE, Ordering::Release);
                }
            })
            .map_err(|e| {
                StoreError::with_source(StoreErrorKind::Internal, "spawn WAL checkpointer", e)
            })?;
        Ok(Self {
            frames,
            phase,
            copied,
            wake: Some(wake),
        })
    }

    /// Wakes the thread; false if it is gone.
    fn wake(&mut self) -> bool {
        use std::sync::atomic::Ordering;
        self.phase.store(CKPT_RUNNING, Ordering::Release);
        // The channel holds one wake-up and the thread is idle: a full
        // channel cannot happen, a closed one means the thread is gone.
        let woken = self.wake.as_ref().is_some_and(|w| w.try_send(()).is_ok());
        if !woken {
            self.wake = None;
            self.phase.store(CKPT_IDLE, Ordering::Release);
        }
        woken
    }

    /// Called by the writer after each commit.
    pub(super) fn after_commit(&mut self, writer: &Connection) {
        use std::sync::atomic::Ordering;
        let frames = self.frames.load(Ordering::Relaxed);
        match self.phase.load(Ordering::Acquire) {
            CKPT_DONE => {
                // What was committed while the thread copied: if it is
                // much, the thread copies it too; the last little bit is
                // the writer's, so that the whole WAL is copied. At the
                // limit the writer catches up itself, whatever is left.
                let left = frames.saturating_sub(self.copied.load(Ordering::Relaxed));
                if left < WAL_CHECKPOINT_FRAMES / 4 || frames >= WAL_MAX_FRAMES || !self.wake() {
                    checkpoint_here(writer);
                    self.phase.store(CKPT_IDLE, Ordering::Release);
                }
            }
            // Over the threshold, the thread is woken (in the guard); if it
            // is gone, the writer does it here, as SQLite would.
            CKPT_IDLE if frames >= WAL_CHECKPOINT_FRAMES && !self.wake() => {
                checkpoint_here(writer);
            }
            CKPT_RUNNING if frames >= WAL_MAX_FRAMES => {
                // The thread fell behind: wait for it (backpressure: the
                // producers wait on the writer), within reason.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while self.phase.load(Ordering::Acquire) == CKPT_RUNNING
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if self.phase.load(Ordering::Acquire) == CKPT_DONE {
                    checkpoint_here(writer);
                    self.phase.store(CKPT_IDLE, Ordering::Release);
                }
            }
            _ => {}
        }
    }
}

/// A PASSIVE checkpoint on the writer's connection; busy (another
/// checkpoint running) or failed, the next one makes up for it.
fn checkpoint_here(writer: &Connection) {
    if let Err(e) = writer.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
        tracing::debug!(error = %e, "WAL checkpoint by the writer did not run");
    }
}
