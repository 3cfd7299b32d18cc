//! Routing engine e2e (issue 4): per-strategy decisions executed against two real Redis
//! servers. Tables are published straight into the data plane (the control plane's compile
//! step has its own unit tests), so each test controls exactly what the proxy runs.

use std::time::Duration;

use godwit_control::DataPlane;
use godwit_router::{
    ppm, InterlayRoute, MigrationRoute, Policy, RoutingTable, Rule, Sticky, Writes,
};
use godwit_tests::{GodwitFixture, RedisServer, Reply, RespClient};

struct Pair {
    old: RedisServer,
    new: RedisServer,
    godwit: GodwitFixture,
}

async fn pair() -> Pair {
    pair_with(|b| b).await
}

async fn pair_with(
    f: impl FnOnce(godwit_tests::GodwitFixtureBuilder) -> godwit_tests::GodwitFixtureBuilder,
) -> Pair {
    let old = RedisServer::start().unwrap();
    let new = RedisServer::start().unwrap();
    let builder = GodwitFixture::builder()
        .endpoint("old", &old.url())
        .endpoint("new", &new.url())
        .interlay("main", "old");
    let godwit = f(builder).start().await.unwrap();
    Pair { old, new, godwit }
}

/// Publishes a table where interlay `main` runs migration `m` (old → new) under `rule`.
fn route(p: &Pair, version: u64, rule: Rule, paused: bool) {
    let mut r = InterlayRoute::direct("old");
    let mut m = MigrationRoute::new("m", "new", rule);
    m.paused = paused;
    r.migration = Some(m);
    let mut t = RoutingTable {
        version: 1_000 + version,
        ..Default::default()
    };
    t.interlays.insert("main".into(), r);
    p.godwit.app().dataplane().publish(t);
}

fn canary(read: f64, writes: Writes) -> Rule {
    Rule::Canary {
        read_ppm: ppm(read),
        sticky: Sticky::Key,
        writes,
    }
}

