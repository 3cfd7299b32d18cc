//! Fleets (SPEC §6, issue 8): three in-process godwit instances (`g1`, `g2`, `g3`, each with its
//! own data dir and interlay port) share one Redis store started by the test. A PATCH on one
//! reaches all within a second; a rolling_update migrates them one by one; an instance that
//! dies during a cutover stops counting when its liveness expires and the migration completes;
//! an instance that never acknowledges makes the cutover answer 504 with the change saved.
//!
//! Which side an instance serves is read through its own interlay: `who` holds `old` on the old
//! Redis and `new` on the new one.

use std::time::Duration;

use godwit_tests::{auth_toml, AdminClient, ApiToken, GodwitFixture, RedisServer};
use serde_json::{json, Value};
use tokio::time::Instant;

const IDS: [&str; 3] = ["g1", "g2", "g3"];

fn token() -> ApiToken {
    ApiToken::new("fleet", "default", "admin")
}

struct Fleet {
    store: RedisServer,
    _old: RedisServer,
    _new: RedisServer,
    nodes: Vec<GodwitFixture>,
}

async fn start_node(
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
        .store(&store.url(), "fleet")
        .extra_toml(&auth_toml(&[token()], "", ""))
        .start()
        .await
}

async fn fleet(n: usize) -> anyhow::Result<Fleet> {
    let (store, old, new) = (
        RedisServer::start()?,
        RedisServer::start()?,
        RedisServer::start()?,
    );
    for (server, who) in [(&old, "old"), (&new, "new")] {
        let mut c = server.client().await?;
        redis::cmd("SET")
            .arg("who")
            .arg(who)
            .query_async::<()>(&mut c)
            .await?;
    }
    let mut nodes = Vec::new();
    for id in &IDS[..n] {
        nodes.push(start_node(&store, &old, &new, id).await?);
    }
    Ok(Fleet {
        store,
        _old: old,
        _new: new,
        nodes,
    })
}

fn admin(fx: &GodwitFixture) -> AdminClient {
    AdminClient::new(fx.admin_addr(), Some(&token().token))
}

/// What `GET who` answers through the instance's interlay (a fresh connection each time).
async fn who(fx: &GodwitFixture) -> anyhow::Result<String> {
    let mut c = fx.client().await?;
    Ok(redis::cmd("GET").arg("who").query_async(&mut c).await?)
}

