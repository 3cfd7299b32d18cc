//! The admin API end to end: a real godwit (in-process, `Godwit::start`) in front of a real
//! Redis pair ("old" and "new"), with API tokens and a login user in its `[auth]` config.
//!
//! - every curl example of the seed (migrations-api.md), run as written (same paths, bodies and
//!   headers), gets the seed's response shape; every error example reproduces its exact text;
//! - auth: no token 401, a read-only token 403 on changes, another organization's objects 404,
//!   login with Basic + `X-Org-Id`;
//! - a malformed-body sweep over every POST/PATCH route of the OpenAPI document: 4xx with the
//!   envelope, never a 500;
//! - an interlay created through the API really listens and proxies; a migration taken through
//!   test → migrate → traffic ramp → complete re-points it to the new Redis (existing client
//!   connections included), and rollback points it back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use godwit_tests::{
    auth_toml, AdminClient, ApiToken, GodwitFixture, RedisServer, Reply, RespClient,
};
use serde_json::{json, Value};

type Result = anyhow::Result<()>;

/// The `default` organization's superadmin token.
fn admin_token() -> ApiToken {
    ApiToken::new("ci", "default", "superadmin")
}
/// A read-only token in `default`.
fn reader_token() -> ApiToken {
    ApiToken::new("dashboard", "default", "read")
}
/// An admin of another organization.
fn other_org_token() -> ApiToken {
    ApiToken::new("ops", "acme", "admin")
}

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

/// An argon2id PHC string for [`PASSWORD`], with a small cost (debug builds verify slowly).
fn password_hash() -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(1024, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::from_b64("Z29kd2l0LXRlc3Qtc2FsdA").unwrap();
    a.hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// Two Redis servers, godwit with tokens and a user, endpoints `old_redis` and
/// `new_redis_cluster` created through the API.
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
        let users = format!(
            "\n[[auth.users]]\nname = \"{USER}\"\norg = \"default\"\nrole = \"admin\"\npassword_hash = \"{}\"\n",
            password_hash()
        );
        let auth = auth_toml(
            &[admin_token(), reader_token(), other_org_token()],
            "jwt_secret = \"an-e2e-test-secret-of-at-least-32-bytes\"",
            &users,
        );
        let godwit = GodwitFixture::builder().extra_toml(&auth).start().await?;
        let api = AdminClient::new(godwit.admin_addr(), Some(&admin_token().token));
        for (id, url) in [("old_redis", old.url()), ("new_redis_cluster", new.url())] {
            let r = api
                .post("/api/v1/endpoints", json!({"id": id, "url": url}))
                .await?;
            assert_eq!(r.data()["id"], id);
        }
        Ok(Env {
            old,
            new,
            godwit,
            api,
        })
    }

    /// Creates interlay `id` on 127.0.0.1 in front of `endpoint`; returns its address.
    async fn interlay(&self, id: &str, endpoint: &str) -> anyhow::Result<SocketAddr> {
        let r = self
            .api
            .post(
                "/api/v1/interlays",
                json!({"id": id, "endpoint": endpoint, "listen": "127.0.0.1:0"}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.data()["running"], true);
        address(r.data())
    }

    async fn shutdown(self) {
        self.godwit.shutdown().await;
    }
}

/// The `address` of an interlay view, with an unspecified host replaced by loopback.
fn address(view: &Value) -> anyhow::Result<SocketAddr> {
    let a: SocketAddr = view["address"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no address in {view}"))?
        .parse()?;
    Ok(if a.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], a.port()))
    } else {
        a
    })
}

async fn get(c: &mut RespClient, key: &str) -> anyhow::Result<Reply> {
    c.cmd(&["GET", key]).await
}

/// Waits until nothing accepts connections on `addr` any more.
async fn wait_refused(addr: SocketAddr) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{addr} still accepts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// The seed's curl examples, verbatim.
const CREATE_BIG_BANG: &str = r#"curl http://{host}:8000/api/v1/migrations \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer $TOKEN" \
  -d '{
    "id": "test_migration",
    "description": "Redis migration",
    "strategy": {
      "type": "big_bang",
      "durability": true
    },
    "data": null,
    "failure_handling": null
  }'"#;
const CREATE_CANARY: &str = r#"curl http://{host}:8000/api/v1/migrations \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer $TOKEN" \
  -d '{
    "id": "redis_migration_v2",
    "description": "Migrate to new Redis cluster",
    "strategy": {
      "type": "canary",
      "read_percentage": 0.05,
      "write_mode": {
        "mode": "dual_write",
        "policy": "old_authoritative"
      }
    },
    "data": {
      "type": "scan",
      "replace": "replace"
    },
    "failure_handling": "rollback_all"
  }'"#;
const LIST: &str = r#"curl http://{host}:8000/api/v1/migrations \
  -H "Authorization: Bearer $TOKEN""#;
const LIST_VERBOSE: &str = r#"curl http://{host}:8000/api/v1/migrations \
  -H "Authorization: Bearer $TOKEN" \
  -H "X-Eden-Verbose: true""#;
const GET: &str = r#"curl http://{host}:8000/api/v1/migrations/redis_migration_v2 \
  -H "Authorization: Bearer $TOKEN""#;
const ADD_API: &str = r#"curl http://{host}:8000/api/v1/migrations/redis_migration_v2/api/user_cache_api \
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
  }'"#;
const ADD_INTERLAY: &str = r#"curl http://{host}:8000/api/v1/migrations/redis_migration_v2/interlay/cache_interlay \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer $TOKEN" \
  -d '{
    "endpoint": "new_redis_cluster"
  }'"#;
