//! Migration definition operations: create, list, get, PATCH, DELETE, add API, add interlay.
//! Execution and the lifecycle routes are in `lifecycle`.

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::body::{check_description, check_id, Body};
use crate::control::{org, org_mut, Control};
use crate::model::{resolve, Migration, OrgState, Progress};
use crate::rules::{DataRule, FailureHandling, Guard};
use crate::status::{transition, Action, Status};
use crate::strategy::Strategy;
use crate::views::{migration_list_view, migration_view};
use crate::ControlError;

/// Resolves a migration id or uuid, with the seed's 404 text.
pub(crate) fn find_migration(os: &OrgState, key: &str) -> Result<String, ControlError> {
    resolve(&os.migrations, key).ok_or_else(|| ControlError::MigrationNotFound(key.to_string()))
}

/// Whether a migration that routes traffic may change its strategy type from `from` to `to`.
/// Decision: the type is fixed while traffic flows, except `shadow_traffic` → `canary` (the
/// ramp that follows a shadow phase, starting at no more than one `/traffic` step of reads)
/// and `canary` → `shadow_traffic` (all reads back to old); both dual-write every write, so
/// the switch loses nothing and the copy goes on.
pub(crate) fn live_switch(from: &Strategy, to: &Strategy) -> Result<bool, ControlError> {
    use crate::lifecycle::MAX_TRAFFIC_STEP;
    match (from, to) {
        (
            Strategy::ShadowTraffic {},
            Strategy::Canary {
                read_percentage, ..
            },
        ) => {
            if *read_percentage > MAX_TRAFFIC_STEP + 1e-9 {
                return Err(ControlError::bad(format!(
                    "Cannot change read_percentage by more than 0.25 per update (current 0.00, requested {read_percentage:.2})"
                )));
            }
            Ok(true)
        }
        (Strategy::Canary { .. }, Strategy::ShadowTraffic {}) => Ok(true),
        _ => Ok(false),
    }
}

/// Applies a status action, mapping an illegal transition to the seed's 409.
pub(crate) fn step(m: &mut Migration, action: Action) -> Result<(), ControlError> {
    m.status = transition(m.status, action).map_err(|e| ControlError::Migration(e.to_string()))?;
    m.updated_at = Utc::now();
    Ok(())
}

