//! Templates and APIs run over HTTP against real Redis servers, and API migrations:
//! - templates: run (JSON replies of every shape), render, validation errors, no injection,
//!   Redis errors (400) and an unreachable endpoint (502), RBAC (read may render, not run);
//! - the seed's "Add API to Migration" example as written, against real templates;
//! - a canary API migration splits template reads at `read_percentage` (±5 points) and
//!   dual-writes template writes (both Redis servers hold the value); completion switches the
//!   API to the new bindings and rollback restores the old ones.

use godwit_tests::{auth_toml, AdminClient, ApiToken, GodwitFixture, RedisServer};
use redis::AsyncCommands;
use serde_json::{json, Value};

type Result = anyhow::Result<()>;

fn admin_token() -> ApiToken {
    ApiToken::new("ci", "default", "superadmin")
}
fn reader_token() -> ApiToken {
    ApiToken::new("dashboard", "default", "read")
}
fn writer_token() -> ApiToken {
    ApiToken::new("app", "default", "write")
}

struct Env {
    old: RedisServer,
    new: RedisServer,
    godwit: GodwitFixture,
    api: AdminClient,
}

impl Env {
    async fn start() -> anyhow::Result<Env> {
        let old = RedisServer::start()?;
        let new = RedisServer::start()?;
        let auth = auth_toml(
            &[admin_token(), reader_token(), writer_token()],
            "jwt_secret = \"an-e2e-test-secret-of-at-least-32-bytes\"",
            "",
        );
        let godwit = GodwitFixture::builder().extra_toml(&auth).start().await?;
        let api = AdminClient::new(godwit.admin_addr(), Some(&admin_token().token));
        for (id, url) in [("old_redis", old.url()), ("new_redis_cluster", new.url())] {
            api.post("/api/v1/endpoints", json!({"id": id, "url": url}))
                .await?
                .data();
        }
        Ok(Env {
            old,
            new,
            godwit,
            api,
        })
    }

    async fn template(&self, body: Value) -> anyhow::Result<()> {
        self.api.post("/api/v1/templates", body).await?.data();
        Ok(())
    }

