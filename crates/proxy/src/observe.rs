//! What the data plane reports about a migration: keys written while the copy runs (for the
//! mover's convergence lanes), dual-write secondary failures (queued for repair) and shadow
//! mismatches (sampled). Bounded, with no keys or values in metrics or logs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use godwit_router::Id;

/// Receives keys written through the proxy while a migration's copy runs. Called after the
/// authoritative side acknowledged the write, so a re-copy reads the written value.
pub trait WriteObserver: Send + Sync + std::fmt::Debug + 'static {
    /// `key` of migration `migration` was written or deleted through the proxy.
    fn key_written(&self, migration: &str, key: &[u8]);
}

/// How many mismatch samples and repair keys a migration keeps.
pub const MAX_SAMPLES: usize = 50;
/// Longest repair queue per migration; beyond it only `repair_overflow` is set.
pub const MAX_REPAIR: usize = 100_000;
const TRUNCATE: usize = 200;

/// One shadow mismatch: the command, the key and both replies, truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MismatchSample {
    /// Command name (lower case).
    pub command: String,
    /// First key, lossily decoded and truncated.
    pub key: String,
    /// Old's reply, truncated.
    pub old: String,
    /// New's reply, truncated.
    pub new: String,
}

/// One shadow mismatch as the proxy saw it (raw bytes; truncated when stored).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mismatch<'a> {
    pub command: &'a str,
    pub key: &'a [u8],
    pub old: &'a [u8],
    pub new: &'a [u8],
}

/// Per-migration data-plane report.
#[derive(Debug, Default, Clone)]
pub struct MigrationReport {
    /// Dual writes resolved (both replies arrived).
    pub dual_writes: u64,
    /// Dual writes that failed on the new side only (guards: the new side's error rate).
    pub new_failures: u64,
    /// Dual writes whose secondary side failed.
    pub secondary_failures: u64,
    /// Shadow reads compared.
    pub compared: u64,
    /// Shadow reads whose replies differed after normalisation.
    pub mismatches: u64,
    /// Mismatches per command.
    pub mismatches_by_command: HashMap<String, u64>,
    /// The latest mismatches (bounded).
    pub samples: VecDeque<MismatchSample>,
    /// Keys to re-copy old → new: the old side was authoritative and the new one failed (or
    /// may differ).
    pub repair: VecDeque<Bytes>,
    /// Keys to re-copy new → old: the new side was authoritative and the old one failed (or
    /// may differ). The forward copy must not take these: it would overwrite new's value with
    /// old's stale one.
    pub repair_reverse: VecDeque<Bytes>,
    /// More keys failed than the queue holds: a full verify/re-copy is needed.
    pub repair_overflow: bool,
}

/// Reports of every migration, plus the optional write observer.
#[derive(Debug, Default)]
pub struct Reports {
    by_migration: Mutex<HashMap<Id, MigrationReport>>,
    observer: OnceLock<Arc<dyn WriteObserver>>,
}

impl Reports {
    /// Installs the write observer (once; later calls are ignored).
    pub fn set_observer(&self, o: Arc<dyn WriteObserver>) {
        let _ = self.observer.set(o);
    }

    /// Reports a written key to the observer, if one is installed.
    #[inline]
    pub fn key_written(&self, migration: &str, key: &[u8]) {
        if let Some(o) = self.observer.get() {
            o.key_written(migration, key);
        }
    }

    /// A copy of a migration's report.
    pub fn get(&self, migration: &str) -> Option<MigrationReport> {
        self.lock().get(migration).cloned()
    }

    /// Migrations with keys waiting in a repair queue.
    pub fn with_repairs(&self) -> Vec<Id> {
        self.lock()
            .iter()
            .filter(|(_, r)| !r.repair.is_empty() || !r.repair_reverse.is_empty())
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Queues keys another instance of the fleet found in need of repair (see
    /// [`Reports::repair`]).
    pub fn queue_repairs(&self, migration: &str, new_authoritative: bool, keys: &[Bytes]) {
        let id = Id::from(migration);
        keys.iter()
            .for_each(|k| self.repair(&id, new_authoritative, k));
    }

    /// Takes up to `max` keys queued for an old → new repair.
    pub fn take_repairs(&self, migration: &str, max: usize) -> Vec<Bytes> {
        let mut all = self.lock();
        let Some(r) = all.get_mut(migration) else {
            return Vec::new();
        };
        let n = max.min(r.repair.len());
        r.repair.drain(..n).collect()
    }

    /// Takes up to `max` keys queued for a new → old repair (new was authoritative).
    pub fn take_reverse_repairs(&self, migration: &str, max: usize) -> Vec<Bytes> {
        let mut all = self.lock();
        let Some(r) = all.get_mut(migration) else {
            return Vec::new();
        };
        let n = max.min(r.repair_reverse.len());
        r.repair_reverse.drain(..n).collect()
    }

    /// One dual write resolved: `diverged` if exactly one side failed, `new_failed` if that side
    /// was new. Returns whether its keys must be queued for repair ([`Reports::repair`]): it
    /// diverged, or the write is `nondeterministic` (the sides may have picked different ids or
    /// members). One lock per dual write.
    pub(crate) fn dual_write(
        &self,
        migration: &Id,
        diverged: bool,
        new_failed: bool,
        nondeterministic: bool,
    ) -> bool {
        let mut all = self.lock();
        let r = all.entry(migration.clone()).or_default();
        r.dual_writes += 1;
        r.new_failures += u64::from(new_failed);
        r.secondary_failures += u64::from(diverged);
        diverged || nondeterministic
    }

    /// Queues `key` for a re-copy away from the authoritative side (`new_authoritative`: new →
    /// old, else old → new).
    pub(crate) fn repair(&self, migration: &Id, new_authoritative: bool, key: &[u8]) {
        let mut all = self.lock();
        let r = all.entry(migration.clone()).or_default();
        let queue = if new_authoritative {
            &mut r.repair_reverse
        } else {
            &mut r.repair
        };
        if queue.len() < MAX_REPAIR {
            queue.push_back(Bytes::copy_from_slice(key));
        } else {
            r.repair_overflow = true;
        }
    }

    pub(crate) fn compared(&self, migration: &Id, mismatch: Option<Mismatch<'_>>) {
        let mut all = self.lock();
        let r = all.entry(migration.clone()).or_default();
        r.compared += 1;
        if let Some(Mismatch {
            command,
            key,
            old,
            new,
        }) = mismatch
        {
            r.mismatches += 1;
            *r.mismatches_by_command
                .entry(command.to_string())
                .or_default() += 1;
            if r.samples.len() == MAX_SAMPLES {
                r.samples.pop_front();
            }
            r.samples.push_back(MismatchSample {
                command: command.to_string(),
                key: truncate(key),
                old: truncate(old),
                new: truncate(new),
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id, MigrationReport>> {
        self.by_migration.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn truncate(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(TRUNCATE)]).replace("\r\n", " ");
    if b.len() > TRUNCATE {
        format!("{s}…")
    } else {
        s
    }
}
