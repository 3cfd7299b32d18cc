//! Restart acceptance with the real binary: `godwit --config` as a child process (see
//! `godwit_tests::godwit_bin` for how the binary is found and kept fresh), resources and
//! migrations created through the admin API, `kill -9`, the same binary started again on the
//! same config and data dir: every endpoint, interlay (listening again on its port, with its
//! password, proxying), template, API and migration (with its status and strategy) is back, a
//! JWT issued before the crash still works, and the migrations go on from where they were.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use godwit_tests::ports::{free_port, loopback};
use godwit_tests::{
    auth_toml, AdminClient, ApiToken, GodwitProcess, RedisServer, Reply, RespClient,
};
use serde_json::{json, Value};

const JWT_SECRET: &str = "restart-test-secret-at-least-32-bytes-long";
const PASSWORD: &str = "interlay-pw";

fn token() -> ApiToken {
    ApiToken::new("ops", "default", "superadmin")
}

/// No endpoints or interlays in the file: everything below comes from the API and the store.
fn config(data_dir: &std::path::Path) -> String {
    let mut t = format!(
        "data_dir = {}\n\n[instance]\nid = \"godwit-restart\"\nregion = \"local\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n\n[runtime]\nworker_threads = 1\n",
        serde_json::to_string(&data_dir.to_string_lossy()).unwrap(),
        godwit_tests::process::ADMIN_PORT,
    );
    t.push_str(&auth_toml(
        &[token()],
        &format!("jwt_secret = \"{JWT_SECRET}\""),
        "",
    ));
    t
}

/// A client on `addr` that has sent `AUTH` when the interlay needs it.
async fn client(addr: SocketAddr, password: Option<&str>) -> anyhow::Result<RespClient> {
    let mut c = RespClient::connect(addr).await?;
    if let Some(pw) = password {
        c.ok(&["AUTH", pw]).await?;
    }
    Ok(c)
}

async fn get(addr: SocketAddr, password: Option<&str>, key: &str) -> anyhow::Result<Reply> {
    client(addr, password).await?.cmd(&["GET", key]).await
}

