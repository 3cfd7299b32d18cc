//! Rolling a migration back, whole or one interlay at a time: routing returns to the source at
//! once (completed interlays are re-pointed), members are marked rolled back, and the status
//! goes `rolling_back` → `rolled_back`. With `overwrite_on_reverse` each interlay member stays
//! `rolling_back` while its data is copied back from the target (`reverse`), and the migration
//! becomes `rolled_back` when the last one is done (`failed` if one fails).

use chrono::Utc;
use serde_json::{json, Value};

use crate::body::Body;
use crate::control::{org_mut, Control};
use crate::model::{MemberState, Migration, OrgState, ReverseState};
use crate::ops_migrations::{find_migration, step};
use crate::reverse::{record_end, record_start};
use crate::rules::DataRule;
use crate::status::{transition, Action, Status};
use crate::ControlError;

/// Options of the rollback routes.
pub(crate) struct RollbackOpts {
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

/// What rolling members back did to reverse copies.
#[derive(Debug, Default)]
pub(crate) struct Rolled {
    /// Interlay members whose data is copied back from now on (started, or started over).
    pub(crate) reverse: Vec<String>,
    /// Interlay members whose running reverse copy was cancelled.
    pub(crate) cancelled: Vec<String>,
}

/// Re-points completed interlay members back to their source and marks members rolled back.
/// `opts` is the API call's (`None`: an automatic rollback). With `overwrite_on_reverse`,
/// interlay members that were executed (active or completed) become `rolling_back` instead,
/// for a reverse copy. A member already copying back keeps copying, unless the call is forced:
/// then it starts over (`overwrite_on_reverse`) or is cancelled (without). Members already
/// rolled back stay so: their source has taken writes alone since, which a copy from the
/// target would overwrite.
pub(crate) fn roll_back_members(
    os: &mut OrgState,
    mid: &str,
    only: Option<&str>,
    opts: Option<&RollbackOpts>,
) -> Result<Rolled, ControlError> {
    let Some(m) = os.migrations.get(mid) else {
        return Err(ControlError::MigrationNotFound(mid.into()));
    };
    let copy_back = opts.is_some_and(|o| o.overwrite_on_reverse);
    let force = opts.is_some_and(|o| o.force);
    let in_scope = |il: &str| only.is_none_or(|i| i == il);
    let mut repoint = Vec::new();
    for x in m.interlays.iter().filter(|x| in_scope(&x.interlay)) {
        if x.state == MemberState::Completed {
            if !os.endpoints.contains_key(&x.source) {
                return Err(ControlError::Conflict(format!(
                    "source endpoint '{}' of interlay '{}' no longer exists",
                    x.source, x.interlay
                )));
            }
            repoint.push((x.interlay.clone(), x.source.clone(), x.target.clone()));
        }
        let copies = matches!(x.state, MemberState::Active | MemberState::Completed)
            || (force && x.state == MemberState::RollingBack);
        if copy_back && copies {
            for e in [&x.source, &x.target] {
                if !os.endpoints.contains_key(e) {
                    return Err(ControlError::Conflict(format!(
                        "endpoint '{e}' of interlay '{}' no longer exists; cannot copy back",
                        x.interlay
                    )));
                }
            }
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
    let mut rolled = Rolled::default();
    if let Some(m) = os.migrations.get_mut(mid) {
        for x in m.interlays.iter_mut().filter(|x| in_scope(&x.interlay)) {
            x.state = match x.state {
                MemberState::RolledBack => MemberState::RolledBack,
                MemberState::RollingBack if !force => MemberState::RollingBack,
                MemberState::RollingBack if copy_back => {
                    rolled.reverse.push(x.interlay.clone());
                    MemberState::RollingBack
                }
                MemberState::RollingBack => {
                    rolled.cancelled.push(x.interlay.clone());
                    MemberState::RolledBack
                }
                MemberState::Active | MemberState::Completed if copy_back => {
                    rolled.reverse.push(x.interlay.clone());
                    MemberState::RollingBack
                }
                _ => MemberState::RolledBack,
            };
        }
        if only.is_none() {
            for a in &mut m.apis {
                a.state = MemberState::RolledBack;
            }
        }
    }
    Ok(rolled)
}

/// Ends a rollback (`rolling_back` → `rolled_back`) unless a member's data is still being
/// copied back; the reverse copy ends it then.
pub(crate) fn finish_unless_reversing(m: &mut Migration) -> Result<(), ControlError> {
    if m.reversing() {
        return Ok(());
    }
    step(m, Action::RollbackDone)
}

/// Notes the reverse copies a rollback started and cancelled in the migration's record.
fn record(m: &mut Migration, rolled: &Rolled) {
    record_start(m, &rolled.reverse);
    for il in &rolled.cancelled {
        record_end(m, il, ReverseState::Cancelled);
    }
}

fn rollback_warning(
    m: &Migration,
    opts: &RollbackOpts,
    was: Status,
    rolled: &Rolled,
) -> Option<String> {
    if !rolled.cancelled.is_empty() {
        Some(format!(
            "reverse copy cancelled for {}; keys not copied back yet are only on the target",
            rolled.cancelled.join(", ")
        ))
    } else if opts.overwrite_on_reverse && rolled.reverse.is_empty() && !m.reversing() {
        Some(
            "overwrite_on_reverse: no interlay member to copy back (members already rolled back)"
                .into(),
        )
    } else if !opts.overwrite_on_reverse && was == Status::Completed && m.data != DataRule::None {
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
        let rolled = roll_back_members(os, &id, None, Some(&opts))?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        step(m, Action::Rollback { force: opts.force })?;
        record(m, &rolled);
        // routing is back on the source now; with a reverse copy the rollback ends with it
        finish_unless_reversing(m)?;
        m.status_reason = opts.reason.clone();
        let warning = rollback_warning(m, &opts, was, &rolled);
        let mut out = json!({"migration_id": id, "status": m.status, "rolled_back_at": m.updated_at,
                         "reason": opts.reason, "warning": warning});
        if let Some(rc) = &m.reverse_copy {
            out["reverse_copy"] = json!(rc);
        }
        self.commit(&mut inner, next).await?;
        self.stop_copies(&mut inner, org_id, &id, None);
        self.stop_reverse(&mut inner, org_id, &id, Some(&rolled.cancelled));
        self.start_reverse(&mut inner, org_id, &id, &rolled.reverse);
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
        let rolled = roll_back_members(os, &id, Some(&il), Some(&opts))?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        // members copying back count as rolled back: the migration waits for them below
        let left = m
            .interlays
            .iter()
            .any(|x| !matches!(x.state, MemberState::RolledBack | MemberState::RollingBack))
            || m.apis.iter().any(|a| a.state != MemberState::RolledBack);
        record(m, &rolled);
        if !left {
            step(m, Action::Rollback { force: opts.force })?;
            finish_unless_reversing(m)?;
        }
        m.status_reason = opts.reason.clone();
        m.updated_at = Utc::now();
        let warning = rollback_warning(m, &opts, was, &rolled);
        let mut out = json!({"migration_id": id, "interlay_id": il, "status": m.status,
                         "rolled_back_at": m.updated_at, "reason": opts.reason, "warning": warning});
        if let Some(rc) = &m.reverse_copy {
            out["reverse_copy"] = json!(rc);
        }
        self.commit(&mut inner, next).await?;
        self.stop_copies(&mut inner, org_id, &id, (left).then_some(il.as_str()));
        self.stop_reverse(&mut inner, org_id, &id, Some(&rolled.cancelled));
        self.start_reverse(&mut inner, org_id, &id, &rolled.reverse);
        Ok(out)
    }
}
