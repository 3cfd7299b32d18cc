//! Supervision of data movement: one copy per active interlay member, started through the
//! [`DataPlane`](crate::DataPlane) when a migration runs, paused and resumed with it, stopped by
//! completion, rollback and delete, resumed from its checkpoint after a restart. A watcher task
//! per copy folds progress into `migration.progress` (persisting checkpoints), flips the phase to
//! `done` when every member's copy is done (republishing routing, which switches big_bang and
//! time_window to new), and applies the failure handling when a copy fails (`copy_failure`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::control::{org_mut, Control, Inner};
use crate::dataplane::CopySpec;
use crate::model::{dp_key, MemberState, Migration, Progress, State};
use crate::rules::DataRule;
use crate::status::Status;
use crate::strategy::Strategy;
use crate::ControlError;

/// How often a running copy's checkpoint is persisted at most.
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// Least time between two progress updates of one copy.
const UPDATE_EVERY: Duration = Duration::from_millis(100);

/// The copies of one migration.
#[derive(Debug, Default)]
pub(crate) struct CopyRun {
    /// Identifies this run; watchers of an older run change nothing.
    pub(crate) generation: u64,
    /// Latest progress per member.
    pub(crate) members: BTreeMap<String, Progress>,
    /// Failed attempts per member (retry_then_all).
    pub(crate) attempts: HashMap<String, u32>,
}

/// Saves `next` and makes it current without republishing routing.
pub(crate) async fn save_quiet(inner: &mut Inner, next: State) -> Result<(), ControlError> {
    let store = inner.store.clone();
    let snapshot = next.clone();
    tokio::task::spawn_blocking(move || store.save(&snapshot))
        .await
        .map_err(|e| ControlError::Store(format!("save task failed: {e}")))??;
    inner.state = next;
    Ok(())
}

