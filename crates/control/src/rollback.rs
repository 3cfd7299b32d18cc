//! Rolling a migration back, whole or one interlay at a time: routing returns to the source at
//! once (completed interlays are re-pointed), members are marked rolled back, and the status
//! goes `rolling_back` → `rolled_back` (the reverse-copy engine arrives with the data mover).

use chrono::Utc;
use serde_json::{json, Value};

use crate::body::Body;
use crate::control::{org_mut, Control};
use crate::model::{MemberState, Migration, OrgState};
use crate::ops_migrations::{find_migration, step};
use crate::rules::DataRule;
use crate::status::{transition, Action, Status};
use crate::ControlError;

/// Options of the rollback routes.
struct RollbackOpts {
    reason: Option<String>,
    force: bool,
    overwrite_on_reverse: bool,
}

fn rollback_opts(body: &Value) -> Result<RollbackOpts, ControlError> {
    let mut b = Body::new(body, "rollback")?;
    let reason = b.opt_str("reason")?;
    let force = b.opt_bool("force")?.unwrap_or(false);
    b.opt_bool("preserve_config")?;
    let overwrite_on_reverse = b.opt_bool("overwrite_on_reverse")?.unwrap_or(false);
    b.finish()?;
    Ok(RollbackOpts {
        reason,
        force,
        overwrite_on_reverse,
    })
}

/// Re-points completed interlay members back to their source; marks every member rolled back.
pub(crate) fn roll_back_members(
    os: &mut OrgState,
    mid: &str,
    only: Option<&str>,
) -> Result<(), ControlError> {
    let Some(m) = os.migrations.get(mid) else {
        return Err(ControlError::MigrationNotFound(mid.into()));
    };
    let mut repoint = Vec::new();
    for x in &m.interlays {
        if only.is_some_and(|i| i != x.interlay) {
            continue;
        }
        if x.state == MemberState::Completed {
            if !os.endpoints.contains_key(&x.source) {
                return Err(ControlError::Conflict(format!(
                    "source endpoint '{}' of interlay '{}' no longer exists",
                    x.source, x.interlay
                )));
            }
            repoint.push((x.interlay.clone(), x.source.clone(), x.target.clone()));
        }
    }
    for (il, source, target) in repoint {
        if let Some(i) = os.interlays.get_mut(&il) {
            if i.endpoint == target {
                i.endpoint = source;
                i.updated_at = Utc::now();
            }
        }
    }
    if only.is_none() {
        crate::api_run::restore_bindings(os, mid);
    }
    if let Some(m) = os.migrations.get_mut(mid) {
        for x in m
            .interlays
            .iter_mut()
            .filter(|x| only.is_none_or(|i| i == x.interlay))
        {
            x.state = MemberState::RolledBack;
        }
        if only.is_none() {
            for a in &mut m.apis {
                a.state = MemberState::RolledBack;
            }
        }
    }
    Ok(())
}

fn rollback_warning(m: &Migration, opts: &RollbackOpts, was: Status) -> Option<String> {
    if opts.overwrite_on_reverse {
        Some("reverse copy (overwrite_on_reverse) is not available yet; writes made to the target stay only there".into())
    } else if was == Status::Completed && m.data != DataRule::None {
        Some("the source did not receive writes made after completion".into())
    } else {
        None
    }
}

impl Control {
    /// `POST /migrations/{m}/rollback`: every member back to its source at once.
    pub async fn rollback(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let opts = rollback_opts(body)?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let was = os.migrations[&id].status;
        transition(was, Action::Rollback { force: opts.force })
            .map_err(|e| ControlError::Migration(e.to_string()))?;
        roll_back_members(os, &id, None)?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        step(m, Action::Rollback { force: opts.force })?;
        // Routing is back on the source now; the reverse copy engine is not part of this build,
        // so the rollback work is complete.
        step(m, Action::RollbackDone)?;
        m.status_reason = opts.reason.clone();
        let warning = rollback_warning(m, &opts, was);
        let out = json!({"migration_id": id, "status": m.status, "rolled_back_at": m.updated_at,
                         "reason": opts.reason, "warning": warning});
        self.commit(&mut inner, next).await?;
        self.stop_copies(&mut inner, org_id, &id, None);
        drop(inner);
        self.after_cutover(out, &id, "rollback").await
    }

    /// `POST /migrations/{m}/interlay/{i}/rollback`: one interlay back to its source; the
    /// migration is rolled back once no member is left.
    pub async fn rollback_interlay(
        &self,
        org_id: &str,
        key: &str,
        ikey: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let opts = rollback_opts(body)?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let il = crate::model::resolve(&os.interlays, ikey)
            .ok_or_else(|| ControlError::not_found("Interlay", ikey))?;
        let was = os.migrations[&id].status;
        if !os.migrations[&id]
            .interlays
            .iter()
            .any(|x| x.interlay == il)
        {
            return Err(ControlError::Missing(format!(
                "Interlay '{il}' is not part of migration '{id}'"
            )));
        }
        transition(was, Action::Rollback { force: opts.force })
            .map_err(|e| ControlError::Migration(e.to_string()))?;
        roll_back_members(os, &id, Some(&il))?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        let left = m
            .interlays
            .iter()
            .any(|x| x.state != MemberState::RolledBack)
            || m.apis.iter().any(|a| a.state != MemberState::RolledBack);
        if !left {
            step(m, Action::Rollback { force: opts.force })?;
            step(m, Action::RollbackDone)?;
        }
        m.status_reason = opts.reason.clone();
        m.updated_at = Utc::now();
        let warning = rollback_warning(m, &opts, was);
        let out = json!({"migration_id": id, "interlay_id": il, "status": m.status,
                         "rolled_back_at": m.updated_at, "reason": opts.reason, "warning": warning});
        self.commit(&mut inner, next).await?;
        self.stop_copies(&mut inner, org_id, &id, (left).then_some(il.as_str()));
        Ok(out)
    }
}
