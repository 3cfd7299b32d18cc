//! The app's implementation of the control plane's [`DataPlane`]: endpoint pools, the one
//! routing table, interlay listeners.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godwit_backend::{Pool, PoolOptions};
use godwit_control::dataplane::BoxFuture;
use godwit_control::model::Progress;
use godwit_control::{
    CopySpec, DataPlane, EndpointProbe, GuardCounters, InterlayListen, VerifyRequest,
};
use godwit_proxy::{serve_interlay, DataTable, InterlayOptions, ProxyShared};
use godwit_router::{Id, RoutingTable};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::movers::Movers;

/// Pools, listeners and the table, behind the control plane's interface.
#[derive(Debug)]
pub struct AppDataPlane {
    shared: Arc<ProxyShared>,
    pool_opts: PoolOptions,
    inner: Mutex<Inner>,
    movers: Arc<Movers>,
    /// The data-plane runtime: listeners, client tasks and backend connections live there, even
    /// when the control plane (on its own thread) asks for them.
    rt: tokio::runtime::Handle,
}

#[derive(Debug, Default)]
struct Inner {
    pools: HashMap<Id, (String, Arc<Pool>)>,
    routing: RoutingTable,
    listeners: HashMap<String, (watch::Sender<bool>, SocketAddr)>,
}

impl AppDataPlane {
    /// A data plane over `shared` (whose table it writes), serving on the current runtime.
    pub fn new(shared: Arc<ProxyShared>, pool_opts: PoolOptions) -> Arc<Self> {
        let movers = Arc::new(Movers::default());
        shared
            .reports
            .set_observer(movers.clone() as Arc<dyn godwit_proxy::WriteObserver>);
        Arc::new(Self {
            shared,
            pool_opts,
            inner: Mutex::new(Inner::default()),
            movers,
            rt: tokio::runtime::Handle::current(),
        })
    }

    /// The data movers (to tune copies).
    pub fn movers(&self) -> &Arc<Movers> {
        &self.movers
    }

    /// Address an interlay listens on, if it is running.
    pub fn interlay_addr(&self, id: &str) -> Option<SocketAddr> {
        self.lock().listeners.get(id).map(|(_, a)| *a)
    }

    /// Ids of the interlays listening now.
    pub fn listener_ids(&self) -> Vec<String> {
        self.lock().listeners.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new table built from the current routing and pools (the single write).
    fn store(&self, inner: &Inner) {
        let pools = inner
            .pools
            .iter()
            .map(|(id, (_, p))| (id.clone(), p.clone()))
            .collect();
        self.shared.table.store(Arc::new(DataTable {
            routing: inner.routing.clone(),
            pools,
        }));
        metrics::gauge!(godwit_telemetry::ROUTING_TABLE_VERSION).set(inner.routing.version as f64);
        metrics::counter!(godwit_telemetry::ROUTING_TABLE_SWAPS_TOTAL).increment(1);
    }
}

impl DataPlane for AppDataPlane {
    fn publish(&self, table: RoutingTable) {
        let mut inner = self.lock();
        inner.routing = table;
        self.store(&inner);
    }

    fn upsert_endpoint(&self, id: &str, url: &str, cluster: bool) -> Result<(), String> {
        let mut inner = self.lock();
        if inner
            .pools
            .get(id)
            .is_some_and(|(u, p)| u == url && p.is_cluster() == cluster)
        {
            return Ok(());
        }
        // the pool's connection tasks belong to the data-plane runtime
        let _rt = self.rt.enter();
        let opts = PoolOptions {
            cluster,
            ..self.pool_opts
        };
        let pool = Pool::labeled(id, url, opts).map_err(|e| e.to_string())?;
        inner.pools.insert(Id::from(id), (url.to_string(), pool));
        self.store(&inner);
        Ok(())
    }

    fn remove_endpoint(&self, id: &str) {
        let mut inner = self.lock();
        if inner.pools.remove(id).is_some() {
            self.store(&inner);
        }
    }

