//! The copy engine and verify with a Redis Cluster on either side: standalone → cluster and
//! cluster → standalone copies of every type (TTLs, hash tags, large encodings) checked by
//! verify and by an independent per-key DUMP/PTTL comparison, verify finding differences on a
//! cluster, resume from a checkpoint of a cluster scan, and `MOVED`/`ASK` redirects while a
//! copy runs.

mod mover_cluster_data;
mod mover_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use godwit_mover::{
    start, verify, CopyHandle, CopyJob, CopyOptions, Diff, Mode, Phase, Progress, RepairSource,
    ReplaceMode, VerifyOptions,
};
use godwit_tests::{RedisCluster, RedisServer};
use mover_cluster_data::{cluster_differences, dataset, errorstat, fill_cluster, fill_single};

fn job(source_url: String, target_url: String, mode: Mode, replace: ReplaceMode) -> CopyJob {
    CopyJob {
        name: "cluster-test".into(),
        source_url,
        target_url,
        mode,
        replace,
        resume_cursor: None,
        pass_done: false,
        options: CopyOptions {
            batch: 500,
            settle: Duration::from_millis(50),
            tick: Duration::from_millis(20),
            ..Default::default()
        },
    }
}

async fn wait_phase(h: &CopyHandle, phase: Phase) -> anyhow::Result<Progress> {
    let mut rx = h.progress();
    let p = tokio::time::timeout(
        Duration::from_secs(25),
        rx.wait_for(|p| p.phase == phase || p.phase == Phase::Failed),
    )
    .await??
    .clone();
    anyhow::ensure!(
        p.phase == phase,
        "copy ended in {:?}: {:?}",
        p.phase,
        p.error
    );
    Ok(p)
}

