//! Ordered lanes: every copy of one key (its scan-pass copy, its dirty re-copies, its repairs)
//! runs in the lane its hash picks, one job after another, each job finished on the target
//! before the next one reads the source. A dirty key is therefore read after the write that
//! dirtied it and after any earlier copy of it was restored: the last copy always carries the
//! latest value, and no stale copy can land after it.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

/// Largest dirty job; more dirty keys start a new job.
const DIRTY_JOB: usize = 512;
/// Most dirty keys waiting in all lanes; beyond it marks are dropped and `overflowed` is set
/// (the engine then runs another pass).
pub(crate) const MAX_DIRTY: u64 = 2_000_000;

/// One SCAN batch, shared by the lane jobs it was split into.
#[derive(Debug)]
pub(crate) struct Ticket {
    /// Lane jobs of this batch not finished yet.
    pub(crate) remaining: AtomicUsize,
    /// Backpressure: released when the last job finishes.
    pub(crate) _permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Ticket {
    pub(crate) fn finish_one(&self) {
        if self.remaining.fetch_sub(1, Relaxed) == 1 {
            if let Ok(mut p) = self._permit.lock() {
                p.take();
            }
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.remaining.load(Relaxed) == 0
    }
}

/// Work of one lane.
#[derive(Debug)]
pub(crate) enum Job {
    /// Keys of a SCAN batch (written with the copy's replace mode).
    Scan {
        keys: Vec<Bytes>,
        ticket: Arc<Ticket>,
    },
    /// Keys written through the proxy (or queued for repair): re-copied authoritatively.
    Dirty { keys: Vec<Bytes>, since: Instant },
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Dirty keys queued and not read yet (a second mark of one of them adds nothing).
    pending: HashSet<Bytes>,
    busy: bool,
}

#[derive(Debug, Default)]
struct Lane {
    q: Mutex<Queue>,
    notify: Notify,
}

/// The lanes of one copy.
#[derive(Debug)]
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
    dirty: AtomicU64,
    /// Marks were dropped: a further pass is needed.
    pub(crate) overflowed: AtomicBool,
    epoch: Instant,
    /// Ignore every mark (the copy was stopped).
    closed: AtomicBool,
    /// Ignore dirty marks, still take repairs (the copy is done).
    marks_stopped: AtomicBool,
    /// Scan jobs queued or running.
    scan_jobs: AtomicUsize,
    /// When the last scan job finished (ms since `epoch`).
    last_scan_finish: AtomicU64,
}

impl Lanes {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            lanes: (0..n.max(1)).map(|_| Lane::default()).collect(),
            dirty: AtomicU64::new(0),
            overflowed: AtomicBool::new(false),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            marks_stopped: AtomicBool::new(false),
            scan_jobs: AtomicUsize::new(0),
            last_scan_finish: AtomicU64::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lanes.len()
    }

