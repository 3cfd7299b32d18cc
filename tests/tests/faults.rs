//! Faults the other e2e files do not cover (docs/reliability.md has the whole table):
//! a slow backend (`CLIENT PAUSE`), a backend closing the proxy's connections (`CLIENT KILL
//! TYPE normal`) and network resets (RST through a relay) while clients pipeline, and a store
//! that cannot write (a blocked temp path; a full tmpfs where mounting is allowed).
//!
//! The contract under connection faults: one reply per request, in order, each either the right
//! answer or an `-ERR`, never another request's reply; the same client connections recover.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use godwit_tests::{
    auth_toml, AdminClient, ApiToken, GodwitFixture, RedisServer, Reply, RespClient,
};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

fn token() -> ApiToken {
    ApiToken::new("faults", "default", "superadmin")
}

/// A pipeline of `n` `ECHO <tag>:<round>:<i>` and the replies it must get.
fn echoes(tag: &str, round: usize, n: usize) -> (Vec<u8>, Vec<String>) {
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for i in 0..n {
        let v = format!("{tag}:{round}:{i}");
        bytes.extend_from_slice(format!("*2\r\n$4\r\nECHO\r\n${}\r\n{v}\r\n", v.len()).as_bytes());
        want.push(v);
    }
    (bytes, want)
}

/// Pipelines echo rounds until `stop`; every reply is its own request's echo or an error.
/// Returns (rounds, error replies).
async fn echo_until(addr: SocketAddr, tag: String, stop: Arc<AtomicBool>) -> (usize, usize) {
    let mut c = RespClient::connect(addr).await.unwrap();
    let (mut round, mut errors) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let (bytes, want) = echoes(&tag, round, 50);
        c.send_raw(&bytes).await.unwrap();
        for (r, w) in c.read_replies(want.len()).await.unwrap().iter().zip(&want) {
            if r.is_error() {
                errors += 1;
            } else {
                assert_eq!(r, &Reply::bulk(w), "desynchronised reply");
            }
        }
        round += 1;
    }
    // recovered: a whole round on the same connection without an error
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (bytes, want) = echoes(&tag, round, 50);
        c.send_raw(&bytes).await.unwrap();
        let got = c.read_replies(want.len()).await.unwrap();
        let expected: Vec<Reply> = want.iter().map(Reply::bulk).collect();
        if got == expected {
            break;
        }
        assert!(got
            .iter()
            .zip(&expected)
            .all(|(g, e)| g.is_error() || g == e));
        assert!(Instant::now() < deadline, "no recovery: {got:?}");
        round += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (round, errors)
}