/// Waits until every instance serves what `want` says (index → "old"/"new"); returns the wait.
async fn wait_serving(
    nodes: &[GodwitFixture],
    want: &[&str],
    within: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let mut seen = Vec::new();
        for fx in nodes {
            seen.push(who(fx).await?);
        }
        if seen == want {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(
            t0.elapsed() < within,
            "after {within:?} the instances serve {seen:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn create_migration(a: &AdminClient, id: &str, strategy: Value) -> anyhow::Result<()> {
    a.post(
        "/api/v1/migrations",
        json!({"id": id, "strategy": strategy, "data": "none", "failure_handling": "rollback_all"}),
    )
    .await?
    .data();
    a.post(
        &format!("/api/v1/migrations/{id}/interlay/main"),
        json!({"endpoint": "new"}),
    )
    .await?
    .data();
    a.post(&format!("/api/v1/migrations/{id}/migrate"), json!({}))
        .await?
        .data();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_on_one_reaches_all_within_a_second() -> anyhow::Result<()> {
    let f = fleet(3).await?;
    wait_serving(&f.nodes, &["old"; 3], Duration::from_secs(1)).await?;
    let a = admin(&f.nodes[0]);
    a.patch("/api/v1/interlays/main", json!({"endpoint": "new"}))
        .await?
        .data();
    let took = wait_serving(&f.nodes, &["new"; 3], Duration::from_secs(1)).await?;
    println!("propagated to 3 instances in {took:?}");
    // every live instance reports the epoch of that change
    let view = admin(&f.nodes[2]).get("/api/v1/instances").await?;
    let v = view.data();
    assert_eq!(v["store"], "redis", "{v}");
    let ids: Vec<&str> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, IDS, "{v}");
    for i in v["instances"].as_array().unwrap() {
        assert_eq!(i["epoch"], v["epoch"], "{v}");
    }
    // the store holds the state under the prefix
    let mut c = f.store.client().await?;
    let version: u64 = redis::cmd("GET")
        .arg("fleet:version")
        .query_async(&mut c)
        .await?;
    assert_eq!(v["epoch"], version);
    for fx in f.nodes {
        fx.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_migrates_the_instances_one_by_one() -> anyhow::Result<()> {
    let f = fleet(3).await?;
    let a = admin(&f.nodes[0]);
    let strategy = |done: &[&str]| json!({"type": "rolling_update", "migrated_instances": done, "total_instances": 3});
    create_migration(&a, "roll", strategy(&[])).await?;
    wait_serving(&f.nodes, &["old"; 3], Duration::from_secs(1)).await?;
    for k in 1..=3 {
        // each step is sent to a different instance: any of them may drive the migration
        let driver = admin(&f.nodes[k - 1]);
        driver
            .patch(
                "/api/v1/migrations/roll",
                json!({"strategy": strategy(&IDS[..k])}),
            )
            .await?
            .data();
        let want: Vec<&str> = (0..3).map(|i| if i < k { "new" } else { "old" }).collect();
        wait_serving(&f.nodes, &want, Duration::from_secs(1)).await?;
    }
    // completing is a cutover: every live instance acknowledges the epoch before the answer
    let done = admin(&f.nodes[1])
        .post("/api/v1/migrations/roll/complete", json!({}))
        .await?;
    let b = &done.data()["fleet_barrier"];
    assert_eq!(b["status"], "acknowledged", "{b}");
    assert_eq!(b["acknowledged"], json!(IDS), "{b}");
    wait_serving(&f.nodes, &["new"; 3], Duration::from_secs(1)).await?;
    for fx in f.nodes {
        fx.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_during_a_cutover_stops_counting_when_its_liveness_expires(
) -> anyhow::Result<()> {
    let mut f = fleet(3).await?;
    let a = admin(&f.nodes[0]);
    create_migration(
        &a,
        "bg",
        json!({"type": "blue_green", "active_is_new": false}),
    )
    .await?;
    wait_serving(&f.nodes, &["old"; 3], Duration::from_secs(1)).await?;
    // g3 dies without a word: it stops following the store and heartbeating, its liveness
    // record stays until it expires
    let dead = f.nodes.pop().unwrap();
    dead.app().control().leave_fleet(false).await;
    dead.shutdown().await;
    let t0 = Instant::now();
    let done = a
        .post(
            "/api/v1/migrations/bg/complete",
            json!({"reason": "cutover"}),
        )
        .await?;
    let took = t0.elapsed();
    let d = done.data();
    assert_eq!(d["status"], "completed", "{d}");
    let b = &d["fleet_barrier"];
    assert_eq!(b["status"], "acknowledged", "{b}");
    assert_eq!(b["acknowledged"], json!(["g1", "g2"]), "{b}");
    assert!(took < Duration::from_secs(5), "barrier took {took:?}");
    // the survivors serve new, agree on the state, and see a fleet of two
    wait_serving(&f.nodes, &["new"; 2], Duration::from_secs(1)).await?;
    let b2 = admin(&f.nodes[1]);
    let m = b2.get("/api/v1/migrations/bg").await?;
    assert_eq!(m.data()["status"], "completed", "{}", m.text);
    let v = b2.get("/api/v1/instances").await?;
    assert_eq!(
        v.data()["instances"].as_array().unwrap().len(),
        2,
        "{}",
        v.text
    );
    let s = a.get("/api/v1/migrations/bg/status").await?;
    assert_eq!(
        s.data()["fleet"]["last_cutover"]["status"],
        "acknowledged",
        "{}",
        s.text
    );
    for fx in f.nodes {
        fx.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_not_acknowledged_answers_504_and_stays_saved() -> anyhow::Result<()> {
    let f = fleet(1).await?;
    let a = admin(&f.nodes[0]);
    create_migration(
        &a,
        "bg",
        json!({"type": "blue_green", "active_is_new": false}),
    )
    .await?;
    // a live instance stuck at epoch 0 (a record that does not expire within the barrier)
    let mut c = f.store.client().await?;
    redis::cmd("SET")
        .arg("fleet:instance:ghost")
        .arg(r#"{"id":"ghost","epoch":0}"#)
        .arg("PX")
        .arg(30_000)
        .query_async::<()>(&mut c)
        .await?;
    let r = a
        .patch(
            "/api/v1/migrations/bg/toggle",
            json!({"activate_new": true}),
        )
        .await?;
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.body["error"], "Gateway Timeout", "{}", r.text);
    assert!(r.text.contains("ghost"), "{}", r.text);
    // the change is saved and this instance runs it
    wait_serving(&f.nodes, &["new"], Duration::from_secs(1)).await?;
    let s = a.get("/api/v1/migrations/bg/status").await?;
    assert_eq!(
        s.data()["fleet"]["last_cutover"]["status"],
        "timeout",
        "{}",
        s.text
    );
    for fx in f.nodes {
        fx.shutdown().await;
    }
    Ok(())
}
