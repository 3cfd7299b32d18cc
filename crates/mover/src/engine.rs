//! The copy engine: a scanner feeds SCAN batches into the ordered lanes, one worker per lane
//! reads (PTTL + DUMP) from the source and restores on the target, and a reporter publishes
//! [`Progress`] every tick, collects repair keys and decides when the copy is `done`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::conn::Conn;
use crate::error::{MoverError, Side};
use crate::io::{Outcome, WriteMode};
use crate::lanes::{Job, Lanes};
use crate::options::{CopyJob, Mode, RateLimit, ReplaceMode};
use crate::progress::{eta, Counters, Phase, Progress, Rate};

/// Where repair keys come from: called with a maximum, returns keys to re-copy authoritatively
/// (the proxy's queue of failed secondary writes).
pub type RepairSource = Arc<dyn Fn(usize) -> Vec<Bytes> + Send + Sync>;

/// A running copy. Dropping it stops the copy.
#[derive(Debug)]
pub struct CopyHandle {
    lanes: Arc<Lanes>,
    progress: watch::Receiver<Progress>,
    paused: watch::Sender<bool>,
    task: AbortHandle,
}

impl CopyHandle {
    /// The progress channel (a new snapshot every tick while something changes).
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// `key` was written through the proxy: re-copy it after everything queued in its lane.
    pub fn mark_dirty(&self, key: &[u8]) {
        self.lanes.mark(key);
    }

    /// Suspends or resumes the copy (the checkpoint is kept; dirty keys keep queueing).
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Stops the copy (idempotent).
    pub fn stop(&self) {
        self.lanes.close();
        self.task.abort();
    }
}

impl Drop for CopyHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// State shared by the tasks of one copy.
struct Engine {
    job: CopyJob,
    lanes: Arc<Lanes>,
    counters: Counters,
    paused: watch::Receiver<bool>,
    pass_done: AtomicBool,
    checkpoint: AtomicU64,
    total: AtomicU64,
    /// Re-copies (dirty keys, repairs) the target refused, retried after [`RETRY_FAILED`].
    failed: std::sync::Mutex<std::collections::VecDeque<(Instant, Bytes)>>,
}

/// When a re-copy the target refused (e.g. out of memory) is tried again.
const RETRY_FAILED: Duration = Duration::from_secs(1);
/// Most refused re-copies remembered for a retry.
const MAX_FAILED: usize = 100_000;

/// Starts a copy in the background (needs a tokio runtime). Connection problems show up as
/// retries and, past the retry budget, as [`Phase::Failed`] on the progress channel.
pub fn start(job: CopyJob, repairs: Option<RepairSource>) -> CopyHandle {
    let lanes = Arc::new(Lanes::new(job.options.lanes));
    let (paused_tx, paused_rx) = watch::channel(false);
    let start_cursor = job.resume_cursor.unwrap_or(0);
    let first = Progress {
        cursor: (!job.pass_done).then_some(start_cursor),
        ..Default::default()
    };
    let (tx, rx) = watch::channel(first);
    let engine = Arc::new(Engine {
        pass_done: AtomicBool::new(job.pass_done),
        checkpoint: AtomicU64::new(start_cursor),
        failed: Default::default(),
        job,
        lanes: lanes.clone(),
        counters: Counters::default(),
        paused: paused_rx,
        total: AtomicU64::new(0),
    });
    let task = tokio::spawn(async move {
        let name = engine.job.name.clone();
        tracing::info!(copy = %name, "copy started");
        if let Err(e) = run(&engine, &tx, repairs).await {
            tracing::warn!(copy = %name, error = %e, "copy failed");
            engine.lanes.close();
            let mut p = snapshot(&engine, Phase::Failed);
            p.error = Some(e.to_string());
            tx.send_replace(p);
        }
    });
    CopyHandle {
        lanes,
        progress: rx,
        paused: paused_tx,
        task: task.abort_handle(),
    }
}

fn snapshot(e: &Engine, phase: Phase) -> Progress {
    let mut p = Progress {
        phase,
        keys_total_estimate: e.total.load(Relaxed),
        dirty_backlog: e.lanes.backlog(),
        lag_ms: e.lanes.lag_ms(),
        cursor: (!e.pass_done.load(Relaxed)).then(|| e.checkpoint.load(Relaxed)),
        ..Default::default()
    };
    e.counters.fill(&mut p);
    p
}

