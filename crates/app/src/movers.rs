//! The app's data movement: one `godwit-mover` copy per migration member, fed with the keys the
//! proxy reports written ([`WriteObserver`]) and with its repair queue, its progress translated
//! for the control plane; and `verify` over the mover.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use godwit_control::model::Progress;
use godwit_control::rules::Replace;
use godwit_control::{CopySpec, VerifyRequest};
use godwit_mover::{CopyHandle, CopyJob, CopyOptions, Mode, ReplaceMode, VerifyOptions};
use godwit_proxy::{ProxyShared, WriteObserver};
use serde_json::{json, Value};
use tokio::sync::watch;

/// Running copies by data-plane migration id, each with its member.
#[derive(Debug, Default)]
pub struct Movers {
    copies: RwLock<HashMap<String, Vec<(String, CopyHandle)>>>,
    options: RwLock<CopyOptions>,
    /// In a fleet: keys written here for copies running elsewhere (and back).
    relay: OnceLock<Arc<crate::dirty_relay::DirtyRelay>>,
    /// Per copy, a repair-only copy in the other direction (new → old) for keys whose write
    /// failed on old while new was authoritative. Never marked dirty.
    reverse: RwLock<HashMap<String, Vec<(String, CopyHandle)>>>,
}

impl WriteObserver for Movers {
    fn key_written(&self, migration: &str, key: &[u8]) {
        let copies = self.copies.read().unwrap_or_else(|p| p.into_inner());
        match copies.get(migration) {
            Some(members) => members.iter().for_each(|(_, h)| h.mark_dirty(key)),
            // the copy runs on another instance of the fleet
            None => {
                if let Some(r) = self.relay.get() {
                    r.push(migration, key);
                }
            }
        }
    }
}

fn progress(p: &godwit_mover::Progress) -> Progress {
    Progress {
        phase: p.phase.as_str().into(),
        keys_scanned: p.keys_scanned,
        keys_total_estimate: p.keys_total_estimate,
        keys_copied: p.keys_copied,
        keys_skipped: p.keys_skipped,
        keys_failed: p.keys_failed,
        bytes_copied: p.bytes_copied,
        dirty_backlog: p.dirty_backlog,
        lag_ms: p.lag_ms,
        cursor: p.cursor.map(|c| c.to_string()),
        keys_deleted: p.keys_deleted,
        rate_keys_per_s: p.rate_keys_per_s,
        eta_s: p.eta_s,
        error: p.error.clone(),
    }
}

impl Movers {
    /// Joins a fleet's dirty-key relay through the shared store (see `dirty_relay`).
    pub fn install_relay(
        self: &Arc<Self>,
        url: &str,
        prefix: &str,
        shared: &Arc<ProxyShared>,
    ) -> anyhow::Result<()> {
        let weak = Arc::downgrade(self);
        let mark: crate::dirty_relay::MarkLocal = Arc::new(move |migration, keys| {
            if let Some(me) = weak.upgrade() {
                let copies = me.copies.read().unwrap_or_else(|p| p.into_inner());
                for (_, h) in copies.get(migration).into_iter().flatten() {
                    keys.iter().for_each(|k| h.mark_dirty(k));
                }
            }
        });
        let relay = crate::dirty_relay::DirtyRelay::start(url, prefix, shared, mark)?;
        let _ = self.relay.set(relay);
        Ok(())
    }

    /// Sets the options of copies started from now on (rate limit, batch, lanes, …).
    pub fn set_options(&self, options: CopyOptions) {
        *self.options.write().unwrap_or_else(|p| p.into_inner()) = options;
    }

