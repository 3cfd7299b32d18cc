//! Authentication, roles, organization scoping, malformed bodies (never a 500), unknown routes,
//! the OpenAPI document against the live router, and restart through the HTTP API.

mod support;

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use godwit_admin::{AuthConfig, Authenticator, Identity, Role, ROUTES};
use serde_json::{json, Value};
use support::{assert_err, fixture, ADMIN, OTHER, READER};

#[tokio::test]
async fn tokens_roles_and_orgs() {
    let f = fixture().await;
    let r = f.call("GET", "/api/v1/migrations", None, None).await;
    assert_err(&r, 401, "Unauthorized", "Missing bearer token");
    let r = f
        .call("GET", "/api/v1/migrations", Some("garbage"), None)
        .await;
    assert_err(&r, 401, "Unauthorized", "Invalid token format");
    let r = f
        .call("GET", "/api/v1/migrations", Some(READER), None)
        .await;
    assert_eq!(r.0.as_u16(), 200);
    let r = f
        .call(
            "POST",
            "/api/v1/migrations",
            Some(READER),
            Some(json!({"id":"m"})),
        )
        .await;
    assert_err(
        &r,
        403,
        "Forbidden",
        "Insufficient permissions to perform this action",
    );
    f.admin("POST", "/api/v1/migrations", Some(json!({"id":"m"})))
        .await;
    let r = f
        .call("GET", "/api/v1/migrations/m", Some(READER), None)
        .await;
    assert_eq!(r.0.as_u16(), 403, "get migration needs admin (seed)");
    // Another organization's objects are 404, and its list is empty.
    let r = f
        .call("GET", "/api/v1/migrations/m", Some(OTHER), None)
        .await;
    assert_err(&r, 404, "Not found", "Migration 'm' does not exist");
    let r = f.call("GET", "/api/v1/migrations", Some(OTHER), None).await;
    assert_eq!(r.1["data"], json!([]));
    let r = f
        .call("GET", "/api/v1/endpoints/old_redis", Some(OTHER), None)
        .await;
    assert_err(&r, 404, "Not Found", "Endpoint 'old_redis' does not exist");
    for p in ["/healthz", "/readyz", "/metrics"] {
        let r = f.call("GET", p, None, None).await;
        assert_eq!(r.0.as_u16(), 200, "{p}");
    }
    let (_, _, text) = f
        .raw(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(text, "godwit_up 1\n");
}

fn login_req(user_pw: &str, org: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/api/v1/auth/login").header(
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pw)
        ),
    );
    if let Some(o) = org {
        b = b.header("X-Org-Id", o);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn login_and_jwt() {
    let f = fixture().await;
    let (s, v, _) = f.raw(login_req("alice:s3cret", Some("default"))).await;
    assert_eq!(s.as_u16(), 200, "{v:?}");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["token"], token.as_str());
    let r = f
        .call(
            "POST",
            "/api/v1/migrations",
            Some(&token),
            Some(json!({"id":"jwt_made"})),
        )
        .await;
    assert_eq!(r.0.as_u16(), 200, "{:?}", r.1);
    let r = f
        .call("POST", "/api/v1/auth/refresh", Some(&token), None)
        .await;
    assert!(r.1["token"].is_string());
    let (s, v, _) = f.raw(login_req("alice:wrong", Some("default"))).await;
    assert_err(&(s, v), 401, "Unauthorized", "Invalid credentials");
    let (s, v, _) = f.raw(login_req("alice:s3cret", Some("acme"))).await;
    assert_err(&(s, v), 401, "Unauthorized", "Invalid credentials");
    let (s, v, _) = f.raw(login_req("alice:s3cret", None)).await;
    assert_err(
        &(s, v),
        400,
        "Bad Request",
        "missing organization in header",
    );
    let (s, v, _) = f.raw(login_req("alice:", Some("default"))).await;
    assert_err(&(s, v), 400, "Bad Request", "password not provided");
    // An expired token.
    let auth = Authenticator::new(&support::auth_config()).unwrap();
    let id = Identity {
        subject: "alice".into(),
        org: "default".into(),
        role: Role::Admin,
    };
    let old = auth.issue_at(&id, 1_000_000, 60).unwrap();
    let r = f.call("GET", "/api/v1/migrations", Some(&old), None).await;
    assert_err(&r, 401, "Unauthorized", "Token has expired");
    // A token signed with another secret.
    let other = Authenticator::new(&AuthConfig {
        jwt_secret: Some("x".repeat(40)),
        ..AuthConfig::default()
    })
    .unwrap();
    let forged = other.issue(&id).unwrap();
    let r = f
        .call("GET", "/api/v1/migrations", Some(&forged), None)
        .await;
    assert_err(&r, 401, "Unauthorized", "Invalid token format");
}