async fn run(
    e: &Arc<Engine>,
    tx: &watch::Sender<Progress>,
    repairs: Option<RepairSource>,
) -> Result<(), MoverError> {
    let opts = &e.job.options;
    let src = retry(e, || {
        Conn::connect(&e.job.source_url, Side::Source, opts.timeout)
    })
    .await?;
    // fail early (and retry) when the target is down, before any work is queued
    retry(e, || {
        Conn::connect(&e.job.target_url, Side::Target, opts.timeout)
    })
    .await?;
    let total = retry(e, || {
        let mut c = src.clone();
        async move { c.dbsize().await }
    })
    .await?;
    e.total.store(total, Relaxed);
    let mut set = JoinSet::new();
    for lane in 0..e.lanes.len() {
        set.spawn(worker(e.clone(), lane));
    }
    if !e.pass_done.load(Relaxed) {
        let scan_conn = src.clone();
        set.spawn(scanner(e.clone(), scan_conn));
    }
    drop(src);
    let mut tick = tokio::time::interval(opts.tick);
    let mut rate = Rate::default();
    let mut last_tick = Instant::now();
    let mut last_repair = Instant::now() - opts.settle;
    let mut done = false;
    loop {
        tokio::select! {
            joined = set.join_next(), if !set.is_empty() => match joined {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(err))) => return Err(err),
                Some(Err(j)) if j.is_panic() => {
                    return Err(MoverError::Protocol { side: Side::Target, message: "copy task panicked".into() })
                }
                Some(Err(_)) => {}
            },
            _ = tick.tick() => {
                if let Some(r) = &repairs {
                    let keys = r(5000);
                    if !keys.is_empty() {
                        last_repair = Instant::now();
                        keys.iter().for_each(|k| e.lanes.mark_repair(k));
                    }
                }
                retry_failed(e);
                let pass_done = e.pass_done.load(Relaxed);
                if !done
                    && pass_done
                    && e.lanes.scan_quiet_ms() >= opts.settle.as_millis() as u64
                    && last_repair.elapsed() >= opts.settle
                    && e.lanes.backlog() == 0
                    && e.lanes.idle()
                {
                    done = true;
                    // every scan copy has landed: later writes reach the target through the
                    // dual write itself, and re-copying them could only race with a cutover
                    e.lanes.stop_marks();
                    tracing::info!(copy = %e.job.name, "copy done");
                }
                let phase = if done {
                    Phase::Done
                } else if pass_done {
                    Phase::Streaming
                } else {
                    Phase::Scanning
                };
                let mut p = snapshot(e, phase);
                let now = Instant::now();
                let r = rate.update(p.keys_copied, now.duration_since(last_tick).as_secs_f64());
                last_tick = now;
                p.rate_keys_per_s = r as u64;
                p.eta_s = match phase {
                    Phase::Scanning => eta(p.keys_scanned, p.keys_total_estimate, r),
                    _ => Some(0),
                };
                tx.send_if_modified(|old| {
                    let changed = *old != p;
                    *old = p;
                    changed
                });
                if done && e.job.mode == Mode::Snapshot {
                    return Ok(());
                }
            }
        }
    }
}

