//! Request extractors that never fail with a 500 or a non-JSON body: the JSON body (any
//! malformation is a 400 envelope), the caller's identity (401/403), `X-Eden-Verbose`, and the
//! middleware that wraps axum's own plain-text rejections in the envelope.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::{Identity, Role};
use crate::error::ApiError;
use crate::AdminState;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON request body as a `Value`; no body (or only whitespace) is `Value::Null`.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("invalid").to_ascii_lowercase());
        let bytes = to_bytes(req.into_body(), BODY_LIMIT).await.map_err(|_| {
            ApiError::bad(format!(
                "request body too large or unreadable (limit {BODY_LIMIT} bytes)"
            ))
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        if let Some(ct) = ct {
            let mime = ct.split(';').next().unwrap_or("").trim();
            if mime != "application/json" && !mime.ends_with("+json") {
                return Err(ApiError::bad(
                    "Expected request with `Content-Type: application/json`",
                ));
            }
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad(format!("Invalid JSON body: {e}")))
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Identity);

impl Caller {
    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<&str, ApiError> {
        if self.0.role >= role {
            Ok(&self.0.org)
        } else {
            Err(ApiError::forbidden())
        }
    }
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let Some(h) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized("Missing bearer token"));
        };
        let h = h
            .to_str()
            .map_err(|_| ApiError::unauthorized("Invalid token format"))?;
        let (scheme, token) = h.trim().split_once(' ').unwrap_or((h, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::unauthorized("Missing bearer token"));
        }
        state.auth.verify(token.trim()).map(Caller)
    }
}

/// `X-Eden-Verbose`: `true`/`1`/`yes` in any case.
pub fn verbose(headers: &HeaderMap) -> bool {
    headers
        .get("x-eden-verbose")
        .and_then(|v| v.to_str().ok())
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}

/// Rewrites error responses that are not JSON (axum's rejections, 405s, ...) into the
/// envelope; 413/415/422 become 400 (bad input is always 400).
pub async fn envelope_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (status, kind) = match parts.status {
        StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::BAD_REQUEST => (StatusCode::BAD_REQUEST, "Bad Request"),
        StatusCode::METHOD_NOT_ALLOWED => (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        StatusCode::NOT_FOUND => (StatusCode::NOT_FOUND, "not_found"),
        s => (s, s.canonical_reason().unwrap_or("Error")),
    };
    let message = if text.trim().is_empty() {
        kind.to_string()
    } else {
        text.trim().to_string()
    };
    let mut out = ApiError::new(status, kind, message).into_response();
    for (k, v) in parts.headers.iter() {
        if k == header::ALLOW || k == header::WWW_AUTHENTICATE {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// The fallback for unknown routes.
pub async fn no_route(req: Request<Body>) -> Response {
    ApiError::no_route(req.uri().path()).into_response()
}
