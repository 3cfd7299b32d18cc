//! godwit-admin: the admin HTTP API (axum on hyper). REST routes for endpoints, interlays,
//! templates, APIs and migrations (the seed's contract plus Eden's lifecycle routes), bearer
//! authentication with roles and organization scoping, `/healthz`, `/readyz`, `/metrics`, and
//! the OpenAPI document at `/api/v1/openapi.json`.

pub mod auth;
pub mod auth_config;
pub mod error;
pub mod extract;
pub mod mcp;
pub mod openapi;
pub mod routes;

use std::sync::Arc;

use godwit_control::Control;

pub use auth::{AuthConfig, Authenticator, Identity, Role, TokenConfig, UserConfig};
pub use error::{AdminError, ApiError};
pub use routes::ROUTES;

/// Renders the Prometheus text exposition for `/metrics`.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AdminState {
    /// The control plane.
    pub control: Arc<Control>,
    /// Token checks and issuing.
    pub auth: Arc<Authenticator>,
    /// `/metrics` body.
    pub metrics: MetricsRender,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("auth", &self.auth)
            .finish()
    }
}

/// The admin router (no listener): for tests with `tower::ServiceExt::oneshot`, or to nest.
pub fn router(
    control: Arc<Control>,
    auth: &AuthConfig,
    metrics_render: MetricsRender,
) -> Result<axum::Router, AdminError> {
    let auth = Arc::new(Authenticator::new(auth)?);
    Ok(routes::build(AdminState {
        control,
        auth,
        metrics: metrics_render,
    }))
}

/// Serves the admin API on `listener` until the future is dropped or the server fails.
/// An invalid `[auth]` section is reported as an `InvalidInput` I/O error before serving.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Arc<Control>,
    auth: AuthConfig,
    metrics_render: MetricsRender,
) -> std::io::Result<()> {
    let app = router(control, &auth, metrics_render)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    axum::serve(listener, app).await
}
