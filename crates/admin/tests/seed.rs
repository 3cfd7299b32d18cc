//! Every curl example of the seed (migrations-api.md), run as written, and every error example
//! with its exact text and status.

mod support;

use serde_json::json;
use support::{assert_err, fixture, Fixture};

async fn setup_members(f: &Fixture) {
    let r = f
        .admin(
            "POST",
            "/api/v1/interlays",
            Some(json!({"id":"cache_interlay","endpoint":"old_redis","port":0})),
        )
        .await;
    assert_eq!(r.0.as_u16(), 201, "{:?}", r.1);
    for t in ["get_user_cache", "set_user_cache"] {
        let r = f.admin("POST", "/api/v1/templates", Some(json!({"id":t,"endpoint":"new_redis_cluster","kind":"read","command":"GET","args":["user:{{id}}"]}))).await;
        assert_eq!(r.1["data"], "Template created successfully");
    }
    let r = f
        .admin(
            "POST",
            "/api/v1/apis",
            Some(json!({"id":"user_cache_api","bindings":[{"template":"get_user_cache"}]})),
        )
        .await;
    assert_eq!(r.0.as_u16(), 200, "{:?}", r.1);
}

#[tokio::test]
async fn seed_curl_examples() {
    let f = fixture().await;
    setup_members(&f).await;
    let r = f.admin("POST", "/api/v1/migrations", Some(json!({
        "id": "test_migration", "description": "Redis migration",
        "strategy": {"type": "big_bang", "durability": true}, "data": null, "failure_handling": null}))).await;
    assert_eq!(r.0.as_u16(), 200);
    assert_eq!(r.1["status"], "success");
    assert_eq!(r.1["data"]["id"], "test_migration");
    let r = f.admin("POST", "/api/v1/migrations", Some(json!({
        "id": "redis_migration_v2", "description": "Migrate to new Redis cluster",
        "strategy": {"type": "canary", "read_percentage": 0.05, "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}},
        "data": {"type": "scan", "replace": "replace"}, "failure_handling": "rollback_all"}))).await;
    assert_eq!(r.1["status"], "success");

    let r = f.admin("GET", "/api/v1/migrations", None).await;
    let list = r.1["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let item = list
        .iter()
        .find(|m| m["id"] == "redis_migration_v2")
        .unwrap();
    for k in [
        "id",
        "uuid",
        "description",
        "status",
        "strategy",
        "created_at",
        "updated_at",
    ] {
        assert!(item.get(k).is_some(), "list view lacks {k}");
    }
    assert_eq!(item["status"], "pending");
    assert!(item.get("data").is_none() && item.get("apis").is_none());
    assert_eq!(
        item["strategy"],
        json!({"type":"canary","read_percentage":0.05,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}})
    );

    let req = axum::http::Request::get("/api/v1/migrations")
        .header("authorization", format!("Bearer {}", support::ADMIN))
        .header("X-Eden-Verbose", "true")
        .body(axum::body::Body::empty())
        .unwrap();
    let (_, v, _) = f.raw(req).await;
    assert!(
        v["data"][0].get("failure_handling").is_some(),
        "verbose list gives full objects"
    );

    let r = f
        .admin("GET", "/api/v1/migrations/redis_migration_v2", None)
        .await;
    let m = &r.1["data"];
    assert_eq!(m["data"], json!({"type":"scan","replace":"replace"}));
    assert_eq!(m["failure_handling"], "rollback_all");
    assert_eq!(m["apis"], json!([]));

    let r = f.admin("POST", "/api/v1/migrations/redis_migration_v2/api/user_cache_api", Some(json!({
        "id": "user_cache_api", "bindings": [{"template": "get_user_cache", "fields": {}}, {"template": "set_user_cache", "fields": {}}]}))).await;
    assert_eq!(
        r.1,
        json!({"status":"success","data":"added Api to migration"})
    );
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/redis_migration_v2/interlay/cache_interlay",
            Some(json!({"endpoint": "new_redis_cluster"})),
        )
        .await;
    assert_eq!(
        r.1,
        json!({"status":"success","data":"added Interlay to migration"})
    );

    let req = axum::http::Request::get("/api/v1/migrations/redis_migration_v2")
        .header("authorization", format!("Bearer {}", support::ADMIN))
        .header("X-Eden-Verbose", "true")
        .body(axum::body::Body::empty())
        .unwrap();
    let (_, v, _) = f.raw(req).await;
    assert_eq!(v["data"]["status"], "ready");
    assert_eq!(v["data"]["apis"][0]["id"], "user_cache_api");
    assert!(v["data"]["apis"][0]["uuid"].is_string());
    assert!(v["data"]["apis"][0]["migration"].is_object());

    let r = f
        .admin("POST", "/api/v1/migrations/redis_migration_v2/test", None)
        .await;
    assert_eq!(r.1["data"]["valid"], true, "{:?}", r.1);
    assert_eq!(r.1["data"]["apis_tested"], 1);
    assert_eq!(r.1["data"]["interlays_tested"], 1);
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/redis_migration_v2/migrate",
            None,
        )
        .await;
    assert_eq!(
        r.1,
        json!({"status":"success","data":"migration commit completed"})
    );
    let r = f
        .admin("GET", "/api/v1/migrations/redis_migration_v2", None)
        .await;
    assert_eq!(r.1["data"]["status"], "running");
    assert_eq!(r.1["data"]["apis"], json!(["user_cache_api"]));
}

