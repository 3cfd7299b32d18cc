//! Dirty keys across a fleet. A migration's copy runs on one instance, but every instance proxies
//! writes, and the copy must re-copy every key written while it runs (SPEC §5.2: no stale
//! overwrite). An instance without the copy buffers the keys it saw written and flushes them
//! every [`TICK`] to the shared store (`SADD <prefix>:dirty:<migration> …`); the instance running
//! the copy drains that set (`SPOP … 1000`) every tick into its lanes. Repair queues (dual writes
//! that failed on one side, writes of pinned clients) travel the same way (`…:repair:<m>` for
//! old → new, `…:repair-reverse:<m>` for new → old) into the copying instance's queues.
//!
//! Contract: a key written through any instance while the copy runs reaches the copy within about
//! two ticks (plus the store's latency); the copy's `settle` time (default 300 ms) must exceed
//! that, so `done` is not declared before remote marks arrive. A failing store delays marks
//! (they are kept, up to [`MAX_PENDING`] keys, then dropped with a warning: `verify` shows the
//! keys that need a re-copy). Runs on its own thread with a blocking Redis connection, so neither
//! the proxy's nor the control plane's runtime waits on the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use godwit_proxy::ProxyShared;

/// How often buffered keys are flushed and the dirty sets drained.
pub const TICK: Duration = Duration::from_millis(20);
/// Most keys buffered while the store cannot be written.
pub const MAX_PENDING: usize = 1_000_000;
/// How long an undrained dirty set lives (its copy stopped or moved).
const SET_TTL_S: u64 = 600;

/// Marks keys dirty in the local copy of a migration.
pub type MarkLocal = Arc<dyn Fn(&str, &[Bytes]) + Send + Sync>;

/// The relay: a buffer of keys to publish and the set of migrations this instance drains.
pub struct DirtyRelay {
    prefix: String,
    pending: Mutex<(HashMap<String, Vec<Bytes>>, usize)>,
    draining: Mutex<HashSet<String>>,
    shared: std::sync::Weak<ProxyShared>,
}

impl std::fmt::Debug for DirtyRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirtyRelay")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl DirtyRelay {
    /// Starts the relay thread for the store at `url`; `mark` receives drained keys.
    pub fn start(
        url: &str,
        prefix: &str,
        shared: &Arc<ProxyShared>,
        mark: MarkLocal,
    ) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url)?;
        let relay = Arc::new(Self {
            prefix: prefix.to_string(),
            pending: Mutex::new((HashMap::new(), 0)),
            draining: Mutex::new(HashSet::new()),
            shared: Arc::downgrade(shared),
        });
        let weak = Arc::downgrade(&relay);
        std::thread::Builder::new()
            .name("godwit-dirty-relay".into())
            .spawn(move || {
                let mut con: Option<redis::Connection> = None;
                while let Some(relay) = weak.upgrade() {
                    if con.is_none() {
                        con = client
                            .get_connection_with_timeout(Duration::from_secs(2))
                            .ok();
                    }
                    if let Some(c) = con.as_mut() {
                        if let Err(e) = relay.tick(c, &mark) {
                            tracing::warn!(error = %e, "dirty-key relay: store call failed");
                            con = None;
                        }
                    }
                    drop(relay);
                    std::thread::sleep(TICK);
                }
            })?;
        Ok(relay)
    }

    fn set_key(&self, migration: &str) -> String {
        format!("{}:dirty:{migration}", self.prefix)
    }

    fn repair_key(&self, migration: &str, reverse: bool) -> String {
        let kind = if reverse { "repair-reverse" } else { "repair" };
        format!("{}:{kind}:{migration}", self.prefix)
    }

    /// Buffers a key written through this instance for a migration copied elsewhere. Cheap: one
    /// lock and a push (called on the proxy's thread).
    pub fn push(&self, migration: &str, key: &[u8]) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.1 >= MAX_PENDING {
            return;
        }
        p.1 += 1;
        p.0.entry(migration.to_string())
            .or_default()
            .push(Bytes::copy_from_slice(key));
    }

    /// This instance runs `migration`'s copy: drain its set from now on.
    pub fn drain(&self, migration: &str) {
        self.draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(migration.to_string());
    }

    /// The copy of `migration` stopped here.
    pub fn stop_draining(&self, migration: &str) {
        self.draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(migration);
    }

    /// One round: publish the buffer, then drain every set this instance copies.
    fn tick(&self, con: &mut redis::Connection, mark: &MarkLocal) -> redis::RedisResult<()> {
        let batch = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.1 >= MAX_PENDING {
                tracing::warn!(
                    keys = p.1,
                    "dirty-key relay buffer full: later keys were dropped"
                );
            }
            p.1 = 0;
            std::mem::take(&mut p.0)
        };
        if !batch.is_empty() {
            let mut pipe = redis::pipe();
            for (m, keys) in &batch {
                let set = self.set_key(m);
                for chunk in keys.chunks(1000) {
                    let members: Vec<&[u8]> = chunk.iter().map(|k| &k[..]).collect();
                    pipe.cmd("SADD").arg(&set).arg(members).ignore();
                }
                pipe.cmd("EXPIRE").arg(&set).arg(SET_TTL_S).ignore();
            }
            if let Err(e) = pipe.query::<()>(con) {
                // keep the keys for the next round
                let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                for (m, keys) in batch {
                    p.1 += keys.len();
                    p.0.entry(m).or_default().extend(keys);
                }
                return Err(e);
            }
        }
        let draining: Vec<String> = self
            .draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        self.relay_repairs(con, &draining)?;
        for m in draining {
            loop {
                let keys: Vec<Vec<u8>> = redis::cmd("SPOP")
                    .arg(self.set_key(&m))
                    .arg(1000)
                    .query(con)?;
                if keys.is_empty() {
                    break;
                }
                let n = keys.len();
                let keys: Vec<Bytes> = keys.into_iter().map(Bytes::from).collect();
                mark(&m, &keys);
                if n < 1000 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Publishes the repair queues of migrations copied elsewhere, and drains the published
    /// ones of the migrations copied here into the local queues.
    fn relay_repairs(
        &self,
        con: &mut redis::Connection,
        draining: &[String],
    ) -> redis::RedisResult<()> {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let reports = &shared.reports;
        let mut pipe = redis::pipe();
        let mut any = false;
        for m in reports.with_repairs() {
            if draining.iter().any(|d| **d == *m) {
                continue; // the local copy takes them
            }
            for reverse in [false, true] {
                let keys = if reverse {
                    reports.take_reverse_repairs(&m, 10_000)
                } else {
                    reports.take_repairs(&m, 10_000)
                };
                if keys.is_empty() {
                    continue;
                }
                let set = self.repair_key(&m, reverse);
                let members: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                pipe.cmd("SADD").arg(&set).arg(members).ignore();
                pipe.cmd("EXPIRE").arg(&set).arg(SET_TTL_S).ignore();
                any = true;
            }
        }
        if any {
            pipe.query::<()>(con)?;
        }
        for m in draining {
            for reverse in [false, true] {
                let keys: Vec<Vec<u8>> = redis::cmd("SPOP")
                    .arg(self.repair_key(m, reverse))
                    .arg(10_000)
                    .query(con)?;
                if !keys.is_empty() {
                    let keys: Vec<Bytes> = keys.into_iter().map(Bytes::from).collect();
                    reports.queue_repairs(m, reverse, &keys);
                }
            }
        }
        Ok(())
    }
}