/// Runs `f` until it succeeds, retrying retryable errors with doubling backoff.
async fn retry<T, F, Fut>(e: &Engine, mut f: F) -> Result<T, MoverError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MoverError>>,
{
    let opts = &e.job.options;
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(err) if err.retryable() && attempt + 1 < opts.retries => {
                tracing::debug!(copy = %e.job.name, error = %err, attempt, "retrying");
                tokio::time::sleep(opts.retry_backoff * 2u32.pow(attempt)).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn wait_unpaused(e: &Engine) {
    let mut p = e.paused.clone();
    let _ = p.wait_for(|paused| !paused).await;
}

async fn scanner(e: Arc<Engine>, src: Conn) -> Result<(), MoverError> {
    let opts = &e.job.options;
    let sem = Arc::new(Semaphore::new(opts.batch * e.lanes.len() * 4));
    let mut rate = RateLimit::new(opts.rate_limit);
    loop {
        let mut cursor = e.checkpoint.load(Relaxed);
        let mut inflight = std::collections::VecDeque::new();
        loop {
            wait_unpaused(&e).await;
            let (next, keys) = retry(&e, || {
                let mut c = src.clone();
                async move { c.scan(cursor, opts.batch).await }
            })
            .await?;
            Counters::add(&e.counters.scanned, keys.len() as u64);
            rate.acquire(keys.len()).await;
            let ticket =
                if keys.is_empty() {
                    None
                } else {
                    let n = keys.len().min(sem.available_permits().max(opts.batch)) as u32;
                    let permit = sem.clone().acquire_many_owned(n).await.map_err(|_| {
                        MoverError::Protocol {
                            side: Side::Source,
                            message: "closed".into(),
                        }
                    })?;
                    Some(e.lanes.push_scan(keys, permit))
                };
            inflight.push_back((next, ticket));
            advance(&e, &mut inflight);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        while !inflight.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            advance(&e, &mut inflight);
        }
        // marks were dropped while the lanes were full: everything gets another pass
        if !e.lanes.overflowed.swap(false, Relaxed) {
            break;
        }
        e.checkpoint.store(0, Relaxed);
    }
    e.pass_done.store(true, Relaxed);
    tracing::info!(copy = %e.job.name, "scan pass finished");
    Ok(())
}

type Inflight = std::collections::VecDeque<(u64, Option<Arc<crate::lanes::Ticket>>)>;

/// Moves the checkpoint past every leading batch whose keys all landed.
fn advance(e: &Engine, inflight: &mut Inflight) {
    while let Some((cursor, t)) = inflight.front() {
        if t.as_ref().is_some_and(|t| !t.is_done()) {
            break;
        }
        e.checkpoint.store(*cursor, Relaxed);
        inflight.pop_front();
    }
}

async fn worker(e: Arc<Engine>, lane: usize) -> Result<(), MoverError> {
    let opts = &e.job.options;
    let mut conns: Option<(Conn, Conn)> = None;
    loop {
        let job = e.lanes.next(lane).await;
        wait_unpaused(&e).await;
        let mut attempt = 0;
        loop {
            match process(&e, &mut conns, &job).await {
                Ok(()) => break,
                Err(err) if err.retryable() && attempt + 1 < opts.retries => {
                    tracing::debug!(copy = %e.job.name, error = %err, attempt, "batch retry");
                    conns = None;
                    tokio::time::sleep(opts.retry_backoff * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
        if let Job::Scan { ticket, .. } = &job {
            ticket.finish_one();
            e.lanes.scan_finished();
        }
        e.lanes.finished(lane);
    }
}

/// Queues again the re-copies the target refused at least [`RETRY_FAILED`] ago.
fn retry_failed(e: &Engine) {
    let now = Instant::now();
    let mut failed = e.failed.lock().unwrap_or_else(|p| p.into_inner());
    while failed.front().is_some_and(|(at, _)| *at <= now) {
        if let Some((_, k)) = failed.pop_front() {
            e.lanes.mark_repair(&k);
        }
    }
}

async fn process(
    e: &Engine,
    conns: &mut Option<(Conn, Conn)>,
    job: &Job,
) -> Result<(), MoverError> {
    if conns.is_none() {
        let t = e.job.options.timeout;
        let s = Conn::connect(&e.job.source_url, Side::Source, t).await?;
        let d = Conn::connect(&e.job.target_url, Side::Target, t).await?;
        *conns = Some((s, d));
    }
    let Some((src, dst)) = conns.as_mut() else {
        return Ok(());
    };
    let (keys, mode) = match job {
        Job::Scan { keys, .. } => (
            keys,
            match e.job.replace {
                ReplaceMode::None => WriteMode::SkipExisting,
                ReplaceMode::Replace => WriteMode::Replace,
                ReplaceMode::Merge => WriteMode::Merge,
            },
        ),
        Job::Dirty { keys, .. } => (keys, WriteMode::Authoritative),
    };
    for chunk in keys.chunks(e.job.options.batch.max(1)) {
        let entries = src.read(chunk).await?;
        let outcomes = dst.write(&entries, mode).await?;
        let c = &e.counters;
        let recopy = matches!(job, Job::Dirty { .. });
        for (o, entry) in outcomes.into_iter().zip(&entries) {
            match o {
                Outcome::Copied(b) => {
                    Counters::add(&c.copied, 1);
                    Counters::add(&c.bytes, b);
                }
                Outcome::Skipped => Counters::add(&c.skipped, 1),
                Outcome::Deleted => Counters::add(&c.deleted, 1),
                Outcome::Failed(msg) => {
                    Counters::add(&c.failed, 1);
                    tracing::debug!(copy = %e.job.name, error = %msg, "key not copied");
                    // a write through the proxy or a repair must land eventually: try again
                    let mut failed = e.failed.lock().unwrap_or_else(|p| p.into_inner());
                    if recopy && failed.len() < MAX_FAILED {
                        failed.push_back((Instant::now() + RETRY_FAILED, entry.key.clone()));
                    }
                }
            }
        }
    }
    Ok(())
}