/// The migration's progress as the sum of its members'.
pub(crate) fn aggregate(members: &BTreeMap<String, Progress>, was: &Progress) -> Progress {
    let mut p = Progress {
        phase: was.phase.clone(),
        ..Default::default()
    };
    let rank = |ph: &str| match ph {
        "starting" => 0,
        "scanning" => 1,
        "streaming" => 2,
        "done" => 3,
        _ => 0,
    };
    let mut phase = 3;
    for m in members.values() {
        p.keys_scanned += m.keys_scanned;
        p.keys_total_estimate += m.keys_total_estimate;
        p.keys_copied += m.keys_copied;
        p.keys_skipped += m.keys_skipped;
        p.keys_failed += m.keys_failed;
        p.keys_deleted += m.keys_deleted;
        p.bytes_copied += m.bytes_copied;
        p.dirty_backlog += m.dirty_backlog;
        p.rate_keys_per_s += m.rate_keys_per_s;
        p.lag_ms = p.lag_ms.max(m.lag_ms);
        p.eta_s = match (p.eta_s, m.eta_s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if p.cursor.is_none() {
            p.cursor = m.cursor.clone();
        }
        phase = phase.min(rank(&m.phase));
    }
    // `done` is sticky: the cutover it triggered is not undone by a late dirty key
    if was.phase != "done" {
        p.phase = ["starting", "scanning", "streaming", "done"][phase].to_string();
    }
    p
}

/// The interlay members whose copy should run, with their (source, target) URLs.
pub(crate) fn copy_specs(org: &str, os: &crate::model::OrgState, m: &Migration) -> Vec<CopySpec> {
    let mut out = Vec::new();
    for x in m
        .interlays
        .iter()
        .filter(|x| x.state == MemberState::Active)
    {
        let data = x.data.unwrap_or(m.data);
        let (snapshot, replace) = match data {
            DataRule::None => continue,
            DataRule::Snapshot { replace } => (true, replace),
            DataRule::Scan { replace } => (false, replace),
        };
        let url = |e: &str| os.endpoints.get(e).map(|ep| ep.url.clone());
        let (Some(source_url), Some(target_url)) = (url(&x.source), url(&x.target)) else {
            continue;
        };
        out.push(CopySpec {
            migration: dp_key(org, &m.id),
            member: x.interlay.clone(),
            source_url,
            target_url,
            snapshot,
            replace,
            resume_cursor: x.copy_cursor.clone(),
            pass_done: x.copy_pass_done,
            reverse: false,
        });
    }
    out
}

/// Whether every member asks for completion as soon as the copy is done, without approval.
fn auto_completes(m: &Migration) -> bool {
    !m.interlays.is_empty()
        && m.interlays.iter().all(|x| {
            x.rules
                .as_ref()
                .and_then(|r| r.get("completion"))
                .is_some_and(|c| {
                    c.get("milestone").and_then(|v| v.as_str()) == Some("immediate")
                        && c.get("require_manual_approval").and_then(|v| v.as_bool()) == Some(false)
                })
        })
}

impl Control {
    /// Starts the copies of migration `id` (after a commit made it run). Members whose copy
    /// cannot start are handled as failed copies.
    pub(crate) fn launch_copies(&self, inner: &mut Inner, org: &str, id: &str) {
        let Some(os) = inner.state.orgs.get(org) else {
            return;
        };
        let Some(m) = os.migrations.get(id) else {
            return;
        };
        let specs = copy_specs(org, os, m);
        let paused = m.status == Status::Paused;
        let key = dp_key(org, id);
        if specs.is_empty() {
            return;
        }
        self.dataplane.stop_copy(&key, None);
        inner.copy_generation += 1;
        let generation = inner.copy_generation;
        let mut run = CopyRun {
            generation,
            ..Default::default()
        };
        if let Some(old) = inner.copies.remove(&key) {
            run.attempts = old.attempts.clone();
        }
        inner.copies.insert(key.clone(), run);
        for spec in specs {
            self.launch_member(inner, org, id, spec, generation);
        }
        if paused {
            self.dataplane.pause_copy(&key, true);
        }
    }

    pub(crate) fn launch_member(
        &self,
        inner: &mut Inner,
        org: &str,
        id: &str,
        spec: CopySpec,
        gen: u64,
    ) {
        let key = spec.migration.clone();
        let member = spec.member.clone();
        let spec_member = member.clone();
        let (org, id) = (org.to_string(), id.to_string());
        let me = self.me.clone();
        let started = self.dataplane.start_copy(spec);
        // a watcher ends by itself when the data plane drops the copy's progress sender
        match started {
            Ok(None) => {}
            Ok(Some(rx)) => {
                tokio::spawn(watch_copy(me, org, id, member, gen, rx, Copying::Forward));
            }
            Err(e) => {
                tokio::spawn(async move {
                    if let Some(c) = me.upgrade() {
                        c.copy_failed(&org, &id, &member, gen, e).await;
                    }
                });
            }
        }
        if let Some(run) = inner.copies.get_mut(&key) {
            run.members.entry(spec_member).or_default();
        }
    }

    /// Stops the copies of a migration (all members, or one).
    pub(crate) fn stop_copies(&self, inner: &mut Inner, org: &str, id: &str, member: Option<&str>) {
        let key = dp_key(org, id);
        self.dataplane.stop_copy(&key, member);
        if member.is_none() {
            inner.copies.remove(&key);
        } else if let Some(run) = inner.copies.get_mut(&key) {
            run.members.remove(member.unwrap_or_default());
        }
    }

    /// After a restart: resumes the copies of running and paused migrations from their
    /// checkpoints.
    pub(crate) fn resume_copies(&self, inner: &mut Inner) {
        let todo: Vec<(String, String)> = inner
            .state
            .orgs
            .iter()
            .flat_map(|(org, os)| {
                os.migrations
                    .values()
                    .filter(|m| {
                        matches!(m.status, Status::Running | Status::Paused)
                            && m.data != DataRule::None
                            && m.progress.phase != "done"
                    })
                    .map(move |m| (org.clone(), m.id.clone()))
            })
            .collect();
        for (org, id) in todo {
            tracing::info!(migration = %id, "resuming copy from its checkpoint");
            self.launch_copies(inner, &org, &id);
        }
    }

    /// Folds one member's progress into the migration; flips the phase to `done`.
    async fn copy_progress(
        &self,
        org: &str,
        id: &str,
        member: &str,
        gen: u64,
        p: Progress,
        persist: bool,
    ) {
        let mut inner = self.lock().await;
        let key = dp_key(org, id);
        let Some(run) = inner.copies.get_mut(&key).filter(|r| r.generation == gen) else {
            return;
        };
        run.members.insert(member.to_string(), p.clone());
        let members = run.members.clone();
        let mut next = inner.state.clone();
        let Some(m) = org_mut(&mut next, org).migrations.get_mut(id) else {
            return;
        };
        if !m.status.routes_traffic() {
            return;
        }
        let was_done = m.progress.phase == "done";
        m.progress = aggregate(&members, &m.progress);
        crate::status_metrics::export_progress(&key, &m.progress);
        if let Some(x) = m.interlays.iter_mut().find(|x| x.interlay == member) {
            x.copy_cursor = p.cursor.clone();
            x.copy_pass_done = p.cursor.is_none() && p.phase != "starting";
        }
        let now_done = !was_done && m.progress.phase == "done";
        let cutover = matches!(
            m.strategy,
            Strategy::BigBang { .. } | Strategy::TimeWindow { .. }
        );
        let auto = now_done && m.status == Status::Running && auto_completes(m);
        let r = if now_done {
            tracing::info!(migration = %key, "data copy done");
            self.commit(&mut inner, next).await
        } else if persist {
            save_quiet(&mut inner, next).await
        } else {
            inner.state = next;
            Ok(())
        };
        if let Err(e) = r {
            tracing::warn!(migration = %key, error = %e, "could not save copy progress");
        }
        // after a cutover to new nothing may be copied from old any more
        if now_done && cutover {
            self.dataplane.stop_copy(&key, None);
        }
        drop(inner);
        if auto {
            let body = serde_json::json!({"reason": "completion milestone reached (copy done)"});
            if let Err(e) = self.complete(org, id, &body).await {
                tracing::warn!(migration = %key, error = %e, "auto-completion failed");
            }
        }
    }
}

/// Which copy a watcher follows: a migration's forward copy or a rollback's copy back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Copying {
    Forward,
    /// Ends at `done` (the member is then rolled back).
    Back,
}

