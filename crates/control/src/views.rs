//! JSON views of migrations: the seed's list view, the full view, and the verbose view that
//! expands `apis` and `interlays` into full objects.

use serde_json::{json, Value};

use crate::control::Inner;
use crate::model::{Migration, OrgState};
use crate::ops_interlays::interlay_view;

/// The seed's list item.
pub fn migration_list_view(m: &Migration) -> Value {
    json!({
        "id": m.id, "uuid": m.uuid, "description": m.description, "status": m.status,
        "status_label": m.status.pascal(), "strategy": m.strategy,
        "created_at": m.created_at, "updated_at": m.updated_at,
    })
}

/// The full object; `verbose` expands members into their full schemas.
pub(crate) fn migration_view(
    org_id: &str,
    os: &OrgState,
    m: &Migration,
    inner: &Inner,
    verbose: bool,
) -> Value {
    let apis: Vec<Value> = if verbose {
        m.apis
            .iter()
            .map(|a| {
                let api = os.apis.get(&a.api);
                let mut v = api.map(|x| x.body.clone()).unwrap_or_else(|| json!({}));
                v["id"] = json!(a.api);
                v["uuid"] = json!(api.map(|x| x.uuid));
                v["migration"] = json!({
                    "migration_id": m.id, "uuid": m.uuid, "bindings": a.bindings, "state": a.state,
                    "migration_strategy": m.strategy,
                });
                v
            })
            .collect()
    } else {
        m.apis.iter().map(|a| json!(a.api)).collect()
    };
    let interlays: Vec<Value> = m
        .interlays
        .iter()
        .map(|x| {
            let member = json!({
                "interlay_id": x.interlay, "id": x.binding_id, "endpoint": x.target,
                "source_endpoint": x.source, "state": x.state, "description": x.description,
                "migration_strategy": x.strategy, "migration_data": x.data,
                "migration_rules": x.rules, "testing_validation": x.testing_validation,
            });
            match (verbose, os.interlays.get(&x.interlay)) {
                (true, Some(il)) => {
                    let mut v = interlay_view(org_id, os, il, inner);
                    v["migration"] = member;
                    v
                }
                _ => member,
            }
        })
        .collect();
    let api_uuids: Vec<Value> = m
        .apis
        .iter()
        .filter_map(|a| os.apis.get(&a.api).map(|x| json!(x.uuid)))
        .collect();
    let mut out = json!({
        "id": m.id, "uuid": m.uuid, "description": m.description, "status": m.status,
        "status_label": m.status.pascal(), "status_reason": m.status_reason,
        "strategy": m.strategy, "data": m.data, "failure_handling": m.failure_handling,
        "guard": m.guard, "tests": m.tests, "apis": apis, "api_uuids": api_uuids,
        "interlays": interlays, "progress": m.progress, "last_test": m.last_test,
        "started_at": m.started_at, "completed_at": m.completed_at,
        "created_at": m.created_at, "updated_at": m.updated_at,
    });
    if let Some(rc) = &m.reverse_copy {
        out["reverse_copy"] = json!(rc);
    }
    out
}
