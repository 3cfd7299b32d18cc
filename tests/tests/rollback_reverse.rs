//! Rollback with `overwrite_on_reverse` end to end, through the admin API, against two real
//! Redis servers: a big_bang migration switched to new (writes land on new only), then rolled
//! back while clients keep writing. Old must end with every key of new and new's values, the
//! keys only old had, and the latest value of every concurrent write: counters equal to the
//! last reply their client got (new's, as new is authoritative while the copy runs), so no
//! re-copy overwrote a newer write with a stale value and no acknowledged write was undone.
//! Also: a reverse copy whose source dies fails the migration with routing on old.

mod mover_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use godwit_mover::CopyOptions;
use godwit_tests::{auth_toml, AdminClient, ApiToken, GodwitFixture, RedisServer};
use mover_common::{differences, fill_all_types};
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};

const M: &str = "/api/v1/migrations/m";
/// Writer clients and the keys each owns per kind.
const CLIENTS: usize = 2;
const OWN: usize = 40;

fn token() -> ApiToken {
    ApiToken::new("ci", "default", "superadmin")
}

async fn start(
    old: &RedisServer,
    new: &RedisServer,
) -> anyhow::Result<(GodwitFixture, AdminClient)> {
    let auth = auth_toml(
        &[token()],
        "jwt_secret = \"an-e2e-test-secret-of-at-least-32-bytes\"",
        "",
    );
    let fx = GodwitFixture::builder()
        .endpoint("old", &old.url())
        .endpoint("new", &new.url())
        .interlay("main", "old")
        .extra_toml(&auth)
        .start()
        .await?;
    let api = AdminClient::new(fx.admin_addr(), Some(&token().token));
    Ok((fx, api))
}

/// Copies paced at `rate` scan-pass keys per second, quick to settle and to give up.
fn opts(rate: Option<u64>) -> CopyOptions {
    CopyOptions {
        rate_limit: rate,
        settle: Duration::from_millis(150),
        tick: Duration::from_millis(50),
        timeout: Duration::from_millis(700),
        retries: 3,
        ..Default::default()
    }
}

/// Creates migration `m` (big_bang, `data`) on interlay `main` → `new` and runs it.
async fn run_migration(api: &AdminClient, data: Value) -> anyhow::Result<()> {
    let body =
        json!({"id": "m", "strategy": {"type": "big_bang", "durability": true}, "data": data});
    api.post("/api/v1/migrations", body).await?.data();
    api.post(&format!("{M}/interlay/main"), json!({"endpoint": "new"}))
        .await?
        .data();
    api.post(&format!("{M}/migrate"), json!({})).await?.data();
    Ok(())
}