async fn run_clients(
    addr: SocketAddr,
    n: usize,
    fault: impl std::future::Future<Output = ()>,
) -> (usize, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(echo_until(addr, format!("c{i}"), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    fault.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut rounds, mut errors) = (0, 0);
    for t in tasks {
        let (r, e) = t.await.unwrap();
        rounds += r;
        errors += e;
    }
    (rounds, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_delays_replies_but_keeps_them_in_order() {
    let (redis, fx) = godwit_tests::proxied().await.unwrap();
    let mut direct = redis.raw().await.unwrap();
    let mut c = fx.raw().await.unwrap();
    c.ok(&["SET", "k", "v"]).await.unwrap();
    // Redis stops serving every client (the proxy's connections included) for 700 ms
    direct.ok(&["CLIENT", "PAUSE", "700", "ALL"]).await.unwrap();
    let t = Instant::now();
    let (bytes, want) = echoes("slow", 0, 200);
    c.send_raw(&bytes).await.unwrap();
    let got = c.read_replies(200).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let expected: Vec<Reply> = want.iter().map(Reply::bulk).collect();
    assert_eq!(got, expected);
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("v"));
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killing_connections_mid_pipeline_gives_errors_never_desync() {
    let (redis, fx) = godwit_tests::proxied().await.unwrap();
    let mut direct = redis.raw().await.unwrap();
    let killed = Arc::new(Mutex::new(0i64));
    let k = killed.clone();
    let (rounds, errors) = run_clients(fx.addr(), 4, async move {
        for _ in 0..5 {
            // SKIPME yes (the default): only the proxy's connections are closed
            let r = direct
                .cmd(&["CLIENT", "KILL", "TYPE", "normal"])
                .await
                .unwrap();
            *k.lock().unwrap() += r.as_int().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    })
    .await;
    assert!(*killed.lock().unwrap() > 0, "nothing was killed");
    assert!(rounds > 4, "{rounds}");
    eprintln!("rounds {rounds}, error replies {errors}");
    fx.shutdown().await;
}

/// A TCP relay to `to` whose connections can all be reset at once (SO_LINGER 0: RST).
struct Relay {
    addr: SocketAddr,
    cut: Arc<tokio::sync::Notify>,
}

async fn relay(to: SocketAddr) -> Relay {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cut = Arc::new(tokio::sync::Notify::new());
    let c = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut a, _)) = l.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let Ok(mut b) = TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                    _ = c.notified() => {
                        let _ = a.set_zero_linger();
                        let _ = b.set_zero_linger();
                    }
                }
                drop((a, b));
            });
        }
    });
    Relay { addr, cut }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_resets_mid_pipeline_give_errors_never_desync() {
    let redis = RedisServer::start().unwrap();
    let r = relay(redis.addr()).await;
    let fx = GodwitFixture::builder()
        .endpoint("old", &format!("redis://{}", r.addr))
        .interlay("main", "old")
        .start()
        .await
        .unwrap();
    let cut = r.cut.clone();
    let (rounds, errors) = run_clients(fx.addr(), 4, async move {
        for _ in 0..5 {
            cut.notify_waiters();
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    })
    .await;
    assert!(rounds > 4, "{rounds}");
    eprintln!("rounds {rounds}, error replies {errors}");
    fx.shutdown().await;
}

fn data_dir_of(fx: &GodwitFixture) -> std::path::PathBuf {
    let line = fx
        .config_text()
        .lines()
        .find(|l| l.starts_with("data_dir = "))
        .unwrap();
    let s: String = serde_json::from_str(line.trim_start_matches("data_dir = ")).unwrap();
    s.into()
}

/// State written by the store (the file a restart reads).
fn stored_endpoints(dir: &std::path::Path) -> Vec<String> {
    let store = godwit_control::FileStore::new(dir).unwrap();
    let state = godwit_control::Store::load(&store).unwrap().unwrap();
    let mut ids: Vec<String> = state
        .orgs
        .values()
        .flat_map(|o| o.endpoints.keys().cloned())
        .collect();
    ids.sort();
    ids
}

async fn listed_endpoints(api: &AdminClient) -> Vec<String> {
    let r = api.get("/api/v1/endpoints").await.unwrap();
    let mut ids: Vec<String> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// A failed save answers a 503 envelope (never a panic or a dropped connection), changes
/// nothing in memory or on disk, and the next save after the fault works.
async fn save_fails_cleanly(
    api: &AdminClient,
    dir: &std::path::Path,
    url: &str,
    fault: impl FnOnce(),
    heal: impl FnOnce(),
) {
    let before = listed_endpoints(api).await;
    fault();
    let r = api
        .post("/api/v1/endpoints", json!({"id": "during", "url": url}))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "Service Unavailable", "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("store error"));
    assert_eq!(listed_endpoints(api).await, before, "memory changed");
    heal();
    assert_eq!(stored_endpoints(dir), before, "disk changed");
    let r = api
        .post("/api/v1/endpoints", json!({"id": "after", "url": url}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(stored_endpoints(dir).contains(&"after".to_string()));
    assert!(!stored_endpoints(dir).contains(&"during".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_answers_an_error_and_changes_nothing() {
    let redis = RedisServer::start().unwrap();
    let fx = GodwitFixture::builder()
        .endpoint("old", &redis.url())
        .interlay("main", "old")
        .extra_toml(&auth_toml(&[token()], "", ""))
        .start()
        .await
        .unwrap();
    let api = AdminClient::new(fx.admin_addr(), Some(&token().token));
    let dir = data_dir_of(&fx);
    // a directory where the store writes its temp file: the write fails even as root
    let blocker = dir.join(format!("{}.tmp", godwit_control::store::STATE_FILE));
    save_fails_cleanly(
        &api,
        &dir,
        &redis.url(),
        || std::fs::create_dir_all(blocker.join("x")).unwrap(),
        || std::fs::remove_dir_all(&blocker).unwrap(),
    )
    .await;
    // the data plane never stopped
    let mut c = fx.raw().await.unwrap();
    assert_eq!(c.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    fx.shutdown().await;
}

/// A tmpfs mount, unmounted on drop (before its temp dir is removed).
struct Tmpfs(std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("godwit-tmpfs-")
            .tempdir()
            .ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.path().to_path_buf(), dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_an_error_and_changes_nothing() {
    let Some(fs) = Tmpfs::mount("256k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); the blocked-path test covers the code path");
        return;
    };
    let redis = RedisServer::start().unwrap();
    let builder = GodwitFixture::builder()
        .endpoint("old", &redis.url())
        .interlay("main", "old")
        .extra_toml(&auth_toml(&[token()], "", ""));
    let config = godwit_app::Config::from_toml_str(&builder.config_text(&fs.0)).unwrap();
    let godwit = godwit_app::Godwit::start(config).await.unwrap();
    let api = AdminClient::new(godwit.admin_addr(), Some(&token().token));
    let filler = fs.0.join("filler");
    save_fails_cleanly(
        &api,
        &fs.0,
        &redis.url(),
        || {
            // fill the disk: write until ENOSPC
            let mut f = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0u8; 4096];
            while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        },
        || std::fs::remove_file(&filler).unwrap(),
    )
    .await;
    let mut c = RespClient::connect(godwit.interlay_addr("main").unwrap())
        .await
        .unwrap();
    assert_eq!(c.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    c.shutdown_write().await.unwrap();
    godwit.shutdown().await;
}
