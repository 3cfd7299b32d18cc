//! godwit-app: configuration and wiring — used by the `godwit` binary and by the e2e tests.
//!
//! [`Godwit::start`] builds the shared proxy state, the data plane, registers the configured
//! endpoints and interlays, starts the listeners and the admin API, and returns a handle.

pub mod config;
mod dataplane;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use godwit_backend::PoolOptions;
use godwit_control::{DataPlane, InterlayListen};
use godwit_proxy::{ProxyLimits, ProxyShared};
use godwit_router::{Id, InterlayRoute, RoutingTable};
use tokio::sync::watch;

pub use config::{Config, ConfigError};
pub use dataplane::AppDataPlane;

/// A running godwit: listeners, admin API, backends.
#[derive(Debug)]
pub struct Godwit {
    dataplane: Arc<AppDataPlane>,
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
        };
        let dataplane = AppDataPlane::new(shared.clone(), pool_opts);
        for e in &config.endpoints {
            dataplane
                .upsert_endpoint(&e.id, &e.url)
                .map_err(anyhow::Error::msg)?;
        }
        let mut table = RoutingTable {
            version: 1,
            ..Default::default()
        };
        for i in &config.interlays {
            table.interlays.insert(
                Id::from(i.id.as_str()),
                InterlayRoute::direct(i.endpoint.as_str()),
            );
        }
        dataplane.publish(table);
        for i in &config.interlays {
            let spec = InterlayListen {
                id: i.id.clone(),
                listen: i.listen.clone(),
                password: i.password.clone(),
            };
            dataplane
                .start_interlay(spec)
                .await
                .map_err(anyhow::Error::msg)?;
        }
        let admin = tokio::net::TcpListener::bind(&config.admin.listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on admin address {}: {e}",
                    config.admin.listen
                )
            })?;
        let admin_addr = admin.local_addr()?;
        let (stop_admin, mut stop_rx) = watch::channel(false);
        let render = move || metrics.render();
        tokio::spawn(async move {
            let app = health_router(Arc::new(render));
            let _ = axum::serve(admin, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
        });
        tracing::info!(%admin_addr, "admin API listening");
        Ok(Self {
            dataplane,
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

    /// The data plane (for tests that publish tables directly).
    pub fn dataplane(&self) -> &Arc<AppDataPlane> {
        &self.dataplane
    }

    /// Stops accepting clients and stops the admin API.
    pub async fn shutdown(self) {
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

type Render = Arc<dyn Fn() -> String + Send + Sync>;

fn health_router(render: Render) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let r = render.clone();
                async move { r() }
            }),
        )
}