    fn start_interlay(&self, spec: InterlayListen) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            if let Some((_, addr)) = self.lock().listeners.get(&spec.id) {
                return Ok(addr.to_string());
            }
            // bound on the data-plane runtime, so its reactor serves the listener
            let listen = spec.listen.clone();
            let listener = self
                .rt
                .spawn(async move { TcpListener::bind(&listen).await })
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", spec.listen))?
                .map_err(|e| format!("cannot listen on {}: {e}", spec.listen))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let (tx, rx) = watch::channel(false);
            let opts = InterlayOptions {
                id: Id::from(spec.id.as_str()),
                password: spec.password.map(Arc::from),
                max_clients: spec.max_clients,
            };
            self.rt
                .spawn(serve_interlay(listener, opts, self.shared.clone(), rx));
            self.lock().listeners.insert(spec.id.clone(), (tx, addr));
            tracing::info!(interlay = %spec.id, %addr, "interlay listening");
            Ok(addr.to_string())
        })
    }

    fn stop_interlay(&self, id: &str) -> BoxFuture<'_, ()> {
        let stopped = self.lock().listeners.remove(id);
        Box::pin(async move {
            if let Some((tx, addr)) = stopped {
                let _ = tx.send(true);
                tracing::info!(%addr, "interlay stopped");
            }
        })
    }

    fn start_copy(&self, spec: CopySpec) -> Result<Option<watch::Receiver<Progress>>, String> {
        self.movers.start(&self.shared, spec).map(Some)
    }

    fn pause_copy(&self, migration: &str, paused: bool) {
        self.movers.pause(migration, paused);
    }

    fn stop_copy(&self, migration: &str, member: Option<&str>) {
        self.movers.stop(migration, member);
    }

    fn verify(
        &self,
        req: VerifyRequest,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, String>> {
        Box::pin(async move { crate::movers::verify(req).await.map(Some) })
    }

    fn traffic_report(&self, id: &str) -> Option<serde_json::Value> {
        let r = self.shared.reports.get(id)?;
        let samples: Vec<_> = r
            .samples
            .iter()
            .map(|s| serde_json::json!({"command": s.command, "key": s.key, "old": s.old, "new": s.new}))
            .collect();
        Some(serde_json::json!({
            "dual_writes": r.dual_writes,
            "dual_write_failures": r.secondary_failures,
            "new_side_write_failures": r.new_failures,
            "repair_backlog": r.repair.len(),
            "reverse_repair_backlog": r.repair_reverse.len(),
            "repair_overflow": r.repair_overflow,
            "shadow_compared": r.compared,
            "shadow_mismatches": r.mismatches,
            "shadow_mismatches_by_command": r.mismatches_by_command,
            "shadow_samples": samples,
        }))
    }

    fn guard_counters(&self, id: &str) -> Option<GuardCounters> {
        let r = self.shared.reports.get(id)?;
        Some(GuardCounters {
            dual_writes: r.dual_writes,
            new_failures: r.new_failures,
            compared: r.compared,
            mismatches: r.mismatches,
            latency: Vec::new(),
        })
    }

    fn endpoint_latency(&self, id: &str) -> Vec<(f64, u64)> {
        latency_buckets(&godwit_telemetry::prometheus().render(), id)
    }

    fn execute(
        &self,
        endpoint: &str,
        args: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, String>> {
        let pool = self.lock().pools.get(endpoint).map(|(_, p)| p.clone());
        let endpoint = endpoint.to_string();
        Box::pin(async move {
            let pool = pool.ok_or_else(|| format!("endpoint '{endpoint}' is not registered"))?;
            execute_on(&pool, &args).await.map(Some)
        })
    }

    fn probe(&self, url: &str) -> BoxFuture<'_, Result<EndpointProbe, String>> {
        let url = url.to_string();
        Box::pin(async move {
            let p = godwit_backend::probe(&url, Duration::from_secs(3))
                .await
                .map_err(|e| e.to_string())?;
            Ok(EndpointProbe {
                version: p.version,
                ping_us: p.ping.as_micros() as u64,
                cluster_state: p.cluster_state,
            })
        })
    }
}

/// Longest a template command may take before the call answers 502.
const EXECUTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one command on a shared pipelined connection of `pool` (the same connections the
/// interlays use: no extra socket per call) and returns its one raw reply. The connection
/// task answers `-ERR godwit: …` when the endpoint is down; that is an `Err` here.
async fn execute_on(pool: &Pool, args: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut data = bytes::BytesMut::new();
    godwit_resp::encode::command(&mut data, args);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let req = godwit_backend::Request {
        data: data.freeze(),
        count: 1,
        reply: tx,
    };
    // spread calls over the shared connections like client connections are
    let slot = NEXT_SLOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    pool.shared(slot)
        .send(req)
        .map_err(|_| "connection closed".to_string())?;
    let reply = tokio::time::timeout(EXECUTE_TIMEOUT, rx.recv())
        .await
        .map_err(|_| format!("no reply within {}s", EXECUTE_TIMEOUT.as_secs()))?
        .ok_or_else(|| "connection closed before the reply".to_string())?;
    if reply.data.starts_with(b"-ERR godwit:") {
        let text = String::from_utf8_lossy(&reply.data[1..]);
        return Err(text.trim_end().to_string());
    }
    Ok(reply.data.to_vec())
}

static NEXT_SLOT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The cumulative buckets of endpoint `id`'s backend latency histogram in Prometheus text
/// (`godwit_backend_latency_seconds_bucket{endpoint="id",le="0.001"} 42`), ascending.
fn latency_buckets(text: &str, id: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{}_bucket{{", godwit_telemetry::BACKEND_LATENCY_SECONDS);
    let label = format!("endpoint=\"{id}\"");
    let mut out: Vec<(f64, u64)> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let (labels, value) = l[prefix.len()..].split_once("} ")?;
            if !labels.split(',').any(|x| x == label) {
                return None;
            }
            let le = labels.split(',').find_map(|x| x.strip_prefix("le=\""))?;
            let le = le.trim_end_matches('"');
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse::<f64>().ok()? as u64))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::latency_buckets;

    #[test]
    fn latency_buckets_of_one_endpoint() {
        let text = "# TYPE godwit_backend_latency_seconds histogram\n\
            godwit_backend_latency_seconds_bucket{endpoint=\"new\",le=\"0.001\"} 5\n\
            godwit_backend_latency_seconds_bucket{endpoint=\"newer\",le=\"0.001\"} 9\n\
            godwit_backend_latency_seconds_bucket{endpoint=\"new\",le=\"+Inf\"} 7\n\
            godwit_backend_latency_seconds_bucket{endpoint=\"new\",le=\"0.1\"} 6\n\
            godwit_backend_latency_seconds_sum{endpoint=\"new\"} 0.5\n";
        assert_eq!(
            latency_buckets(text, "new"),
            vec![(0.001, 5), (0.1, 6), (f64::INFINITY, 7)]
        );
        assert!(latency_buckets(text, "old").is_empty());
    }
}
