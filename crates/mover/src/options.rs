//! What a copy is asked to do ([`CopyJob`]) and how hard it may push ([`CopyOptions`]), plus
//! the token bucket that enforces the keys-per-second limit of the scan pass.

use std::time::Duration;

use tokio::time::Instant;

/// `snapshot` copies every key once; `scan` also keeps re-copying keys reported dirty until the
/// copy is stopped (both process dirty keys during the pass: that is what keeps it convergent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One pass.
    Snapshot,
    /// One pass, then follow dirty keys until stopped.
    Scan,
}

/// Conflict rule for keys that already exist in the target (scan-pass copies only; re-copies
/// of dirty keys always replace, because the source is authoritative for a key written through
/// the proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceMode {
    /// Skip keys that exist in the target (`RESTORE` without `REPLACE`, `BUSYKEY` = skipped).
    None,
    /// Overwrite.
    Replace,
    /// Union hash fields, set members and sorted-set members (the target's values win on a
    /// conflict); strings, lists and streams keep the target's value.
    Merge,
}

/// Tuning of a copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// `SCAN … COUNT` and the largest read/write batch.
    pub batch: usize,
    /// Number of ordered lanes (parallel batches in flight).
    pub lanes: usize,
    /// Scan-pass keys per second (`None` = unlimited). Dirty re-copies are never limited.
    pub rate_limit: Option<u64>,
    /// Attempts of one batch before the copy fails.
    pub retries: u32,
    /// First retry delay (doubles each attempt).
    pub retry_backoff: Duration,
    /// Connect and response timeout of every Redis call.
    pub timeout: Duration,
    /// Quiet time (no new dirty keys) after the pass and the queues drain before `done`.
    pub settle: Duration,
    /// How often progress is published and repairs are collected.
    pub tick: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            batch: 1000,
            lanes: 8,
            rate_limit: None,
            retries: 4,
            retry_backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(3),
            settle: Duration::from_millis(300),
            tick: Duration::from_millis(100),
        }
    }
}

/// One copy: from `source_url` to `target_url`.
#[derive(Debug, Clone)]
pub struct CopyJob {
    /// A name for logs (the migration and member).
    pub name: String,
    /// Source Redis URL.
    pub source_url: String,
    /// Target Redis URL.
    pub target_url: String,
    /// Snapshot or scan.
    pub mode: Mode,
    /// Conflict rule of the scan pass.
    pub replace: ReplaceMode,
    /// SCAN cursor to resume from (a checkpoint); `None` starts at 0.
    pub resume_cursor: Option<u64>,
    /// The pass already finished before a restart: only follow dirty keys.
    pub pass_done: bool,
    /// Tuning.
    pub options: CopyOptions,
}

/// A token bucket of `rate` keys per second with one second of burst.
#[derive(Debug)]
pub(crate) struct RateLimit {
    rate: Option<f64>,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub(crate) fn new(rate: Option<u64>) -> Self {
        Self {
            rate: rate.filter(|r| *r > 0).map(|r| r as f64),
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// Waits until `n` keys may go.
    pub(crate) async fn acquire(&mut self, n: usize) {
        let Some(rate) = self.rate else { return };
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(rate);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / rate)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_limit_paces_batches() {
        let mut r = RateLimit::new(Some(1000));
        let start = Instant::now();
        for _ in 0..10 {
            r.acquire(500).await;
        }
        // 5000 keys at 1000/s, starting with an empty bucket
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(4900), "{took:?}");
        assert!(took <= Duration::from_millis(5100), "{took:?}");
        let mut unlimited = RateLimit::new(None);
        let start = Instant::now();
        unlimited.acquire(1_000_000).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
