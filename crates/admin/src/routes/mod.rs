//! The admin router: every route in one table ([`ROUTES`]) that the OpenAPI document is built
//! from, and a test checks against the live router.

pub mod auth;
pub mod migrations;
pub mod resources;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;

use crate::error::ApiError;
use crate::extract::{envelope_errors, no_route, Caller};
use crate::AdminState;

/// One route: method, axum path, minimum role (`None` = no token), summary.
pub type RouteDoc = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
);

/// Every route of the admin API.
pub const ROUTES: &[RouteDoc] = &[
    ("GET", "/healthz", None, "Liveness"),
    ("GET", "/readyz", None, "Readiness"),
    ("GET", "/metrics", None, "Prometheus metrics"),
    ("GET", "/api/v1/openapi.json", Some("read"), "This document"),
    (
        "POST",
        "/api/v1/auth/login",
        None,
        "HTTP Basic + X-Org-Id → JWT",
    ),
    (
        "POST",
        "/api/v1/auth/refresh",
        Some("read"),
        "New JWT for the caller",
    ),
    (
        "GET",
        "/api/v1/auth/refresh",
        Some("read"),
        "New JWT for the caller",
    ),
    ("GET", "/api/v1/endpoints", Some("read"), "List endpoints"),
    (
        "POST",
        "/api/v1/endpoints",
        Some("admin"),
        "Create an endpoint",
    ),
    (
        "GET",
        "/api/v1/endpoints/{endpoint}",
        Some("read"),
        "Get an endpoint",
    ),
    (
        "PATCH",
        "/api/v1/endpoints/{endpoint}",
        Some("admin"),
        "Change an endpoint",
    ),
    (
        "DELETE",
        "/api/v1/endpoints/{endpoint}",
        Some("admin"),
        "Delete an endpoint",
    ),
    (
        "POST",
        "/api/v1/endpoints/{endpoint}/test",
        Some("admin"),
        "PING an endpoint",
    ),
    ("GET", "/api/v1/interlays", Some("read"), "List interlays"),
    (
        "POST",
        "/api/v1/interlays",
        Some("admin"),
        "Create and start an interlay",
    ),
    (
        "GET",
        "/api/v1/interlays/{interlay}",
        Some("read"),
        "Get an interlay",
    ),
    (
        "PATCH",
        "/api/v1/interlays/{interlay}",
        Some("admin"),
        "Change an interlay",
    ),
    (
        "DELETE",
        "/api/v1/interlays/{interlay}",
        Some("admin"),
        "Delete an interlay",
    ),
    (
        "POST",
        "/api/v1/interlays/{interlay}/start",
        Some("admin"),
        "Start listening",
    ),
    (
        "POST",
        "/api/v1/interlays/{interlay}/stop",
        Some("admin"),
        "Stop listening",
    ),
    ("GET", "/api/v1/templates", Some("read"), "List templates"),
    (
        "POST",
        "/api/v1/templates",
        Some("admin"),
        "Create a template",
    ),
    (
        "GET",
        "/api/v1/templates/{template}",
        Some("read"),
        "Get a template",
    ),
    (
        "DELETE",
        "/api/v1/templates/{template}",
        Some("admin"),
        "Delete a template",
    ),
    ("GET", "/api/v1/apis", Some("read"), "List APIs"),
    ("POST", "/api/v1/apis", Some("admin"), "Create an API"),
    ("GET", "/api/v1/apis/{api}", Some("read"), "Get an API"),
    (
        "DELETE",
        "/api/v1/apis/{api}",
        Some("admin"),
        "Delete an API",
    ),
    (
        "GET",
        "/api/v1/migrations",
        Some("read"),
        "List migrations (X-Eden-Verbose)",
    ),
    (
        "POST",
        "/api/v1/migrations",
        Some("admin"),
        "Create a migration",
    ),
    (
        "GET",
        "/api/v1/migrations/{migration}",
        Some("admin"),
        "Get a migration (X-Eden-Verbose)",
    ),
    (
        "PATCH",
        "/api/v1/migrations/{migration}",
        Some("admin"),
        "Change a migration",
    ),
    (
        "DELETE",
        "/api/v1/migrations/{migration}",
        Some("admin"),
        "Delete a migration",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/api/{api}",
        Some("admin"),
        "Add an API",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/interlay/{interlay}",
        Some("admin"),
        "Add an interlay",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/interlay/{interlay}/rollback",
        Some("admin"),
        "Roll one interlay back",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/test",
        Some("admin"),
        "Test (probes both sides)",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/migrate",
        Some("admin"),
        "Execute",
    ),
    (
        "PATCH",
        "/api/v1/migrations/{migration}/traffic",
        Some("admin"),
        "Canary ramp (≤ 0.25 per call)",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/pause",
        Some("admin"),
        "Pause",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/resume",
        Some("admin"),
        "Resume",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/complete",
        Some("admin"),
        "Complete (cut over)",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/rollback",
        Some("admin"),
        "Roll everything back",
    ),
    (
        "PATCH",
        "/api/v1/migrations/{migration}/toggle",
        Some("admin"),
        "Blue/green flip",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/refresh",
        Some("admin"),
        "Re-apply routing",
    ),
    (
        "GET",
        "/api/v1/migrations/{migration}/status",
        Some("admin"),
        "Phase, progress, health",
    ),
    (
        "POST",
        "/api/v1/migrations/{migration}/verify",
        Some("admin"),
        "Compare old and new",
    ),
];

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
            get(r::get_template).delete(r::delete_template),
        )
        .route("/api/v1/apis", get(r::list_apis).post(r::create_api))
        .route("/api/v1/apis/{api}", get(r::get_api).delete(r::delete_api))
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
