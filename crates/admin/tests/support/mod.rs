//! Test fixture: a Control on a temp dir with the no-op data plane, and an admin router with
//! API tokens for several roles and organizations.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::Router;
use godwit_admin::{AuthConfig, Role, TokenConfig, UserConfig};
use godwit_control::{BootstrapEndpoint, Control, ControlConfig, NoopDataPlane};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

pub const ADMIN: &str = "admin-token-0123456789";
pub const READER: &str = "read-token-0123456789";
pub const OTHER: &str = "other-org-admin-token";

fn token(name: &str, org: &str, role: Role, secret: &str) -> TokenConfig {
    let h = Sha256::digest(secret.as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    TokenConfig {
        name: name.into(),
        org: org.into(),
        role,
        sha256: hex,
    }
}

/// A cheap argon2 hash for tests.
pub fn cheap_hash(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    a.hash_password(pw.as_bytes(), &salt).unwrap().to_string()
}

pub fn auth_config() -> AuthConfig {
    AuthConfig {
        jwt_secret: Some("an-hs256-secret-of-at-least-32-bytes!!".into()),
        tokens: vec![
            token("ci", "default", Role::Admin, ADMIN),
            token("viewer", "default", Role::Read, READER),
            token("acme", "acme", Role::Admin, OTHER),
        ],
        users: vec![UserConfig {
            name: "alice".into(),
            org: "default".into(),
            role: Role::SuperAdmin,
            password_hash: cheap_hash("s3cret"),
        }],
        ..AuthConfig::default()
    }
}

pub struct Fixture {
    pub app: Router,
    pub control: Arc<Control>,
    pub dir: tempfile::TempDir,
}

pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ControlConfig::new(dir.path());
    cfg.bootstrap_endpoints = vec![
        BootstrapEndpoint {
            id: "old_redis".into(),
            url: "redis://127.0.0.1:6379".into(),
            cluster: false,
        },
        BootstrapEndpoint {
            id: "new_redis_cluster".into(),
            url: "redis://127.0.0.1:6380".into(),
            cluster: false,
        },
    ];
    let control = Control::open(cfg, Arc::new(NoopDataPlane)).await.unwrap();
    let app = godwit_admin::router(
        control.clone(),
        &auth_config(),
        Arc::new(|| "godwit_up 1\n".to_string()),
    )
    .unwrap();
    Fixture { app, control, dir }
}

impl Fixture {
    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, Value, String) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        )
    }

    /// A JSON request with a bearer token (`None` body = no body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let (s, v, _) = self.raw(req).await;
        (s, v)
    }

    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN), body).await
    }
}

/// Asserts an error envelope with exact kind and message.
pub fn assert_err(got: &(StatusCode, Value), status: u16, kind: &str, message: &str) {
    assert_eq!(got.0.as_u16(), status, "{:?}", got.1);
    assert_eq!(got.1["error"], kind, "{:?}", got.1);
    assert_eq!(got.1["message"], message, "{:?}", got.1);
}
