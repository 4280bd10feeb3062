//! The block reader behind [`super::verify_export`]: it pulls an export from
//! a caller's `BufRead` in blocks of whole lines and checks each block's
//! lines on scoped threads while the next block is read.
//!
//! This is the one place in `auditlog-core` that reads bytes and starts
//! threads (see the crate documentation for why it lives here). It never
//! opens anything: the caller hands in the reader. What it does per line is
//! the pure [`super::line::check_line`], and what the lines add up to is
//! decided by the caller's `on_line`, so the I/O and the threads stay here.

use std::io::BufRead;

use super::line::{LineOutcome, check_lines};

/// Bytes of export read and hashed per round; bounds the memory held for
/// line text whatever the export's size.
pub(super) const BLOCK_BYTES: usize = 8 << 20;
/// Checks the whole lines of `data`, spreading the work over
/// `outcomes.len()` threads; part `k`'s outcomes land in `outcomes[k]`, so
/// reading them in order reads the lines in order. Threads do no I/O and
/// the outcome does not depend on their number: they only share the SHA-256
/// work, which dominates verification. The buffers are reused from block to
/// block: allocated anew for each one, they showed in profiles as page
/// faults.
fn check_block(data: &[u8], outcomes: &mut [Vec<LineOutcome>]) {
    let workers = outcomes.len();
    if workers <= 1 || data.len() < 1 << 20 {
        for out in outcomes.iter_mut() {
            out.clear();
        }
        if let Some(first) = outcomes.first_mut() {
            check_lines(data, first);
        }
        return;
    }
    // Cut into `workers` parts of whole lines.
    let mut parts = Vec::with_capacity(workers);
    let mut start = 0;
    for k in 1..workers {
        let target = (data.len() * k / workers).max(start);
        let end = match data[target..].iter().position(|&b| b == b'\n') {
            Some(p) => target + p + 1,
            None => data.len(),
        };
        parts.push(&data[start..end]);
        start = end;
    }
    parts.push(&data[start..]);
    let (first, others) = outcomes.split_at_mut(1);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (&part, out) in parts[1..].iter().zip(others.iter_mut()) {
            let mut buf = std::mem::take(out);
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                check_lines(part, &mut buf);
                buf
            });
            match spawned {
                Ok(handle) => handles.push((handle, out)),
                // No thread to be had: that part is done here instead (in
                // a new buffer; the one moved into the closure is gone).
                Err(_) => check_lines(part, out),
            }
        }
        check_lines(parts[0], &mut first[0]);
        for (handle, out) in handles {
            *out = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
}

/// Checks `block` on another thread while `read` (the next block) runs on
/// this one, so a file that is not in the page cache is read while the
/// previous block is hashed instead of in turns. (In the 10M-event bench it
/// moved verify from 0.82M to only 0.85M records/s: turn-taking was not the
/// main cost there.)
fn check_while_reading<T>(
    block: &[u8],
    outcomes: &mut Vec<Vec<LineOutcome>>,
    read: impl FnOnce() -> T,
) -> T {
    let workers = outcomes.len();
    let mut bufs = std::mem::take(outcomes);
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
            check_block(block, &mut bufs);
            bufs
        });
        match spawned {
            Ok(checker) => {
                let read = read();
                *outcomes = checker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                read
            }
            // No thread to be had: one after the other, in new buffers.
            Err(_) => {
                *outcomes = (0..workers).map(|_| Vec::new()).collect();
                check_block(block, outcomes);
                read()
            }
        }
    })
}

/// Reads the next round of whole lines into `block`: about
/// [`BLOCK_BYTES`], cut after a newline, the rest carried over in `carry`.
/// Returns false at the end of the export.
fn read_block<R: BufRead>(
    export: &mut R,
    block: &mut Vec<u8>,
    carry: &mut Vec<u8>,
) -> std::io::Result<bool> {
    block.clear();
    block.append(carry);
    loop {
        let buf = export.fill_buf()?;
        if buf.is_empty() {
            return Ok(!block.is_empty());
        }
        let take = buf.len().min(BLOCK_BYTES);
        block.extend_from_slice(&buf[..take]);
        export.consume(take);
        if block.len() >= BLOCK_BYTES
            && let Some(last_newline) = block.iter().rposition(|&b| b == b'\n')
        {
            carry.extend_from_slice(&block[last_newline + 1..]);
            block.truncate(last_newline + 1);
            return Ok(true);
        }
    }
}

/// Reads `export` to its end and hands the outcome of every line to
/// `on_line`, in the order of the lines (line numbers are the count of
/// calls). Stops at the first error `on_line` returns. A read error is
/// turned into the caller's error by `read_error` and reported only after
/// `on_line` has seen every line read before it.
///
/// Memory: two blocks of about [`BLOCK_BYTES`] (one is read while the
/// other is checked) and their outcomes. Checking runs on as many threads
/// as [`std::thread::available_parallelism`] allows, at most 16.
pub(super) fn for_each_line<R: BufRead, E>(
    mut export: R,
    mut on_line: impl FnMut(LineOutcome) -> Result<(), E>,
    read_error: impl Fn(std::io::Error) -> E,
) -> Result<(), E> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    let mut outcomes: Vec<Vec<LineOutcome>> = (0..workers).map(|_| Vec::new()).collect();
    let (mut block, mut next, mut carry) = (Vec::new(), Vec::new(), Vec::new());
    let mut have_block = read_block(&mut export, &mut block, &mut carry).map_err(&read_error)?;
    while have_block {
        let next_read = check_while_reading(&block, &mut outcomes, || {
            read_block(&mut export, &mut next, &mut carry)
        });
        for outcome in outcomes.iter_mut().flat_map(|o| o.drain(..)) {
            on_line(outcome)?;
        }
        // A read error is reported after the lines read before it.
        have_block = next_read.map_err(&read_error)?;
        std::mem::swap(&mut block, &mut next);
    }
    Ok(())
}
