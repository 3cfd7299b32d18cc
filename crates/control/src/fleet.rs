//! Fleets: several instances sharing one [`RedisStore`]. This module owns the propagation of
//! changes (a pub/sub subscription plus a re-read every [`TICK`] as a safety net), applying a
//! state saved by another instance to this one's data plane, the liveness record with the epoch
//! (store version) this instance runs, and the cutover barrier.
//!
//! Rules (docs/fleet.md):
//! - The store version is the fleet's *epoch*. An instance reports the epoch of the state its
//!   routing table was built from; it writes its record right after applying a change, so an
//!   acknowledgement takes milliseconds, and refreshes it every [`TICK`].
//! - Applying is idempotent: endpoints whose URL changed are re-registered, interlays whose
//!   running flag, bind address or password changed are stopped/started, the table is rebuilt
//!   for this instance (rolling_update and geographic use its id and region), copies of
//!   migrations that stopped running are stopped. Copies are started only by the instance that
//!   ran `migrate`/`resume` (or resumed them at its start).
//! - Listen addresses are shared: instances on one host need port 0 (each binds its own free
//!   port) or `[instance] port_offset`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::control::{Control, Inner};
use crate::dataplane::InterlayListen;
use crate::model::{dp_key, State};
use crate::status::Status;
use crate::store_redis::RedisStore;
use crate::ControlError;

/// Heartbeat period and the safety-net re-read period.
pub const TICK: Duration = Duration::from_secs(1);
/// Longest wait of a cutover for every live instance's acknowledgement.
pub const BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// This instance's membership in a fleet.
pub(crate) struct Fleet {
    pub(crate) store: Arc<RedisStore>,
    changed: Arc<Notify>,
    stopped: Arc<AtomicBool>,
    started_at: chrono::DateTime<Utc>,
    /// The last cutover barrier (shown in `/status`).
    last_barrier: std::sync::Mutex<Option<Value>>,
}

impl Fleet {
    pub(crate) fn new(store: Arc<RedisStore>) -> Fleet {
        Fleet {
            store,
            changed: Arc::new(Notify::new()),
            stopped: Arc::new(AtomicBool::new(false)),
            started_at: Utc::now(),
            last_barrier: std::sync::Mutex::new(None),
        }
    }
}

/// Subscribes to `<prefix>:changes` on a thread of its own (the sync client blocks) and wakes
/// the sync task on every message and after every (re)subscription.
fn spawn_subscriber(store: Arc<RedisStore>, changed: Arc<Notify>, stopped: Arc<AtomicBool>) {
    let channel = store.key("changes");
    let spawned = std::thread::Builder::new()
        .name("godwit-fleet-sub".into())
        .spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let mut con = match store.client().get_connection_with_timeout(TICK) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "fleet: cannot subscribe to changes");
                        std::thread::sleep(TICK);
                        continue;
                    }
                };
                // a read timeout lets the thread notice that the instance left
                if con.set_read_timeout(Some(TICK)).is_err() {
                    continue;
                }
                let mut ps = con.as_pubsub();
                if ps.subscribe(&channel).is_err() {
                    std::thread::sleep(TICK);
                    continue;
                }
                changed.notify_one();
                loop {
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    match ps.get_message() {
                        Ok(_) => changed.notify_one(),
                        Err(e) if e.is_timeout() => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "fleet: change subscription lost");
                            break;
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "fleet: cannot start the change subscriber");
    }
}

