//! A fleet's copy (issue 8): the copy runs on the instance that ran `migrate`, while the writes
//! arrive through another instance. Keys written there reach the copy through the store's
//! dirty-key relay, so no scan copy lands stale after a write: verify = 0 and an independent
//! DUMP/PTTL comparison agrees.

mod mover_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use godwit_tests::migration::{
    canary_dual_write, quick_copy, start_migration, wait_copy_done, wait_migration,
};
use godwit_tests::{GodwitFixture, RedisServer};
use serde_json::json;

async fn node(
    store: &RedisServer,
    old: &RedisServer,
    new: &RedisServer,
    id: &str,
) -> anyhow::Result<GodwitFixture> {
    GodwitFixture::builder()
        .instance_id(id)
        .endpoint("old", &old.url())
        .endpoint("new", &new.url())
        .interlay("main", "old")
        .store(&store.url(), "fleetcopy")
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_another_instance_reach_the_copy() -> anyhow::Result<()> {
    let keys = 20_000usize;
    let (store, old, new) = (
        RedisServer::start()?,
        RedisServer::start()?,
        RedisServer::start()?,
    );
    let mut a = old.client().await?;
    mover_common::fill_all_types(&mut a, keys).await?;
    let g1 = node(&store, &old, &new, "g1").await?;
    let g2 = node(&store, &old, &new, "g2").await?;
    g1.app()
        .dataplane()
        .movers()
        .set_options(godwit_mover::CopyOptions {
            rate_limit: Some(5_000),
            tick: Duration::from_millis(50),
            ..Default::default()
        });
    // the load: overwrites of the keys being copied, only through g2
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let mut c = g2.client().await?;
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut n, mut errors) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let mut pipe = redis::pipe();
                for _ in 0..100 {
                    n += 1;
                    let i = (n * 7919) % keys;
                    match i % 7 {
                        0 => pipe.cmd("SET").arg(format!("str:{i}")).arg(n),
                        1 => pipe.cmd("HSET").arg(format!("hash:{i}")).arg("a").arg(n),
                        2 => pipe.cmd("RPUSH").arg(format!("list:{i}")).arg(n),
                        3 => pipe.cmd("SADD").arg(format!("set:{i}")).arg(n),
                        4 => pipe.cmd("ZADD").arg(format!("zset:{i}")).arg(n).arg("m"),
                        5 => pipe.cmd("DEL").arg(format!("stream:{i}")),
                        _ => pipe.cmd("INCR").arg(format!("int:{i}")),
                    };
                }
                let replies: Vec<redis::Value> = pipe.query_async(&mut c).await?;
                errors += replies
                    .iter()
                    .filter(|r| matches!(r, redis::Value::ServerError(_)))
                    .count();
            }
            anyhow::Ok((n, errors))
        })
    };
    start_migration(&g1, canary_dual_write("m", "old_authoritative")).await?;
    // writes run while most of the pass copies (DELs shrink the keyspace meanwhile)
    wait_migration(&g1, "m", 60, |m| {
        m["progress"]["keys_scanned"].as_u64().unwrap_or(0) as usize >= keys * 4 / 5
            || m["progress"]["phase"] == "done"
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    let (writes, errors) = load.await??;
    assert_eq!(errors, 0, "clients saw errors");
    assert!(writes > 1000, "too little load: {writes}");
    wait_copy_done(&g1, "m", 60).await?;
    let c = g1.app().control();
    let v = c.verify("default", "m", &json!({})).await?;
    assert_eq!(v["consistent"], true, "{v}");
    let mut b = new.client().await?;
    let diffs = mover_common::differences(&mut a, &mut b, Duration::from_millis(1000)).await?;
    assert!(
        diffs.is_empty(),
        "{} differences: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(20)]
    );
    Ok(())
}

/// A dual write that fails on new through `g2` is repaired by the copy running on `g1`: the
/// repair queue crosses the fleet through the store too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_queued_on_another_instance_reach_the_copy() -> anyhow::Result<()> {
    let (store, old, new) = (
        RedisServer::start()?,
        RedisServer::start()?,
        RedisServer::start()?,
    );
    let g1 = node(&store, &old, &new, "g1").await?;
    let g2 = node(&store, &old, &new, "g2").await?;
    g1.app().dataplane().movers().set_options(quick_copy());
    start_migration(&g1, canary_dual_write("m", "old_authoritative")).await?;
    wait_copy_done(&g1, "m", 10).await?;
    // wait until g2 runs the migration's route (dual writes)
    let mut p = g2.client().await?;
    let mut b = new.client().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        redis::cmd("SET")
            .arg("probe")
            .arg(1)
            .query_async::<()>(&mut p)
            .await?;
        let on_new: Option<i64> = redis::cmd("GET").arg("probe").query_async(&mut b).await?;
        if on_new == Some(1) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "g2 does not dual-write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async::<()>(&mut b)
        .await?;
    // old-authoritative: the client gets old's OK, new refuses, g2 queues the key
    redis::cmd("SET")
        .arg("rk")
        .arg("v")
        .query_async::<()>(&mut p)
        .await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async::<()>(&mut b)
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let on_new: Option<String> = redis::cmd("GET").arg("rk").query_async(&mut b).await?;
        if on_new.as_deref() == Some("v") {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "new was not repaired through the fleet"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
