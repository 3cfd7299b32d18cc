//! `verify`: compares the source and the target key by key. A key matches when its DUMP
//! payloads are equal (or, when the encodings differ, its logical values are) and its expiries
//! agree within a tolerance. Differing keys are re-checked in later rounds, so a write that was
//! in flight during one round is not reported; only keys that differ in every round are.
//! Either side may be a Redis Cluster: its masters are scanned one after another and every
//! key is read on the master owning it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::conn::Conn;
use crate::error::{MoverError, Side};
use crate::io::Entry;

/// What to compare.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Compare this many random keys instead of every key.
    pub sample: Option<usize>,
    /// Rounds in total (the first full one plus re-checks of differing keys), at least 1.
    pub rounds: u32,
    /// Pause between rounds.
    pub round_delay: Duration,
    /// Largest expiry difference still counted as equal, in milliseconds.
    pub ttl_tolerance_ms: u64,
    /// How many differing keys the report lists.
    pub max_listed: usize,
    /// Batch size of reads.
    pub batch: usize,
    /// Connect/response timeout.
    pub timeout: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            sample: None,
            rounds: 3,
            round_delay: Duration::from_millis(250),
            ttl_tolerance_ms: 2000,
            max_listed: 20,
            batch: 500,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Diff {
    /// In the source, not in the target.
    MissingInTarget,
    /// In the target, not in the source.
    ExtraInTarget,
    /// Both have it with different values.
    Value,
    /// Same value, expiries differ beyond the tolerance.
    Ttl,
}

impl Diff {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Diff::MissingInTarget => "missing_in_target",
            Diff::ExtraInTarget => "extra_in_target",
            Diff::Value => "value",
            Diff::Ttl => "ttl",
        }
    }
}

/// The result of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// `full` or `sample`.
    pub mode: &'static str,
    /// Rounds run.
    pub rounds: u32,
    /// Source keys compared in the first round.
    pub keys_checked: u64,
    /// Target keys checked for existence on the source (full mode).
    pub target_keys_checked: u64,
    /// Keys equal on both sides at the end.
    pub matched: u64,
    /// Keys still differing after every round, by reason.
    pub missing_in_target: u64,
    /// See [`Diff::ExtraInTarget`].
    pub extra_in_target: u64,
    /// See [`Diff::Value`].
    pub value_mismatch: u64,
    /// See [`Diff::Ttl`].
    pub ttl_mismatch: u64,
    /// Keys that differed in round 1 but matched later (writes in flight).
    pub resolved_by_recheck: u64,
    /// DBSIZE of both sides at the end.
    pub source_dbsize: u64,
    /// DBSIZE of the target.
    pub target_dbsize: u64,
    /// The first differing keys (lossy UTF-8) with their reason.
    pub differences: Vec<(String, Diff)>,
    /// Wall time.
    pub duration_ms: u64,
}

impl VerifyReport {
    /// Keys that differ at the end.
    pub fn differing(&self) -> u64 {
        self.missing_in_target + self.extra_in_target + self.value_mismatch + self.ttl_mismatch
    }
}

/// Compares `source_url` with `target_url`.
pub async fn verify(
    source_url: &str,
    target_url: &str,
    opts: &VerifyOptions,
) -> Result<VerifyReport, MoverError> {
    let started = Instant::now();
    let mut src = Conn::connect(source_url, Side::Source, opts.timeout).await?;
    let mut dst = Conn::connect(target_url, Side::Target, opts.timeout).await?;
    let mut report = VerifyReport {
        mode: if opts.sample.is_some() {
            "sample"
        } else {
            "full"
        },
        ..Default::default()
    };
    let mut differing: BTreeMap<Bytes, Diff> = BTreeMap::new();
    let batch = opts.batch.max(1);
    match opts.sample {
        Some(n) => {
            let keys = src.random_keys(n).await?;
            report.keys_checked = keys.len() as u64;
            for chunk in keys.chunks(batch) {
                check(&mut src, &mut dst, chunk, opts, &mut differing).await?;
            }
        }
        None => {
            let mut cursor = 0;
            loop {
                let (next, keys) = src.scan(cursor, batch).await?;
                report.keys_checked += keys.len() as u64;
                check(&mut src, &mut dst, &keys, opts, &mut differing).await?;
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            loop {
                let (next, keys) = dst.scan(cursor, batch).await?;
                report.target_keys_checked += keys.len() as u64;
                extra(&mut src, &keys, &mut differing).await?;
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
    }
    report.rounds = 1;
    let first_round = differing.len() as u64;
    while report.rounds < opts.rounds.max(1) && !differing.is_empty() {
        tokio::time::sleep(opts.round_delay).await;
        report.rounds += 1;
        let keys: Vec<Bytes> = differing.keys().cloned().collect();
        differing.clear();
        for chunk in keys.chunks(batch) {
            check(&mut src, &mut dst, chunk, opts, &mut differing).await?;
            extra(&mut src, chunk, &mut differing).await?;
        }
    }
    report.resolved_by_recheck = first_round - differing.len() as u64;
    for (key, d) in &differing {
        match d {
            Diff::MissingInTarget => report.missing_in_target += 1,
            Diff::ExtraInTarget => report.extra_in_target += 1,
            Diff::Value => report.value_mismatch += 1,
            Diff::Ttl => report.ttl_mismatch += 1,
        }
        if report.differences.len() < opts.max_listed {
            report
                .differences
                .push((String::from_utf8_lossy(key).into_owned(), *d));
        }
    }
    report.matched = report
        .keys_checked
        .saturating_sub(report.missing_in_target + report.value_mismatch + report.ttl_mismatch);
    report.source_dbsize = src.dbsize().await?;
    report.target_dbsize = dst.dbsize().await?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Compares `keys` (source keys); records the differing ones.
async fn check(
    src: &mut Conn,
    dst: &mut Conn,
    keys: &[Bytes],
    opts: &VerifyOptions,
    out: &mut BTreeMap<Bytes, Diff>,
) -> Result<(), MoverError> {
    let a = src.read(keys).await?;
    let b = dst.read(keys).await?;
    for (x, y) in a.iter().zip(&b) {
        if let Some(d) = compare(src, dst, x, y, opts).await? {
            out.insert(x.key.clone(), d);
        }
    }
    Ok(())
}

async fn compare(
    src: &mut Conn,
    dst: &mut Conn,
    x: &Entry,
    y: &Entry,
    opts: &VerifyOptions,
) -> Result<Option<Diff>, MoverError> {
    let d = match (&x.payload, &y.payload) {
        (None, None) => None,
        (Some(_), None) => Some(Diff::MissingInTarget),
        (None, Some(_)) => Some(Diff::ExtraInTarget),
        (Some(p), Some(q)) => {
            if p != q && !crate::logical::equal(src, dst, &x.key).await? {
                Some(Diff::Value)
            } else if (x.expire_at == 0) != (y.expire_at == 0)
                || x.expire_at.abs_diff(y.expire_at) > opts.ttl_tolerance_ms
            {
                Some(Diff::Ttl)
            } else {
                None
            }
        }
    };
    Ok(d)
}

/// Records target keys that do not exist on the source.
async fn extra(
    src: &mut Conn,
    keys: &[Bytes],
    out: &mut BTreeMap<Bytes, Diff>,
) -> Result<(), MoverError> {
    let exists = src.exists(keys).await?;
    for (k, e) in keys.iter().zip(exists) {
        if !e {
            out.entry(k.clone()).or_insert(Diff::ExtraInTarget);
        }
    }
    Ok(())
}