/// Follows one copy's progress until its channel closes or it fails (a copy back also ends at
/// `done`); progress is saved on a phase change and at least every [`PERSIST_EVERY`].
pub(crate) async fn watch_copy(
    me: std::sync::Weak<Control>,
    org: String,
    id: String,
    member: String,
    gen: u64,
    mut rx: watch::Receiver<Progress>,
    kind: Copying,
) {
    let mut last_save = Instant::now();
    let mut last_phase = String::new();
    loop {
        if rx.changed().await.is_err() {
            return;
        }
        let p = rx.borrow_and_update().clone();
        let Some(c) = me.upgrade() else { return };
        if p.phase == "failed" {
            let err = p.error.unwrap_or_else(|| "copy failed".into());
            match kind {
                Copying::Forward => c.copy_failed(&org, &id, &member, gen, err).await,
                Copying::Back => c.reverse_failed(&org, &id, &member, gen, err).await,
            }
            return;
        }
        let done = p.phase == "done";
        let persist = p.phase != last_phase || last_save.elapsed() >= PERSIST_EVERY;
        if persist {
            last_save = Instant::now();
            last_phase = p.phase.clone();
        }
        match kind {
            Copying::Forward => c.copy_progress(&org, &id, &member, gen, p, persist).await,
            Copying::Back => {
                c.reverse_progress(&org, &id, &member, gen, p, persist)
                    .await
            }
        }
        if done && kind == Copying::Back {
            return;
        }
        drop(c);
        tokio::time::sleep(UPDATE_EVERY).await;
    }
}
