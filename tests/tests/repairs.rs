//! Repairs go away from the authoritative side: under a new-authoritative dual write, a write
//! that fails on old (here: old out of memory) is answered from new, queued for a reverse
//! repair and re-copied new → old once old accepts writes again. The forward copy never takes
//! it (it would overwrite new's value with old's stale one).

use std::time::Duration;

use godwit_tests::migration::{canary_dual_write, quick_copy, start_migration, wait_copy_done};
use godwit_tests::{GodwitFixture, RedisServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_failed_on_old_is_repaired_from_new() -> anyhow::Result<()> {
    let (old, new) = (RedisServer::start()?, RedisServer::start()?);
    let fx = GodwitFixture::builder()
        .endpoint("old", &old.url())
        .endpoint("new", &new.url())
        .interlay("main", "old")
        .start()
        .await?;
    fx.app().dataplane().movers().set_options(quick_copy());
    let mut body = canary_dual_write("m", "new_authoritative");
    body["data"] = json!({"type": "scan"});
    start_migration(&fx, body).await?;
    let c = fx.app().control();
    let mut p = fx.client().await?;
    redis::cmd("SET")
        .arg("k")
        .arg("v1")
        .query_async::<()>(&mut p)
        .await?;
    // the copy is done: dual writes carry every change and the repair queues fix failures (a
    // failure while a re-copy of the key is still pending is the race docs/data-movement.md
    // describes)
    wait_copy_done(&fx, "m", 10).await?;
    // old refuses writes now; new takes them and answers the client
    let mut a = old.client().await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async::<()>(&mut a)
        .await?;
    let r: redis::RedisResult<()> = redis::cmd("SET")
        .arg("k")
        .arg("v2")
        .query_async(&mut p)
        .await;
    assert!(
        r.is_ok(),
        "new is authoritative: the client sees its reply: {r:?}"
    );
    let status = c.status_view("default", "m").await?;
    assert_eq!(
        status["traffic"]["reverse_repair_backlog"]
            .as_u64()
            .unwrap_or(0)
            + 1,
        2,
        "{status}"
    );
    let stale: String = redis::cmd("GET").arg("k").query_async(&mut a).await?;
    assert_eq!(stale, "v1");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async::<()>(&mut a)
        .await?;
    let mut b = new.client().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let on_old: String = redis::cmd("GET").arg("k").query_async(&mut a).await?;
        if on_old == "v2" {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "old was not repaired from new (old has {on_old}, new has {:?}): {}",
            redis::cmd("GET")
                .arg("k")
                .query_async::<Option<String>>(&mut b)
                .await?,
            c.status_view("default", "m").await?
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let on_new: String = redis::cmd("GET").arg("k").query_async(&mut b).await?;
    assert_eq!(
        on_new, "v2",
        "the forward copy must not overwrite new with old's value"
    );
    Ok(())
}

/// Clients pinned to one side's connection (a transaction, a blocking write) are not
/// dual-written; once the copy is done no dirty mark reaches new either, so their keys are
/// repaired from the side they ran on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_writes_after_the_copy_reach_new() -> anyhow::Result<()> {
    let (old, new) = (RedisServer::start()?, RedisServer::start()?);
    let fx = GodwitFixture::builder()
        .endpoint("old", &old.url())
        .endpoint("new", &new.url())
        .interlay("main", "old")
        .start()
        .await?;
    fx.app().dataplane().movers().set_options(quick_copy());
    start_migration(&fx, canary_dual_write("m", "old_authoritative")).await?;
    wait_copy_done(&fx, "m", 10).await?;
    let mut p = fx.raw().await?;
    p.ok(&["MULTI"]).await?;
    p.cmd(&["SET", "tx:a", "1"]).await?;
    p.cmd(&["INCRBY", "tx:b", "5"]).await?;
    p.cmd(&["EXEC"]).await?;
    p.cmd(&["RPUSH", "src", "x"]).await?;
    p.cmd(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "1"])
        .await?;
    let mut b = new.client().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: (Option<String>, Option<i64>, Vec<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg("tx:a")
            .cmd("GET")
            .arg("tx:b")
            .cmd("LRANGE")
            .arg("dst")
            .arg(0)
            .arg(-1)
            .cmd("EXISTS")
            .arg("src")
            .query_async(&mut b)
            .await?;
        if got == (Some("1".into()), Some(5), vec!["x".to_string()], 0) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "new misses the pinned writes: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
