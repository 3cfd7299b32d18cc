//! Routes that look at the outside world: `test` (really probes both sides of every member),
//! `status` (health, lag, readiness) and `refresh` (re-apply routing); `verify` is in
//! `verify_op`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::control::{org, org_mut, Control};
use crate::model::MemberState;
use crate::ops_migrations::{find_migration, step};
use crate::rules::DataRule;
use crate::status::{Action, Status};
use crate::strategy::Strategy;
use crate::views::migration_view;
use crate::ControlError;

/// Strategy checks that need the clock or this instance: (errors, warnings).
fn strategy_notes(s: &Strategy, instance: &str) -> (Vec<String>, Vec<String>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    match s {
        Strategy::TimeWindow { window_end, .. } if *window_end <= chrono::Utc::now() => {
            errors.push("the time window has already ended".into())
        }
        Strategy::StranglerFig { features, .. } if !features.values().any(|v| *v) => {
            warnings.push("no feature is served by the new side yet".into())
        }
        Strategy::Geographic { regions, .. } if !regions.values().any(|v| *v) => {
            warnings.push("no region is served by the new side yet".into())
        }
        Strategy::FeatureFlag { flags, .. } if !flags.values().any(|v| *v) => {
            warnings.push("no flag enables the new database yet".into())
        }
        Strategy::RollingUpdate {
            migrated_instances, ..
        } if !migrated_instances.iter().any(|i| i == instance) => warnings.push(format!(
            "this instance ('{instance}') is not in migrated_instances"
        )),
        _ => {}
    }
    (errors, warnings)
}

