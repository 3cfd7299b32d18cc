//! The admin router: every route in one table ([`ROUTES`]) that the OpenAPI document is built
//! from, and a test checks against the live router.

pub mod auth;
pub mod migrations;
pub mod resources;
mod table;

pub use table::{RouteDoc, ROUTES};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;

use crate::error::ApiError;
use crate::extract::{envelope_errors, no_route, Caller};
use crate::AdminState;

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let v = s.control.table_version().await;
    axum::Json(serde_json::json!({"status": "ready", "routing_table_version": v})).into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        (s.metrics)(),
    )
        .into_response()
}

async fn openapi(c: Caller) -> Result<Response, ApiError> {
    c.require(crate::auth::Role::Read)?;
    Ok(axum::Json(crate::openapi::document()).into_response())
}

/// Builds the router over a state.
pub fn build(state: AdminState) -> Router {
    use migrations as m;
    use resources as r;
    let mid = "/api/v1/migrations/{migration}";
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/auth/login", post(auth::login))
        .route(
            "/api/v1/auth/refresh",
            post(auth::refresh).get(auth::refresh),
        )
        .route(
            "/api/v1/endpoints",
            get(r::list_endpoints).post(r::create_endpoint),
        )
        .route(
            "/api/v1/endpoints/{endpoint}",
            get(r::get_endpoint)
                .patch(r::patch_endpoint)
                .delete(r::delete_endpoint),
        )
        .route("/api/v1/instances", get(r::instances))
        .route("/api/v1/endpoints/{endpoint}/test", post(r::test_endpoint))
        .route(
            "/api/v1/interlays",
            get(r::list_interlays).post(r::create_interlay),
        )
        .route(
            "/api/v1/interlays/{interlay}",
            get(r::get_interlay)
                .patch(r::patch_interlay)
                .delete(r::delete_interlay),
        )
        .route(
            "/api/v1/interlays/{interlay}/start",
            post(r::start_interlay),
        )
        .route("/api/v1/interlays/{interlay}/stop", post(r::stop_interlay))
        .route(
            "/api/v1/templates",
            get(r::list_templates).post(r::create_template),
        )
        .route(
            "/api/v1/templates/{template}",
            get(r::get_template)
                .post(r::run_template)
                .delete(r::delete_template),
        )
        .route(
            "/api/v1/templates/{template}/render",
            post(r::render_template),
        )
        .route("/api/v1/apis", get(r::list_apis).post(r::create_api))
        .route(
            "/api/v1/apis/{api}",
            get(r::get_api).post(r::run_api).delete(r::delete_api),
        )
        .route(
            "/api/v1/mcp/migrations",
            post(crate::mcp::post).delete(crate::mcp::delete),
        )
        .route("/api/v1/migrations", get(m::list).post(m::create))
        .route(mid, get(m::get).patch(m::patch).delete(m::delete))
        .route(&format!("{mid}/api/{{api}}"), post(m::add_api))
        .route(
            &format!("{mid}/interlay/{{interlay}}"),
            post(m::add_interlay),
        )
        .route(
            &format!("{mid}/interlay/{{interlay}}/rollback"),
            post(m::rollback_interlay),
        )
        .route(&format!("{mid}/test"), post(m::test))
        .route(&format!("{mid}/migrate"), post(m::migrate))
        .route(&format!("{mid}/traffic"), patch(m::traffic))
        .route(&format!("{mid}/pause"), post(m::pause))
        .route(&format!("{mid}/resume"), post(m::resume))
        .route(&format!("{mid}/complete"), post(m::complete))
        .route(&format!("{mid}/rollback"), post(m::rollback))
        .route(&format!("{mid}/toggle"), patch(m::toggle))
        .route(&format!("{mid}/refresh"), post(m::refresh))
        .route(&format!("{mid}/status"), get(m::status))
        .route(&format!("{mid}/verify"), post(m::verify))
        .fallback(no_route)
        .layer(axum::middleware::map_response(envelope_errors))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::extract::BODY_LIMIT,
        ))
        .with_state(state)
}