async fn send(
    f: &support::Fixture,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN}"));
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    let (s, v, text) = f.raw(b.body(Body::from(body)).unwrap()).await;
    assert!(
        v.get("error").is_some() && v.get("message").is_some(),
        "not an envelope: {s} {text}"
    );
    (s.as_u16(), v)
}

#[tokio::test]
async fn malformed_bodies_are_400_envelopes() {
    let f = fixture().await;
    f.admin("POST", "/api/v1/migrations", Some(json!({"id":"m"})))
        .await;
    let deep = "[".repeat(10_000);
    let bodies: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some("application/json"), b"{not json".to_vec()),
        (Some("application/json"), b"[1,2,3]".to_vec()),
        (Some("application/json"), b"\"str\"".to_vec()),
        (Some("application/json"), br#"{"description": 42}"#.to_vec()),
        (
            Some("application/json"),
            br#"{"id": "ok", "strategy": {"type": 7}}"#.to_vec(),
        ),
        (
            Some("application/json"),
            br#"{"id": "ok", "strategy": {"type": "canary", "read_percentage": "x"}}"#.to_vec(),
        ),
        (
            Some("application/json"),
            br#"{"id": "ok", "data": [1]}"#.to_vec(),
        ),
        (
            Some("application/json"),
            br#"{"id": "ok", "failure_handling": {"a":1,"b":2}}"#.to_vec(),
        ),
        (
            Some("application/json"),
            br#"{"id": "ok", "zzz": 1}"#.to_vec(),
        ),
        (Some("application/json"), deep.into_bytes()),
        (Some("application/json"), vec![0xff, 0xfe, 0x00]),
        (Some("text/plain"), br#"{"id":"ok"}"#.to_vec()),
        (Some("application/x-www-form-urlencoded"), b"id=ok".to_vec()),
        (Some("application/json"), vec![b' '; 2 * 1024 * 1024]),
        (
            Some("application/json"),
            format!(r#"{{"id":"{}"}}"#, "a".repeat(3_000_000)).into_bytes(),
        ),
    ];
    let paths = [
        ("POST", "/api/v1/migrations"),
        ("PATCH", "/api/v1/migrations/m"),
        ("POST", "/api/v1/migrations/m/interlay/x"),
        ("PATCH", "/api/v1/migrations/m/traffic"),
        ("POST", "/api/v1/endpoints"),
        ("POST", "/api/v1/interlays"),
        ("POST", "/api/v1/migrations/m/rollback"),
    ];
    for (method, path) in paths {
        for (ct, body) in &bodies {
            let (s, v) = send(&f, method, path, *ct, body.clone()).await;
            assert_eq!(
                s,
                400,
                "{method} {path} {ct:?} {} -> {v:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
        }
    }
    // Routes that take no body ignore well-formed JSON but refuse a malformed body.
    let bodyless = [
        ("POST", "/api/v1/endpoints/old_redis/test"),
        ("POST", "/api/v1/interlays/x/start"),
        ("POST", "/api/v1/interlays/x/stop"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/login"),
    ];
    for (method, path) in bodyless {
        for (ct, body) in &bodies {
            let json_ct = *ct == Some("application/json");
            if json_ct && body.len() < 1024 * 1024 && serde_json::from_slice::<Value>(body).is_ok()
            {
                continue;
            }
            let (s, v) = send(&f, method, path, *ct, body.clone()).await;
            assert_eq!(s, 400, "{method} {path} {ct:?} -> {v:?}");
        }
    }
    let (s, v) = send(&f, "GET", "/api/v1/nowhere", None, vec![]).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")));
    assert_eq!(v["message"], "No API route matched /api/v1/nowhere");
    let (s, v) = send(&f, "PUT", "/api/v1/migrations", None, vec![]).await;
    assert_eq!(s, 405, "{v:?}");
}

#[tokio::test]
async fn openapi_matches_router() {
    let f = fixture().await;
    let r = f.admin("GET", "/api/v1/openapi.json", None).await;
    let doc = r.1;
    assert_eq!(doc["openapi"], "3.0.3");
    for (method, path, _, _) in ROUTES {
        assert!(
            doc["paths"][path][method.to_lowercase()].is_object(),
            "{method} {path} missing from openapi"
        );
        // The route is really served: not the unknown-route fallback, not 405.
        let concrete = path
            .replace("{migration}", "m")
            .replace("{interlay}", "i")
            .replace("{api}", "a")
            .replace("{endpoint}", "e")
            .replace("{template}", "t");
        let (s, v) = f.admin(method, &concrete, None).await;
        assert_ne!(s.as_u16(), 405, "{method} {path}");
        assert!(
            v["message"]
                .as_str()
                .is_none_or(|m| !m.starts_with("No API route matched")),
            "{method} {path} not routed"
        );
        assert_ne!(s.as_u16(), 500, "{method} {path}: {v:?}");
    }
    let n: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(n, ROUTES.len());
}

#[tokio::test]
async fn restart_through_the_api() {
    let f = fixture().await;
    f.admin(
        "POST",
        "/api/v1/interlays",
        Some(json!({"id":"il","endpoint":"old_redis","port":0})),
    )
    .await;
    f.admin(
        "POST",
        "/api/v1/migrations",
        Some(json!({"id":"m","strategy":{"type":"blue_green"}})),
    )
    .await;
    f.admin(
        "POST",
        "/api/v1/migrations/m/interlay/il",
        Some(json!({"endpoint":"new_redis_cluster"})),
    )
    .await;
    f.admin("POST", "/api/v1/migrations/m/migrate", None).await;
    let r = f
        .admin(
            "PATCH",
            "/api/v1/migrations/m/toggle",
            Some(json!({"activate_new":true})),
        )
        .await;
    assert_eq!(r.1["data"]["new_active"], "green", "{:?}", r.1);
    let support::Fixture { app, control, dir } = f;
    drop(app);
    drop(control);
    let cfg = godwit_control::ControlConfig::new(dir.path());
    let c = godwit_control::Control::open(cfg, std::sync::Arc::new(godwit_control::NoopDataPlane))
        .await
        .unwrap();
    let m = c.get_migration("default", "m", false).await.unwrap();
    assert_eq!(m["status"], "running");
    assert_eq!(m["strategy"]["active_is_new"], true);
    let il = c.get_interlay("default", "il").await.unwrap();
    assert_eq!(il["running"], true);
}

#[tokio::test]
async fn odd_bodies_on_every_route_never_500() {
    let f = fixture().await;
    f.admin(
        "POST",
        "/api/v1/interlays",
        Some(json!({"id":"i","endpoint":"old_redis","port":0})),
    )
    .await;
    f.admin("POST", "/api/v1/migrations", Some(json!({"id":"m"})))
        .await;
    let fields = [
        "id",
        "endpoint",
        "strategy",
        "data",
        "failure_handling",
        "bindings",
        "read_percentage",
        "reason",
        "force",
        "activate_new",
        "port",
        "listen",
        "settings",
        "url",
        "config",
        "pool",
        "migration_rules",
        "migration_strategy",
        "migration_data",
        "guard",
        "tests",
        "mode",
        "description",
        "listeners",
        "tls",
        "kind",
        "command",
    ];
    let odd = [
        json!(null),
        json!(-1),
        json!(1e308),
        json!("x"),
        json!(""),
        json!([]),
        json!({}),
        json!([{}]),
        json!({"type": null}),
        json!({"type": "canary", "read_percentage": 2}),
        json!(true),
        json!("\u{0000}"),
    ];
    let mut bodies: Vec<Value> = vec![json!(null), json!(0), json!("s"), json!([]), json!({})];
    for k in fields {
        for v in &odd {
            bodies.push(json!({ k: v.clone() }));
        }
    }
    let mut checked = 0;
    for (method, path, _, _) in ROUTES {
        if !matches!(*method, "POST" | "PATCH") || path.ends_with("/login") {
            continue;
        }
        let concrete = path
            .replace("{migration}", "m")
            .replace("{interlay}", "i")
            .replace("{api}", "a")
            .replace("{endpoint}", "old_redis")
            .replace("{template}", "t");
        for b in &bodies {
            let (s, v) = f.admin(method, &concrete, Some(b.clone())).await;
            assert!(
                s.as_u16() < 500 || s.as_u16() == 501,
                "{method} {concrete} {b} -> {s} {v}"
            );
            if !s.is_success() {
                assert!(
                    v["error"].is_string() && v["message"].is_string(),
                    "{method} {concrete} {b} -> {v}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 1000);
    let (s, v, _) = f
        .raw(
            Request::get("/api/v1/migrations/%FF%FE")
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(s.as_u16() == 400 || s.as_u16() == 404, "{s} {v}");
    assert!(v["error"].is_string(), "{v}");
}