const KEYS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_to_cluster_copies_every_type() -> anyhow::Result<()> {
    let (src, cluster) = (RedisServer::start()?, RedisCluster::start(3)?);
    let mut a = src.client().await?;
    let total = fill_single(&mut a, &dataset(KEYS)).await?;
    let h = start(
        job(src.url(), cluster.url(), Mode::Snapshot, ReplaceMode::None),
        None,
    );
    let p = wait_phase(&h, Phase::Done).await?;
    assert_eq!(
        (p.keys_copied, p.keys_total_estimate),
        (total, total),
        "{p:?}"
    );
    assert_eq!((p.keys_failed, p.keys_skipped), (0, 0), "{p:?}");
    let mut cc = cluster.client().await?;
    assert_eq!(cc.dbsize().await?, total);
    let diffs = cluster_differences(&mut a, &mut cc, Duration::from_millis(500)).await?;
    assert!(diffs.is_empty(), "{diffs:?}");
    // keys sharing a hash tag landed together, on the master owning the tag
    let port = cluster.port_for_key(b"user:7");
    for k in ["{user:7}:7", "{user:7}:207", "{user:7}:407"] {
        let mut node = cluster.client_for(k.as_bytes()).await?;
        let n: i64 = redis::cmd("EXISTS").arg(k).query_async(&mut node).await?;
        assert_eq!((n, cluster.port_for_key(k.as_bytes())), (1, port), "{k}");
    }
    let r = verify(&src.url(), &cluster.url(), &VerifyOptions::default()).await?;
    assert_eq!(r.differing(), 0, "{r:?}");
    assert_eq!((r.keys_checked, r.target_keys_checked), (total, total));
    assert_eq!((r.source_dbsize, r.target_dbsize), (total, total));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_to_standalone_copies_every_type() -> anyhow::Result<()> {
    let (cluster, dst) = (RedisCluster::start(3)?, RedisServer::start()?);
    let mut cc = cluster.client().await?;
    let total = fill_cluster(&mut cc, &dataset(KEYS)).await?;
    let h = start(
        job(
            cluster.url(),
            dst.url(),
            Mode::Snapshot,
            ReplaceMode::Replace,
        ),
        None,
    );
    let p = wait_phase(&h, Phase::Done).await?;
    assert_eq!(
        (p.keys_copied, p.keys_total_estimate),
        (total, total),
        "{p:?}"
    );
    assert_eq!((p.keys_failed, p.cursor), (0, None), "{p:?}");
    let mut b = dst.client().await?;
    let diffs = cluster_differences(&mut b, &mut cc, Duration::from_millis(500)).await?;
    assert!(diffs.is_empty(), "{diffs:?}");
    // the seed may be any node
    let seed = cluster.urls()[1].clone();
    let r = verify(&seed, &dst.url(), &VerifyOptions::default()).await?;
    assert_eq!(r.differing(), 0, "{r:?}");
    assert_eq!(
        (r.keys_checked, r.matched, r.source_dbsize),
        (total, total, total)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_differences_on_a_cluster() -> anyhow::Result<()> {
    let (src, cluster) = (RedisServer::start()?, RedisCluster::start(3)?);
    let mut a = src.client().await?;
    let total = fill_single(&mut a, &dataset(2000)).await?;
    let h = start(
        job(src.url(), cluster.url(), Mode::Snapshot, ReplaceMode::None),
        None,
    );
    wait_phase(&h, Phase::Done).await?;
    let mut cc = cluster.client().await?;
    let changes: Vec<(Vec<u8>, redis::Cmd)> = vec![
        (
            b"str:0".to_vec(),
            redis::cmd("SET").arg("str:0").arg("other").clone(),
        ),
        (b"int:6".to_vec(), redis::cmd("DEL").arg("int:6").clone()),
        (
            b"extra".to_vec(),
            redis::cmd("SET").arg("extra").arg("1").clone(),
        ),
        (
            b"str:8".to_vec(),
            redis::cmd("PEXPIRE").arg("str:8").arg(100_000).clone(),
        ),
        (
            b"{user:7}:7".to_vec(),
            redis::cmd("SET").arg("{user:7}:7").arg("x").clone(),
        ),
    ];
    cc.pipeline(&changes).await?;
    let opts = VerifyOptions {
        rounds: 2,
        round_delay: Duration::from_millis(10),
        ..Default::default()
    };
    for (from, to) in [(src.url(), cluster.url()), (cluster.url(), src.url())] {
        let r = verify(&from, &to, &opts).await?;
        // either way round: one key only on each side, two values and one expiry differ
        assert_eq!(
            (
                r.value_mismatch,
                r.missing_in_target,
                r.extra_in_target,
                r.ttl_mismatch
            ),
            (2, 1, 1, 1),
            "{from} -> {to}: {r:?}"
        );
        assert_eq!(r.rounds, 2);
    }
    let r = verify(&src.url(), &cluster.url(), &opts).await?;
    assert!(
        r.differences
            .contains(&("int:6".into(), Diff::MissingInTarget)),
        "{r:?}"
    );
    assert!(
        r.differences
            .contains(&("extra".into(), Diff::ExtraInTarget)),
        "{r:?}"
    );
    assert_eq!((r.source_dbsize, r.target_dbsize), (total, total));
    let sampled = verify(
        &cluster.url(),
        &src.url(),
        &VerifyOptions {
            sample: Some(100),
            ..opts
        },
    )
    .await?;
    assert_eq!(sampled.mode, "sample");
    assert!(
        sampled.keys_checked > 50 && sampled.keys_checked <= 100,
        "{sampled:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_from_a_cluster_scan_checkpoint() -> anyhow::Result<()> {
    let (cluster, dst) = (RedisCluster::start(3)?, RedisServer::start()?);
    let mut cc = cluster.client().await?;
    let total = fill_cluster(&mut cc, &dataset(8000)).await?;
    let mut j = job(
        cluster.url(),
        dst.url(),
        Mode::Snapshot,
        ReplaceMode::Replace,
    );
    j.options.rate_limit = Some(4000);
    let h = start(j.clone(), None);
    let mut rx = h.progress();
    // the low 10 bits of a cluster cursor are the master's index: wait for the second master
    let p = tokio::time::timeout(
        Duration::from_secs(15),
        rx.wait_for(|p| p.cursor.is_some_and(|c| c & 1023 >= 1) && p.keys_copied > 3000),
    )
    .await??
    .clone();
    h.stop();
    let cursor = p.cursor.unwrap_or_default();
    assert!(cursor & 1023 < 3, "node index of {cursor}");
    j.resume_cursor = Some(cursor);
    j.options.rate_limit = None;
    let h = start(j, None);
    let done = wait_phase(&h, Phase::Done).await?;
    assert!(
        done.keys_copied < total - 2000,
        "resumed, not restarted: {done:?}"
    );
    let r = verify(&cluster.url(), &dst.url(), &VerifyOptions::default()).await?;
    assert_eq!(r.differing(), 0, "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_moved_and_ask_redirects() -> anyhow::Result<()> {
    let (src, cluster) = (RedisServer::start()?, RedisCluster::start(3)?);
    let mut a = src.client().await?;
    fill_single(&mut a, &dataset(300)).await?;
    let queue: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let q = queue.clone();
    let repairs: RepairSource = Arc::new(move |_| std::mem::take(&mut *q.lock().unwrap()));
    let h = start(
        job(src.url(), cluster.url(), Mode::Scan, ReplaceMode::None),
        Some(repairs),
    );
    wait_phase(&h, Phase::Done).await?;
    let slots = mover_cluster_data::Slots::new(&cluster).await?;
    let (from, to) = (cluster.ports()[0], cluster.ports()[1]);
    // MOVED: an empty slot of the first master moves to the second; the copy's map is stale
    let moved = slots.empty_key_on(from, "moved").await?;
    slots
        .migrate_empty_slot(moved.as_bytes(), from, to, true)
        .await?;
    // ASK: another empty slot of the first master is being migrated to the second
    let asked = slots.empty_key_on(from, "asked").await?;
    slots
        .migrate_empty_slot(asked.as_bytes(), from, to, false)
        .await?;
    let mut old = slots.conn(from).await?;
    let before = (
        errorstat(&mut old, "MOVED").await?,
        errorstat(&mut old, "ASK").await?,
    );
    for k in [&moved, &asked] {
        let () = redis::cmd("SET")
            .arg(k)
            .arg("v")
            .query_async(&mut a)
            .await?;
        queue.lock().unwrap().push(Bytes::from(k.clone()));
    }
    let mut node = slots.conn(to).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m, _, s): ((), Option<String>, (), Option<String>) = redis::pipe()
            .cmd("ASKING")
            .cmd("GET")
            .arg(&moved)
            .cmd("ASKING")
            .cmd("GET")
            .arg(&asked)
            .query_async(&mut node)
            .await?;
        if m.as_deref() == Some("v") && s.as_deref() == Some("v") {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "redirected keys not written on the new owner: {m:?} {s:?}, {:?}",
            h.progress().borrow().clone()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.progress().borrow().keys_failed, 0);
    // the copy was redirected by the first master, which holds neither key
    let after = (
        errorstat(&mut old, "MOVED").await?,
        errorstat(&mut old, "ASK").await?,
    );
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "{before:?} {after:?}"
    );
    for k in [&moved, &asked] {
        let n: i64 = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(godwit_tests::key_slot(k.as_bytes()))
            .query_async(&mut old)
            .await?;
        assert_eq!(n, 0, "{k}");
    }
    slots.finish_migration(asked.as_bytes(), to).await?;
    h.stop();
    let r = verify(&src.url(), &cluster.url(), &VerifyOptions::default()).await?;
    assert_eq!(r.differing(), 0, "{r:?}");
    Ok(())
}
