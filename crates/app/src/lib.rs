//! godwit-app: configuration and wiring — used by the `godwit` binary and by the e2e tests.
//!
//! [`Godwit::start`] builds the shared proxy state, the data plane, registers the configured
//! endpoints and interlays, starts the listeners and the admin API, and returns a handle.

pub mod config;
mod dataplane;
pub mod dirty_relay;
pub mod movers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use godwit_backend::PoolOptions;
use godwit_control::{BootstrapEndpoint, BootstrapInterlay, Control, ControlConfig, DataPlane};
use godwit_proxy::{ProxyLimits, ProxyShared};
use tokio::sync::watch;

pub use config::{Config, ConfigError};
pub use dataplane::AppDataPlane;

/// A running godwit: listeners, admin API, backends.
#[derive(Debug)]
pub struct Godwit {
    dataplane: Arc<AppDataPlane>,
    control: Arc<Control>,
    shared: Arc<ProxyShared>,
    admin_addr: SocketAddr,
    stop_admin: watch::Sender<bool>,
}

impl Godwit {
    /// Starts everything the configuration declares. Must run inside a tokio runtime.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let metrics = godwit_telemetry::prometheus();
        let l = &config.limits;
        let shared = ProxyShared::new(ProxyLimits {
            max_clients: l.max_clients,
            max_frame_bytes: l.max_frame_bytes,
            max_pipeline: l.max_pipeline,
        });
        let pool_opts = PoolOptions {
            shared_connections: l.backend_connections,
            connect_timeout: Duration::from_millis(l.connect_timeout_ms),
            request_timeout: (l.backend_timeout_ms > 0)
                .then(|| Duration::from_millis(l.backend_timeout_ms)),
            cluster: false, // per endpoint, set when it is registered
        };
        let dataplane = AppDataPlane::new(shared.clone(), pool_opts);
        if let Some(url) = &config.store.url {
            // a fleet: copies run on one instance, writes arrive through all of them
            dataplane
                .movers()
                .install_relay(url, &config.store.key_prefix, &shared)?;
        }
        let mut ccfg = ControlConfig::new(&config.data_dir);
        ccfg.instance_id = config.instance.id.clone();
        ccfg.instance_region = config.instance.region.clone();
        ccfg.port_offset = config.instance.port_offset;
        ccfg.store_url = config.store.url.clone();
        ccfg.store_prefix = config.store.key_prefix.clone();
        ccfg.bootstrap_endpoints = config
            .endpoints
            .iter()
            .map(|e| BootstrapEndpoint {
                id: e.id.clone(),
                url: e.url.clone(),
                cluster: e.cluster,
            })
            .collect();
        ccfg.bootstrap_interlays = config
            .interlays
            .iter()
            .map(|i| BootstrapInterlay {
                id: i.id.clone(),
                endpoint: i.endpoint.clone(),
                listen: i.listen.clone(),
                password: i.password.clone(),
                max_clients: i.max_clients,
            })
            .collect();
        // The control plane (admin API, migrations, copies, guards) runs on its own thread and
        // runtime, so its work (JSON, state saves, table builds) never delays proxied traffic.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_admin, stop_rx) = watch::channel(false);
        let dp = dataplane.clone() as Arc<dyn DataPlane>;
        let admin_listen = config.admin.listen.clone();
        let auth = config.auth.clone();
        std::thread::Builder::new()
            .name("godwit-control".into())
            .spawn(move || {
                control_plane(ccfg, dp, admin_listen, auth, metrics, ready_tx, stop_rx)
            })?;
        let (control, admin_addr) = ready_rx
            .await
            .map_err(|_| anyhow::anyhow!("the control plane thread ended during start"))??;
        tracing::info!(%admin_addr, "admin API listening");
        Ok(Self {
            dataplane,
            control,
            shared,
            admin_addr,
            stop_admin,
        })
    }

    /// Where interlay `id` accepts clients.
    pub fn interlay_addr(&self, id: &str) -> Option<SocketAddr> {
        self.dataplane.interlay_addr(id)
    }

    /// Where the admin API listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Client connections open now.
    pub fn client_count(&self) -> usize {
        self.shared.client_count()
    }

    /// The control plane.
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// The proxy's shared state (routing table, per-migration reports).
    pub fn proxy(&self) -> &Arc<ProxyShared> {
        &self.shared
    }

    /// The data plane (for tests that publish tables directly).
    pub fn dataplane(&self) -> &Arc<AppDataPlane> {
        &self.dataplane
    }

    /// Leaves the fleet (removes the liveness record), stops accepting clients and stops the
    /// admin API.
    pub async fn shutdown(self) {
        self.control.leave_fleet(true).await;
        let ids: Vec<String> = self.dataplane_listener_ids();
        for id in ids {
            self.dataplane.stop_interlay(&id).await;
        }
        let _ = self.stop_admin.send(true);
    }

    fn dataplane_listener_ids(&self) -> Vec<String> {
        self.dataplane.listener_ids()
    }
}

type Ready = anyhow::Result<(Arc<Control>, SocketAddr)>;

/// Body of the control-plane thread: opens the control plane, serves the admin API until
/// `stop` turns true, and keeps the metrics histograms folded.
fn control_plane(
    cfg: ControlConfig,
    dataplane: Arc<dyn DataPlane>,
    admin_listen: String,
    auth: godwit_admin::AuthConfig,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    ready: tokio::sync::oneshot::Sender<Ready>,
    mut stop: watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!(
                "cannot start the control-plane runtime: {e}"
            )));
            return;
        }
    };
    rt.block_on(async move {
        let opened = async {
            let control = Control::open(cfg, dataplane)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let admin = tokio::net::TcpListener::bind(&admin_listen)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot listen on admin address {admin_listen}: {e}")
                })?;
            let addr = admin.local_addr()?;
            Ok::<_, anyhow::Error>((control, admin, addr))
        };
        let (control, admin, addr) = match opened.await {
            Ok(x) => x,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        // histograms keep raw samples until upkeep folds them into buckets: keep memory flat
        // whether or not anyone scrapes
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        let render: godwit_admin::MetricsRender = Arc::new(move || metrics.render());
        let router = match godwit_admin::router(control.clone(), &auth, render) {
            Ok(r) => r,
            Err(e) => {
                let _ = ready.send(Err(anyhow::anyhow!("{e}")));
                return;
            }
        };
        if ready.send(Ok((control, addr))).is_err() {
            return;
        }
        let served = axum::serve(admin, router).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
}
