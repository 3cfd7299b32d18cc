//! The admin API's error type and its JSON envelope `{"error": kind, "message": text}`.
//! Control-plane errors map by class: 400, 404, 409, 501, 502, 503 (the store cannot be written:
//! retry), 504, 500 (never for bad input).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use godwit_control::{ControlError, ErrorClass};
use serde_json::json;

/// An error answered with the envelope.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The envelope's `error` field.
    pub kind: String,
    /// The envelope's `message` field.
    pub message: String,
    /// Add `WWW-Authenticate` (401s).
    pub challenge: Option<&'static str>,
}

impl ApiError {
    /// An error with a status, kind and message.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: kind.into(),
            message: message.into(),
            challenge: None,
        }
    }

    /// 400 `Bad Request`.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", message)
    }

    /// 401 `Unauthorized` with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
        e.challenge = Some("Bearer");
        e
    }

    /// 403 with Eden's text.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Insufficient permissions to perform this action",
        )
    }

    /// 404 for an unknown route (Eden's `api_not_found`).
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No API route matched {path}"),
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match e.class() {
            ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
            ErrorClass::NotFound => StatusCode::NOT_FOUND,
            ErrorClass::Conflict | ErrorClass::Migration => StatusCode::CONFLICT,
            ErrorClass::Unavailable => StatusCode::NOT_IMPLEMENTED,
            ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorClass::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorClass::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorClass::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        };
        if matches!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR | StatusCode::SERVICE_UNAVAILABLE
        ) {
            tracing::error!(error = %e, "control plane failure");
        }
        ApiError::new(status, e.kind(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.kind, "message": self.message});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(c) = self.challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        resp
    }
}

/// Errors of setting up the admin API.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The `[auth]` section is invalid; every problem is listed.
    #[error("invalid [auth] config: {}", .0.join("; "))]
    Config(Vec<String>),
    /// Reading the JWT secret file failed.
    #[error("cannot read jwt_secret_file {path}: {source}")]
    SecretFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The success envelope `{"status":"success","data": data}`.
pub fn ok(data: serde_json::Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// The success envelope with a status code.
pub fn ok_status(status: StatusCode, data: serde_json::Value) -> Response {
    (
        status,
        axum::Json(json!({"status": "success", "data": data})),
    )
        .into_response()
}