    /// `get_user_cache`/`set_user_cache` on `endpoint` with the given suffix.
    async fn user_templates(&self, suffix: &str, endpoint: &str) -> anyhow::Result<()> {
        let id = json!({"name": "id", "type": "string", "required": true});
        self.template(
            json!({"id": format!("get_user_cache{suffix}"), "endpoint": endpoint,
            "kind": "read", "command": "GET", "args": ["user:{{id}}"], "fields": [id]}),
        )
        .await?;
        self.template(
            json!({"id": format!("set_user_cache{suffix}"), "endpoint": endpoint,
            "kind": "write", "command": "SET", "args": ["user:{{id}}", "{{value}}"],
            "fields": [id, {"name": "value", "type": "string", "required": false}]}),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_run_render_and_validate() -> Result {
    let env = Env::start().await?;
    let api = &env.api;
    env.template(
        json!({"id": "set_user", "endpoint": "old_redis", "kind": "write",
        "command": "HSET", "args": ["user:{{id}}", "name", "{{name}}", "age", "{{age}}"],
        "fields": [{"name": "id", "type": "integer", "required": true},
                   {"name": "name", "type": "string", "required": true},
                   {"name": "age", "type": "integer", "required": true}]}),
    )
    .await?;
    env.template(
        json!({"id": "get_user", "endpoint": "old_redis", "command": "HGETALL",
        "args": ["user:{{id}}"], "fields": [{"name": "id", "type": "integer", "required": true}]}),
    )
    .await?;
    env.template(
        json!({"id": "get", "endpoint": "old_redis", "command": "GET", "args": ["{{k}}"]}),
    )
    .await?;

    let r = api
        .post(
            "/api/v1/templates/set_user",
            json!({"id": 7, "name": "Ada", "age": 36}),
        )
        .await?;
    assert_eq!(r.data(), &json!(2));
    // RESP2 map replies are flat arrays of field/value
    let r = api
        .post("/api/v1/templates/get_user", json!({"id": 7}))
        .await?;
    assert_eq!(r.data(), &json!(["name", "Ada", "age", "36"]));
    // nil → null
    let r = api
        .post("/api/v1/templates/get", json!({"k": "missing"}))
        .await?;
    assert_eq!(r.data(), &Value::Null);

    // a field value is always one argument: no injection through spaces, CRLF or RESP
    let evil = "x\r\n*1\r\n$8\r\nFLUSHALL\r\n y";
    env.template(
        json!({"id": "set", "endpoint": "old_redis", "command": "SET",
        "args": ["k:{{k}}", "{{v}}"]}),
    )
    .await?;
    api.post("/api/v1/templates/set", json!({"k": evil, "v": evil}))
        .await?
        .data();
    let mut old = env.old.client().await?;
    let got: String = old.get(format!("k:{evil}")).await?;
    assert_eq!(got, evil);
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut old).await?;
    assert_eq!(n, 2, "nothing else ran");

    // render
    let r = api
        .post(
            "/api/v1/templates/set_user/render",
            json!({"id": 1, "name": "a b", "age": 2}),
        )
        .await?;
    assert_eq!(
        r.data(),
        &json!({"template": "set_user", "endpoint": "old_redis", "kind": "write", "command": "HSET",
                "args": ["user:1", "name", "a b", "age", "2"]})
    );

    // call-time validation
    api.post("/api/v1/templates/get_user", json!({}))
        .await?
        .assert_error(400, "Bad Request", "Required field 'id' is missing");
    api.post("/api/v1/templates/get_user", json!({"id": "7"}))
        .await?
        .assert_error(400, "Bad Request", "Field 'id' must be an integer");
    api.post("/api/v1/templates/get_user", json!({"id": 1, "x": 1}))
        .await?
        .assert_error(400, "Bad Request", "Unknown field 'x'");
    api.post("/api/v1/templates/nope", json!({}))
        .await?
        .assert_error(404, "Not Found", "Template 'nope' does not exist");
    // definition-time validation
    api.post(
        "/api/v1/templates",
        json!({"id": "bad", "endpoint": "old_redis", "command": "GET",
        "args": ["{{who}}"], "fields": [{"name": "id", "type": "string"}]}),
    )
    .await?
    .assert_error(
        400,
        "Bad Request",
        "Template arg 0 uses unknown field 'who' (declare it in fields)",
    );
    // a Redis error reply is the caller's problem: 400 with Redis's text
    api.post("/api/v1/templates/get", json!({"k": "user:7"}))
        .await?
        .assert_error(
            400,
            "Redis error",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        );

    // RBAC: read renders, does not run; write runs
    let reader = api.with_token(Some(&reader_token().token));
    reader
        .post("/api/v1/templates/get", json!({"k": "a"}))
        .await?
        .assert_error(
            403,
            "Forbidden",
            "Insufficient permissions to perform this action",
        );
    reader
        .post("/api/v1/templates/get/render", json!({"k": "a"}))
        .await?
        .data();
    let writer = api.with_token(Some(&writer_token().token));
    writer
        .post("/api/v1/templates/get", json!({"k": "a"}))
        .await?
        .data();

    // an unreachable endpoint is a 502
    let dead = RedisServer::start()?;
    api.post(
        "/api/v1/endpoints",
        json!({"id": "dead", "url": dead.url()}),
    )
    .await?
    .data();
    drop(dead);
    env.template(json!({"id": "dead_get", "endpoint": "dead", "command": "GET", "args": ["k"]}))
        .await?;
    let r = api.post("/api/v1/templates/dead_get", json!({})).await?;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.body["error"], "Bad Gateway");

    env.godwit.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_add_api_example_and_api_runs() -> Result {
    let env = Env::start().await?;
    let api = &env.api;
    env.user_templates("", "old_redis").await?;
    api.post(
        "/api/v1/apis",
        json!({"id": "user_cache_api", "bindings": [
        {"template": "set_user_cache", "fields": {"id": "user.id", "value": "user.name"}},
        {"template": "get_user_cache", "fields": [["id", "user.id"]]}]}),
    )
    .await?
    .data();
    let r = api
        .post(
            "/api/v1/apis/user_cache_api",
            json!({"user": {"id": "1", "name": "Ada"}}),
        )
        .await?;
    assert_eq!(
        r.data(),
        &json!({"set_user_cache": "OK", "get_user_cache": "Ada"})
    );

    api.post("/api/v1/migrations", json!({"id": "redis_migration_v2"}))
        .await?
        .data();
    // the seed's example, as written
    let r = api
        .curl(
            r#"curl http://{host}:8000/api/v1/migrations/redis_migration_v2/api/user_cache_api \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer $TOKEN" \
  -d '{
    "id": "user_cache_api",
    "bindings": [
      {
        "template": "get_user_cache",
        "fields": {}
      },
      {
        "template": "set_user_cache",
        "fields": {}
      }
    ]
  }'"#,
        )
        .await?;
    assert_eq!(
        r.body,
        json!({"status": "success", "data": "added Api to migration"})
    );
    let t = api
        .post("/api/v1/migrations/redis_migration_v2/test", json!(null))
        .await?;
    assert_eq!(t.data()["apis_tested"], 1, "{}", t.text);
    assert_eq!(t.data()["valid"], true, "{}", t.text);
    let m = api.get("/api/v1/migrations/redis_migration_v2").await?;
    assert_eq!(m.data()["apis"], json!(["user_cache_api"]));
    assert_eq!(m.data()["status"], "ready");
    env.godwit.shutdown().await;
    Ok(())
}

/// A canary API migration: reads split at the fraction, writes dual, then complete/rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_api_migration_splits_reads_and_dual_writes() -> Result {
    let env = Env::start().await?;
    let api = &env.api;
    env.user_templates("", "old_redis").await?;
    env.user_templates("_v2", "new_redis_cluster").await?;
    api.post(
        "/api/v1/apis",
        json!({"id": "users", "bindings": [
        {"template": "get_user_cache"}, {"template": "set_user_cache"}]}),
    )
    .await?
    .data();
    // `users` with no value: GET, then SET with the optional value left out → a Redis error,
    // so the reads run through `readers` (GET only) and the writes through `writers`.
    api.post(
        "/api/v1/apis",
        json!({"id": "readers", "bindings": [{"template": "get_user_cache"}]}),
    )
    .await?
    .data();
    api.post(
        "/api/v1/apis",
        json!({"id": "writers", "bindings": [{"template": "set_user_cache"}]}),
    )
    .await?
    .data();

