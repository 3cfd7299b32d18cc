//! A Redis Cluster behind the proxy (issue 8): commands reach the master of their slot,
//! cross-slot commands get Redis Cluster's error, fan-out commands (DBSIZE, KEYS, SCAN,
//! FLUSHALL) see every master, transactions and blocking commands work, resharding under load
//! (MOVED/ASK) costs clients nothing, and a standalone Redis migrates into a 3-master cluster
//! (and a cluster out to a standalone Redis) under load ending with verify = 0 differences.

mod mover_common;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use godwit_tests::migration::{canary_dual_write, start_migration, wait_copy_done, wait_migration};
use godwit_tests::{GodwitFixture, RedisCluster, RedisServer, Reply};
use serde_json::json;

async fn proxy_for(cluster: &RedisCluster) -> anyhow::Result<GodwitFixture> {
    GodwitFixture::builder()
        .cluster_endpoint("c", &cluster.url())
        .interlay("main", "c")
        .start()
        .await
}

fn err_text(r: &Reply) -> String {
    match r {
        Reply::Error(e) => e.clone(),
        other => format!("not an error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_the_master_of_their_slot() -> anyhow::Result<()> {
    let cluster = RedisCluster::start(3)?;
    let fx = proxy_for(&cluster).await?;
    let mut p = fx.raw().await?;
    // 300 keys spread over the three masters, each on the node owning its slot
    for i in 0..300 {
        p.ok(&["SET", &format!("k{i}"), &format!("v{i}")]).await?;
    }
    let mut cc = cluster.client().await?;
    for i in (0..300).step_by(37) {
        let k = format!("k{i}");
        let v: Option<String> = cc.query(k.as_bytes(), redis::cmd("GET").arg(&k)).await?;
        assert_eq!(v.as_deref(), Some(format!("v{i}").as_str()));
        assert_eq!(
            p.cmd(&["GET", &k]).await?,
            Reply::Bulk(format!("v{i}").into_bytes())
        );
    }
    // multi-key commands within one slot work; across slots Redis Cluster's error
    p.ok(&["MSET", "{u}a", "1", "{u}b", "2"]).await?;
    assert_eq!(
        p.cmd(&["MGET", "{u}a", "{u}b"]).await?,
        Reply::Array(vec![Reply::Bulk(b"1".to_vec()), Reply::Bulk(b"2".to_vec())])
    );
    // MGET, MSET, DEL, UNLINK, EXISTS, TOUCH across slots are split per slot (like Envoy), so
    // an application written for one Redis keeps working
    let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
    assert_eq!(
        p.cmd(&["MGET", "k1", "k2", "nokey", "k3"]).await?,
        Reply::Array(vec![bulk("v1"), bulk("v2"), Reply::Nil, bulk("v3")])
    );
    p.ok(&["MSET", "m1", "a", "m2", "b", "m3", "c"]).await?;
    assert_eq!(
        p.cmd(&["EXISTS", "m1", "m2", "m3", "m4"]).await?,
        Reply::Integer(3)
    );
    assert_eq!(p.cmd(&["DEL", "m1", "m2", "m3"]).await?, Reply::Integer(3));
    // other multi-key commands across slots get Redis Cluster's error
    let e = p.cmd(&["MSETNX", "k1", "x", "k2", "y"]).await?;
    assert_eq!(
        err_text(&e),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    // the connection stays in sync after the error
    assert_eq!(p.cmd(&["PING"]).await?, Reply::Simple("PONG".into()));
    // a cluster has database 0 only
    let e = p.cmd(&["SELECT", "1"]).await?;
    assert_eq!(err_text(&e), "ERR SELECT is not allowed in cluster mode");
    p.ok(&["SELECT", "0"]).await?;
    // fan-out commands see every master
    assert_eq!(p.cmd(&["DBSIZE"]).await?, Reply::Integer(302));
    let Reply::Array(keys) = p.cmd(&["KEYS", "k1*"]).await? else {
        anyhow::bail!("KEYS: not an array");
    };
    assert_eq!(keys.len(), 111); // k1, k10..k19, k100..k199
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let r = p.cmd(&["SCAN", &cursor, "COUNT", "50"]).await?;
        let Reply::Array(parts) = r else {
            anyhow::bail!("SCAN: {r:?}");
        };
        let (Reply::Bulk(c), Reply::Array(batch)) = (&parts[0], &parts[1]) else {
            anyhow::bail!("SCAN parts: {parts:?}");
        };
        for k in batch {
            if let Reply::Bulk(k) = k {
                seen.insert(k.clone());
            }
        }
        cursor = String::from_utf8(c.clone())?;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 302, "SCAN walks every master once");
    // RESP3 clients get RESP3 types from cluster nodes too
    let mut p3 = fx.raw().await?;
    p3.cmd(&["HELLO", "3"]).await?;
    p3.cmd(&["HSET", "h", "f", "v"]).await?;
    assert!(matches!(p3.cmd(&["HGETALL", "h"]).await?, Reply::Map(_)));
    assert_eq!(p.cmd(&["FLUSHALL"]).await?, Reply::Simple("OK".into()));
    assert_eq!(p.cmd(&["DBSIZE"]).await?, Reply::Integer(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_blocking_commands_run_on_the_key_node() -> anyhow::Result<()> {
    let cluster = RedisCluster::start(3)?;
    let fx = proxy_for(&cluster).await?;
    let mut p = fx.raw().await?;
    p.ok(&["MULTI"]).await?;
    assert_eq!(
        p.cmd(&["SET", "{t}x", "1"]).await?,
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        p.cmd(&["INCR", "{t}x"]).await?,
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        p.cmd(&["EXEC"]).await?,
        Reply::Array(vec![Reply::Simple("OK".into()), Reply::Integer(2)])
    );
    // WATCH + MULTI on the watched key's node
    p.ok(&["WATCH", "{t}x"]).await?;
    p.ok(&["MULTI"]).await?;
    p.cmd(&["INCR", "{t}x"]).await?;
    assert_eq!(
        p.cmd(&["EXEC"]).await?,
        Reply::Array(vec![Reply::Integer(3)])
    );
    // keys on two nodes in one transaction: refused, EXEC aborts, nothing applied
    let (a, b) = two_keys_on_different_nodes(&cluster);
    p.ok(&["MULTI"]).await?;
    p.cmd(&["SET", &a, "1"]).await?;
    let e = p.cmd(&["SET", &b, "1"]).await?;
    assert!(err_text(&e).starts_with("CROSSSLOT"), "{e:?}");
    let e = p.cmd(&["EXEC"]).await?;
    assert!(err_text(&e).starts_with("EXECABORT"), "{e:?}");
    assert_eq!(p.cmd(&["EXISTS", &a]).await?, Reply::Integer(0));
    // a blocked client is woken by a push through another client
    let mut blocked = fx.raw().await?;
    blocked.send(&["BLPOP", "queue", "5"]).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.cmd(&["LPUSH", "queue", "job"]).await?;
    assert_eq!(
        blocked.read_reply().await?,
        Reply::Array(vec![
            Reply::Bulk(b"queue".to_vec()),
            Reply::Bulk(b"job".to_vec())
        ])
    );
    Ok(())
}

fn two_keys_on_different_nodes(cluster: &RedisCluster) -> (String, String) {
    let first = "a".to_string();
    let port = cluster.port_for_key(first.as_bytes());
    let other = (0..)
        .map(|i| format!("b{i}"))
        .find(|k| cluster.port_for_key(k.as_bytes()) != port)
        .unwrap_or_default();
    (first, other)
}

/// `redis-cli --cluster reshard`: moves `slots` slots from the first node to the second.
fn reshard(ports: &[u16], slots: u32) -> anyhow::Result<()> {
    let id = |port: u16| -> anyhow::Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "CLUSTER", "MYID"])
            .output()?;
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    };
    let out = Command::new("redis-cli")
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", ports[0]),
            "--cluster-from",
            &id(ports[0])?,
            "--cluster-to",
            &id(ports[1])?,
            "--cluster-slots",
            &slots.to_string(),
            "--cluster-yes",
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "reshard failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_under_load_costs_clients_nothing() -> anyhow::Result<()> {
    let cluster = RedisCluster::start(3)?;
    let fx = proxy_for(&cluster).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for client in 0..3u64 {
        let mut c = fx.client().await?;
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let (mut n, mut errors) = (0u64, Vec::new());
            let mut last = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let mut pipe = redis::pipe();
                for j in 0..20 {
                    let k = format!("r:{client}:{}", (n + j) % 500);
                    pipe.cmd("SET").arg(&k).arg(n + j).cmd("GET").arg(&k);
                    last.insert(k, n + j);
                }
                let replies: Vec<redis::Value> = pipe.query_async(&mut c).await?;
                for (j, pair) in replies.chunks(2).enumerate() {
                    match pair {
                        [redis::Value::Okay, redis::Value::BulkString(v)]
                            if *v == (n + j as u64).to_string().into_bytes() => {}
                        other => errors.push(format!("{other:?}")),
                    }
                }
                n += 20;
            }
            anyhow::Ok((last, errors))
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // MOVED and ASK redirects while slots and their keys move between masters
    let ports = cluster.ports();
    tokio::task::spawn_blocking(move || reshard(&ports, 1500)).await??;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut p = fx.raw().await?;
    for h in handles {
        let (last, errors) = h.await??;
        assert!(
            errors.is_empty(),
            "{} bad replies: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        for (k, v) in last.iter().take(50) {
            assert_eq!(
                p.cmd(&["GET", k]).await?,
                Reply::Bulk(v.to_string().into_bytes())
            );
        }
    }
    Ok(())
}

/// A load client's last value per own key, and its error replies.
type LoadResult = anyhow::Result<(HashMap<String, u64>, usize)>;

/// Writes through the proxy from `clients` connections (single-key commands of every kind)
/// until `stop`; returns the last value each client wrote to its own counters, and the number
/// of error replies.
fn load(
    fx: &GodwitFixture,
    clients: u64,
    keys: u64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<LoadResult>> {
    (0..clients)
        .map(|client| {
            let url = fx.url();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut c = redis::Client::open(url)?
                    .get_multiplexed_async_connection()
                    .await?;
                let (mut n, mut errors, mut last) = (0u64, 0usize, HashMap::new());
                while !stop.load(Ordering::Relaxed) {
                    let mut pipe = redis::pipe();
                    for _ in 0..40 {
                        n += 1;
                        let i = (n * clients + client) % keys;
                        let own = format!("own:{client}:{}", n % 89);
                        pipe.cmd("SET").arg(&own).arg(n);
                        last.insert(own, n);
                        match n % 8 {
                            0 => pipe.cmd("INCR").arg(format!("load:cnt:{i}")),
                            1 => pipe
                                .cmd("HSET")
                                .arg(format!("hash:{}", i - i % 7 + 1))
                                .arg("f")
                                .arg(n),
                            2 => pipe.cmd("LPUSH").arg(format!("load:l:{i}")).arg(n),
                            3 => pipe.cmd("SADD").arg(format!("load:s:{i}")).arg(n % 13),
                            4 => pipe.cmd("DEL").arg(format!("int:{}", i - i % 7 + 6)),
                            5 => pipe
                                .cmd("EXPIRE")
                                .arg(format!("list:{}", i - i % 7 + 2))
                                .arg(3600),
                            6 => pipe
                                .cmd("ZINCRBY")
                                .arg(format!("load:z:{i}"))
                                .arg(1)
                                .arg("m"),
                            _ => pipe
                                .cmd("APPEND")
                                .arg(format!("str:{}", i - i % 7))
                                .arg("x"),
                        };
                    }
                    let replies: Vec<redis::Value> = pipe.query_async(&mut c).await?;
                    errors += replies
                        .iter()
                        .filter(|r| matches!(r, redis::Value::ServerError(_)))
                        .count();
                }
                anyhow::Ok((last, errors))
            })
        })
        .collect()
}

/// Every key of `old` against the cluster: same key set, same value (DUMP, or content for
/// encodings whose DUMP order may differ), expiries within a second.
async fn compare_with_cluster(
    old: &mut redis::aio::MultiplexedConnection,
    cluster: &RedisCluster,
) -> anyhow::Result<Vec<String>> {
    let mut cc = cluster.client().await?;
    let ka = mover_common::all_keys(old).await?;
    let kb = cc.all_keys().await?;
    let mut out: Vec<String> = ka
        .symmetric_difference(&kb)
        .map(|k| format!("{} only on one side", String::from_utf8_lossy(k)))
        .collect();
    let common: Vec<&Vec<u8>> = ka.intersection(&kb).collect();
    for chunk in common.chunks(500) {
        let mut pipe = redis::pipe();
        let mut items = Vec::new();
        for k in chunk {
            pipe.cmd("DUMP").arg(&k[..]).cmd("PTTL").arg(&k[..]);
            let mut d = redis::cmd("DUMP");
            d.arg(&k[..]);
            let mut t = redis::cmd("PTTL");
            t.arg(&k[..]);
            items.push(((*k).clone(), d));
            items.push(((*k).clone(), t));
        }
        let ra: Vec<(Option<Vec<u8>>, i64)> = pipe.query_async(old).await?;
        let rb = cc.pipeline(&items).await?;
        for (i, (k, x)) in chunk.iter().zip(ra).enumerate() {
            let name = String::from_utf8_lossy(k);
            let dump: Option<Vec<u8>> = redis::from_redis_value(&rb[2 * i])?;
            let pttl: i64 = redis::from_redis_value(&rb[2 * i + 1])?;
            if x.0 != dump {
                let mut node = cluster.client_for(k).await?;
                if mover_common::content(old, k).await?
                    != mover_common::content(&mut node, k).await?
                {
                    out.push(format!("{name}: value differs"));
                }
            } else if (x.1 < 0) != (pttl < 0) || x.1.abs_diff(pttl) > 1000 {
                out.push(format!("{name}: pttl {} vs {pttl}", x.1));
            }
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_migrates_into_a_cluster_under_load() -> anyhow::Result<()> {
    migrate_under_load(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_migrates_out_to_a_standalone_under_load() -> anyhow::Result<()> {
    migrate_under_load(false).await
}

/// A canary migration with a scan copy between a standalone Redis and a 3-master cluster
/// (`into_cluster`: standalone is old), under load through the proxy, ending with verify = 0,
/// an independent comparison, and reads served by new after `complete`.
async fn migrate_under_load(into_cluster: bool) -> anyhow::Result<()> {
    let keys = 10_000u64;
    let standalone = RedisServer::start()?;
    let cluster = RedisCluster::start(3)?;
    let mut a = standalone.client().await?;
    let builder = GodwitFixture::builder();
    let builder = if into_cluster {
        builder
            .endpoint("old", &standalone.url())
            .cluster_endpoint("new", &cluster.url())
    } else {
        builder
            .cluster_endpoint("old", &cluster.url())
            .endpoint("new", &standalone.url())
    };
    let fx = builder.interlay("main", "old").start().await?;
    if into_cluster {
        mover_common::fill_all_types(&mut a, keys as usize).await?;
    } else {
        // filled through the proxy: the cluster endpoint routes each key to its master
        mover_common::fill_all_types(&mut fx.client().await?, keys as usize).await?;
    }
    fx.app()
        .dataplane()
        .movers()
        .set_options(godwit_mover::CopyOptions {
            rate_limit: Some(5_000),
            settle: Duration::from_millis(150),
            tick: Duration::from_millis(50),
            ..Default::default()
        });
    let stop = Arc::new(AtomicBool::new(false));
    let handles = load(&fx, 3, keys, stop.clone());
    start_migration(&fx, canary_dual_write("m", "old_authoritative")).await?;
    // the load runs while half the pass copies
    wait_migration(&fx, "m", 60, |m| {
        m["progress"]["keys_scanned"].as_u64().unwrap_or(0) > keys / 2
            || m["progress"]["phase"] == "done"
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    wait_copy_done(&fx, "m", 60).await?;
    let c = fx.app().control();
    let mut last = HashMap::new();
    for h in handles {
        let (l, errors) = h.await??;
        assert_eq!(errors, 0, "clients saw errors");
        last.extend(l);
    }
    let v = c.verify("default", "m", &json!({"rounds": 2})).await?;
    assert_eq!(v["consistent"], true, "{v}");
    let diffs = compare_with_cluster(&mut a, &cluster).await?;
    assert!(
        diffs.is_empty(),
        "{} differences: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(20)]
    );
    c.complete("default", "m", &json!({})).await?;
    // after completion the proxy serves from new (which has every write)
    let mut p = fx.raw().await?;
    for (k, n) in last.iter().take(30) {
        assert_eq!(
            p.cmd(&["GET", k]).await?,
            Reply::Bulk(n.to_string().into_bytes())
        );
    }
    Ok(())
}

/// `test` checks each endpoint's cluster flag against what answers, and the cluster's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_checks_the_cluster_flag_and_state() -> anyhow::Result<()> {
    let old = RedisServer::start()?;
    let cluster = RedisCluster::start(3)?;
    let fx = GodwitFixture::builder()
        .endpoint("old", &old.url())
        .cluster_endpoint("new", &cluster.url())
        .endpoint("undeclared", &cluster.url())
        .cluster_endpoint("not_a_cluster", &old.url())
        .interlay("main", "old")
        .start()
        .await?;
    let c = fx.app().control();
    let check = |id: &'static str, target: &'static str| {
        let c = c.clone();
        async move {
            c.create_migration(
                "default",
                &json!({"id": id, "strategy": {"type": "big_bang"}, "data": {"type": "none"}}),
            )
            .await?;
            c.add_interlay("default", id, "main", &json!({"endpoint": target}))
                .await?;
            let r = c.test_migration("default", id).await?;
            // the interlay is free for the next check
            c.delete_migration("default", id, true).await?;
            anyhow::Ok(r)
        }
    };
    let ok = check("good", "new").await?;
    assert_eq!(ok["valid"], true, "{ok}");
    assert_eq!(ok["endpoints"]["new"]["cluster_state"], "ok", "{ok}");
    assert!(ok["endpoints"]["old"]["cluster_state"].is_null(), "{ok}");
    let bad = check("undeclared_one", "undeclared").await?;
    assert_eq!(bad["valid"], false, "{bad}");
    assert!(
        bad["errors"]
            .to_string()
            .contains("is a Redis Cluster node"),
        "{bad}"
    );
    let bad = check("not_cluster_one", "not_a_cluster").await?;
    assert!(
        bad["errors"]
            .to_string()
            .contains("cluster support disabled"),
        "{bad}"
    );
    Ok(())
}