async fn wait_for(
    api: &AdminClient,
    secs: u64,
    f: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let m = api.get(M).await?.data().clone();
        if f(&m) {
            return Ok(m);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out; migration: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(c: &mut MultiplexedConnection, key: &str) -> anyhow::Result<Option<String>> {
    Ok(redis::cmd("GET").arg(key).query_async(c).await?)
}

/// What one writer saw: the last value it SET per key, the last INCR reply per counter, the
/// last HSET field value per hash, and the error replies (and INCR replies out of sequence).
#[derive(Default)]
struct Seen {
    set: HashMap<String, i64>,
    incr: HashMap<String, i64>,
    hset: HashMap<String, i64>,
    errors: Vec<String>,
}

/// Client `client` writes its own keys through the proxy until `stop`: a SET, an INCR and an
/// HSET per key per round, pipelined.
async fn writer(
    mut c: MultiplexedConnection,
    client: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Seen> {
    let mut seen = Seen::default();
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let mut pipe = redis::pipe();
        for k in 0..OWN {
            n += 1;
            pipe.cmd("SET").arg(format!("w:{client}:{k}")).arg(n);
            pipe.cmd("INCR").arg(format!("wc:{client}:{k}"));
            pipe.cmd("HSET")
                .arg(format!("wh:{client}:{k}"))
                .arg("f")
                .arg(n);
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut c).await?;
        for (k, r) in replies.chunks(3).enumerate() {
            for v in r {
                if let redis::Value::ServerError(e) = v {
                    seen.errors.push(format!("{e:?}"));
                }
            }
            let base = n - OWN as i64 + 1;
            seen.set.insert(format!("w:{client}:{k}"), base + k as i64);
            if let redis::Value::Int(i) = r[1] {
                // one writer per counter: each reply is the previous one plus one, across the
                // rollback and the reverse copy
                let prev = seen.incr.insert(format!("wc:{client}:{k}"), i);
                if prev.is_some_and(|p| p + 1 != i) {
                    seen.errors
                        .push(format!("wc:{client}:{k}: INCR gave {i} after {prev:?}"));
                }
            }
            seen.hset
                .insert(format!("wh:{client}:{k}"), base + k as i64);
        }
        // an application's pace: gaps in which the copy's queues drain (under writes without
        // any gap to hot keys, `done` waits for a tick that finds the queues empty)
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(seen)
}

fn writer_key(k: &str) -> bool {
    k.starts_with("w:") || k.starts_with("wc:") || k.starts_with("wh:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_on_reverse_copies_new_back_under_writes() -> anyhow::Result<()> {
    let (old, new) = (RedisServer::start()?, RedisServer::start()?);
    let (mut a, mut b) = (old.client().await?, new.client().await?);
    fill_all_types(&mut a, 3000).await?;
    let (fx, api) = start(&old, &new).await?;
    let movers = fx.app().dataplane().movers();
    movers.set_options(opts(None));
    run_migration(&api, json!({"type": "scan", "replace": "replace"})).await?;
    // copy done: big_bang now serves (and writes) new only
    wait_for(&api, 20, |m| m["progress"]["phase"] == "done").await?;

    // writes that only new gets
    let mut p = fx.client().await?;
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET")
            .arg(format!("only:new:{i}"))
            .arg(format!("n{i}"));
    }
    for i in (0..3000).step_by(7) {
        pipe.cmd("SET")
            .arg(format!("str:{i}"))
            .arg(format!("changed-{i}"));
    }
    pipe.cmd("HSET").arg("hash:1").arg("a").arg("changed");
    pipe.cmd("DEL").arg("int:6");
    pipe.cmd("SET").arg("wt").arg("string-on-new");
    pipe.cmd("SET").arg("rt").arg("string-on-new");
    for c in 0..CLIENTS {
        for k in 0..OWN {
            pipe.cmd("SET").arg(format!("w:{c}:{k}")).arg(-1);
            pipe.cmd("INCRBY").arg(format!("wc:{c}:{k}")).arg(1000);
            pipe.cmd("HSET")
                .arg(format!("wh:{c}:{k}"))
                .arg("f")
                .arg(-1)
                .arg("g")
                .arg("keep");
        }
    }
    pipe.query_async::<()>(&mut p).await?;
    assert_eq!(get(&mut a, "only:new:0").await?, None, "old did not get it");
    assert_eq!(get(&mut b, "only:new:0").await?.as_deref(), Some("n0"));
    // old's own view of some keys: a key only old has, a key of another type
    redis::cmd("SET")
        .arg("old:only")
        .arg("kept")
        .query_async::<()>(&mut a)
        .await?;
    redis::cmd("RPUSH")
        .arg("wt")
        .arg("x")
        .query_async::<()>(&mut a)
        .await?;
    redis::cmd("RPUSH")
        .arg("rt")
        .arg("x")
        .query_async::<()>(&mut a)
        .await?;

    // the reverse copy is paced so that it runs for a few seconds under the writes
    movers.set_options(opts(Some(2000)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for c in 0..CLIENTS {
        let conn = fx.client().await?;
        writers.push(tokio::spawn(writer(conn, c, stop.clone())));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let r = api
        .post(
            &format!("{M}/rollback"),
            json!({"overwrite_on_reverse": true, "reason": "new misbehaves"}),
        )
        .await?;
    let r = r.data();
    assert_eq!(r["status"], "rolling_back", "{r}");
    assert_eq!(r["reverse_copy"]["state"], "running", "{r}");
    assert!(r["warning"].is_null(), "{r}");

    // new is authoritative while copying back: a write new refuses is refused to the client
    // (old holds a list there, new a string; the copy then gives old new's string)
    let lpush: redis::RedisResult<i64> = redis::cmd("LPUSH")
        .arg("wt")
        .arg("y")
        .query_async(&mut p)
        .await;
    let err = lpush.expect_err("new refuses LPUSH on its string");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    // and a write only old refuses is acknowledged (new's reply), then repaired on old
    let len: i64 = redis::cmd("APPEND")
        .arg("rt")
        .arg("+1")
        .query_async(&mut p)
        .await?;
    assert_eq!(len, "string-on-new+1".len() as i64);

    // progress is visible while the copy runs
    let mut copied_seen = 0;
    let mut status_seen = false;
    let m = loop {
        let m = api.get(M).await?.data().clone();
        if m["status"] != "rolling_back" {
            break m;
        }
        copied_seen = copied_seen.max(
            m["reverse_copy"]["progress"]["keys_copied"]
                .as_u64()
                .unwrap_or(0),
        );
        if !status_seen {
            let s = api.get(&format!("{M}/status")).await?;
            let s = s.data();
            assert_eq!(s["reverse_copy"]["state"], "running", "{s}");
            status_seen = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(m["status"], "rolled_back", "{m}");
    assert!(status_seen, "the copy ran long enough to be seen");
    assert!(copied_seen > 0, "progress while rolling back: {m}");
    assert_eq!(m["reverse_copy"]["state"], "done", "{m}");
    let total = m["reverse_copy"]["progress"]["keys_copied"]
        .as_u64()
        .unwrap();
    assert!(total >= 4000, "every key of new copied back: {m}");
    assert_eq!(m["interlays"][0]["state"], "rolled_back");

    // writes go on (old only now), then stop
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in writers {
        seen.push(w.await??);
    }

    // old has every key of new with new's values; only old:only and int:6 (deleted on new)
    // are not on both sides
    let diffs: Vec<String> = differences(&mut a, &mut b, Duration::from_millis(1500))
        .await?
        .into_iter()
        .filter(|d| !writer_key(d))
        .collect();
    assert_eq!(
        diffs,
        vec!["int:6 only on one side", "old:only only on one side"],
        "old vs new"
    );
    assert_eq!(get(&mut a, "str:7").await?.as_deref(), Some("changed-7"));
    assert_eq!(get(&mut a, "old:only").await?.as_deref(), Some("kept"));
    assert_eq!(get(&mut a, "wt").await?.as_deref(), Some("string-on-new"));
    assert_eq!(get(&mut a, "rt").await?.as_deref(), Some("string-on-new+1"));
    let s = api.get(&format!("{M}/status")).await?;
    let t = &s.data()["reverse_copy"]["traffic"]["main"];
    assert!(t["dual_write_failures"].as_u64().unwrap_or(0) >= 1, "{t}");
    // its key was queued for a new → old repair, and the copy back took it
    assert_eq!(t["reverse_repair_backlog"], 0, "{t}");
    // every concurrent write's latest value, and no error
    for s in &seen {
        assert!(s.errors.is_empty(), "writers saw errors: {:?}", s.errors);
        for (k, v) in &s.set {
            assert_eq!(get(&mut a, k).await?, Some(v.to_string()), "{k}");
        }
        for (k, v) in &s.incr {
            assert!(*v > 1000, "{k}: counted on from new's value, got {v}");
            assert_eq!(
                get(&mut a, k).await?,
                Some(v.to_string()),
                "{k}: last reply"
            );
        }
        for (k, v) in &s.hset {
            let (f, g): (String, String) = redis::cmd("HMGET")
                .arg(k)
                .arg("f")
                .arg("g")
                .query_async(&mut a)
                .await?;
            assert_eq!((f, g.as_str()), (v.to_string(), "keep"), "{k}");
        }
    }
    // routing is old only: a write now reaches old and not new
    redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query_async::<()>(&mut p)
        .await?;
    assert_eq!(get(&mut a, "after").await?.as_deref(), Some("1"));
    assert_eq!(get(&mut b, "after").await?, None);
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverse_copy_whose_source_dies_fails_on_old() -> anyhow::Result<()> {
    let (old, mut new) = (RedisServer::start()?, RedisServer::start()?);
    let (mut a, mut b) = (old.client().await?, new.client().await?);
    fill_all_types(&mut b, 3000).await?;
    let (fx, api) = start(&old, &new).await?;
    fx.app().dataplane().movers().set_options(opts(Some(1000)));
    // nothing to copy forward: big_bang serves new at once
    run_migration(&api, json!("none")).await?;
    wait_for(&api, 10, |m| m["progress"]["phase"] == "done").await?;
    let r = api
        .post(
            &format!("{M}/rollback"),
            json!({"overwrite_on_reverse": true}),
        )
        .await?;
    assert_eq!(r.data()["status"], "rolling_back", "{}", r.text);
    wait_for(&api, 10, |m| {
        m["reverse_copy"]["progress"]["keys_copied"]
            .as_u64()
            .unwrap_or(0)
            > 0
    })
    .await?;
    new.stop();
    let m = wait_for(&api, 20, |m| m["status"] != "rolling_back").await?;
    assert_eq!(m["status"], "failed", "{m}");
    let reason = m["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("reverse copy of interlay 'main' failed"),
        "{m}"
    );
    assert_eq!(m["reverse_copy"]["state"], "failed", "{m}");
    assert_eq!(m["interlays"][0]["state"], "rolled_back", "{m}");
    // routing is on old alone: the proxy serves without new
    let mut p = fx.client().await?;
    redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query_async::<()>(&mut p)
        .await?;
    assert_eq!(get(&mut p, "after").await?.as_deref(), Some("1"));
    assert_eq!(get(&mut a, "after").await?.as_deref(), Some("1"));
    let _ = &mut b;
    fx.shutdown().await;
    Ok(())
}
