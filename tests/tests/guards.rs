//! Guards (SPEC §5.5) end to end: a shadow_traffic migration whose new side is altered behind
//! the proxy's back trips `max_mismatch_rate` and rolls back by itself (routing back on old at
//! once, the reason recorded); a canary migration whose new side dies trips `max_error_rate` and
//! pauses.

use std::time::Duration;

use godwit_tests::{GodwitFixture, RedisServer, Reply, RespClient};
use serde_json::{json, Value};

const ORG: &str = "default";

async fn fixture(old: &RedisServer, new: &RedisServer) -> anyhow::Result<GodwitFixture> {
    GodwitFixture::builder()
        .endpoint("old", &old.url())
        .endpoint("new", &new.url())
        .interlay("main", "old")
        .start()
        .await
}

async fn start_migration(fx: &GodwitFixture, body: Value) -> anyhow::Result<()> {
    let c = fx.app().control();
    let id = body["id"].as_str().unwrap_or_default().to_string();
    c.create_migration(ORG, &body).await?;
    c.add_interlay(ORG, &id, "main", &json!({"endpoint": "new"}))
        .await?;
    c.migrate(ORG, &id).await?;
    Ok(())
}

async fn migration(fx: &GodwitFixture, id: &str) -> anyhow::Result<Value> {
    Ok(fx.app().control().get_migration(ORG, id, false).await?)
}

async fn wait_status(fx: &GodwitFixture, id: &str, status: &str) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = migration(fx, id).await?;
        if m["status"] == status {
            return Ok(m);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not {status} after 10 s: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pipeline(c: &mut RespClient, cmds: &[Vec<String>]) -> anyhow::Result<Vec<Reply>> {
    for args in cmds {
        c.send(args).await?;
    }
    c.read_replies(cmds.len()).await
}

fn cmds(n: usize, f: impl Fn(usize) -> Vec<String>) -> Vec<Vec<String>> {
    (0..n).map(f).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatch_rate_guard_rolls_a_shadow_migration_back() -> anyhow::Result<()> {
    let (old, new) = (RedisServer::start()?, RedisServer::start()?);
    let fx = fixture(&old, &new).await?;
    start_migration(
        &fx,
        json!({"id": "shadow", "strategy": {"type": "shadow_traffic"}, "data": "none",
               "guard": {"max_mismatch_rate": 0.1, "window_s": 5, "action": "rollback"}}),
    )
    .await?;
    let mut c = fx.raw().await?;
    let set = |i| vec!["SET".into(), format!("k:{i}"), "v".into()];
    let get = |i| vec!["GET".into(), format!("k:{i}")];
    for r in pipeline(&mut c, &cmds(100, set)).await? {
        assert!(r.is_ok(), "{r:?}");
    }
    // clean traffic: 100 matching shadow reads for over a second do not trip the guard
    for r in pipeline(&mut c, &cmds(100, get)).await? {
        assert_eq!(r, Reply::bulk("v"));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(migration(&fx, "shadow").await?["status"], "running");

    // the new side drifts behind the proxy's back: 30 of 100 reads now differ
    let mut direct = new.raw().await?;
    for i in 0..30 {
        direct.ok(&["SET", &format!("k:{i}"), "tampered"]).await?;
    }
    for r in pipeline(&mut c, &cmds(100, get)).await? {
        assert_eq!(r, Reply::bulk("v"), "clients keep getting old's replies");
    }
    let m = wait_status(&fx, "shadow", "rolled_back").await?;
    let reason = m["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("max_mismatch_rate"), "{m}");
    assert!(reason.contains("rolled back"), "{m}");

    // routing is back on old alone, on the same client connection: writes no longer reach new
    // and reads are no longer compared
    let compared = fx.app().proxy().reports.get("shadow").map(|r| r.compared);
    c.ok(&["SET", "after", "1"]).await?;
    assert_eq!(c.cmd(&["GET", "after"]).await?, Reply::bulk("1"));
    assert_eq!(direct.cmd(&["EXISTS", "after"]).await?, Reply::Integer(0));
    assert_eq!(
        fx.app().proxy().reports.get("shadow").map(|r| r.compared),
        compared
    );
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_guard_pauses_when_new_fails() -> anyhow::Result<()> {
    let (old, mut new) = (RedisServer::start()?, RedisServer::start()?);
    let fx = fixture(&old, &new).await?;
    start_migration(
        &fx,
        json!({"id": "canary", "data": "none",
               "strategy": {"type": "canary", "read_percentage": 0.0,
                            "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}},
               "guard": {"max_error_rate": 0.05, "window_s": 5, "action": "pause"}}),
    )
    .await?;
    let mut c = fx.raw().await?;
    let set = |i| vec!["SET".into(), format!("k:{i}"), "v".into()];
    for r in pipeline(&mut c, &cmds(100, set)).await? {
        assert!(r.is_ok(), "{r:?}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(migration(&fx, "canary").await?["status"], "running");

    new.stop();
    // old-authoritative dual writes: clients see no error while new fails every write
    for r in pipeline(&mut c, &cmds(100, set)).await? {
        assert!(r.is_ok(), "{r:?}");
    }
    let m = wait_status(&fx, "canary", "paused").await?;
    let reason = m["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("max_error_rate"), "{m}");
    assert!(reason.contains("paused"), "{m}");
    fx.shutdown().await;
    Ok(())
}