async fn refused(addr: SocketAddr) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn by_id<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == id))
        .unwrap_or_else(|| panic!("no {id} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keeps_everything() -> anyhow::Result<()> {
    let old = RedisServer::start()?;
    let new = RedisServer::start()?;
    old.raw().await?.ok(&["SET", "who", "old"]).await?;
    new.raw().await?.ok(&["SET", "who", "new"]).await?;
    let dir = tempfile::Builder::new()
        .prefix("godwit-restart-")
        .tempdir()?;
    let data_dir = dir.path().join("data");
    let mut godwit = GodwitProcess::start(dir.path(), &config(&data_dir))?;
    let api = AdminClient::new(godwit.admin_addr(), Some(&token().token));

    // Endpoints, three interlays on fixed (free) ports, a template and an API.
    for (id, url) in [("old_redis", old.url()), ("new_redis_cluster", new.url())] {
        api.post(
            "/api/v1/endpoints",
            json!({"id": id, "url": url, "description": format!("{id} side")}),
        )
        .await?
        .data();
    }
    let (app, done, parked) = (
        loopback(free_port()?),
        loopback(free_port()?),
        loopback(free_port()?),
    );
    for (id, addr, settings) in [
        ("app", app, json!({"password": PASSWORD})),
        ("done", done, json!({})),
        ("parked", parked, json!({})),
    ] {
        let r = api
            .post("/api/v1/interlays", json!({"id": id, "endpoint": "old_redis", "listen": addr.to_string(), "settings": settings}))
            .await?;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    api.request("POST", "/api/v1/interlays/parked/stop", &[], None)
        .await?
        .data();
    api.post(
        "/api/v1/templates",
        json!({"id": "get_user_cache", "endpoint": "old_redis", "kind": "read",
        "command": "GET", "args": ["user:{{id}}"]}),
    )
    .await?
    .data();
    api.post(
        "/api/v1/apis",
        json!({"id": "user_cache_api", "bindings": [{"template": "get_user_cache"}]}),
    )
    .await?
    .data();

    // Three migrations in three statuses: paused mid-ramp, completed, ready.
    let ramp = "/api/v1/migrations/ramp";
    api.post("/api/v1/migrations", json!({"id": "ramp", "description": "canary ramp",
        "strategy": {"type": "canary", "read_percentage": 0.05, "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}},
        "data": "none", "failure_handling": {"type": "retry_then_all", "retry_count": 3}})).await?.data();
    api.post(
        &format!("{ramp}/interlay/app"),
        json!({"endpoint": "new_redis_cluster"}),
    )
    .await?
    .data();
    api.request("POST", &format!("{ramp}/migrate"), &[], None)
        .await?
        .data();
    api.patch(&format!("{ramp}/traffic"), json!({"read_percentage": 0.3}))
        .await?
        .data();
    api.post(&format!("{ramp}/pause"), json!({"reason": "lunch"}))
        .await?
        .data();

    let bb = "/api/v1/migrations/bb";
    api.post(
        "/api/v1/migrations",
        json!({"id": "bb", "strategy": {"type": "big_bang"}}),
    )
    .await?
    .data();
    api.post(
        &format!("{bb}/interlay/done"),
        json!({"endpoint": "new_redis_cluster"}),
    )
    .await?
    .data();
    assert_eq!(
        api.request("POST", &format!("{bb}/test"), &[], None)
            .await?
            .data()["valid"],
        true
    );
    api.request("POST", &format!("{bb}/migrate"), &[], None)
        .await?
        .data();
    api.post(&format!("{bb}/complete"), json!({})).await?.data();

    api.post(
        "/api/v1/migrations",
        json!({"id": "draft", "description": "not yet"}),
    )
    .await?
    .data();
    api.post(
        "/api/v1/migrations/draft/api/user_cache_api",
        json!({"bindings": [{"template": "get_user_cache"}]}),
    )
    .await?
    .data();

    // A login token issued before the crash (a refresh of the API token gives one).
    let jwt = api
        .request("POST", "/api/v1/auth/refresh", &[], None)
        .await?
        .data()["token"]
        .as_str()
        .unwrap()
        .to_string();

    // The data plane before the crash.
    assert_eq!(
        get(app, Some(PASSWORD), "who").await?,
        Reply::bulk("old"),
        "paused: reads from old"
    );
    assert_eq!(
        get(done, None, "who").await?,
        Reply::bulk("new"),
        "completed: serves new"
    );
    assert!(refused(parked).await, "parked is stopped");
    let before = api.get("/api/v1/migrations").await?.data().clone();

    // The state on disk: private (it holds passwords), and without the API token.
    let state_file = data_dir.join("control-state.json");
    let state = std::fs::read_to_string(&state_file)?;
    assert!(state.contains("\"ramp\"") && !state.contains(&token().token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state_file)?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // kill -9 right after the last acknowledged change, then the same binary, config, data dir.
    let pid = godwit.pid();
    godwit.kill9();
    assert!(
        refused(app).await && refused(done).await,
        "the process is gone"
    );
    godwit.start_again()?;
    assert_ne!(godwit.pid(), pid);
    let api = AdminClient::new(godwit.admin_addr(), Some(&token().token));

    // Everything is there.
    let eps = api.get("/api/v1/endpoints").await?.data().clone();
    assert_eq!(by_id(&eps, "old_redis")["description"], "old_redis side");
    assert_eq!(by_id(&eps, "new_redis_cluster")["from_config"], false);
    let after = api.get("/api/v1/migrations").await?.data().clone();
    for id in ["ramp", "bb", "draft"] {
        let (b, a) = (by_id(&before, id), by_id(&after, id));
        assert_eq!(a, b, "list view of {id} unchanged by the restart");
    }
    let m = api.get(ramp).await?.data().clone();
    assert_eq!(m["status"], "paused", "{m}");
    assert_eq!(m["status_reason"], "lunch");
    assert_eq!(m["strategy"]["read_percentage"], 0.3);
    assert_eq!(
        m["failure_handling"],
        json!({"type": "retry_then_all", "retry_count": 3})
    );
    assert_eq!(m["interlays"][0]["interlay_id"], "app");
    assert_eq!(m["interlays"][0]["endpoint"], "new_redis_cluster");
    assert_eq!(api.get(bb).await?.data()["status"], "completed");
    let d = api.get("/api/v1/migrations/draft").await?.data().clone();
    assert_eq!(
        (d["status"].as_str(), &d["apis"]),
        (Some("ready"), &json!(["user_cache_api"])),
        "{d}"
    );
    api.get("/api/v1/templates/get_user_cache").await?.data();
    api.get("/api/v1/apis/user_cache_api").await?.data();

    // Interlays: listening again on their own ports, with their password and routes.
    let ils = api.get("/api/v1/interlays").await?.data().clone();
    assert_eq!(by_id(&ils, "app")["running"], true);
    assert_eq!(by_id(&ils, "app")["listen"], app.to_string());
    assert_eq!(by_id(&ils, "done")["endpoint"], "new_redis_cluster");
    assert_eq!(by_id(&ils, "parked")["running"], false);
    let mut anon = RespClient::connect(app).await?;
    let r = anon.cmd(&["GET", "who"]).await?;
    assert!(
        r.error_text().is_some_and(|e| e.starts_with("NOAUTH")),
        "{r:?}"
    );
    assert_eq!(
        get(app, Some(PASSWORD), "who").await?,
        Reply::bulk("old"),
        "still paused"
    );
    assert_eq!(
        get(done, None, "who").await?,
        Reply::bulk("new"),
        "still completed"
    );
    let mut w = client(done, None).await?;
    w.ok(&["SET", "written", "after-restart"]).await?;
    assert_eq!(
        new.raw().await?.cmd(&["GET", "written"]).await?,
        Reply::bulk("after-restart")
    );
    assert!(refused(parked).await, "a stopped interlay stays stopped");

    // The JWT from before the crash is still valid (same secret).
    let user = api.with_token(Some(&jwt));
    assert_eq!(user.get(ramp).await?.data()["id"], "ramp");

    // The paused migration goes on from where it was: resume, ramp from 0.3, complete.
    let mut c = client(app, Some(PASSWORD)).await?;
    api.post(&format!("{ramp}/resume"), json!({})).await?.data();
    let r = api
        .patch(&format!("{ramp}/traffic"), json!({"read_percentage": 0.55}))
        .await?;
    assert_eq!(r.data()["old_percentage"], 0.3);
    api.post(
        &format!("{ramp}/complete"),
        json!({"reason": "after restart"}),
    )
    .await?
    .data();
    assert_eq!(
        c.cmd(&["GET", "who"]).await?,
        Reply::bulk("new"),
        "re-pointed after the restart"
    );
    api.post("/api/v1/interlays/parked/start", json!({}))
        .await?
        .data();
    assert_eq!(get(parked, None, "who").await?, Reply::bulk("old"));

    // And a second crash keeps the completion.
    godwit.kill9();
    godwit.start_again()?;
    let api = AdminClient::new(godwit.admin_addr(), Some(&token().token));
    assert_eq!(api.get(ramp).await?.data()["status"], "completed");
    assert_eq!(get(app, Some(PASSWORD), "who").await?, Reply::bulk("new"));
    assert_eq!(
        get(parked, None, "who").await?,
        Reply::bulk("old"),
        "started again, stays started"
    );
    Ok(())
}