/// Sends `cmds` pipelined in chunks and returns every reply.
async fn pipeline(c: &mut RespClient, cmds: &[Vec<String>]) -> Vec<Reply> {
    let mut out = Vec::with_capacity(cmds.len());
    for chunk in cmds.chunks(500) {
        for cmd in chunk {
            c.send(cmd).await.unwrap();
        }
        out.extend(c.read_replies(chunk.len()).await.unwrap());
    }
    out
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_read_split_is_within_two_points_over_100k_keys() {
    let p = pair().await;
    let n = 100_000;
    for (server, tag) in [(&p.old, "old"), (&p.new, "new")] {
        let mut c = server.raw().await.unwrap();
        let sets: Vec<_> = (0..n)
            .map(|i| cmd(&["SET", &format!("user:{i}"), tag]))
            .collect();
        pipeline(&mut c, &sets).await;
    }
    route(
        &p,
        1,
        canary(0.3, Writes::Dual(Policy::OldAuthoritative)),
        false,
    );
    let mut c = p.godwit.raw().await.unwrap();
    let gets: Vec<_> = (0..n)
        .map(|i| cmd(&["GET", &format!("user:{i}")]))
        .collect();
    let replies = pipeline(&mut c, &gets).await;
    let from_new = replies.iter().filter(|r| **r == Reply::bulk("new")).count();
    let from_old = replies.iter().filter(|r| **r == Reply::bulk("old")).count();
    assert_eq!(from_new + from_old, n);
    let share = from_new as f64 / n as f64;
    assert!(
        (share - 0.3).abs() <= 0.02,
        "configured 0.30, measured {share:.4}"
    );
    // sticky per key: the same keys again land on the same sides
    let again = pipeline(&mut c, &gets).await;
    assert_eq!(again, replies);
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_reaches_both_and_reads_see_own_writes() {
    let p = pair().await;
    route(
        &p,
        1,
        canary(0.5, Writes::Dual(Policy::OldAuthoritative)),
        false,
    );
    let mut c = p.godwit.raw().await.unwrap();
    for i in 0..2_000 {
        let k = format!("ryw:{i}");
        let v = format!("v{i}");
        // write then read on one connection, pipelined: the read must see the write on either side
        c.send(&["SET", &k, &v]).await.unwrap();
        c.send(&["GET", &k]).await.unwrap();
        let r = c.read_replies(2).await.unwrap();
        assert_eq!(r, vec![Reply::ok(), Reply::bulk(&v)], "key {k}");
    }
    let mut old = p.old.raw().await.unwrap();
    let mut new = p.new.raw().await.unwrap();
    assert_eq!(
        old.cmd(&["GET", "ryw:1999"]).await.unwrap(),
        Reply::bulk("v1999")
    );
    assert_eq!(
        new.cmd(&["GET", "ryw:1999"]).await.unwrap(),
        Reply::bulk("v1999")
    );
    assert_eq!(
        old.cmd(&["DBSIZE"]).await.unwrap(),
        new.cmd(&["DBSIZE"]).await.unwrap()
    );
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_authoritative_with_new_down_gives_clients_no_errors() {
    let mut p = pair().await;
    route(
        &p,
        1,
        canary(0.0, Writes::Dual(Policy::OldAuthoritative)),
        false,
    );
    p.new.stop();
    let mut c = p.godwit.raw().await.unwrap();
    let sets: Vec<_> = (0..500)
        .map(|i| cmd(&["INCR", &format!("ctr:{i}")]))
        .collect();
    for r in pipeline(&mut c, &sets).await {
        assert_eq!(r, Reply::Integer(1));
    }
    let mut old = p.old.raw().await.unwrap();
    assert_eq!(old.cmd(&["DBSIZE"]).await.unwrap(), Reply::Integer(500));
    let report = p.godwit.app().proxy().reports.get("m").unwrap();
    assert_eq!(report.secondary_failures, 500);
    assert_eq!(
        report.repair.len(),
        500,
        "every failed key is queued for repair"
    );
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_authoritative_with_old_down_gives_clients_no_errors() {
    let mut p = pair().await;
    route(
        &p,
        1,
        canary(1.0, Writes::Dual(Policy::NewAuthoritative)),
        false,
    );
    p.old.stop();
    let mut c = p.godwit.raw().await.unwrap();
    let cmds: Vec<_> = (0..500)
        .flat_map(|i| {
            [
                cmd(&["SET", &format!("k:{i}"), "x"]),
                cmd(&["GET", &format!("k:{i}")]),
            ]
        })
        .collect();
    let replies = pipeline(&mut c, &cmds).await;
    for pair in replies.chunks(2) {
        assert_eq!(pair, [Reply::ok(), Reply::bulk("x")]);
    }
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_effort_succeeds_if_either_side_does() {
    let mut p = pair().await;
    route(&p, 1, canary(0.0, Writes::Dual(Policy::BestEffort)), false);
    p.old.stop();
    let mut c = p.godwit.raw().await.unwrap();
    assert_eq!(c.cmd(&["SET", "a", "1"]).await.unwrap(), Reply::ok());
    let mut new = p.new.raw().await.unwrap();
    assert_eq!(new.cmd(&["GET", "a"]).await.unwrap(), Reply::bulk("1"));
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mismatches_are_detected_when_new_is_altered_behind_the_proxy() {
    let p = pair().await;
    route(&p, 1, Rule::ShadowTraffic, false);
    let mut c = p.godwit.raw().await.unwrap();
    let sets: Vec<_> = (0..200)
        .map(|i| cmd(&["SET", &format!("s:{i}"), "same"]))
        .collect();
    pipeline(&mut c, &sets).await;
    let sadd: Vec<_> = (0..20)
        .map(|i| cmd(&["SADD", "set", &format!("m{i}")]))
        .collect();
    pipeline(&mut c, &sadd).await;
    // alter 10 keys on new only
    let mut new = p.new.raw().await.unwrap();
    for i in 0..10 {
        new.ok(&["SET", &format!("s:{i}"), "changed"])
            .await
            .unwrap();
    }
    let gets: Vec<_> = (0..200).map(|i| cmd(&["GET", &format!("s:{i}")])).collect();
    for r in pipeline(&mut c, &gets).await {
        assert_eq!(r, Reply::bulk("same"), "clients get old's replies");
    }
    // set members come back in any order: not a mismatch
    c.cmd(&["SMEMBERS", "set"]).await.unwrap();
    let report = p.godwit.app().proxy().reports.get("m").unwrap();
    assert_eq!(report.compared, 201);
    assert_eq!(report.mismatches, 10, "{:?}", report.samples);
    assert_eq!(report.samples.len(), 10);
    assert!(report
        .samples
        .iter()
        .all(|s| s.command == "get" && s.key.starts_with("s:")));
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_swaps_reach_open_connections_without_reordering() {
    let p = pair().await;
    let mut old = p.old.raw().await.unwrap();
    let mut new = p.new.raw().await.unwrap();
    old.ok(&["SET", "side", "old"]).await.unwrap();
    new.ok(&["SET", "side", "new"]).await.unwrap();
    let mut c = p.godwit.raw().await.unwrap();
    assert_eq!(c.cmd(&["GET", "side"]).await.unwrap(), Reply::bulk("old"));
    for v in 0..50u64 {
        let to_new = v % 2 == 0;
        route(
            &p,
            v + 1,
            Rule::BlueGreen {
                active_is_new: to_new,
            },
            false,
        );
        // pipelined echoes around the read keep their order across the swap
        c.send(&["ECHO", "before"]).await.unwrap();
        c.send(&["GET", "side"]).await.unwrap();
        c.send(&["ECHO", "after"]).await.unwrap();
        let r = c.read_replies(3).await.unwrap();
        let want = if to_new { "new" } else { "old" };
        assert_eq!(
            r,
            vec![
                Reply::bulk("before"),
                Reply::bulk(want),
                Reply::bulk("after")
            ]
        );
    }
    // paused: reads back to old, writes still dual
    route(
        &p,
        100,
        Rule::BlueGreen {
            active_is_new: true,
        },
        true,
    );
    assert_eq!(c.cmd(&["GET", "side"]).await.unwrap(), Reply::bulk("old"));
    c.ok(&["SET", "paused", "1"]).await.unwrap();
    assert_eq!(new.cmd(&["GET", "paused"]).await.unwrap(), Reply::bulk("1"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_clients_share_connections_and_are_dual_written() {
    let p = pair().await;
    route(
        &p,
        1,
        canary(1.0, Writes::Dual(Policy::OldAuthoritative)),
        false,
    );
    let mut c = p.godwit.raw().await.unwrap();
    let hello = c.cmd(&["HELLO", "3"]).await.unwrap();
    assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    c.cmd(&["HSET", "h", "f", "v"]).await.unwrap();
    // reads go to new (read_percentage 1.0) in RESP3
    assert_eq!(
        c.cmd(&["HGETALL", "h"]).await.unwrap(),
        Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))])
    );
    assert_eq!(c.cmd(&["GET", "missing"]).await.unwrap(), Reply::Null);
    let mut old = p.old.raw().await.unwrap();
    assert_eq!(
        old.cmd(&["HGET", "h", "f"]).await.unwrap(),
        Reply::bulk("v")
    );
    // a RESP2 client on the same interlay still gets RESP2
    let mut c2 = p.godwit.raw().await.unwrap();
    assert_eq!(c2.cmd(&["GET", "missing"]).await.unwrap(), Reply::Nil);
    // back to RESP2
    c.cmd(&["HELLO", "2"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "missing"]).await.unwrap(), Reply::Nil);
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nondeterministic_dual_writes_are_queued_for_repair() {
    let p = pair().await;
    route(
        &p,
        1,
        canary(0.0, Writes::Dual(Policy::OldAuthoritative)),
        false,
    );
    let mut c = p.godwit.raw().await.unwrap();
    assert!(c
        .cmd(&["XADD", "stream", "*", "f", "v"])
        .await
        .unwrap()
        .as_bytes()
        .is_some());
    c.cmd(&["XADD", "stream", "5-1", "f", "v"]).await.unwrap();
    c.cmd(&["SADD", "set", "a", "b"]).await.unwrap();
    c.cmd(&["SPOP", "set"]).await.unwrap();
    c.cmd(&["SET", "plain", "1"]).await.unwrap();
    let report = p.godwit.app().proxy().reports.get("m").unwrap();
    assert_eq!(report.secondary_failures, 0);
    let queued: Vec<_> = report
        .repair
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(
        queued,
        ["stream", "set"],
        "XADD * and SPOP are re-copied from the authoritative side"
    );
    p.godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_secondary_costs_latency_up_to_the_timeout_but_no_errors() {
    let mut p = pair_with(|b| b.limit("backend_timeout_ms", "300")).await;
    route(
        &p,
        1,
        canary(0.0, Writes::Dual(Policy::OldAuthoritative)),
        false,
    );
    let mut c = p.godwit.raw().await.unwrap();
    c.ok(&["SET", "warm", "1"]).await.unwrap();
    p.new.pause().unwrap();
    let started = std::time::Instant::now();
    let sets: Vec<_> = (0..50)
        .map(|i| cmd(&["SET", &format!("f:{i}"), "v"]))
        .collect();
    for r in pipeline(&mut c, &sets).await {
        assert_eq!(r, Reply::ok(), "old-authoritative hides a frozen new side");
    }
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "bounded by the backend timeout, took {waited:?}"
    );
    p.new.resume().unwrap();
    let report = p.godwit.app().proxy().reports.get("m").unwrap();
    assert_eq!(report.secondary_failures, 50);
    // after the freeze (and the 100 ms reconnect back-off) the secondary is written again
    let mut new = p.new.raw().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        c.ok(&["SET", "after", "1"]).await.unwrap();
        if new.cmd(&["GET", "after"]).await.unwrap() == Reply::bulk("1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new never written again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.godwit.shutdown().await;
}