#[tokio::test]
async fn seed_error_examples() {
    let f = fixture().await;
    setup_members(&f).await;
    let r = f
        .admin("GET", "/api/v1/migrations/redis_migration_v2", None)
        .await;
    assert_err(
        &r,
        404,
        "Not found",
        "Migration 'redis_migration_v2' does not exist",
    );

    let r = f
        .admin(
            "POST",
            "/api/v1/migrations",
            Some(json!({"id":"x","strategy":{"type":"quantum_leap"}})),
        )
        .await;
    assert_err(
        &r,
        400,
        "Bad Request",
        "Migration strategy not yet implemented",
    );

    f.admin("POST", "/api/v1/migrations", Some(json!({"id":"m1"})))
        .await;
    f.admin("POST", "/api/v1/migrations", Some(json!({"id":"m2"})))
        .await;
    let r = f
        .admin("POST", "/api/v1/migrations/m2/rollback", None)
        .await;
    assert_err(
        &r,
        409,
        "Migration error",
        "Cannot set RollingBack migration in status: Pending",
    );

    let body = json!({"id":"user_cache_api","bindings":[{"template":"get_user_cache"}]});
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/m1/api/user_cache_api",
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.0.as_u16(), 200);
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/m2/api/user_cache_api",
            Some(body),
        )
        .await;
    assert_err(
        &r,
        409,
        "Migration error",
        "Api Schema already has an active migration",
    );

    let body = json!({"endpoint":"new_redis_cluster"});
    assert_eq!(
        f.admin(
            "POST",
            "/api/v1/migrations/m1/interlay/cache_interlay",
            Some(body.clone())
        )
        .await
        .0
        .as_u16(),
        200
    );
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/m2/interlay/cache_interlay",
            Some(body),
        )
        .await;
    assert_err(
        &r,
        409,
        "Migration error",
        "Interlay Schema already has an active migration",
    );

    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/m1/interlay/nope",
            Some(json!({"endpoint":"new_redis_cluster"})),
        )
        .await;
    assert_err(&r, 404, "Not Found", "Interlay 'nope' does not exist");
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/m1/api/user_cache_api",
            Some(json!({"bindings":[{"template":"ghost"}]})),
        )
        .await;
    assert_err(&r, 400, "Bad Request", "Template 'ghost' not found");
}

