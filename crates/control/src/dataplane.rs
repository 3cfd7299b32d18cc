//! The control plane's view of the data plane. `godwit-app` implements it over the proxy;
//! tests use [`NoopDataPlane`].

use std::future::Future;
use std::pin::Pin;

use godwit_router::RoutingTable;
use tokio::sync::watch;

use crate::model::Progress;
use crate::rules::Replace;

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a listener needs to serve an interlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterlayListen {
    /// Interlay id (the key of its route in the routing table).
    pub id: String,
    /// Socket address to bind, e.g. `127.0.0.1:6400` (port 0 picks a free port).
    pub listen: String,
    /// Password clients must send with AUTH, if any.
    pub password: Option<String>,
    /// Most client connections this interlay holds at once (`settings.max_clients`); the
    /// process-wide `limits.max_clients` applies too.
    pub max_clients: Option<usize>,
}

impl InterlayListen {
    /// The listener of stored interlay `il`, under data-plane key `id`.
    pub fn of(id: String, il: &crate::model::Interlay) -> Self {
        Self {
            id,
            listen: il.listen.clone(),
            password: il.password.clone(),
            max_clients: il
                .settings
                .get("max_clients")
                .and_then(|v| v.as_u64())
                .map(|n| n as usize),
        }
    }
}

/// What probing an endpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointProbe {
    /// `redis_version` from INFO server.
    pub version: String,
    /// Round trip of a PING in microseconds.
    pub ping_us: u64,
    /// `cluster_state` when the server is a Redis Cluster node; `None` when standalone.
    pub cluster_state: Option<String>,
}

/// A copy the control plane asks for: the data of one interlay member of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    /// Data-plane id of the migration (the id the proxy reports written keys under).
    pub migration: String,
    /// The member (interlay id).
    pub member: String,
    /// Source ("old") Redis URL.
    pub source_url: String,
    /// Target ("new") Redis URL.
    pub target_url: String,
    /// `snapshot` (one pass) rather than `scan` (follow changes until completion).
    pub snapshot: bool,
    /// Conflict rule of the pass.
    pub replace: Replace,
    /// SCAN checkpoint to resume from.
    pub resume_cursor: Option<String>,
    /// The pass finished before a restart: only follow changes.
    pub pass_done: bool,
    /// A copy back (rollback with `overwrite_on_reverse`): the source is the migration's new
    /// side, so its repairs are the keys of new-authoritative writes (the proxy's reverse
    /// repair queue) instead of old-authoritative ones.
    pub reverse: bool,
}

/// A comparison of two endpoints (`POST /migrations/{m}/verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    /// Source URL.
    pub source_url: String,
    /// Target URL.
    pub target_url: String,
    /// Compare this many random keys instead of all.
    pub sample: Option<u64>,
    /// Rounds (first pass + re-checks of differing keys).
    pub rounds: u32,
}

/// Operations the control plane asks of the data plane.
pub trait DataPlane: Send + Sync + 'static {
    /// Publishes a new routing table (the control plane is its only writer). Endpoints named in
    /// it must have been registered with [`DataPlane::upsert_endpoint`] first.
    fn publish(&self, table: RoutingTable);
    /// Registers or replaces an endpoint (id → Redis URL; `cluster`: a Redis Cluster whose URL
    /// names a seed node) so routes can name it.
    fn upsert_endpoint(&self, id: &str, url: &str, cluster: bool) -> Result<(), String>;
    /// Forgets an endpoint no route names any more.
    fn remove_endpoint(&self, id: &str);
    /// Binds and starts serving an interlay; returns the bound address.
    fn start_interlay(&self, spec: InterlayListen) -> BoxFuture<'_, Result<String, String>>;
    /// Stops accepting on an interlay's listener (existing connections finish their work).
    fn stop_interlay(&self, id: &str) -> BoxFuture<'_, ()>;
    /// PINGs the endpoint's URL and reads its version.
    fn probe(&self, url: &str) -> BoxFuture<'_, Result<EndpointProbe, String>>;
    /// Starts a copy; progress snapshots arrive on the returned channel (its sender is dropped
    /// when the copy stops). `Ok(None)`: this data plane has no mover (the phase stays
    /// `waiting_for_mover`).
    fn start_copy(&self, _spec: CopySpec) -> Result<Option<watch::Receiver<Progress>>, String> {
        Ok(None)
    }
    /// Suspends or resumes every copy of a migration.
    fn pause_copy(&self, _migration: &str, _paused: bool) {}
    /// Stops the copies of a migration (one member's, or all).
    fn stop_copy(&self, _migration: &str, _member: Option<&str>) {}
    /// Compares two endpoints key by key; `Ok(None)`: no verification engine here (501).
    fn verify(
        &self,
        _req: VerifyRequest,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, String>> {
        Box::pin(async { Ok(None) })
    }
    /// What the data plane saw of migration `id` (data-plane key): dual-write failures, repair
    /// backlog, shadow comparisons and mismatch samples, as JSON. `None` if nothing was seen.
    fn traffic_report(&self, _id: &str) -> Option<serde_json::Value> {
        None
    }
    /// Cumulative counters of migration `id` (data-plane key) for its guard: dual writes, those
    /// that failed on the new side only, shadow comparisons and mismatches (`latency` empty).
    /// `None` if nothing was seen.
    fn guard_counters(&self, _id: &str) -> Option<crate::guard::GuardCounters> {
        None
    }
    /// Cumulative latency histogram of requests to endpoint `id` (data-plane key):
    /// `(upper bound in seconds, requests ≤ bound)`, ascending, the last `+inf`; empty if
    /// unknown.
    fn endpoint_latency(&self, _id: &str) -> Vec<(f64, u64)> {
        Vec::new()
    }
    /// Runs one command (`args[0]` is its name) on endpoint `id` (data-plane key) and returns
    /// its one complete raw RESP2 reply (a Redis error reply is `Ok`). `Ok(None)`: no command
    /// engine here (501); `Err`: the endpoint is unreachable or timed out (502).
    fn execute(
        &self,
        _endpoint: &str,
        _args: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, String>> {
        Box::pin(async { Ok(None) })
    }
}

/// A data plane that does nothing: for unit tests of the control plane.
#[derive(Debug, Default)]
pub struct NoopDataPlane;

impl DataPlane for NoopDataPlane {
    fn publish(&self, _table: RoutingTable) {}
    fn upsert_endpoint(&self, _id: &str, _url: &str, _cluster: bool) -> Result<(), String> {
        Ok(())
    }
    fn remove_endpoint(&self, _id: &str) {}
    fn start_interlay(&self, spec: InterlayListen) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move { Ok(spec.listen) })
    }
    fn stop_interlay(&self, _id: &str) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn probe(&self, _url: &str) -> BoxFuture<'_, Result<EndpointProbe, String>> {
        Box::pin(async {
            Ok(EndpointProbe {
                version: "0.0.0".into(),
                ping_us: 0,
                cluster_state: None,
            })
        })
    }
}