impl Control {
    /// `POST /migrations`: `{id, description?, strategy?, data?, failure_handling?, tests?, guard?}`.
    pub async fn create_migration(
        &self,
        org_id: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "migration")?;
        let id = b.req_str("id")?;
        check_id("migration", &id)?;
        let description = b.opt_str("description")?;
        check_description(&description)?;
        let strategy = Strategy::parse(b.take("strategy").as_ref())?;
        let data = DataRule::parse(b.take("data").as_ref())?;
        let failure_handling = FailureHandling::parse(b.take("failure_handling").as_ref())?;
        let guard = Guard::parse(b.take("guard").as_ref())?;
        let tests = match b.take("tests") {
            None => json!([]),
            Some(t @ Value::Array(_)) => t,
            Some(_) => return Err(ControlError::bad("tests must be an array")),
        };
        b.ignore(&["uuid", "status"]);
        b.finish()?;
        let mut inner = self.lock().await;
        if org(&inner.state, org_id).migrations.contains_key(&id) {
            return Err(ControlError::Conflict(format!(
                "Migration '{id}' already exists"
            )));
        }
        let now = Utc::now();
        let m = Migration {
            id: id.clone(),
            uuid: Uuid::new_v4(),
            description,
            status: Status::Pending,
            status_reason: None,
            strategy,
            data,
            failure_handling,
            guard,
            tests,
            apis: vec![],
            interlays: vec![],
            progress: Progress {
                phase: "idle".into(),
                ..Default::default()
            },
            last_test: None,
            started_at: None,
            completed_at: None,
            reverse_copy: None,
            created_at: now,
            updated_at: now,
        };
        let out = json!({"id": m.id, "uuid": m.uuid, "status": m.status});
        let mut next = inner.state.clone();
        org_mut(&mut next, org_id).migrations.insert(id, m);
        self.commit(&mut inner, next).await?;
        Ok(out)
    }

    /// `GET /migrations`: list views, or full objects when `verbose`. `status` filters.
    pub async fn list_migrations(
        &self,
        org_id: &str,
        verbose: bool,
        status: Option<Status>,
    ) -> Vec<Value> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        os.migrations
            .values()
            .filter(|m| status.is_none_or(|s| m.status == s))
            .map(|m| {
                if verbose {
                    migration_view(org_id, &os, m, &inner, true)
                } else {
                    migration_list_view(m)
                }
            })
            .collect()
    }

    /// `GET /migrations/{m}`.
    pub async fn get_migration(
        &self,
        org_id: &str,
        key: &str,
        verbose: bool,
    ) -> Result<Value, ControlError> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        let id = find_migration(&os, key)?;
        Ok(migration_view(
            org_id,
            &os,
            &os.migrations[&id],
            &inner,
            verbose,
        ))
    }

    /// `PATCH /migrations/{m}`: any of description, strategy, data, failure_handling, guard.
    /// While the migration routes traffic, the strategy type and the data rule are fixed.
    pub async fn patch_migration(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "migration")?;
        b.ignore(&["id", "uuid", "status"]);
        let description = b.opt_str("description")?;
        check_description(&description)?;
        let strategy = match b.take("strategy") {
            Some(v) => Some(Strategy::parse(Some(&v))?),
            None => None,
        };
        let data = if b.has("data") {
            Some(DataRule::parse(b.take("data").as_ref())?)
        } else {
            None
        };
        let fh = if b.has("failure_handling") {
            Some(FailureHandling::parse(b.take("failure_handling").as_ref())?)
        } else {
            None
        };
        let guard = if b.has("guard") {
            Some(Guard::parse(b.take("guard").as_ref())?)
        } else {
            None
        };
        b.finish()?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let Some(m) = os.migrations.get_mut(&id) else {
            return Err(ControlError::MigrationNotFound(key.into()));
        };
        let live = m.status.routes_traffic() || m.status == Status::RollingBack;
        if let Some(s) = strategy {
            if live && s.type_name() != m.strategy.type_name() && !live_switch(&m.strategy, &s)? {
                return Err(ControlError::Migration(format!(
                    "Cannot change strategy type of migration in status: {}",
                    m.status.pascal()
                )));
            }
            m.strategy = s;
        }
        if let Some(d) = data {
            if live && d != m.data {
                return Err(ControlError::Migration(format!(
                    "Cannot change data rule of migration in status: {}",
                    m.status.pascal()
                )));
            }
            m.data = d;
        }
        if let Some(f) = fh {
            m.failure_handling = f;
        }
        if let Some(g) = guard {
            m.guard = g;
        }
        if description.is_some() {
            m.description = description;
        }
        m.updated_at = Utc::now();
        self.commit(&mut inner, next).await?;
        let os = org(&inner.state, org_id);
        Ok(migration_view(
            org_id,
            &os,
            &os.migrations[&id],
            &inner,
            false,
        ))
    }

    /// `DELETE /migrations/{m}`: 409 while it routes traffic, rolls back or copies data back,
    /// unless `force` (which stops a reverse copy where it is);
    /// its members go back to direct routing.
    pub async fn delete_migration(
        &self,
        org_id: &str,
        key: &str,
        force: bool,
    ) -> Result<(), ControlError> {
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = find_migration(os, key)?;
        let st = os.migrations[&id].status;
        let reversing = os.migrations[&id].reversing();
        if !force && (st.routes_traffic() || st == Status::RollingBack || reversing) {
            return Err(ControlError::Migration(format!(
                "Cannot delete migration in status: {}",
                st.pascal()
            )));
        }
        os.migrations.remove(&id);
        self.commit(&mut inner, next).await?;
        self.stop_copies(&mut inner, org_id, &id, None);
        self.stop_reverse(&mut inner, org_id, &id, None);
        crate::status_metrics::forget(&crate::model::dp_key(org_id, &id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Strategy {
        Strategy::parse(Some(&v)).unwrap()
    }

    #[test]
    fn live_strategy_switches() {
        let shadow = parse(json!({"type": "shadow_traffic"}));
        let canary = |p: f64| parse(json!({"type": "canary", "read_percentage": p}));
        let big_bang = parse(json!({"type": "big_bang"}));
        assert!(live_switch(&shadow, &canary(0.05)).unwrap());
        assert!(live_switch(&shadow, &canary(0.25)).unwrap());
        assert!(live_switch(&shadow, &canary(0.3)).is_err());
        assert!(live_switch(&canary(0.5), &shadow).unwrap());
        assert!(!live_switch(&shadow, &big_bang).unwrap());
        assert!(!live_switch(&big_bang, &canary(0.0)).unwrap());
    }
}
