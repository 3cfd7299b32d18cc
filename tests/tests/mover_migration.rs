//! Migrations with data movement through the proxy: a canary and a big_bang migration with a
//! scan copy under a mixed write load from several clients, then `verify` and an independent
//! full comparison; the new Redis killed mid-copy (rollback_all) and a short outage
//! (retry_then_all). The two migrations under load run at the acceptance size, 100k keys.

mod mover_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use godwit_mover::CopyOptions;
use godwit_tests::migration::{start_migration, wait_migration};
use godwit_tests::{GodwitFixture, RedisServer};
use mover_common::{differences, fill_all_types};
use serde_json::{json, Value};

const ORG: &str = "default";

/// A load client's result: the last value of each of its counters, and the errors it saw.
type LoadResult = anyhow::Result<(HashMap<String, i64>, u64)>;

async fn fixture(
    old: &RedisServer,
    new: &RedisServer,
    opts: CopyOptions,
) -> anyhow::Result<GodwitFixture> {
    let fx = GodwitFixture::builder()
        .endpoint("old", &old.url())
        .endpoint("new", &new.url())
        .interlay("main", "old")
        .start()
        .await?;
    fx.app().dataplane().movers().set_options(opts);
    Ok(fx)
}

fn opts(rate: u64) -> CopyOptions {
    CopyOptions {
        rate_limit: Some(rate),
        settle: Duration::from_millis(150),
        tick: Duration::from_millis(50),
        timeout: Duration::from_millis(700),
        retries: 3,
        ..Default::default()
    }
}

