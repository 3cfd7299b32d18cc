//! The copy engine against real servers: every type with TTLs, the replace modes, dirty keys
//! (re-copied, deleted), resume from a checkpoint, and verify finding real differences.

mod mover_common;

use std::time::Duration;

use godwit_mover::{
    start, verify, CopyHandle, CopyJob, CopyOptions, Diff, Mode, Phase, Progress, ReplaceMode,
    VerifyOptions,
};
use godwit_tests::RedisServer;
use mover_common::{differences, fill_all_types};

fn job(src: &RedisServer, dst: &RedisServer, mode: Mode, replace: ReplaceMode) -> CopyJob {
    CopyJob {
        name: "test".into(),
        source_url: src.url(),
        target_url: dst.url(),
        mode,
        replace,
        resume_cursor: None,
        pass_done: false,
        options: CopyOptions {
            batch: 200,
            settle: Duration::from_millis(50),
            tick: Duration::from_millis(20),
            ..Default::default()
        },
    }
}

async fn wait_phase(h: &CopyHandle, phase: Phase) -> anyhow::Result<Progress> {
    let mut rx = h.progress();
    let p = tokio::time::timeout(
        Duration::from_secs(20),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_every_type_with_ttls() -> anyhow::Result<()> {
    let (src, dst) = (RedisServer::start()?, RedisServer::start()?);
    let (mut a, mut b) = (src.client().await?, dst.client().await?);
    fill_all_types(&mut a, 3000).await?;
    let h = start(job(&src, &dst, Mode::Snapshot, ReplaceMode::None), None);
    let p = wait_phase(&h, Phase::Done).await?;
    assert_eq!(p.keys_copied, 3004, "{p:?}");
    assert_eq!(p.keys_total_estimate, 3004);
    assert_eq!((p.keys_failed, p.keys_skipped, p.cursor), (0, 0, None));
    assert!(p.bytes_copied > 0);
    let diffs = differences(&mut a, &mut b, Duration::from_millis(500)).await?;
    assert!(diffs.is_empty(), "{diffs:?}");
    let ttl: i64 = redis::cmd("PTTL").arg("set:3").query_async(&mut b).await?;
    assert!(ttl > 590_000, "{ttl}");
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("stream:5")
        .query_async(&mut b)
        .await?;
    assert_eq!(groups.len(), 1);
    let r = verify(&src.url(), &dst.url(), &VerifyOptions::default()).await?;
    assert_eq!(r.differing(), 0, "{r:?}");
    assert_eq!((r.keys_checked, r.matched, r.rounds), (3004, 3004, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_modes() -> anyhow::Result<()> {
    for (replace, want_s, want_h, want_set) in [
        (ReplaceMode::None, "new", vec!["n"], vec!["n"]),
        (ReplaceMode::Replace, "old", vec!["o"], vec!["o"]),
        (ReplaceMode::Merge, "new", vec!["n", "o"], vec!["n", "o"]),
    ] {
        let (src, dst) = (RedisServer::start()?, RedisServer::start()?);
        let (mut a, mut b) = (src.client().await?, dst.client().await?);
        redis::pipe()
            .cmd("SET")
            .arg("s")
            .arg("old")
            .cmd("HSET")
            .arg("h")
            .arg("o")
            .arg("1")
            .arg("both")
            .arg("old")
            .cmd("SADD")
            .arg("set")
            .arg("o")
            .cmd("ZADD")
            .arg("z")
            .arg(1)
            .arg("o")
            .arg(1)
            .arg("both")
            .cmd("SET")
            .arg("only-old")
            .arg("1")
            .query_async::<()>(&mut a)
            .await?;
        redis::pipe()
            .cmd("SET")
            .arg("s")
            .arg("new")
            .cmd("HSET")
            .arg("h")
            .arg("n")
            .arg("1")
            .arg("both")
            .arg("new")
            .cmd("SADD")
            .arg("set")
            .arg("n")
            .cmd("ZADD")
            .arg("z")
            .arg(5)
            .arg("n")
            .arg(9)
            .arg("both")
            .query_async::<()>(&mut b)
            .await?;
        let h = start(job(&src, &dst, Mode::Scan, replace), None);
        let p = wait_phase(&h, Phase::Done).await?;
        h.stop();
        let s: String = redis::cmd("GET").arg("s").query_async(&mut b).await?;
        assert_eq!(s, want_s, "{replace:?}");
        let mut fields: Vec<String> = redis::cmd("HKEYS").arg("h").query_async(&mut b).await?;
        fields.retain(|f| f != "both");
        fields.sort();
        assert_eq!(fields, want_h, "{replace:?}");
        let both: String = redis::cmd("HGET")
            .arg("h")
            .arg("both")
            .query_async(&mut b)
            .await?;
        let want_both = if replace == ReplaceMode::Replace {
            "old"
        } else {
            "new"
        };
        assert_eq!(both, want_both, "{replace:?}");
        let mut members: Vec<String> = redis::cmd("SMEMBERS")
            .arg("set")
            .query_async(&mut b)
            .await?;
        members.sort();
        assert_eq!(members, want_set, "{replace:?}");
        let zboth: f64 = redis::cmd("ZSCORE")
            .arg("z")
            .arg("both")
            .query_async(&mut b)
            .await?;
        assert_eq!(
            zboth,
            if replace == ReplaceMode::Replace {
                1.0
            } else {
                9.0
            }
        );
        let only: String = redis::cmd("GET")
            .arg("only-old")
            .query_async(&mut b)
            .await?;
        assert_eq!(only, "1");
        let scratch: Vec<String> = redis::cmd("KEYS")
            .arg("*scratch*")
            .query_async(&mut b)
            .await?;
        assert!(scratch.is_empty());
        if replace == ReplaceMode::None {
            assert_eq!((p.keys_copied, p.keys_skipped), (1, 4), "{p:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_keys_recopied_and_deleted() -> anyhow::Result<()> {
    let (src, dst) = (RedisServer::start()?, RedisServer::start()?);
    let (mut a, mut b) = (src.client().await?, dst.client().await?);
    fill_all_types(&mut a, 500).await?;
    let h = start(job(&src, &dst, Mode::Scan, ReplaceMode::None), None);
    wait_phase(&h, Phase::Done).await?;
    // after done, dirty marks are ignored; repairs are what a scan copy keeps following
    let h = start(job(&src, &dst, Mode::Scan, ReplaceMode::None), None);
    redis::pipe()
        .cmd("SET")
        .arg("str:0")
        .arg("changed")
        .cmd("DEL")
        .arg("hash:1")
        .cmd("EXPIRE")
        .arg("list:2")
        .arg(100)
        .query_async::<()>(&mut a)
        .await?;
    for k in ["str:0", "hash:1", "list:2"] {
        h.mark_dirty(k.as_bytes());
    }
    let p = wait_phase(&h, Phase::Done).await?;
    assert!(p.keys_deleted >= 1, "{p:?}");
    let diffs = differences(&mut a, &mut b, Duration::from_millis(500)).await?;
    assert!(diffs.is_empty(), "{diffs:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_from_checkpoint_and_verify_reports_differences() -> anyhow::Result<()> {
    let (src, dst) = (RedisServer::start()?, RedisServer::start()?);
    let (mut a, mut b) = (src.client().await?, dst.client().await?);
    fill_all_types(&mut a, 4000).await?;
    let mut j = job(&src, &dst, Mode::Snapshot, ReplaceMode::Replace);
    j.options.rate_limit = Some(4000);
    let h = start(j.clone(), None);
    let mut rx = h.progress();
    let p = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|p| p.cursor.is_some_and(|c| c > 0) && p.keys_copied > 400),
    )
    .await??
    .clone();
    h.stop();
    j.resume_cursor = p.cursor;
    j.options.rate_limit = None;
    let h = start(j, None);
    let done = wait_phase(&h, Phase::Done).await?;
    assert!(done.keys_copied < 4004, "resumed, not restarted: {done:?}");
    let r = verify(&src.url(), &dst.url(), &VerifyOptions::default()).await?;
    assert_eq!(r.differing(), 0, "{r:?}");
    redis::pipe()
        .cmd("SET")
        .arg("str:0")
        .arg("other")
        .cmd("DEL")
        .arg("int:6")
        .cmd("SET")
        .arg("extra")
        .arg("1")
        .cmd("PEXPIRE")
        .arg("str:7")
        .arg(100_000)
        .query_async::<()>(&mut b)
        .await?;
    let opts = VerifyOptions {
        rounds: 2,
        round_delay: Duration::from_millis(10),
        ..Default::default()
    };
    let r = verify(&src.url(), &dst.url(), &opts).await?;
    assert_eq!(
        (
            r.value_mismatch,
            r.missing_in_target,
            r.extra_in_target,
            r.ttl_mismatch
        ),
        (1, 1, 1, 1),
        "{r:?}"
    );
    assert_eq!(r.rounds, 2);
    assert!(r
        .differences
        .contains(&("int:6".to_string(), Diff::MissingInTarget)));
    let sampled = verify(
        &src.url(),
        &dst.url(),
        &VerifyOptions {
            sample: Some(100),
            ..opts
        },
    )
    .await?;
    assert_eq!(sampled.mode, "sample");
    assert!(sampled.keys_checked > 50 && sampled.keys_checked <= 100);
    Ok(())
}

/// Credentials and a database in the URLs reach the copy's connections (the raw path too):
/// keys copied from db 2 of a password-protected source land in db 3 of the target only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_between_password_protected_databases() -> anyhow::Result<()> {
    let src = RedisServer::builder().password("s3cret").start()?;
    let dst = RedisServer::builder().password("0ther").start()?;
    let (src_url, dst_url) = (format!("{}/2", src.url()), format!("{}/3", dst.url()));
    let mut a = redis::Client::open(src_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    fill_all_types(&mut a, 500).await?;
    let mut j = job(&src, &dst, Mode::Snapshot, ReplaceMode::Replace);
    j.source_url = src_url.clone();
    j.target_url = dst_url.clone();
    let h = start(j, None);
    let p = wait_phase(&h, Phase::Done).await?;
    assert_eq!((p.keys_copied, p.keys_failed), (504, 0), "{p:?}");
    let mut b = redis::Client::open(dst_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let diffs = differences(&mut a, &mut b, Duration::from_millis(500)).await?;
    assert!(diffs.is_empty(), "{diffs:?}");
    let mut b0 = dst.client().await?;
    let in_db0: u64 = redis::cmd("DBSIZE").query_async(&mut b0).await?;
    assert_eq!(in_db0, 0, "the target's db 0 stays empty");
    // a wrong password is refused, not retried forever
    let mut bad = job(&src, &dst, Mode::Snapshot, ReplaceMode::Replace);
    bad.target_url = format!("redis://:wrong@127.0.0.1:{}/3", dst.port());
    let h = start(bad, None);
    let mut rx = h.progress();
    let p = tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|p| p.phase == Phase::Failed),
    )
    .await??
    .clone();
    assert!(p.error.is_some(), "{p:?}");
    Ok(())
}