const TEST: &str = r#"curl http://{host}:8000/api/v1/migrations/redis_migration_v2/test \
  -H "Authorization: Bearer $TOKEN" \
  -X POST"#;
const MIGRATE: &str = r#"curl http://{host}:8000/api/v1/migrations/redis_migration_v2/migrate \
  -H "Authorization: Bearer $TOKEN" \
  -X POST"#;

/// The members the seed's examples name: interlay `cache_interlay` (on old), templates
/// `get_user_cache`/`set_user_cache`, API `user_cache_api`.
async fn seed_members(env: &Env) -> anyhow::Result<SocketAddr> {
    let addr = env.interlay("cache_interlay", "old_redis").await?;
    for (id, kind, command, args) in [
        ("get_user_cache", "read", "GET", json!(["user:{{id}}"])),
        (
            "set_user_cache",
            "write",
            "SET",
            json!(["user:{{id}}", "{{value}}"]),
        ),
    ] {
        let r = env
            .api
            .post(
                "/api/v1/templates",
                json!({"id": id, "endpoint": "old_redis",
            "kind": kind, "command": command, "args": args,
            "fields": [{"name": "id", "type": "string", "required": true},
                       {"name": "value", "type": "string", "required": false}]}),
            )
            .await?;
        r.data();
    }
    let r = env
        .api
        .post(
            "/api/v1/apis",
            json!({"id": "user_cache_api", "bindings": [{"template": "get_user_cache"}]}),
        )
        .await?;
    r.data();
    Ok(addr)
}

/// A string that looks like RFC 3339 UTC (`2024-01-15T10:30:00Z`, fractions allowed).
fn is_timestamp(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
    })
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| {
                matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
            })
    })
}