    /// The lane of `key`.
    pub(crate) fn lane_of(&self, key: &[u8]) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.lanes.len() as u64) as usize
    }

    fn lock(&self, lane: usize) -> std::sync::MutexGuard<'_, Queue> {
        self.lanes[lane].q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `key` dirty: it will be re-copied after everything already queued in its lane.
    /// Ignored once the copy is done (see [`Lanes::stop_marks`]).
    pub(crate) fn mark(&self, key: &[u8]) {
        if self.marks_stopped.load(Relaxed) {
            return;
        }
        self.mark_repair(key);
    }

    /// Queues `key` for an authoritative re-copy (a repair is taken even after `done`).
    pub(crate) fn mark_repair(&self, key: &[u8]) {
        if self.closed.load(Relaxed) {
            return;
        }
        let lane = self.lane_of(key);
        let mut q = self.lock(lane);
        if q.pending.contains(key) {
            return;
        }
        if self.dirty.load(Relaxed) >= MAX_DIRTY {
            self.overflowed.store(true, Relaxed);
            return;
        }
        let key = Bytes::copy_from_slice(key);
        q.pending.insert(key.clone());
        self.dirty.fetch_add(1, Relaxed);
        match q.jobs.back_mut() {
            Some(Job::Dirty { keys, .. }) if keys.len() < DIRTY_JOB => keys.push(key),
            _ => q.jobs.push_back(Job::Dirty {
                keys: vec![key],
                since: Instant::now(),
            }),
        }
        drop(q);
        self.lanes[lane].notify.notify_one();
    }

    /// Queues the keys of a SCAN batch, split by lane.
    pub(crate) fn push_scan(&self, keys: Vec<Bytes>, permit: OwnedSemaphorePermit) -> Arc<Ticket> {
        let mut split: Vec<Vec<Bytes>> = vec![Vec::new(); self.lanes.len()];
        for k in keys {
            split[self.lane_of(&k)].push(k);
        }
        let used = split.iter().filter(|s| !s.is_empty()).count();
        let ticket = Arc::new(Ticket {
            remaining: AtomicUsize::new(used),
            _permit: Mutex::new(Some(permit)),
        });
        self.scan_jobs.fetch_add(used, Relaxed);
        for (lane, keys) in split.into_iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            self.lock(lane).jobs.push_back(Job::Scan {
                keys,
                ticket: ticket.clone(),
            });
            self.lanes[lane].notify.notify_one();
        }
        ticket
    }

    /// A scan job finished (after its keys landed on the target).
    pub(crate) fn scan_finished(&self) {
        self.last_scan_finish
            .store(self.epoch.elapsed().as_millis() as u64, Relaxed);
        self.scan_jobs.fetch_sub(1, Relaxed);
    }

    /// Milliseconds since the last scan job finished; 0 while any is queued or running.
    pub(crate) fn scan_quiet_ms(&self) -> u64 {
        if self.scan_jobs.load(Relaxed) > 0 {
            return 0;
        }
        (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.last_scan_finish.load(Relaxed))
    }

    /// Takes the next job of `lane`, waiting for one. Dirty keys leave the pending set here,
    /// before they are read, so a write acknowledged from now on marks them again.
    pub(crate) async fn next(&self, lane: usize) -> Job {
        loop {
            let notified = self.lanes[lane].notify.notified();
            {
                let mut q = self.lock(lane);
                if let Some(job) = q.jobs.pop_front() {
                    if let Job::Dirty { keys, .. } = &job {
                        for k in keys {
                            q.pending.remove(k);
                        }
                        self.dirty.fetch_sub(keys.len() as u64, Relaxed);
                    }
                    q.busy = true;
                    return job;
                }
            }
            notified.await;
        }
    }

    /// The job taken by `next(lane)` is finished.
    pub(crate) fn finished(&self, lane: usize) {
        self.lock(lane).busy = false;
    }

    /// Every lane is empty and idle.
    pub(crate) fn idle(&self) -> bool {
        (0..self.lanes.len()).all(|l| {
            let q = self.lock(l);
            q.jobs.is_empty() && !q.busy
        })
    }

    /// Dirty keys waiting.
    pub(crate) fn backlog(&self) -> u64 {
        self.dirty.load(Relaxed)
    }

    /// Age of the oldest waiting dirty job, in ms.
    pub(crate) fn lag_ms(&self) -> u64 {
        (0..self.lanes.len())
            .filter_map(|l| {
                self.lock(l).jobs.iter().find_map(|j| match j {
                    Job::Dirty { since, .. } => Some(since.elapsed().as_millis() as u64),
                    Job::Scan { .. } => None,
                })
            })
            .max()
            .unwrap_or(0)
    }

    /// Stops taking dirty marks (repairs still come in).
    pub(crate) fn stop_marks(&self) {
        self.marks_stopped.store(true, Relaxed);
    }

    /// Stops taking anything.
    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;

    fn keys(job: &Job) -> Vec<&[u8]> {
        match job {
            Job::Scan { keys, .. } | Job::Dirty { keys, .. } => {
                keys.iter().map(|k| &k[..]).collect()
            }
        }
    }

    #[tokio::test]
    async fn one_lane_keeps_order_and_dedups_pending() {
        let lanes = Lanes::new(1);
        let sem = Arc::new(Semaphore::new(10));
        lanes.push_scan(
            vec![Bytes::from("a"), Bytes::from("b")],
            sem.clone().acquire_many_owned(2).await.unwrap(),
        );
        lanes.mark(b"a");
        lanes.mark(b"a");
        lanes.mark(b"c");
        assert_eq!(lanes.backlog(), 2);
        let first = lanes.next(0).await;
        assert!(matches!(first, Job::Scan { .. }));
        assert_eq!(keys(&first), vec![&b"a"[..], b"b"]);
        assert!(!lanes.idle());
        lanes.finished(0);
        if let Job::Scan { ticket, .. } = &first {
            ticket.finish_one();
            assert!(ticket.is_done());
        }
        assert_eq!(sem.available_permits(), 10);
        let second = lanes.next(0).await;
        assert_eq!(keys(&second), vec![&b"a"[..], b"c"]);
        assert_eq!(lanes.backlog(), 0);
        // read started: a new write marks the key again, behind the running job
        lanes.mark(b"a");
        assert_eq!(lanes.backlog(), 1);
        lanes.finished(0);
        let third = lanes.next(0).await;
        assert_eq!(keys(&third), vec![&b"a"[..]]);
        lanes.finished(0);
        assert!(lanes.idle());
    }

    #[test]
    fn keys_spread_over_lanes() {
        let lanes = Lanes::new(8);
        let mut used = HashSet::new();
        for i in 0..1000 {
            let k = format!("key:{i}");
            let l = lanes.lane_of(k.as_bytes());
            assert_eq!(l, lanes.lane_of(k.as_bytes()));
            used.insert(l);
        }
        assert_eq!(used.len(), 8);
    }
}
