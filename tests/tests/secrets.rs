//! Secrets never leave godwit (SPEC §3): the real binary, logging at debug level, is given an
//! endpoint whose URL carries a password (one reachable, one that fails its probe), an interlay
//! with an AUTH password, clients that authenticate right and wrong, and a migration tested
//! against the failing endpoint. No API response (views, lists, status, errors, OpenAPI,
//! metrics) and no log line shows any of the passwords or the API token.

use godwit_tests::{auth_toml, AdminClient, ApiToken, GodwitProcess, RedisServer, RespClient};
use serde_json::json;

const BACKEND_PW: &str = "backend-S3cret-9f2c";
const DEAD_PW: &str = "unreachable-S3cret-77aa";
const INTERLAY_PW: &str = "interlay-S3cret-41d0";

fn token() -> ApiToken {
    ApiToken::new("sec", "default", "superadmin")
}

fn config(data_dir: &std::path::Path) -> String {
    let mut t = format!(
        "data_dir = {}\n\n[admin]\nlisten = \"127.0.0.1:{}\"\n\n[runtime]\nworker_threads = 1\n",
        serde_json::to_string(&data_dir.to_string_lossy()).unwrap(),
        godwit_tests::process::ADMIN_PORT,
    );
    t.push_str(&auth_toml(&[token()], "", ""));
    t
}

fn assert_clean(what: &str, text: &str) {
    for secret in [BACKEND_PW, DEAD_PW, INTERLAY_PW, token().token.as_str()] {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tokens_never_appear_in_responses_or_logs() -> anyhow::Result<()> {
    // the binary inherits the filter: log everything godwit says
    std::env::set_var("RUST_LOG", "debug");
    let redis = RedisServer::builder().password(BACKEND_PW).start()?;
    let dir = tempfile::Builder::new()
        .prefix("godwit-secrets-")
        .tempdir()?;
    let godwit = GodwitProcess::start(dir.path(), &config(&dir.path().join("data")))?;
    let api = AdminClient::new(godwit.admin_addr(), Some(&token().token));
    let mut seen = Vec::new();

    let live = format!("redis://:{BACKEND_PW}@{}", redis.addr());
    let dead = format!("redis://user:{DEAD_PW}@127.0.0.1:1");
    for (id, url) in [("live", &live), ("dead", &dead)] {
        let r = api
            .post("/api/v1/endpoints", json!({"id": id, "url": url}))
            .await?;
        assert!(r.status < 300, "{}", r.text);
        seen.push(r.text);
    }
    // the object form with a password field
    let r = api
        .post(
            "/api/v1/endpoints",
            json!({"id": "objform", "write_conn": {"host": "127.0.0.1", "port": redis.port(),
                   "password": BACKEND_PW}}),
        )
        .await?;
    seen.push(r.text);
    let r = api
        .post(
            "/api/v1/interlays",
            json!({"id": "app", "endpoint": "live", "listen": "127.0.0.1:0",
                   "settings": {"password": INTERLAY_PW}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let addr: std::net::SocketAddr = r.body["data"]["address"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|_| panic!("no address in {}", r.text));
    seen.push(r.text);

    // clients: a wrong password, then the right one, then traffic to the protected backend
    let mut c = RespClient::connect(addr).await?;
    assert!(c.cmd(&["AUTH", "not-it"]).await?.is_error());
    c.ok(&["AUTH", INTERLAY_PW]).await?;
    c.ok(&["SET", "k", "v"]).await?;

    // a migration tested against the endpoint that cannot be reached
    api.post("/api/v1/migrations", json!({"id": "m", "data": "none"}))
        .await?;
    let r = api
        .post(
            "/api/v1/migrations/m/interlay/app",
            json!({"endpoint": "dead"}),
        )
        .await?;
    seen.push(r.text);
    for path in ["/api/v1/migrations/m/test", "/api/v1/migrations/m/verify"] {
        seen.push(api.post(path, json!({})).await?.text);
    }
    for path in [
        "/api/v1/endpoints",
        "/api/v1/endpoints/live",
        "/api/v1/endpoints/dead",
        "/api/v1/endpoints/objform",
        "/api/v1/interlays",
        "/api/v1/interlays/app",
        "/api/v1/migrations",
        "/api/v1/migrations/m",
        "/api/v1/migrations/m/status",
        "/api/v1/openapi.json",
        "/metrics",
    ] {
        let r = api.get(path).await?;
        seen.push(r.text);
    }
    let r = api
        .json(
            "PATCH",
            "/api/v1/endpoints/dead",
            json!({"url": format!("redis://:{DEAD_PW}@127.0.0.1:2")}),
        )
        .await?;
    seen.push(r.text);
    for (i, text) in seen.iter().enumerate() {
        assert_clean(&format!("response {i}"), text);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = godwit.log();
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "no log: {log}"
    );
    assert_clean("the log", &log);
    Ok(())
}