/// Asserts the success envelope has exactly `status` and `data`.
#[track_caller]
fn assert_envelope(body: &Value) {
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_curl_examples_as_written() -> Result {
    let env = Env::start().await?;
    let il = seed_members(&env).await?;
    let api = &env.api;

    // Create (big bang, then canary): {"status":"success","data":{...}}.
    for (example, id) in [
        (CREATE_BIG_BANG, "test_migration"),
        (CREATE_CANARY, "redis_migration_v2"),
    ] {
        let r = api.curl(example).await?;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_envelope(&r.body);
        assert!(r.data().is_object(), "{}", r.text);
        assert_eq!(r.data()["id"], id);
    }

    // List: the seed's list items (no full view), pending.
    let r = api.curl(LIST).await?;
    assert_envelope(&r.body);
    let list = r.data().as_array().expect("list is an array");
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
        assert!(item.get(k).is_some(), "list item lacks {k}: {item}");
    }
    assert!(
        item.get("data").is_none() && item.get("apis").is_none(),
        "{item}"
    );
    assert!(
        is_uuid(&item["uuid"])
            && is_timestamp(&item["created_at"])
            && is_timestamp(&item["updated_at"]),
        "{item}"
    );
    assert_eq!(item["description"], "Migrate to new Redis cluster");
    assert_eq!(item["status"], "pending");
    assert_eq!(item["strategy"]["type"], "canary");
    assert_eq!(item["strategy"]["read_percentage"], 0.05);
    let big_bang = list.iter().find(|m| m["id"] == "test_migration").unwrap();
    assert_eq!(
        big_bang["strategy"],
        json!({"type": "big_bang", "durability": true})
    );

    // Verbose list: full objects.
    let r = api.curl(LIST_VERBOSE).await?;
    let full = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "redis_migration_v2")
        .unwrap()
        .clone();
    for k in ["data", "failure_handling", "apis"] {
        assert!(full.get(k).is_some(), "verbose list item lacks {k}: {full}");
    }

    // Get (pending for now): the full view.
    let r = api.curl(GET).await?;
    assert_envelope(&r.body);
    let m = r.data();
    for k in [
        "id",
        "uuid",
        "description",
        "status",
        "strategy",
        "data",
        "failure_handling",
        "apis",
        "created_at",
        "updated_at",
    ] {
        assert!(m.get(k).is_some(), "get lacks {k}: {m}");
    }
    assert_eq!(m["data"], json!({"type": "scan", "replace": "replace"}));
    assert_eq!(m["failure_handling"], "rollback_all");
    assert_eq!(m["apis"], json!([]));

    // Add API, add interlay: the seed's exact bodies.
    let r = api.curl(ADD_API).await?;
    assert_eq!(
        r.body,
        json!({"status": "success", "data": "added Api to migration"}),
        "{}",
        r.text
    );
    let r = api.curl(ADD_INTERLAY).await?;
    assert_eq!(
        r.body,
        json!({"status": "success", "data": "added Interlay to migration"}),
        "{}",
        r.text
    );

    // Test: probes both Redis servers for real.
    let r = api.curl(TEST).await?;
    assert_envelope(&r.body);
    let t = r.data();
    assert_eq!(t["valid"], true, "{t}");
    assert_eq!(
        (t["apis_tested"].as_u64(), t["interlays_tested"].as_u64()),
        (Some(1), Some(1)),
        "{t}"
    );
    assert_eq!(
        t["endpoints"]["new_redis_cluster"]["reachable"], true,
        "{t}"
    );

    // Execute.
    let r = api.curl(MIGRATE).await?;
    assert_eq!(
        r.body,
        json!({"status": "success", "data": "migration commit completed"}),
        "{}",
        r.text
    );

    // Get again: running, the seed's full object.
    let r = api.curl(GET).await?;
    let m = r.data();
    assert_eq!(m["status"], "running");
    assert_eq!(
        m["strategy"],
        json!({"type": "canary", "read_percentage": 0.05,
               "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}})
    );
    assert_eq!(m["apis"], json!(["user_cache_api"]));
    assert!(is_timestamp(&m["updated_at"]));

    // Verbose get: full API schemas with their migration.
    let r = api
        .request(
            "GET",
            "/api/v1/migrations/redis_migration_v2",
            &[("X-Eden-Verbose", "true")],
            None,
        )
        .await?;
    let a = &r.data()["apis"][0];
    assert_eq!(a["id"], "user_cache_api");
    assert!(is_uuid(&a["uuid"]) && a["migration"].is_object(), "{a}");

    // The interlay held by the running migration still serves its clients.
    let mut c = RespClient::connect(il).await?;
    c.ok(&["SET", "user:1", "v1"]).await?;
    assert_eq!(get(&mut c, "user:1").await?, Reply::bulk("v1"));
    env.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_error_examples_exact() -> Result {
    let env = Env::start().await?;
    seed_members(&env).await?;
    let api = &env.api;

    // Migration Not Found: the seed's GET example before the migration exists.
    api.curl(GET).await?.assert_error(
        404,
        "Not found",
        "Migration 'redis_migration_v2' does not exist",
    );
    api.request(
        "POST",
        "/api/v1/migrations/redis_migration_v2/migrate",
        &[],
        None,
    )
    .await?
    .assert_error(
        404,
        "Not found",
        "Migration 'redis_migration_v2' does not exist",
    );

    // Invalid Strategy.
    let r = api
        .post(
            "/api/v1/migrations",
            json!({"id": "x", "strategy": {"type": "quantum_leap"}}),
        )
        .await?;
    r.assert_error(400, "Bad Request", "Migration strategy not yet implemented");
    api.get("/api/v1/migrations/x").await?.assert_error(
        404,
        "Not found",
        "Migration 'x' does not exist",
    );

    // Invalid Status Transition: rollback of a pending migration.
    api.curl(CREATE_CANARY).await?.data();
    let r = api
        .request(
            "POST",
            "/api/v1/migrations/redis_migration_v2/rollback",
            &[],
            None,
        )
        .await?;
    r.assert_error(
        409,
        "Migration error",
        "Cannot set RollingBack migration in status: Pending",
    );

    // API / Interlay Already Has Migration.
    api.curl(ADD_API).await?.data();
    api.curl(ADD_INTERLAY).await?.data();
    api.curl(CREATE_BIG_BANG).await?.data();
    let r = api
        .post(
            "/api/v1/migrations/test_migration/api/user_cache_api",
            json!({"id": "user_cache_api", "bindings": [{"template": "get_user_cache", "fields": {}}]}),
        )
        .await?;
    r.assert_error(
        409,
        "Migration error",
        "Api Schema already has an active migration",
    );
    let r = api
        .post(
            "/api/v1/migrations/test_migration/interlay/cache_interlay",
            json!({"endpoint": "new_redis_cluster"}),
        )
        .await?;
    r.assert_error(
        409,
        "Migration error",
        "Interlay Schema already has an active migration",
    );
    // Still held once the first one runs.
    api.curl(MIGRATE).await?.data();
    let r = api
        .post(
            "/api/v1/migrations/test_migration/interlay/cache_interlay",
            json!({"endpoint": "new_redis_cluster"}),
        )
        .await?;
    r.assert_error(
        409,
        "Migration error",
        "Interlay Schema already has an active migration",
    );
    // The refused attempts changed nothing.
    assert_eq!(
        api.get("/api/v1/migrations/test_migration").await?.data()["status"],
        "pending"
    );
    env.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_roles_and_organizations() -> Result {
    let env = Env::start().await?;
    let il = env.interlay("cache_interlay", "old_redis").await?;
    env.api.curl(CREATE_CANARY).await?.data();
    env.api.curl(ADD_INTERLAY).await?.data();
    let anon = env.api.with_token(None);

    // No token: 401 with the envelope and a challenge, on every route but health and metrics.
    let doc = env.api.get("/api/v1/openapi.json").await?.body;
    let mut routes = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            let concrete = concrete_path(path);
            let r = anon
                .request(&method.to_uppercase(), &concrete, &[], None)
                .await?;
            if ["/healthz", "/readyz", "/metrics"].contains(&path.as_str()) {
                assert_eq!(r.status, 200, "{path}");
            } else if path.ends_with("/auth/login") {
                r.assert_error(401, "Unauthorized", "Invalid credentials");
            } else {
                r.assert_error(401, "Unauthorized", "Missing bearer token");
                assert_eq!(
                    r.www_authenticate.as_deref(),
                    Some("Bearer"),
                    "{method} {path}"
                );
            }
            routes += 1;
        }
    }
    assert!(routes > 40, "{routes}");
    env.api
        .with_token(Some("not-a-token"))
        .get("/api/v1/migrations")
        .await?
        .assert_error(401, "Unauthorized", "Invalid token format");
    let r = anon
        .request(
            "GET",
            "/api/v1/migrations",
            &[("Authorization", "Basic YTpi")],
            None,
        )
        .await?;
    r.assert_error(401, "Unauthorized", "Missing bearer token");

    // Read-only: may list, may not change anything (403, nothing changed).
    let reader = env.api.with_token(Some(&reader_token().token));
    assert_eq!(reader.curl(LIST).await?.data().as_array().unwrap().len(), 1);
    let forbidden = "Insufficient permissions to perform this action";
    reader
        .curl(MIGRATE)
        .await?
        .assert_error(403, "Forbidden", forbidden);
    reader
        .curl(CREATE_BIG_BANG)
        .await?
        .assert_error(403, "Forbidden", forbidden);
    reader
        .curl(GET)
        .await?
        .assert_error(403, "Forbidden", forbidden);
    reader
        .post(
            "/api/v1/interlays",
            json!({"id": "x", "endpoint": "old_redis", "listen": "127.0.0.1:0"}),
        )
        .await?
        .assert_error(403, "Forbidden", forbidden);
    assert_eq!(
        reader.get("/api/v1/interlays/cache_interlay").await?.data()["id"],
        "cache_interlay"
    );
    assert_eq!(env.api.curl(GET).await?.data()["status"], "ready");

    // Another organization: 404 for every object of `default`, an empty list.
    let other = env.api.with_token(Some(&other_org_token().token));
    other.curl(GET).await?.assert_error(
        404,
        "Not found",
        "Migration 'redis_migration_v2' does not exist",
    );
    other.curl(MIGRATE).await?.assert_error(
        404,
        "Not found",
        "Migration 'redis_migration_v2' does not exist",
    );
    assert_eq!(other.curl(LIST).await?.data(), &json!([]));
    other
        .get("/api/v1/interlays/cache_interlay")
        .await?
        .assert_error(404, "Not Found", "Interlay 'cache_interlay' does not exist");
    other
        .get("/api/v1/endpoints/old_redis")
        .await?
        .assert_error(404, "Not Found", "Endpoint 'old_redis' does not exist");
    other
        .request("POST", "/api/v1/interlays/cache_interlay/stop", &[], None)
        .await?
        .assert_error(404, "Not Found", "Interlay 'cache_interlay' does not exist");
    // ...nor can it use them inside its own objects.
    other
        .post("/api/v1/migrations", json!({"id": "theirs"}))
        .await?
        .data();
    other
        .post(
            "/api/v1/migrations/theirs/interlay/cache_interlay",
            json!({"endpoint": "new_redis_cluster"}),
        )
        .await?
        .assert_error(404, "Not Found", "Interlay 'cache_interlay' does not exist");
    other
        .post(
            "/api/v1/interlays",
            json!({"id": "steal", "endpoint": "old_redis", "listen": "127.0.0.1:0"}),
        )
        .await?
        .assert_error(404, "Not Found", "Endpoint 'old_redis' does not exist");
    assert_eq!(
        env.api.curl(LIST).await?.data().as_array().unwrap().len(),
        1,
        "theirs is not ours"
    );
    // The interlay kept serving through all of it.
    let mut c = RespClient::connect(il).await?;
    assert_eq!(c.cmd(&["PING"]).await?, Reply::simple("PONG"));

    // Login: HTTP Basic + X-Org-Id gives a JWT that works as a bearer token.
    use base64::Engine;
    let basic = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    let r = anon
        .request(
            "POST",
            "/api/v1/auth/login",
            &[
                ("Authorization", &basic(&format!("{USER}:{PASSWORD}"))),
                ("X-Org-Id", "default"),
            ],
            None,
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let jwt = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(r.data()["token_type"], "Bearer");
    let user = env.api.with_token(Some(&jwt));
    assert_eq!(user.curl(GET).await?.data()["id"], "redis_migration_v2");
    let r = anon
        .request(
            "POST",
            "/api/v1/auth/login",
            &[
                ("Authorization", &basic(&format!("{USER}:wrong"))),
                ("X-Org-Id", "default"),
            ],
            None,
        )
        .await?;
    r.assert_error(401, "Unauthorized", "Invalid credentials");
    let r = anon
        .request(
            "POST",
            "/api/v1/auth/login",
            &[
                ("Authorization", &basic(&format!("{USER}:{PASSWORD}"))),
                ("X-Org-Id", "acme"),
            ],
            None,
        )
        .await?;
    r.assert_error(401, "Unauthorized", "Invalid credentials");
    env.shutdown().await;
    Ok(())
}

/// A route template with every parameter replaced by the sweep's objects.
fn concrete_path(path: &str) -> String {
    path.replace("{migration}", "sweep_m")
        .replace("{interlay}", "sweep_il")
        .replace("{api}", "sweep_api")
        .replace("{endpoint}", "old_redis")
        .replace("{template}", "sweep_t")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_on_every_post_and_patch_route() -> Result {
    let env = Env::start().await?;
    let api = &env.api;
    let serving = env.interlay("serving", "old_redis").await?;
    env.interlay("sweep_il", "old_redis").await?;
    api.post(
        "/api/v1/templates",
        json!({"id": "sweep_t", "endpoint": "old_redis", "command": "GET"}),
    )
    .await?
    .data();
    api.post(
        "/api/v1/apis",
        json!({"id": "sweep_api", "bindings": [{"template": "sweep_t"}]}),
    )
    .await?
    .data();
    api.post("/api/v1/migrations", json!({"id": "sweep_m"}))
        .await?
        .data();
    api.post(
        "/api/v1/migrations/sweep_m/interlay/sweep_il",
        json!({"endpoint": "new_redis_cluster"}),
    )
    .await?
    .data();

    let doc = api.get("/api/v1/openapi.json").await?.body;
    let mut routes = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            if matches!(method.as_str(), "post" | "patch") {
                routes.push((method.to_uppercase(), concrete_path(path)));
            }
        }
    }
    assert!(routes.len() >= 25, "{routes:?}");

    let json_ct = Some("application/json");
    // Bodies no route may accept: each must be a 4xx envelope and change nothing.
    let malformed: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        ("not json", json_ct, b"{not json".to_vec()),
        ("truncated", json_ct, br#"{"id": "x""#.to_vec()),
        ("trailing comma", json_ct, br#"{"id": "x",}"#.to_vec()),
        ("two documents", json_ct, br#"{"a":1}{"b":2}"#.to_vec()),
        ("NaN", json_ct, br#"{"read_percentage": NaN}"#.to_vec()),
        ("lone surrogate", json_ct, br#"{"id": "\ud800"}"#.to_vec()),
        (
            "invalid utf-8",
            json_ct,
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        ),
        ("nul bytes", json_ct, vec![0, 0, 0]),
        ("deep nesting", json_ct, "[".repeat(100_000).into_bytes()),
        (
            "over the size limit",
            json_ct,
            format!(r#"{{"id":"{}"}}"#, "a".repeat(2 << 20)).into_bytes(),
        ),
        ("text/plain", Some("text/plain"), br#"{"id":"x"}"#.to_vec()),
        (
            "form",
            Some("application/x-www-form-urlencoded"),
            b"id=x&endpoint=y".to_vec(),
        ),
        (
            "bad content-type",
            Some("\u{1}garbage"),
            br#"{"id":"x"}"#.to_vec(),
        ),
    ];
    for (method, path) in &routes {
        for (what, ct, body) in &malformed {
            let headers: Vec<(&str, &str)> = ct.iter().map(|c| ("Content-Type", *c)).collect();
            let r = match api
                .request(method, path, &headers, Some(body.clone()))
                .await
            {
                Ok(r) => r,
                // An invalid header value never leaves reqwest; nothing to test there.
                Err(_) if *what == "bad content-type" => continue,
                Err(e) => return Err(e),
            };
            r.assert_client_error(&format!("{method} {path} with {what}"));
        }
    }
    // Nothing moved: the migration is still ready, the interlays still listen.
    assert_eq!(
        api.get("/api/v1/migrations/sweep_m").await?.data()["status"],
        "ready"
    );
    assert_eq!(
        api.get("/api/v1/interlays/sweep_il").await?.data()["running"],
        true
    );

    // Well-formed JSON of the wrong shape: never a 5xx; anything refused has the envelope.
    let odd = [
        json!(null),
        json!(0),
        json!(-1),
        json!(1e308),
        json!("s"),
        json!(""),
        json!([]),
        json!([1, 2]),
        json!({}),
        json!(true),
        json!({"id": 7}),
        json!({"id": ""}),
        json!({"id": "a/b"}),
        json!({"endpoint": {}}),
        json!({"endpoint": "nope"}),
        json!({"strategy": "canary"}),
        json!({"strategy": {"type": "canary", "read_percentage": 2}}),
        json!({"data": {"type": "scan", "replace": 5}}),
        json!({"failure_handling": {"type": "retry_then_all", "retry_count": -3}}),
        json!({"read_percentage": -0.5}),
        json!({"read_percentage": "half"}),
        json!({"port": 70000}),
        json!({"port": 80}),
        json!({"listen": "nowhere"}),
        json!({"url": "http://example.com"}),
        json!({"url": 5}),
        json!({"bindings": {}}),
        json!({"bindings": [{}]}),
        json!({"activate_new": "yes"}),
        json!({"force": 1}),
        json!({"reason": ["x"]}),
        json!({"settings": []}),
        json!({"id": "x".repeat(10_000)}),
        json!({"description": "d".repeat(100_000)}),
        json!({"mode": "psychic"}),
        json!({"unknown_field": 1}),
    ];
    for (method, path) in &routes {
        for b in &odd {
            let r = api.json(method, path, b.clone()).await?;
            let verify_501 = r.status == 501 && path.ends_with("/verify");
            assert!(
                r.status < 500 || verify_501,
                "{method} {path} {b} -> {} {}",
                r.status,
                r.text
            );
            if !(200..300).contains(&r.status) {
                r.assert_envelope(&format!("{method} {path} {b}"));
            }
        }
    }
    // The proxy survived all of it.
    assert_eq!(api.get("/healthz").await?.status, 200);
    api.curl(LIST).await?.data();
    let mut c = RespClient::connect(serving).await?;
    c.ok(&["SET", "still", "here"]).await?;
    assert_eq!(get(&mut c, "still").await?, Reply::bulk("here"));
    env.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interlay_created_through_the_api_proxies() -> Result {
    let env = Env::start().await?;
    let api = &env.api;
    let addr = env.interlay("app", "old_redis").await?;
    let mut c = RespClient::connect(addr).await?;
    c.ok(&["SET", "greeting", "hello"]).await?;
    assert_eq!(get(&mut c, "greeting").await?, Reply::bulk("hello"));
    let mut old = env.old.raw().await?;
    let mut new = env.new.raw().await?;
    assert_eq!(
        get(&mut old, "greeting").await?,
        Reply::bulk("hello"),
        "written to old"
    );
    assert_eq!(get(&mut new, "greeting").await?, Reply::Nil);

    // Re-posting the same id returns it (200), still on the same address.
    let r = api
        .post(
            "/api/v1/interlays",
            json!({"id": "app", "endpoint": "old_redis", "listen": "127.0.0.1:0"}),
        )
        .await?;
    assert_eq!((r.status, address(r.data())?), (200, addr));

    // Eden's form: `listeners[].bind_port` (0 = any free port).
    let r = api
        .post(
            "/api/v1/interlays",
            json!({"id": "eden", "endpoint": "new_redis_cluster", "listeners": [{"bind_port": 0}]}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut e = RespClient::connect(address(r.data())?).await?;
    e.ok(&["SET", "side", "new"]).await?;
    assert_eq!(get(&mut new, "side").await?, Reply::bulk("new"));
    assert_eq!(get(&mut old, "side").await?, Reply::Nil);

    // PATCH to another endpoint: the open connection's next command goes there.
    old.ok(&["SET", "who", "old"]).await?;
    new.ok(&["SET", "who", "new"]).await?;
    assert_eq!(get(&mut c, "who").await?, Reply::bulk("old"));
    let r = api
        .patch(
            "/api/v1/interlays/app",
            json!({"endpoint": "new_redis_cluster"}),
        )
        .await?;
    assert_eq!(r.data()["endpoint"], "new_redis_cluster");
    assert_eq!(
        get(&mut c, "who").await?,
        Reply::bulk("new"),
        "same connection, new route"
    );

    // Stop: no new connections; start: listening again (a fresh port, it was created with 0).
    api.request("POST", "/api/v1/interlays/app/stop", &[], None)
        .await?
        .data();
    wait_refused(addr).await;
    assert_eq!(
        api.get("/api/v1/interlays/app").await?.data()["running"],
        false
    );
    api.request("POST", "/api/v1/interlays/app/stop", &[], None)
        .await?
        .assert_error(404, "Not Found", "Interlay not running");
    let r = api
        .request("POST", "/api/v1/interlays/app/start", &[], None)
        .await?;
    let mut c2 = RespClient::connect(address(r.data())?).await?;
    assert_eq!(get(&mut c2, "who").await?, Reply::bulk("new"));

    // Delete: gone from the API and from the network.
    let addr2 = address(r.data())?;
    api.delete("/api/v1/interlays/app").await?.data();
    wait_refused(addr2).await;
    api.get("/api/v1/interlays/app").await?.assert_error(
        404,
        "Not Found",
        "Interlay 'app' does not exist",
    );
    env.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_lifecycle_repoints_the_interlay() -> Result {
    let env = Env::start().await?;
    let api = &env.api;
    let mut old = env.old.raw().await?;
    let mut new = env.new.raw().await?;
    old.ok(&["SET", "who", "old"]).await?;
    new.ok(&["SET", "who", "new"]).await?;
    let addr = env.interlay("cache_interlay", "old_redis").await?;
    // A client connected before the migration exists; it never reconnects.
    let mut c = RespClient::connect(addr).await?;
    assert_eq!(get(&mut c, "who").await?, Reply::bulk("old"));

    let m = "/api/v1/migrations/ramp";
    api.post(
        "/api/v1/migrations",
        json!({"id": "ramp", "description": "canary ramp",
        "strategy": {"type": "canary", "read_percentage": 0.05,
                     "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}},
        "data": "none", "failure_handling": "rollback_all"}),
    )
    .await?
    .data();
    api.post(
        &format!("{m}/interlay/cache_interlay"),
        json!({"endpoint": "new_redis_cluster"}),
    )
    .await?
    .data();
    assert_eq!(api.get(m).await?.data()["status"], "ready");
    // Completing before execution is refused.
    api.post(&format!("{m}/complete"), json!({}))
        .await?
        .assert_error(
            409,
            "Migration error",
            "Cannot set Completed migration in status: Ready",
        );

    let t = api.request("POST", &format!("{m}/test"), &[], None).await?;
    assert_eq!(t.data()["valid"], true, "{}", t.text);
    assert_eq!(api.get(m).await?.data()["status"], "ready");
    let r = api
        .request("POST", &format!("{m}/migrate"), &[], None)
        .await?;
    assert_eq!(r.data(), "migration commit completed");
    assert_eq!(api.get(m).await?.data()["status"], "running");
    // While running, the interlay keeps answering from one of the two sides.
    let v = get(&mut c, "who").await?;
    assert!(v == Reply::bulk("old") || v == Reply::bulk("new"), "{v:?}");

    // The ramp: at most 0.25 per call.
    let mut current = 0.05;
    for next in [0.30, 0.55, 0.80, 1.0] {
        let r = api
            .patch(
                &format!("{m}/traffic"),
                json!({"read_percentage": next, "reason": "ramp"}),
            )
            .await?;
        assert_eq!(r.data()["old_percentage"], current, "{}", r.text);
        assert_eq!(r.data()["new_percentage"], next);
        current = next;
    }
    api.patch(&format!("{m}/traffic"), json!({"read_percentage": 0.5}))
        .await?
        .assert_error(400, "Bad Request", "Cannot change read_percentage by more than 0.25 per update (current 1.00, requested 0.50)");
    assert_eq!(api.get(m).await?.data()["strategy"]["read_percentage"], 1.0);
    // At 100 % every read of the open connection is served by the new side.
    assert_eq!(
        get(&mut c, "who").await?,
        Reply::bulk("new"),
        "ramp reached the data plane"
    );
    let s = api.get(&format!("{m}/status")).await?;
    let s = s.data();
    assert_eq!(
        (s["status"].as_str(), s["ready_for_cutover"].as_bool()),
        (Some("running"), Some(true)),
        "{s}"
    );
    assert_eq!(
        (
            s["source"]["health"].as_str(),
            s["target"]["health"].as_str()
        ),
        (Some("healthy"), Some("healthy")),
        "{s}"
    );

    // Complete: the interlay now serves the new Redis, for the connection that was already open
    // and for new ones.
    let r = api
        .post(&format!("{m}/complete"), json!({"reason": "done"}))
        .await?;
    assert_eq!(r.data()["status"], "completed", "{}", r.text);
    assert_eq!(api.get(m).await?.data()["status"], "completed");
    assert_eq!(
        api.get("/api/v1/interlays/cache_interlay").await?.data()["endpoint"],
        "new_redis_cluster"
    );
    assert_eq!(
        get(&mut c, "who").await?,
        Reply::bulk("new"),
        "existing connection re-pointed"
    );
    let mut fresh = RespClient::connect(addr).await?;
    assert_eq!(get(&mut fresh, "who").await?, Reply::bulk("new"));
    fresh.ok(&["SET", "after", "cutover"]).await?;
    assert_eq!(get(&mut new, "after").await?, Reply::bulk("cutover"));
    assert_eq!(
        get(&mut old, "after").await?,
        Reply::bulk("cutover"),
        "old kept current after completion (reverse dual writes), so a rollback loses nothing"
    );
    // Completed is final for the ramp; the interlay is free for another migration.
    api.patch(&format!("{m}/traffic"), json!({"read_percentage": 0.75}))
        .await?
        .assert_error(
            409,
            "Migration error",
            "Cannot change traffic of migration in status: Completed",
        );

    // Rollback after completion points it back to the old Redis.
    let r = api
        .post(
            &format!("{m}/rollback"),
            json!({"reason": "changed our mind"}),
        )
        .await?;
    r.data();
    assert_eq!(api.get(m).await?.data()["status"], "rolled_back");
    assert_eq!(
        api.get("/api/v1/interlays/cache_interlay").await?.data()["endpoint"],
        "old_redis"
    );
    assert_eq!(get(&mut c, "who").await?, Reply::bulk("old"));
    env.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interlay_and_endpoint_changes_reach_the_data_plane() -> Result {
    let env = Env::start().await?;
    let api = &env.api;
    env.old.raw().await?.ok(&["SET", "who", "old"]).await?;
    env.new.raw().await?.ok(&["SET", "who", "new"]).await?;

    // A password in the settings: the interlay answers AUTH itself.
    let r = api
        .post(
            "/api/v1/interlays",
            json!({"id": "locked", "endpoint": "old_redis", "listen": "127.0.0.1:0",
            "settings": {"password": "pw"}}),
        )
        .await?;
    assert_eq!(r.data()["auth_required"], true);
    assert!(
        !r.text.contains("\"pw\""),
        "the password is never shown: {}",
        r.text
    );
    let locked = address(r.data())?;
    let mut c = RespClient::connect(locked).await?;
    let e = get(&mut c, "who").await?;
    assert!(
        e.error_text().is_some_and(|t| t.starts_with("NOAUTH")),
        "{e:?}"
    );
    c.ok(&["AUTH", "pw"]).await?;
    assert_eq!(get(&mut c, "who").await?, Reply::bulk("old"));

    // Changing the endpoint's URL moves its interlays, open connections included.
    let r = api
        .patch("/api/v1/endpoints/old_redis", json!({"url": env.new.url()}))
        .await?;
    r.data();
    assert_eq!(
        get(&mut c, "who").await?,
        Reply::bulk("new"),
        "same connection, new URL"
    );
    api.patch("/api/v1/endpoints/old_redis", json!({"url": env.old.url()}))
        .await?
        .data();
    assert_eq!(get(&mut c, "who").await?, Reply::bulk("old"));

    // An endpoint in use cannot be deleted.
    let r = api.delete("/api/v1/endpoints/old_redis").await?;
    r.assert_error(
        409,
        "Conflict",
        "Endpoint 'old_redis' is in use by interlay 'locked'",
    );

    // A port taken by someone else: create and PATCH are refused, the interlay keeps serving.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0")?;
    let taken = squatter.local_addr()?.to_string();
    let r = api
        .post(
            "/api/v1/interlays",
            json!({"id": "clash", "endpoint": "old_redis", "listen": taken}),
        )
        .await?;
    assert_eq!(r.status, 409, "{}", r.text);
    r.assert_envelope("create on a taken port");
    api.get("/api/v1/interlays/clash").await?.assert_error(
        404,
        "Not Found",
        "Interlay 'clash' does not exist",
    );
    let r = api
        .patch("/api/v1/interlays/locked", json!({"listen": taken}))
        .await?;
    assert_eq!(r.status, 409, "{}", r.text);
    let view = api.get("/api/v1/interlays/locked").await?.data().clone();
    assert_eq!(view["running"], true, "{view}");
    let mut c2 = RespClient::connect(address(&view)?).await?;
    c2.ok(&["AUTH", "pw"]).await?;
    assert_eq!(get(&mut c2, "who").await?, Reply::bulk("old"));
    drop(squatter);

    // Another organization runs its own endpoint and interlay; neither side sees the other's.
    let other = api.with_token(Some(&other_org_token().token));
    other
        .post(
            "/api/v1/endpoints",
            json!({"id": "old_redis", "url": env.new.url()}),
        )
        .await?
        .data();
    let r = other
        .post(
            "/api/v1/interlays",
            json!({"id": "locked", "endpoint": "old_redis", "listen": "127.0.0.1:0"}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut theirs = RespClient::connect(address(r.data())?).await?;
    assert_eq!(
        get(&mut theirs, "who").await?,
        Reply::bulk("new"),
        "their old_redis is our new"
    );
    assert_eq!(
        other
            .get("/api/v1/interlays")
            .await?
            .data()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        api.get("/api/v1/endpoints/old_redis").await?.data()["url"],
        env.old.url()
    );
    assert_eq!(get(&mut c, "who").await?, Reply::bulk("old"));
    env.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_toggle_and_rollback_while_running() -> Result {
    let env = Env::start().await?;
    let api = &env.api;
    env.old.raw().await?.ok(&["SET", "who", "old"]).await?;
    env.new.raw().await?.ok(&["SET", "who", "new"]).await?;
    let addr = env.interlay("bg", "old_redis").await?;
    let mut c = RespClient::connect(addr).await?;
    let m = "/api/v1/migrations/flip";
    api.post(
        "/api/v1/migrations",
        json!({"id": "flip", "strategy": {"type": "blue_green", "active_is_new": false}}),
    )
    .await?
    .data();
    api.post(
        &format!("{m}/interlay/bg"),
        json!({"endpoint": "new_redis_cluster"}),
    )
    .await?
    .data();
    api.request("POST", &format!("{m}/migrate"), &[], None)
        .await?
        .data();
    assert_eq!(
        get(&mut c, "who").await?,
        Reply::bulk("old"),
        "blue is active"
    );
    let r = api
        .patch(
            &format!("{m}/toggle"),
            json!({"activate_new": true, "reason": "go"}),
        )
        .await?;
    assert_eq!(
        (
            r.data()["previous_active"].as_str(),
            r.data()["new_active"].as_str()
        ),
        (Some("blue"), Some("green"))
    );
    assert_eq!(
        get(&mut c, "who").await?,
        Reply::bulk("new"),
        "green is active"
    );
    // Writes reach both sides (dual write, active side authoritative).
    c.ok(&["SET", "both", "yes"]).await?;
    assert_eq!(
        env.old.raw().await?.cmd(&["GET", "both"]).await?,
        Reply::bulk("yes")
    );
    assert_eq!(
        env.new.raw().await?.cmd(&["GET", "both"]).await?,
        Reply::bulk("yes")
    );
    // Rollback while running: reads return to old at once, on the same connection.
    let r = api
        .post(&format!("{m}/rollback"), json!({"reason": "flip back"}))
        .await?;
    r.data();
    assert_eq!(api.get(m).await?.data()["status"], "rolled_back");
    assert_eq!(get(&mut c, "who").await?, Reply::bulk("old"));
    api.patch(&format!("{m}/toggle"), json!({}))
        .await?
        .assert_error(
            409,
            "Migration error",
            "Cannot toggle migration in status: RolledBack",
        );
    // A rolled-back migration may be executed again.
    api.request("POST", &format!("{m}/migrate"), &[], None)
        .await?
        .data();
    assert_eq!(api.get(m).await?.data()["status"], "running");
    env.shutdown().await;
    Ok(())
}

/// The `[auth]` block of the repository's proxy.toml with its commented example lines
/// (`#key = ...`, `#[[...]]`) uncommented.
fn proxy_toml_auth_block() -> String {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../proxy.toml")).unwrap();
    let start = text
        .find("\n[auth]\n")
        .expect("proxy.toml has an [auth] section");
    let block = &text[start..];
    let end = block.find("\n\n").unwrap_or(block.len());
    block[..end]
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => rest.to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_toml_auth_example_works_once_uncommented() -> Result {
    let block = proxy_toml_auth_block();
    assert!(
        block.contains("[[auth.tokens]]") && block.contains("[[auth.users]]"),
        "{block}"
    );
    // As shipped, the placeholders are not valid: uncommenting alone grants nothing.
    let bare = format!("[admin]\nlisten = \"127.0.0.1:0\"\n{block}");
    let e = godwit_app::Config::from_toml_str(&bare)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("auth.tokens[0].sha256") && e.contains("auth.users[0].password_hash"),
        "{e}"
    );
    // Filled in the way the comments say, it works.
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("jwt.key");
    std::fs::write(&secret, "a-jwt-secret-of-at-least-thirty-two-bytes\n")?;
    let token = "0f".repeat(32);
    let filled = block
        .replace("/etc/godwit/jwt.key", &secret.to_string_lossy())
        .replace("<64 hex characters>", &godwit_tests::sha256_hex(&token))
        .replace("<$argon2id$v=19$m=19456,t=2,p=1$...$...>", &password_hash());
    let godwit = GodwitFixture::builder().extra_toml(&filled).start().await?;
    let api = AdminClient::new(godwit.admin_addr(), Some(&token));
    api.post("/api/v1/migrations", json!({"id": "by_token"}))
        .await?
        .data();
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"))
    );
    let r = api
        .with_token(None)
        .request(
            "POST",
            "/api/v1/auth/login",
            &[("Authorization", &basic), ("X-Org-Id", "default")],
            None,
        )
        .await?;
    let jwt = r.data()["token"].as_str().unwrap().to_string();
    assert_eq!(r.data()["expires_in"], 900);
    let list = api.with_token(Some(&jwt)).get("/api/v1/migrations").await?;
    assert_eq!(list.data()[0]["id"], "by_token");
    godwit.shutdown().await;
    Ok(())
}
