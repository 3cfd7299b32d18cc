//! `POST /api/v1/auth/login` (HTTP Basic + `X-Org-Id`) and `/api/v1/auth/refresh`. Neither takes
//! a body, but a malformed one is refused (400) like on every other route.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody};
use crate::AdminState;

fn token_response(token: String, ttl: u64) -> Response {
    axum::Json(json!({
        "token": token, "status": "success",
        "data": {"token": token, "token_type": "Bearer", "expires_in": ttl},
    }))
    .into_response()
}

/// Login: Basic `user:password` and `X-Org-Id` (or `X-Org-Uuid`) → a short-lived JWT.
pub async fn login(
    State(s): State<AdminState>,
    headers: HeaderMap,
    JsonBody(_b): JsonBody,
) -> Result<Response, ApiError> {
    let mut challenge = ApiError::unauthorized("Invalid credentials");
    challenge.challenge = Some("Basic");
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(challenge)?;
    let (scheme, rest) = auth.trim().split_once(' ').unwrap_or((auth, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::unauthorized("Invalid credentials"));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| ApiError::bad("invalid Basic credentials encoding"))?;
    let raw =
        String::from_utf8(raw).map_err(|_| ApiError::bad("invalid Basic credentials encoding"))?;
    let (user, password) = raw.split_once(':').unwrap_or((raw.as_str(), ""));
    if password.is_empty() {
        return Err(ApiError::bad("password not provided"));
    }
    let org = ["x-org-uuid", "x-org-id"]
        .iter()
        .find_map(|h| {
            headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.trim().is_empty())
        })
        .ok_or_else(|| ApiError::bad("missing organization in header"))?;
    let id = s.auth.login(org.trim(), user, password).await?;
    let token = s.auth.issue(&id)?;
    tracing::info!(user = %id.subject, org = %id.org, "login");
    Ok(token_response(token, s.auth.ttl_s()))
}

/// Refresh: a valid bearer token (JWT or API token) → a new JWT for the same identity.
pub async fn refresh(
    State(s): State<AdminState>,
    caller: Caller,
    JsonBody(_b): JsonBody,
) -> Result<Response, ApiError> {
    let token = s.auth.issue(&caller.0)?;
    Ok(token_response(token, s.auth.ttl_s()))
}