/// Mixed writes through the proxy from `clients` connections, each owning its keys (so both
/// sides see each key's writes in one order), until `stop`. Returns per client the final value
/// of its `own:<client>:<n>` counters and the number of error replies seen.
async fn load(
    fx: &GodwitFixture,
    clients: usize,
    keys: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<LoadResult>>> {
    let mut out = Vec::new();
    for client in 0..clients {
        let mut c = fx.client().await?;
        let stop = stop.clone();
        out.push(tokio::spawn(async move {
            let mut last = HashMap::new();
            let (mut errors, mut round) = (0u64, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let mut pipe = redis::pipe();
                for j in 0..50 {
                    let n = (round * 50 + j) * clients + client;
                    let i = n % keys;
                    let own = format!("own:{client}:{}", n % 97);
                    pipe.cmd("SET").arg(&own).arg(n);
                    last.insert(own, n as i64);
                    match n % 12 {
                        0 => pipe.cmd("SET").arg(format!("str:{}", i - i % 7)).arg(n),
                        1 => pipe.cmd("INCR").arg(format!("load:cnt:{i}")),
                        2 => pipe.cmd("APPEND").arg(format!("load:str:{i}")).arg("ab"),
                        3 => pipe
                            .cmd("HSET")
                            .arg(format!("hash:{}", i - i % 7 + 1))
                            .arg("f")
                            .arg(n),
                        4 => pipe
                            .cmd("HINCRBY")
                            .arg(format!("load:h:{i}"))
                            .arg("n")
                            .arg(1),
                        5 => pipe.cmd("LPUSH").arg(format!("load:l:{i}")).arg(n),
                        6 => pipe.cmd("SADD").arg(format!("load:s:{i}")).arg(n % 13),
                        7 => pipe
                            .cmd("ZINCRBY")
                            .arg(format!("load:z:{i}"))
                            .arg(1)
                            .arg("m"),
                        8 => pipe.cmd("DEL").arg(format!("int:{}", i - i % 7 + 6)),
                        9 => pipe
                            .cmd("EXPIRE")
                            .arg(format!("list:{}", i - i % 7 + 2))
                            .arg(3600),
                        10 => pipe
                            .cmd("XADD")
                            .arg(format!("load:x:{i}"))
                            .arg("*")
                            .arg("n")
                            .arg(n),
                        _ => pipe.cmd("DEL").arg(format!("load:str:{i}")),
                    };
                }
                let replies: Vec<redis::Value> = pipe.query_async(&mut c).await?;
                errors += replies
                    .iter()
                    .filter(|r| matches!(r, redis::Value::ServerError(_)))
                    .count() as u64;
                round += 1;
            }
            Ok((last, errors))
        }));
    }
    Ok(out)
}

async fn finish_load(
    handles: Vec<tokio::task::JoinHandle<LoadResult>>,
) -> anyhow::Result<(HashMap<String, i64>, u64)> {
    let (mut all, mut errors) = (HashMap::new(), 0);
    for h in handles {
        let (last, e) = h.await??;
        all.extend(last);
        errors += e;
    }
    Ok((all, errors))
}

async fn migrate_under_load(strategy: Value, keys: usize, rate: u64) -> anyhow::Result<()> {
    let (old, new) = (RedisServer::start()?, RedisServer::start()?);
    let (mut a, mut b) = (old.client().await?, new.client().await?);
    fill_all_types(&mut a, keys).await?;
    let fx = fixture(&old, &new, opts(rate)).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let handles = load(&fx, 4, keys, stop.clone()).await?;
    start_migration(
        &fx,
        json!({"id": "m", "strategy": strategy,
                                "data": {"type": "scan", "replace": "replace"}}),
    )
    .await?;
    // writes run while the pass copies
    let m = wait_migration(&fx, "m", 90, |m| {
        m["progress"]["keys_scanned"].as_u64().unwrap_or(0) > keys as u64 / 2
    })
    .await?;
    assert_eq!(m["progress"]["phase"], "scanning", "{m}");
    stop.store(true, Ordering::Relaxed);
    let (last, errors) = finish_load(handles).await?;
    assert_eq!(errors, 0, "clients saw errors");
    let m = wait_migration(&fx, "m", 90, |m| m["progress"]["phase"] == "done").await?;
    assert!(
        m["progress"]["keys_copied"].as_u64().unwrap() >= keys as u64,
        "{m}"
    );
    let c = fx.app().control();
    let v = c.verify(ORG, "m", &json!({"rounds": 2})).await?;
    assert_eq!(v["consistent"], true, "{v}");
    let report = &v["interlays"][0]["report"];
    assert!(
        report["keys_checked"].as_u64().unwrap() > keys as u64,
        "{v}"
    );
    let diffs = differences(&mut a, &mut b, Duration::from_millis(1000)).await?;
    assert!(
        diffs.is_empty(),
        "{} differences: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(20)]
    );
    for (k, n) in &last {
        let got: i64 = redis::cmd("GET").arg(k).query_async(&mut b).await?;
        assert_eq!(got, *n, "{k}");
    }
    c.complete(ORG, "m", &json!({})).await?;
    let mut p = fx.client().await?;
    let got: i64 = redis::cmd("GET").arg("own:0:0").query_async(&mut p).await?;
    assert_eq!(got, last["own:0:0"]);
    Ok(())
}

/// The acceptance size: 100k keys under a mixed load from 4 clients (about 40 s on two cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_scan_under_mixed_load_converges() -> anyhow::Result<()> {
    let strategy = json!({"type": "canary", "read_percentage": 0.0,
                          "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}});
    migrate_under_load(strategy, 100_000, 20_000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bang_scan_under_mixed_load_converges() -> anyhow::Result<()> {
    migrate_under_load(
        json!({"type": "big_bang", "durability": true}),
        100_000,
        20_000,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_killed_mid_copy_rolls_back_and_old_has_every_write() -> anyhow::Result<()> {
    let (old, mut new) = (RedisServer::start()?, RedisServer::start()?);
    let mut a = old.client().await?;
    fill_all_types(&mut a, 20_000).await?;
    let fx = fixture(&old, &new, opts(5_000)).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let handles = load(&fx, 3, 20_000, stop.clone()).await?;
    start_migration(
        &fx,
        json!({"id": "m", "strategy": {"type": "big_bang", "durability": true},
                                "data": {"type": "scan"}, "failure_handling": "rollback_all"}),
    )
    .await?;
    wait_migration(&fx, "m", 20, |m| {
        m["progress"]["keys_copied"].as_u64().unwrap_or(0) > 2000
    })
    .await?;
    new.stop();
    let m = wait_migration(&fx, "m", 20, |m| m["status"] == "rolled_back").await?;
    assert!(
        m["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("failed"),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (last, errors) = finish_load(handles).await?;
    assert_eq!(errors, 0, "clients saw errors");
    for (k, n) in &last {
        let got: i64 = redis::cmd("GET").arg(k).query_async(&mut a).await?;
        assert_eq!(got, *n, "{k}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_outage_is_retried_and_completes() -> anyhow::Result<()> {
    let (old, mut new) = (RedisServer::start()?, RedisServer::start()?);
    let (mut a, mut b) = (old.client().await?, new.client().await?);
    fill_all_types(&mut a, 10_000).await?;
    let fx = fixture(&old, &new, opts(5_000)).await?;
    start_migration(
        &fx,
        json!({"id": "m", "strategy": {"type": "big_bang", "durability": true},
                                "data": {"type": "snapshot", "replace": "replace"},
                                "failure_handling": {"type": "retry_then_all", "retry_count": 3}}),
    )
    .await?;
    wait_migration(&fx, "m", 20, |m| {
        m["progress"]["keys_copied"].as_u64().unwrap_or(0) > 1000
    })
    .await?;
    new.pause()?;
    let m = wait_migration(&fx, "m", 20, |m| {
        m["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("retrying"))
    })
    .await?;
    assert_eq!(m["status"], "running");
    new.resume()?;
    let m = wait_migration(&fx, "m", 30, |m| m["progress"]["phase"] == "done").await?;
    assert_eq!(m["status"], "running", "{m}");
    let diffs = differences(&mut a, &mut b, Duration::from_millis(1000)).await?;
    assert!(diffs.is_empty(), "{:?}", &diffs[..diffs.len().min(20)]);
    fx.app().control().complete(ORG, "m", &json!({})).await?;
    Ok(())
}