fn major(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

impl Control {
    /// `POST /migrations/{m}/test`: PING + version of every member's source and target,
    /// template endpoints of APIs, version compatibility for the copy, member count.
    /// Status: → `testing` → `ready` (valid) or `failed`.
    pub async fn test_migration(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        // (member label, endpoint id, url) to probe, gathered under the lock.
        let mut pairs: Vec<(String, String, String, String, String)> = Vec::new();
        let mut api_eps: Vec<(String, String)> = Vec::new();
        let strategy_type: &str;
        let (id, apis_tested, interlays_tested, copies, notes, declared) = {
            let mut inner = self.lock().await;
            let mut next = inner.state.clone();
            let os = org_mut(&mut next, org_id);
            let id = find_migration(os, key)?;
            let m = &os.migrations[&id];
            if m.member_count() == 0 {
                crate::status::transition(m.status, Action::StartTest)
                    .map_err(|e| ControlError::Migration(e.to_string()))?;
                return Ok(
                    json!({"valid": false, "apis_tested": 0, "interlays_tested": 0,
                                 "errors": ["the migration has no APIs or interlays"]}),
                );
            }
            for x in &m.interlays {
                let url = |e: &str| {
                    os.endpoints
                        .get(e)
                        .map(|ep| ep.url.clone())
                        .unwrap_or_default()
                };
                pairs.push((
                    x.interlay.clone(),
                    x.source.clone(),
                    url(&x.source),
                    x.target.clone(),
                    url(&x.target),
                ));
            }
            for a in &m.apis {
                for b in &a.bindings {
                    if let Some(t) = os.templates.get(&b.template) {
                        let url = os
                            .endpoints
                            .get(&t.endpoint)
                            .map(|e| e.url.clone())
                            .unwrap_or_default();
                        api_eps.push((t.endpoint.clone(), url));
                    }
                }
            }
            let counts = (m.apis.len(), m.interlays.len(), m.data != DataRule::None);
            // which endpoints are declared Redis Clusters (checked against what answers)
            let declared: BTreeMap<String, bool> = os
                .endpoints
                .iter()
                .map(|(k, e)| (k.clone(), e.cluster))
                .collect();
            let notes = strategy_notes(&m.strategy, &self.cfg.instance_id);
            strategy_type = m.strategy.type_name();
            let Some(m) = os.migrations.get_mut(&id) else {
                return Err(ControlError::MigrationNotFound(key.into()));
            };
            step(m, Action::StartTest)?;
            self.commit(&mut inner, next).await?;
            (id, counts.0, counts.1, counts.2, notes, declared)
        };
        let (mut errors, mut warnings) = notes;
        let mut seen: BTreeMap<String, Value> = BTreeMap::new();
        let mut versions: BTreeMap<String, String> = BTreeMap::new();
        let all = pairs
            .iter()
            .flat_map(|(_, s, su, t, tu)| [(s.clone(), su.clone()), (t.clone(), tu.clone())])
            .chain(api_eps.iter().cloned());
        for (ep, url) in all {
            if seen.contains_key(&ep) {
                continue;
            }
            if url.is_empty() {
                errors.push(format!("endpoint '{ep}' does not exist"));
                seen.insert(ep, json!({"reachable": false}));
                continue;
            }
            match self.probe(&url).await {
                Ok(p) => {
                    let is_declared = declared.get(&ep).copied().unwrap_or(false);
                    match (&p.cluster_state, is_declared) {
                        (Some(_), false) => errors.push(format!(
                            "endpoint '{ep}' is a Redis Cluster node: declare it with \"cluster\": true"
                        )),
                        (None, true) => errors.push(format!(
                            "endpoint '{ep}' is declared \"cluster\": true but the server has cluster support disabled"
                        )),
                        (Some(s), true) if s != "ok" => {
                            errors.push(format!("endpoint '{ep}': cluster_state is {s}"))
                        }
                        _ => {}
                    }
                    versions.insert(ep.clone(), p.version.clone());
                    seen.insert(
                        ep,
                        json!({"reachable": true, "version": p.version,
                                           "ping_ms": p.ping_us as f64 / 1000.0,
                                           "cluster_state": p.cluster_state}),
                    );
                }
                Err(e) => {
                    errors.push(format!("endpoint '{ep}' is unreachable: {e}"));
                    seen.insert(ep, json!({"reachable": false, "error": e}));
                }
            }
        }
        for (il, s, _, t, _) in &pairs {
            if let (Some(sv), Some(tv)) = (versions.get(s), versions.get(t)) {
                if major(tv) < major(sv) {
                    let msg = format!(
                        "interlay '{il}': target '{t}' runs Redis {tv}, older than source '{s}' ({sv}); DUMP payloads may not restore"
                    );
                    if copies {
                        errors.push(msg)
                    } else {
                        warnings.push(msg)
                    }
                }
            }
        }
        let valid = errors.is_empty();
        let result = json!({"valid": valid, "apis_tested": apis_tested, "interlays_tested": interlays_tested,
                            "errors": errors, "warnings": warnings, "endpoints": seen,
                            "strategy": {"type": strategy_type, "supported": true}});
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        if let Some(m) = org_mut(&mut next, org_id).migrations.get_mut(&id) {
            if m.status == Status::Testing {
                step(
                    m,
                    if valid {
                        Action::TestPassed
                    } else {
                        Action::TestFailed
                    },
                )?;
                m.status_reason = (!valid).then(|| "test failed".to_string());
            }
            m.last_test = Some(result.clone());
            self.commit(&mut inner, next).await?;
        }
        Ok(result)
    }

    /// `GET /migrations/{m}/status`: phase, progress, lag, health of source and target,
    /// readiness for cutover.
    pub async fn status_view(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        let (m, src, dst) = {
            let inner = self.lock().await;
            let os = org(&inner.state, org_id);
            let id = find_migration(&os, key)?;
            let m = os.migrations[&id].clone();
            let ep = |id: &str| {
                os.endpoints
                    .get(id)
                    .map(|e| (id.to_string(), e.url.clone()))
            };
            let first = m
                .interlays
                .iter()
                .find(|x| x.state != MemberState::RolledBack)
                .or(m.interlays.first());
            (
                m.clone(),
                first.and_then(|x| ep(&x.source)),
                first.and_then(|x| ep(&x.target)),
            )
        };
        let mut health = Vec::new();
        for side in [src, dst] {
            health.push(match side {
                None => json!({"endpoint": null, "health": "unknown"}),
                Some((id, url)) => match self.probe(&url).await {
                    Ok(p) => json!({"endpoint": id, "health": "healthy", "version": p.version, "ping_ms": p.ping_us as f64 / 1000.0}),
                    Err(e) => json!({"endpoint": id, "health": "unreachable", "error": e}),
                },
            });
        }
        let ready = m.status == Status::Running && m.progress.phase == "done";
        let traffic = self
            .dataplane
            .traffic_report(&crate::model::dp_key(org_id, &m.id));
        let mismatches = traffic
            .as_ref()
            .and_then(|t| t.get("shadow_samples").cloned())
            .unwrap_or_else(|| json!([]));
        let mut out = json!({
            "migration_id": m.id, "status": m.status, "status_label": m.status.pascal(),
            "phase": m.progress.phase, "progress": m.progress,
            "replication_lag_ms": m.progress.lag_ms, "dirty_backlog": m.progress.dirty_backlog,
            "source": health[0], "target": health[1], "ready_for_cutover": ready,
            "shadow_mismatches": mismatches,
            "traffic": traffic.unwrap_or_else(|| json!({})),
            "api_traffic": self.api_traffic_report(&crate::model::dp_key(org_id, &m.id)).unwrap_or_else(|| json!({})),
        });
        if let Some(rc) = &m.reverse_copy {
            // what the dual writes of each member copying back saw (failures, repairs)
            let key = crate::model::dp_key(org_id, &m.id);
            let traffic: serde_json::Map<String, Value> = rc
                .interlays
                .keys()
                .filter_map(|il| {
                    let id = crate::compile::reverse_key(&key, il);
                    Some((il.clone(), self.dataplane.traffic_report(&id)?))
                })
                .collect();
            out["reverse_copy"] = json!(rc);
            out["reverse_copy"]["traffic"] = Value::Object(traffic);
        }
        if let Some(fleet) = self.fleet_status() {
            out["fleet"] = fleet;
        }
        Ok(out)
    }

    /// `POST /migrations/{m}/refresh`: republishes the routing table and returns the migration.
    pub async fn refresh(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        let mut inner = self.lock().await;
        let id = find_migration(&org(&inner.state, org_id), key)?;
        self.publish(&mut inner);
        let os = org(&inner.state, org_id);
        Ok(migration_view(
            org_id,
            &os,
            &os.migrations[&id],
            &inner,
            false,
        ))
    }
}