    /// Starts the copy of one member; progress arrives on the returned channel until stopped.
    pub fn start(
        &self,
        shared: &Arc<ProxyShared>,
        spec: CopySpec,
    ) -> Result<watch::Receiver<Progress>, String> {
        let resume_cursor = match spec.resume_cursor.as_deref() {
            None => None,
            Some(c) => Some(c.parse().map_err(|_| format!("bad checkpoint '{c}'"))?),
        };
        let job = CopyJob {
            name: format!("{}/{}", spec.migration, spec.member),
            source_url: spec.source_url,
            target_url: spec.target_url,
            mode: if spec.snapshot {
                Mode::Snapshot
            } else {
                Mode::Scan
            },
            replace: match spec.replace {
                Replace::None => ReplaceMode::None,
                Replace::Replace => ReplaceMode::Replace,
                Replace::Merge => ReplaceMode::Merge,
            },
            resume_cursor,
            pass_done: spec.pass_done,
            options: self
                .options
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        let weak = Arc::downgrade(shared);
        let mid = spec.migration.clone();
        // repairs are re-copied source → target: the queue of writes whose reply came from
        // the source side (old for a forward copy, new for a copy back)
        let copy_back = spec.reverse;
        let repairs: godwit_mover::RepairSource = Arc::new(move |max| {
            weak.upgrade()
                .map(|s| {
                    if copy_back {
                        s.reports.take_reverse_repairs(&mid, max)
                    } else {
                        s.reports.take_repairs(&mid, max)
                    }
                })
                .unwrap_or_default()
        });
        // a copy back takes the reverse queue itself (its source is new): a repair-only copy
        // beside it would take the same keys and copy them old → new, the wrong way
        let reverse = (!copy_back).then(|| self.reverse_repairs(shared, &job, &spec.migration));
        let handle = godwit_mover::start(job, Some(repairs));
        let mut src = handle.progress();
        let (tx, rx) = watch::channel(progress(&src.borrow()));
        // forwards until the copy stops (its sender drops) or control stops listening
        tokio::spawn(async move {
            while src.changed().await.is_ok() {
                let p = progress(&src.borrow_and_update());
                if tx.send(p).is_err() {
                    return;
                }
            }
        });
        if let Some(reverse) = reverse {
            let mut rev = self.reverse.write().unwrap_or_else(|p| p.into_inner());
            let members = rev.entry(spec.migration.clone()).or_default();
            members.retain(|(m, _)| *m != spec.member);
            members.push((spec.member.clone(), reverse));
        }
        let mut copies = self.copies.write().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = self.relay.get() {
            r.drain(&spec.migration);
        }
        let members = copies.entry(spec.migration).or_default();
        members.retain(|(m, _)| *m != spec.member);
        members.push((spec.member, handle));
        Ok(rx)
    }

    /// The repair-only copy new → old that runs beside `job` (no scan pass; it takes the
    /// proxy's reverse repair queue: writes that failed on old while new was authoritative).
    fn reverse_repairs(&self, shared: &Arc<ProxyShared>, job: &CopyJob, mid: &str) -> CopyHandle {
        let reverse = CopyJob {
            name: format!("{}:reverse-repairs", job.name),
            source_url: job.target_url.clone(),
            target_url: job.source_url.clone(),
            mode: Mode::Scan,
            replace: ReplaceMode::Replace,
            resume_cursor: None,
            pass_done: true,
            options: job.options.clone(),
        };
        let weak = Arc::downgrade(shared);
        let mid = mid.to_string();
        let repairs: godwit_mover::RepairSource = Arc::new(move |max| {
            weak.upgrade()
                .map(|s| s.reports.take_reverse_repairs(&mid, max))
                .unwrap_or_default()
        });
        godwit_mover::start(reverse, Some(repairs))
    }

    /// Pauses or resumes every copy of a migration.
    pub fn pause(&self, migration: &str, paused: bool) {
        let copies = self.copies.read().unwrap_or_else(|p| p.into_inner());
        for (_, h) in copies.get(migration).into_iter().flatten() {
            h.set_paused(paused);
        }
        let rev = self.reverse.read().unwrap_or_else(|p| p.into_inner());
        for (_, h) in rev.get(migration).into_iter().flatten() {
            h.set_paused(paused);
        }
    }

    /// Stops one member's copy, or all of a migration's.
    pub fn stop(&self, migration: &str, member: Option<&str>) {
        {
            let mut rev = self.reverse.write().unwrap_or_else(|p| p.into_inner());
            if let Some(members) = rev.get_mut(migration) {
                members.retain(|(m, _)| member.is_some_and(|x| x != m));
                if members.is_empty() {
                    rev.remove(migration);
                }
            }
        }
        let mut copies = self.copies.write().unwrap_or_else(|p| p.into_inner());
        if let Some(members) = copies.get_mut(migration) {
            // dropping a handle stops its copy
            members.retain(|(m, _)| member.is_some_and(|x| x != m));
            if members.is_empty() {
                copies.remove(migration);
                if let Some(r) = self.relay.get() {
                    r.stop_draining(migration);
                }
            }
        }
    }
}

/// Compares two endpoints with the mover's verification.
pub async fn verify(req: VerifyRequest) -> Result<Value, String> {
    let opts = VerifyOptions {
        sample: req.sample.map(|n| n as usize),
        rounds: req.rounds,
        round_delay: Duration::from_millis(300),
        ..Default::default()
    };
    let r = godwit_mover::verify(&req.source_url, &req.target_url, &opts)
        .await
        .map_err(|e| e.to_string())?;
    let differences: Vec<Value> = r
        .differences
        .iter()
        .map(|(k, d)| json!({"key": k, "reason": d.as_str()}))
        .collect();
    Ok(json!({
        "mode": r.mode, "rounds": r.rounds, "keys_checked": r.keys_checked,
        "target_keys_checked": r.target_keys_checked, "matched": r.matched,
        "differing": r.differing(), "missing_in_target": r.missing_in_target,
        "extra_in_target": r.extra_in_target, "value_mismatch": r.value_mismatch,
        "ttl_mismatch": r.ttl_mismatch, "resolved_by_recheck": r.resolved_by_recheck,
        "source_dbsize": r.source_dbsize, "target_dbsize": r.target_dbsize,
        "differences": differences, "duration_ms": r.duration_ms,
    }))
}
