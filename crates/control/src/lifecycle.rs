//! Executing a migration and moving it through its lifecycle: migrate, traffic, pause, resume,
//! complete, rollback (whole or per interlay) and toggle. Each route validates its body and
//! status, changes state through the pure status machine, saves, and republishes routing.

use chrono::Utc;
use serde_json::{json, Value};

use crate::body::Body;
use crate::control::{org, org_mut, Control};
use crate::members::INTERLAY_ACTIVE;
use crate::model::MemberState;
use crate::ops_migrations::{find_migration, step};
use crate::rules::DataRule;
use crate::status::{transition, Action, Status};
use crate::strategy::Strategy;
use crate::ControlError;

/// Largest read_percentage change one `/traffic` call may make.
pub const MAX_TRAFFIC_STEP: f64 = 0.25;

fn reason_only(body: &Value, what: &'static str) -> Result<Option<String>, ControlError> {
    let mut b = Body::new(body, what)?;
    let r = b.opt_str("reason")?;
    b.ignore(&["revert_reads"]);
    b.finish()?;
    Ok(r)
}

impl Control {
    /// `POST /migrations/{m}/migrate`: installs the migration's routing; the copy is async.
    pub async fn migrate(&self, org_id: &str, key: &str) -> Result<&'static str, ControlError> {
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let m = &os.migrations[&id];
        let target = transition(m.status, Action::Migrate)
            .map_err(|e| ControlError::Migration(e.to_string()))?;
        if m.member_count() == 0 {
            return Err(ControlError::Migration(format!(
                "Cannot set {} migration in status: {}",
                target.pascal(),
                m.status.pascal()
            )));
        }
        if m.reversing() {
            return Err(ControlError::Migration(format!(
                "Cannot set {} migration in status: {} (data is being copied back to the source)",
                target.pascal(),
                m.status.pascal()
            )));
        }
        for x in &m.interlays {
            if !os.interlays.contains_key(&x.interlay) {
                return Err(ControlError::not_found("Interlay", &x.interlay));
            }
            if !os.endpoints.contains_key(&x.target) {
                return Err(ControlError::not_found("Endpoint", &x.target));
            }
            if os
                .migrations
                .values()
                .any(|o| o.id != id && o.holds_interlay(&x.interlay))
            {
                return Err(ControlError::Migration(INTERLAY_ACTIVE.into()));
            }
        }
        if let Strategy::TimeWindow { window_end, .. } = &m.strategy {
            if *window_end <= Utc::now() {
                return Err(ControlError::bad("the time window has already ended"));
            }
        }
        let now = Utc::now();
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        step(m, Action::Migrate)?;
        for x in &mut m.interlays {
            x.state = MemberState::Active;
        }
        for a in &mut m.apis {
            a.state = MemberState::Active;
        }
        m.started_at = Some(now);
        m.completed_at = None;
        m.status_reason = None;
        // a fresh run copies from the start (a restart resumes instead: `resume_copies`)
        m.progress = crate::model::Progress {
            phase: if m.data == DataRule::None {
                "done"
            } else {
                "waiting_for_mover"
            }
            .into(),
            ..Default::default()
        };
        for x in &mut m.interlays {
            x.copy_cursor = None;
            x.copy_pass_done = false;
        }
        self.commit(&mut inner, next).await?;
        inner.copies.remove(&crate::model::dp_key(org_id, &id));
        self.launch_copies(&mut inner, org_id, &id);
        Ok("migration commit completed")
    }

    /// `PATCH /migrations/{m}/traffic` `{read_percentage, reason?}`: canary (or feature_flag
    /// rollout) ramp, at most 0.25 change per call.
    pub async fn traffic(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "traffic")?;
        let new = b.opt_f64("read_percentage")?;
        let reason = b.opt_str("reason")?;
        b.finish()?;
        let new =
            new.ok_or_else(|| ControlError::bad("Required field 'read_percentage' is missing"))?;
        crate::casing::fraction("read_percentage", new)?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        if !m.status.is_active() || matches!(m.status, Status::RollingBack | Status::Failed) {
            return Err(ControlError::Migration(format!(
                "Cannot change traffic of migration in status: {}",
                m.status.pascal()
            )));
        }
        let slot = match &mut m.strategy {
            Strategy::Canary {
                read_percentage, ..
            } => read_percentage,
            Strategy::FeatureFlag {
                rollout_percentage, ..
            } => rollout_percentage,
            _ => {
                return Err(ControlError::bad(
                    "traffic applies only to canary and feature_flag migrations",
                ))
            }
        };
        let old = *slot;
        if (new - old).abs() > MAX_TRAFFIC_STEP + 1e-9 {
            return Err(ControlError::bad(format!(
                "Cannot change read_percentage by more than 0.25 per update (current {old:.2}, requested {new:.2})"
            )));
        }
        *slot = new;
        m.updated_at = Utc::now();
        self.commit(&mut inner, next).await?;
        Ok(
            json!({"migration_id": id, "old_percentage": old, "new_percentage": new, "reason": reason}),
        )
    }

    /// `POST /migrations/{m}/pause` `{reason?}`: routing frozen, copy suspended.
    pub async fn pause(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        self.simple_step(org_id, key, body, "pause", Action::Pause, "paused_at")
            .await
    }

    /// `POST /migrations/{m}/resume` `{reason?}`.
    pub async fn resume(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        self.simple_step(org_id, key, body, "resume", Action::Resume, "resumed_at")
            .await
    }

    async fn simple_step(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
        what: &'static str,
        action: Action,
        at: &str,
    ) -> Result<Value, ControlError> {
        let reason = reason_only(body, what)?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        step(m, action)?;
        m.status_reason = reason.clone();
        let out =
            json!({"migration_id": id, "status": m.status, at: m.updated_at, "reason": reason});
        self.commit(&mut inner, next).await?;
        self.dataplane
            .pause_copy(&crate::model::dp_key(org_id, &id), action == Action::Pause);
        Ok(out)
    }

    /// `POST /migrations/{m}/complete` `{reason?, force?}`: interlays are re-pointed to their
    /// targets (no socket is closed). Without `force`, the copy must be done.
    pub async fn complete(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "complete")?;
        let reason = b.opt_str("reason")?;
        let force = b.opt_bool("force")?.unwrap_or(false);
        b.finish()?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        transition(m.status, Action::Complete { force })
            .map_err(|e| ControlError::Migration(e.to_string()))?;
        if !force && m.progress.phase != "done" {
            return Err(ControlError::Migration(format!(
                "Cannot set Completed migration in status: {} (data copy not finished; use force)",
                m.status.pascal()
            )));
        }
        step(m, Action::Complete { force })?;
        m.completed_at = Some(Utc::now());
        m.status_reason = reason.clone();
        if let Strategy::TimeWindow { executed, .. } = &mut m.strategy {
            *executed = true;
        }
        let mut repoint = Vec::new();
        for x in m
            .interlays
            .iter_mut()
            .filter(|x| x.state == MemberState::Active)
        {
            x.state = MemberState::Completed;
            repoint.push((x.interlay.clone(), x.target.clone()));
        }
        for a in m.apis.iter_mut().filter(|a| a.state == MemberState::Active) {
            a.state = MemberState::Completed;
        }
        crate::api_run::switch_bindings(os, &id);
        for (il, target) in repoint {
            if let Some(i) = os.interlays.get_mut(&il) {
                i.endpoint = target;
                i.updated_at = Utc::now();
            }
        }
        self.commit(&mut inner, next).await?;
        self.stop_copies(&mut inner, org_id, &id, None);
        drop(inner);
        let out = json!({"migration_id": id, "status": Status::Completed, "status_label": "Completed",
                  "message": "migration completed; interlays now serve the target", "reason": reason});
        self.after_cutover(out, &id, "complete").await
    }

    /// `PATCH /migrations/{m}/toggle` `{activate_new, reason?}`: blue_green only, while running.
    pub async fn toggle(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "toggle")?;
        let activate = b.opt_bool("activate_new")?;
        let reason = b.opt_str("reason")?;
        b.finish()?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        let status = m.status;
        let Strategy::BlueGreen { active_is_new, .. } = &mut m.strategy else {
            return Err(ControlError::bad(
                "toggle applies only to blue_green migrations",
            ));
        };
        if !matches!(status, Status::Running | Status::Paused) {
            return Err(ControlError::Migration(format!(
                "Cannot toggle migration in status: {}",
                status.pascal()
            )));
        }
        let side = |new: bool| if new { "green" } else { "blue" };
        let previous = *active_is_new;
        *active_is_new = activate.unwrap_or(!previous);
        let now_new = *active_is_new;
        m.updated_at = Utc::now();
        m.status_reason = reason.clone();
        let out = json!({"migration_id": id, "previous_active": side(previous), "new_active": side(now_new),
                         "active_is_new": now_new, "write_mode": "dual_write", "updated_at": m.updated_at,
                         "reason": reason});
        self.commit(&mut inner, next).await?;
        drop(inner);
        self.after_cutover(out, &id, "toggle").await
    }

    /// Status of a migration (for callers that only need it).
    pub async fn migration_status(&self, org_id: &str, key: &str) -> Result<Status, ControlError> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        let id = find_migration(&os, key)?;
        Ok(os.migrations[&id].status)
    }
}