#[tokio::test]
async fn eden_pascal_case_and_lifecycle() {
    let f = fixture().await;
    setup_members(&f).await;
    let r = f.admin("POST", "/api/v1/migrations", Some(json!({"id":"c","strategy":{"type":"canary","read_percentage":0.05,
        "write_mode":{"mode":"dual_write","policy":"OldAuthoritative"}},"data":{"Scan":{"replace":"Replace"}},"failure_handling":null,"tests":[]}))).await;
    assert_eq!(r.0.as_u16(), 200, "{:?}", r.1);
    let r = f.admin("POST", "/api/v1/migrations/c/interlay/cache_interlay", Some(json!({"id":"relay","endpoint":"new_redis_cluster",
        "migration_strategy":{"type":"canary","read_percentage":0.05},"migration_data":{"Scan":{"replace":"None"}},
        "migration_rules":{"traffic":{"read":"Old","write":{"Replicated":{"policy":"OldAuthoritative"}}},"error":"DoNothing","rollback":"Ignore",
        "completion":{"milestone":"Immediate","require_manual_approval":false}}}))).await;
    assert_eq!(r.0.as_u16(), 200, "{:?}", r.1);
    f.admin("POST", "/api/v1/migrations/c/migrate", None).await;
    let r = f
        .admin(
            "PATCH",
            "/api/v1/migrations/c/traffic",
            Some(json!({"read_percentage":0.5})),
        )
        .await;
    assert_err(
        &r,
        400,
        "Bad Request",
        "Cannot change read_percentage by more than 0.25 per update (current 0.05, requested 0.50)",
    );
    let r = f
        .admin(
            "PATCH",
            "/api/v1/migrations/c/traffic",
            Some(json!({"read_percentage":0.3,"reason":"ramp"})),
        )
        .await;
    assert_eq!(r.1["data"]["new_percentage"], 0.3);
    let r = f
        .admin(
            "PATCH",
            "/api/v1/migrations/c/toggle",
            Some(json!({"activate_new":true})),
        )
        .await;
    assert_err(
        &r,
        400,
        "Bad Request",
        "toggle applies only to blue_green migrations",
    );
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/c/pause",
            Some(json!({"reason":"lunch"})),
        )
        .await;
    assert_eq!(r.1["data"]["status"], "paused");
    let r = f.admin("POST", "/api/v1/migrations/c/pause", None).await;
    assert_err(
        &r,
        409,
        "Migration error",
        "Cannot set Paused migration in status: Paused",
    );
    f.admin("POST", "/api/v1/migrations/c/resume", None).await;
    let r = f.admin("GET", "/api/v1/migrations/c/status", None).await;
    assert_eq!(r.1["data"]["ready_for_cutover"], false);
    assert_eq!(r.1["data"]["source"]["health"], "healthy");
    let r = f
        .admin("POST", "/api/v1/migrations/c/complete", Some(json!({})))
        .await;
    assert_eq!(r.0.as_u16(), 409);
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/c/verify",
            Some(json!({"mode":"sample"})),
        )
        .await;
    assert_eq!(r.0.as_u16(), 501);
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/c/complete",
            Some(json!({"force":true})),
        )
        .await;
    assert_eq!(r.1["data"]["status"], "completed");
    let r = f
        .admin("GET", "/api/v1/interlays/cache_interlay", None)
        .await;
    assert_eq!(r.1["data"]["endpoint"], "new_redis_cluster");
    let r = f
        .admin(
            "POST",
            "/api/v1/migrations/c/interlay/cache_interlay/rollback",
            Some(json!({"reason":"nope"})),
        )
        .await;
    assert_eq!(r.1["data"]["interlay_id"], "cache_interlay", "{:?}", r.1);
    let r = f
        .admin("GET", "/api/v1/interlays/cache_interlay", None)
        .await;
    assert_eq!(r.1["data"]["endpoint"], "old_redis");
    let r = f.admin("DELETE", "/api/v1/migrations/c", None).await;
    assert_eq!(r.1["data"], "success");
}

#[allow(dead_code)]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let dp: std::sync::Arc<dyn godwit_control::DataPlane> =
            std::sync::Arc::new(godwit_control::NoopDataPlane);
        let open =
            godwit_control::Control::open(godwit_control::ControlConfig::new(dir.path()), dp);
        assert_send(&open);
        let control = open.await.unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fut = godwit_admin::serve(
            l,
            control,
            godwit_admin::AuthConfig::default(),
            std::sync::Arc::new(String::new),
        );
        assert_send(&fut);
    });
}

#[tokio::test]
async fn serve_answers_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let control = godwit_control::Control::open(
        godwit_control::ControlConfig::new(dir.path()),
        std::sync::Arc::new(godwit_control::NoopDataPlane),
    )
    .await
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(godwit_admin::serve(
        l,
        control,
        godwit_admin::AuthConfig::default(),
        std::sync::Arc::new(|| "m 1\n".to_string()),
    ));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("m 1\n"), "{out}");
    server.abort();
}
