//! Copy progress: counters updated by the lanes (atomics), and the [`Progress`] snapshot the
//! engine publishes on a watch channel every tick (rate, lag and ETA derived here).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Where a copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Connecting, reading the key count.
    #[default]
    Starting,
    /// The SCAN pass runs (dirty keys are followed meanwhile).
    Scanning,
    /// The pass is over; queued copies and dirty keys are draining.
    Streaming,
    /// Pass done, queues empty and quiet: the two sides hold the same data. Sticky: later dirty
    /// keys are still copied, the phase stays `Done`.
    Done,
    /// The copy stopped on an error (see [`Progress::error`]).
    Failed,
}

impl Phase {
    /// The wire name (`scanning`, `streaming`, `done`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Scanning => "scanning",
            Phase::Streaming => "streaming",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }
}

/// A snapshot of a copy's progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Phase.
    pub phase: Phase,
    /// Keys returned by SCAN so far.
    pub keys_scanned: u64,
    /// DBSIZE of the source when the copy started.
    pub keys_total_estimate: u64,
    /// Keys restored on the target (scan pass, dirty re-copies and repairs).
    pub keys_copied: u64,
    /// Keys skipped (exist in the target with `replace: none`, or vanished before the read).
    pub keys_skipped: u64,
    /// Keys that could not be copied (the target refused them).
    pub keys_failed: u64,
    /// Keys deleted on the target because they no longer exist on the source.
    pub keys_deleted: u64,
    /// DUMP payload bytes restored.
    pub bytes_copied: u64,
    /// Dirty keys waiting for their re-copy.
    pub dirty_backlog: u64,
    /// Age of the oldest waiting dirty key, in milliseconds.
    pub lag_ms: u64,
    /// Keys copied per second (recent).
    pub rate_keys_per_s: u64,
    /// Seconds left in the scan pass at the current rate, when known.
    pub eta_s: Option<u64>,
    /// Checkpoint: every key before this SCAN cursor has been copied. `None` once the pass is over.
    pub cursor: Option<u64>,
    /// Why the copy failed.
    pub error: Option<String>,
}

/// Counters shared by the lanes and the scanner.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) scanned: AtomicU64,
    pub(crate) copied: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) deleted: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        if n > 0 {
            c.fetch_add(n, Relaxed);
        }
    }

    /// Fills the counter fields of `p`.
    pub(crate) fn fill(&self, p: &mut Progress) {
        p.keys_scanned = self.scanned.load(Relaxed);
        p.keys_copied = self.copied.load(Relaxed);
        p.keys_skipped = self.skipped.load(Relaxed);
        p.keys_failed = self.failed.load(Relaxed);
        p.keys_deleted = self.deleted.load(Relaxed);
        p.bytes_copied = self.bytes.load(Relaxed);
    }
}

/// Smoothed rate over ticks (exponential moving average).
#[derive(Debug, Default)]
pub(crate) struct Rate {
    last: u64,
    ewma: f64,
}

impl Rate {
    /// Feeds the counter value after `secs` seconds; returns the smoothed per-second rate.
    pub(crate) fn update(&mut self, value: u64, secs: f64) -> f64 {
        if secs <= 0.0 {
            return self.ewma;
        }
        let inst = value.saturating_sub(self.last) as f64 / secs;
        self.last = value;
        self.ewma = if self.ewma == 0.0 {
            inst
        } else {
            0.7 * self.ewma + 0.3 * inst
        };
        self.ewma
    }
}

/// Seconds until `done` reaches `total` at `rate` per second.
pub(crate) fn eta(done: u64, total: u64, rate: f64) -> Option<u64> {
    (rate >= 1.0).then(|| (total.saturating_sub(done) as f64 / rate).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta() {
        let mut r = Rate::default();
        assert_eq!(r.update(1000, 1.0), 1000.0);
        let v = r.update(1000, 1.0);
        assert!((v - 700.0).abs() < 1e-9);
        assert_eq!(eta(500, 1500, 100.0), Some(10));
        assert_eq!(eta(2000, 1500, 100.0), Some(0));
        assert_eq!(eta(0, 10, 0.0), None);
        assert_eq!(Phase::Done.as_str(), "done");
    }
}