impl Control {
    /// Starts the subscriber and the sync/heartbeat task (fleet mode only).
    pub(crate) fn spawn_fleet(&self) {
        let Some(f) = &self.fleet else { return };
        spawn_subscriber(f.store.clone(), f.changed.clone(), f.stopped.clone());
        let me = self.me.clone();
        let (changed, stopped) = (f.changed.clone(), f.stopped.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = changed.notified() => {}
                    _ = tokio::time::sleep(TICK) => {}
                }
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Some(c) = me.upgrade() else { return };
                if let Err(e) = c.fleet_sync().await {
                    tracing::warn!(error = %e, "fleet: cannot read the shared state");
                }
                if let Err(e) = c.fleet_heartbeat().await {
                    tracing::warn!(error = %e, "fleet: cannot write the liveness record");
                }
            }
        });
    }

    /// Leaves the fleet: stops following changes and heartbeating; a `graceful` leave also
    /// removes the liveness record at once (else it expires). Idempotent; no-op without a fleet.
    pub async fn leave_fleet(&self, graceful: bool) {
        let Some(f) = &self.fleet else { return };
        if f.stopped.swap(true, Ordering::SeqCst) || !graceful {
            return;
        }
        let (store, id) = (f.store.clone(), self.cfg.instance_id.clone());
        let _ = tokio::task::spawn_blocking(move || store.leave(&id)).await;
    }

    /// Applies a state saved by another instance, if there is one. Holds the lock while reading
    /// so no local change interleaves.
    pub(crate) async fn fleet_sync(&self) -> Result<(), ControlError> {
        let mut inner = self.lock().await;
        self.sync_locked(&mut inner).await
    }

    pub(crate) async fn sync_locked(&self, inner: &mut Inner) -> Result<(), ControlError> {
        if self.fleet.is_none() {
            return Ok(());
        }
        let store = inner.store.clone();
        let newer = tokio::task::spawn_blocking(move || store.load_newer())
            .await
            .map_err(|e| ControlError::Store(format!("load task failed: {e}")))??;
        if let Some(state) = newer {
            tracing::info!(
                epoch = inner.store.version(),
                "fleet: applying a shared change"
            );
            self.apply_state(inner, state).await;
        }
        Ok(())
    }

    /// Makes `next` current on this instance's data plane. Idempotent.
    async fn apply_state(&self, inner: &mut Inner, next: State) {
        let old = std::mem::replace(&mut inner.state, next);
        let endpoints = |s: &State| -> Vec<(String, String, bool)> {
            s.orgs
                .iter()
                .flat_map(|(org, os)| {
                    os.endpoints
                        .values()
                        .map(|e| (dp_key(org, &e.id), e.url.clone(), e.cluster))
                })
                .collect()
        };
        let (before, now) = (endpoints(&old), endpoints(&inner.state));
        for (key, url, cluster) in &now {
            if !before.contains(&(key.clone(), url.clone(), *cluster)) {
                if let Err(e) = self.dataplane.upsert_endpoint(key, url, *cluster) {
                    tracing::warn!(endpoint = %key, error = %e, "fleet: endpoint rejected by the data plane");
                }
            }
        }
        let specs = |s: &State| -> Vec<InterlayListen> {
            s.orgs
                .iter()
                .flat_map(|(org, os)| {
                    os.interlays
                        .values()
                        .filter(|i| i.running)
                        .map(move |i| InterlayListen::of(dp_key(org, &i.id), i))
                })
                .collect()
        };
        let (was, want) = (specs(&old), specs(&inner.state));
        let listening: Vec<String> = inner.listening.keys().cloned().collect();
        for key in listening {
            let keep = want.iter().find(|s| s.id == key);
            let same = keep.is_some_and(|s| was.iter().any(|w| w == s));
            if !same {
                self.dataplane.stop_interlay(&key).await;
                inner.listening.remove(&key);
            }
        }
        self.publish(inner);
        for spec in want {
            if inner.listening.contains_key(&spec.id) {
                continue;
            }
            let key = spec.id.clone();
            match self.dataplane.start_interlay(self.local_listen(spec)).await {
                Ok(addr) => {
                    tracing::info!(interlay = %key, %addr, "fleet: interlay listening");
                    inner.listening.insert(key, addr);
                }
                Err(e) => {
                    tracing::warn!(interlay = %key, error = %e, "fleet: cannot start interlay")
                }
            }
        }
        let copies: Vec<String> = inner.copies.keys().cloned().collect();
        for key in copies {
            let status = |s: &State| {
                s.orgs.iter().find_map(|(org, os)| {
                    os.migrations
                        .values()
                        .find(|m| dp_key(org, &m.id) == key)
                        .map(|m| m.status)
                })
            };
            match status(&inner.state) {
                Some(s @ (Status::Running | Status::Paused)) => {
                    if status(&old) != Some(s) {
                        self.dataplane.pause_copy(&key, s == Status::Paused);
                    }
                }
                _ => {
                    self.dataplane.stop_copy(&key, None);
                    inner.copies.remove(&key);
                }
            }
        }
        self.prune_reverse(inner);
        for (key, url, _) in before {
            if !now.iter().any(|(k, _, _)| *k == key) {
                let _ = url;
                self.dataplane.remove_endpoint(&key);
            }
        }
    }

    /// The bind address this instance uses for a stored interlay: `[instance] port_offset` is
    /// added to a non-zero port.
    pub(crate) fn local_listen(&self, mut spec: InterlayListen) -> InterlayListen {
        if self.cfg.port_offset == 0 {
            return spec;
        }
        if let Ok(mut addr) = spec.listen.parse::<std::net::SocketAddr>() {
            if addr.port() != 0 {
                addr.set_port(addr.port().saturating_add(self.cfg.port_offset));
                spec.listen = addr.to_string();
            }
        }
        spec
    }

    /// Writes this instance's liveness record: id, region, the epoch it runs, its table version.
    pub(crate) async fn fleet_heartbeat(&self) -> Result<(), ControlError> {
        let Some(f) = &self.fleet else { return Ok(()) };
        if f.stopped.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (epoch, table) = {
            let inner = self.lock().await;
            (inner.store.version(), inner.table_version)
        };
        let record = json!({
            "id": self.cfg.instance_id,
            "region": self.cfg.instance_region,
            "epoch": epoch,
            "table_version": table,
            "started_at": f.started_at,
            "seen_at": Utc::now(),
        });
        let (store, id) = (f.store.clone(), self.cfg.instance_id.clone());
        tokio::task::spawn_blocking(move || store.heartbeat(&id, &record))
            .await
            .map_err(|e| ControlError::Store(format!("heartbeat task failed: {e}")))?
    }

    /// `GET /api/v1/instances`: the fleet's live instances with their epochs, the current
    /// epoch, and the last cutover barrier. Without a shared store: this instance alone.
    pub async fn instances_view(&self) -> Result<Value, ControlError> {
        let Some(f) = &self.fleet else {
            let tv = self.table_version().await;
            return Ok(json!({
                "store": "file",
                "epoch": 0,
                "instances": [{
                    "id": self.cfg.instance_id,
                    "region": self.cfg.instance_region,
                    "epoch": 0,
                    "table_version": tv,
                }],
                "barrier": null,
            }));
        };
        let store = f.store.clone();
        let (epoch, instances) = tokio::task::spawn_blocking(move || {
            Ok::<_, ControlError>((store.current_version()?, store.instances()?))
        })
        .await
        .map_err(|e| ControlError::Store(format!("list task failed: {e}")))??;
        let barrier = f.last_barrier.lock().ok().and_then(|b| b.clone());
        Ok(json!({
            "store": "redis",
            "epoch": epoch,
            "instances": instances,
            "barrier": barrier,
        }))
    }

    /// The fleet part of `/status` (`None` without a shared store).
    pub(crate) fn fleet_status(&self) -> Option<Value> {
        let f = self.fleet.as_ref()?;
        let barrier = f.last_barrier.lock().ok().and_then(|b| b.clone());
        Some(json!({ "instance": self.cfg.instance_id, "last_cutover": barrier }))
    }

    /// The cutover barrier: waits (at most [`BARRIER_TIMEOUT`]) until every live instance
    /// reports an epoch at least as new as this instance's current one. Call it after the
    /// change that flips write authority was committed, without holding the lock. A dead
    /// instance stops counting when its liveness record expires. On timeout the change stays
    /// saved (it is already the shared state; a late instance applies it when it reaches the
    /// store) and the call answers 504 naming the instances that did not acknowledge.
    pub(crate) async fn cutover_barrier(
        &self,
        migration: &str,
        action: &str,
    ) -> Result<Option<Value>, ControlError> {
        let Some(f) = &self.fleet else {
            return Ok(None);
        };
        let epoch = self.lock().await.store.version();
        // our own record first, so we never wait for ourselves
        self.fleet_heartbeat().await?;
        let t0 = tokio::time::Instant::now();
        let record = |status: &str, acked: &[String], pending: &[String]| {
            json!({
                "migration": migration,
                "action": action,
                "epoch": epoch,
                "status": status,
                "acknowledged": acked,
                "pending": pending,
                "waited_ms": t0.elapsed().as_millis() as u64,
                "at": Utc::now(),
            })
        };
        loop {
            let store = f.store.clone();
            let live = tokio::task::spawn_blocking(move || store.instances())
                .await
                .map_err(|e| ControlError::Store(format!("list task failed: {e}")))??;
            let (mut acked, mut pending) = (Vec::new(), Vec::new());
            for i in &live {
                let id = i["id"].as_str().unwrap_or_default().to_string();
                if i["epoch"].as_u64().unwrap_or(0) >= epoch {
                    acked.push(id);
                } else {
                    pending.push(id);
                }
            }
            if pending.is_empty() {
                let r = record("acknowledged", &acked, &pending);
                *f.last_barrier.lock().map_err(|_| poisoned())? = Some(r.clone());
                return Ok(Some(r));
            }
            if t0.elapsed() >= BARRIER_TIMEOUT {
                let r = record("timeout", &acked, &pending);
                *f.last_barrier.lock().map_err(|_| poisoned())? = Some(r);
                return Err(ControlError::Timeout(format!(
                    "cutover '{action}' of migration '{migration}' is saved as epoch {epoch}, but \
                     instance(s) {} did not acknowledge it within {} s; they switch when they \
                     reach the store, or leave the fleet when their liveness expires",
                    pending.join(", "),
                    BARRIER_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Control {
    /// After a committed change that flips write authority (complete, toggle, rollback): in a
    /// fleet, waits for the barrier and adds its record to the reply as `fleet_barrier`.
    pub(crate) async fn after_cutover(
        &self,
        mut out: Value,
        migration: &str,
        action: &str,
    ) -> Result<Value, ControlError> {
        if let Some(b) = self.cutover_barrier(migration, action).await? {
            out["fleet_barrier"] = b;
        }
        Ok(out)
    }
}

fn poisoned() -> ControlError {
    ControlError::Store("fleet barrier lock poisoned".into())
}