    const N: usize = 2000;
    let mut old = env.old.client().await?;
    let mut new = env.new.client().await?;
    for i in 0..N {
        let _: () = old.set(format!("user:{i}"), "old").await?;
        let _: () = new.set(format!("user:{i}"), "new").await?;
    }
    api.post("/api/v1/migrations", json!({"id": "canary", "strategy": {"type": "canary",
        "read_percentage": 0.3, "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}}}))
        .await?
        .data();
    for a in ["readers", "writers", "users"] {
        let (get, set) = ("get_user_cache_v2", "set_user_cache_v2");
        let bindings = match a {
            "readers" => json!([{"template": get}]),
            "writers" => json!([{"template": set}]),
            _ => json!([{"template": get}, {"template": set}]),
        };
        api.post(
            &format!("/api/v1/migrations/canary/api/{a}"),
            json!({"id": a, "bindings": bindings}),
        )
        .await?
        .data();
    }
    api.post("/api/v1/migrations/canary/migrate", json!(null))
        .await?
        .data();

    // reads: sticky per key, ~30% to new
    let writer = api.with_token(Some(&writer_token().token));
    let mut from_new = 0;
    let mut calls = Vec::new();
    for i in 0..N {
        let w = writer.clone();
        calls.push(tokio::spawn(async move {
            w.post("/api/v1/apis/readers", json!({"id": i.to_string()}))
                .await
        }));
        if calls.len() == 16 || i == N - 1 {
            for h in std::mem::take(&mut calls) {
                let r = h.await??;
                match r.data()["get_user_cache"].as_str() {
                    Some("new") => from_new += 1,
                    Some("old") => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    let frac = from_new as f64 / N as f64;
    assert!((0.25..=0.35).contains(&frac), "read fraction to new {frac}");
    // sticky per key: the same key is served by the same side
    let a = writer
        .post("/api/v1/apis/readers", json!({"id": "5"}))
        .await?;
    let b = writer
        .post("/api/v1/apis/readers", json!({"id": "5"}))
        .await?;
    assert_eq!(a.data(), b.data());

    // writes: dual, old authoritative; both servers hold the value
    for i in 0..50 {
        let r = writer
            .post(
                "/api/v1/apis/writers",
                json!({"id": format!("w{i}"), "value": format!("v{i}")}),
            )
            .await?;
        assert_eq!(r.data(), &json!({"set_user_cache": "OK"}));
    }
    for i in 0..50 {
        let o: Option<String> = old.get(format!("user:w{i}")).await?;
        let n: Option<String> = new.get(format!("user:w{i}")).await?;
        assert_eq!(o.as_deref(), Some(format!("v{i}").as_str()));
        assert_eq!(n, o);
    }
    let st = api.get("/api/v1/migrations/canary/status").await?;
    let t = &st.data()["api_traffic"];
    assert_eq!(t["dual_writes"], 50, "{t}");
    assert_eq!(
        t["reads_new"].as_u64().unwrap() + t["reads_old"].as_u64().unwrap(),
        N as u64 + 2
    );

    // completion: the API runs the new bindings (new side only)
    api.post("/api/v1/migrations/canary/complete", json!({"force": true}))
        .await?
        .data();
    let view = api.get("/api/v1/apis/users").await?;
    assert_eq!(
        view.data()["bindings"][0]["template"],
        "get_user_cache_v2",
        "{}",
        view.text
    );
    let r = writer
        .post("/api/v1/apis/readers", json!({"id": "1"}))
        .await?;
    assert_eq!(r.data(), &json!({"get_user_cache_v2": "new"}));
    // rollback after completion: the old bindings come back
    api.post(
        "/api/v1/migrations/canary/rollback",
        json!({"reason": "test"}),
    )
    .await?
    .data();
    let r = writer
        .post("/api/v1/apis/readers", json!({"id": "1"}))
        .await?;
    assert_eq!(r.data(), &json!({"get_user_cache": "old"}));
    assert_eq!(
        api.get("/api/v1/apis/users").await?.data()["bindings"][0]["template"],
        "get_user_cache"
    );
    env.godwit.shutdown().await;
    Ok(())
}
