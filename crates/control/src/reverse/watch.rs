//! Following a reverse copy (`super`): its progress folded into the migration, `done` ending
//! the member's rollback, a failure ending it on its source and failing the migration.
//! (`copy::watch_copy` follows the progress channel.)

use chrono::Utc;

use super::record_end;
use crate::compile::reverse_key;
use crate::control::{org_mut, Control};
use crate::copy::save_quiet;
use crate::model::{dp_key, MemberState, Progress, ReverseState};
use crate::ops_migrations::step;
use crate::status::{Action, Status};

impl Control {
    /// Folds one member's reverse-copy progress into the migration; at `done` the member is
    /// rolled back and routing republished.
    pub(crate) async fn reverse_progress(
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
        if !inner.reverse.is_current(&key, member, gen) {
            return;
        }
        let done = p.phase == "done";
        if let Some(run) = inner
            .reverse
            .runs
            .get_mut(&key)
            .and_then(|m| m.get_mut(member))
        {
            run.progress = p;
            if done {
                run.generation = None;
            }
        }
        let total = inner.reverse.total(&key);
        let mut next = inner.state.clone();
        let Some(m) = org_mut(&mut next, org).migrations.get_mut(id) else {
            return;
        };
        if let Some(rc) = &mut m.reverse_copy {
            rc.progress = total;
        }
        let r = if done {
            tracing::info!(migration = %key, interlay = %member, "reverse copy done");
            if let Some(x) = m.interlays.iter_mut().find(|x| x.interlay == member) {
                x.state = MemberState::RolledBack;
            }
            record_end(m, member, ReverseState::Done);
            if m.status == Status::RollingBack && !m.reversing() {
                if let Err(e) = step(m, Action::RollbackDone) {
                    tracing::warn!(migration = %key, error = %e, "status unchanged");
                }
            }
            m.updated_at = Utc::now();
            self.commit(&mut inner, next).await
        } else if persist {
            save_quiet(&mut inner, next).await
        } else {
            inner.state = next;
            Ok(())
        };
        if let Err(e) = r {
            tracing::warn!(migration = %key, error = %e, "could not save reverse-copy progress");
        }
        if done {
            self.dataplane.stop_copy(&reverse_key(&key, member), None);
        }
    }

    /// Member `member`'s reverse copy (run `gen`) failed with `error`: the member ends on its
    /// source without the rest of the copy, and the migration fails.
    pub(crate) async fn reverse_failed(
        &self,
        org: &str,
        id: &str,
        member: &str,
        gen: u64,
        error: String,
    ) {
        let mut inner = self.lock().await;
        let key = dp_key(org, id);
        if !inner.reverse.is_current(&key, member, gen) {
            return;
        }
        if let Some(run) = inner
            .reverse
            .runs
            .get_mut(&key)
            .and_then(|m| m.get_mut(member))
        {
            run.generation = None;
        }
        tracing::warn!(migration = %key, interlay = %member, %error, "reverse copy failed");
        let mut next = inner.state.clone();
        let Some(m) = org_mut(&mut next, org).migrations.get_mut(id) else {
            return;
        };
        if let Some(x) = m.interlays.iter_mut().find(|x| x.interlay == member) {
            x.state = MemberState::RolledBack;
        }
        let what = format!("reverse copy of interlay '{member}' failed: {error}");
        record_end(m, member, ReverseState::Failed);
        if let Some(rc) = &mut m.reverse_copy {
            rc.error = Some(what.clone());
        }
        let action = match m.status {
            Status::RollingBack => Some(Action::RollbackFailed),
            Status::Running => Some(Action::PartialFail),
            _ => None,
        };
        if let Some(a) = action {
            if let Err(e) = step(m, a) {
                tracing::warn!(migration = %key, error = %e, "status unchanged");
            }
        }
        m.status_reason = Some(format!(
            "{what}; the interlay routes to its source, which lacks what was not copied back"
        ));
        m.updated_at = Utc::now();
        if let Err(e) = self.commit(&mut inner, next).await {
            tracing::error!(migration = %key, error = %e, "could not save the reverse-copy failure");
        }
        self.dataplane.stop_copy(&reverse_key(&key, member), None);
    }
}
