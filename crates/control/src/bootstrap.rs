//! Static resources from `proxy.toml`: endpoints and interlays owned by the `default`
//! organization. They are re-applied at every start (created, or updated to match the file),
//! keeping their uuid and creation time; the API may change them at run time, and the file wins
//! again at the next start. Config interlays are always started.

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::body::check_id;
use crate::control::{org_mut, ControlConfig};
use crate::endpoint_url::check_url;
use crate::model::{Endpoint, Interlay, State, DEFAULT_ORG};
use crate::ControlError;

/// Applies `cfg`'s bootstrap resources to `state`.
pub(crate) fn apply(state: &mut State, cfg: &ControlConfig) -> Result<(), ControlError> {
    let now = Utc::now();
    let os = org_mut(state, DEFAULT_ORG);
    for b in &cfg.bootstrap_endpoints {
        check_id("endpoint", &b.id)?;
        check_url(&b.url).map_err(|e| ControlError::bad(format!("endpoint '{}': {e}", b.id)))?;
        let ep = os
            .endpoints
            .entry(b.id.clone())
            .or_insert_with(|| Endpoint {
                id: b.id.clone(),
                uuid: Uuid::new_v4(),
                url: b.url.clone(),
                cluster: b.cluster,
                max_connections: 32,
                description: None,
                from_config: true,
                created_at: now,
                updated_at: now,
            });
        if ep.url != b.url || ep.cluster != b.cluster {
            ep.url = b.url.clone();
            ep.cluster = b.cluster;
            ep.updated_at = now;
        }
        ep.from_config = true;
    }
    for b in &cfg.bootstrap_interlays {
        check_id("interlay", &b.id)?;
        if !os.endpoints.contains_key(&b.endpoint) {
            return Err(ControlError::bad(format!(
                "interlay '{}' names unknown endpoint '{}'",
                b.id, b.endpoint
            )));
        }
        crate::ops_interlays::check_listen(&b.listen)?;
        let il = os
            .interlays
            .entry(b.id.clone())
            .or_insert_with(|| Interlay {
                id: b.id.clone(),
                uuid: Uuid::new_v4(),
                endpoint: b.endpoint.clone(),
                listen: b.listen.clone(),
                password: b.password.clone(),
                description: None,
                settings: Value::Object(Default::default()),
                running: true,
                from_config: true,
                created_at: now,
                updated_at: now,
            });
        // A completed migration may have re-pointed the interlay; the file names the original
        // endpoint, so keep the stored one in that case.
        let repointed = os.migrations.values().any(|m| {
            m.interlays
                .iter()
                .any(|x| x.interlay == b.id && x.source == b.endpoint && il.endpoint == x.target)
        });
        if !repointed {
            il.endpoint = b.endpoint.clone();
        }
        il.listen = b.listen.clone();
        il.password = b.password.clone();
        if let Value::Object(m) = &mut il.settings {
            match b.max_clients {
                Some(n) => m.insert("max_clients".into(), Value::from(n as u64)),
                None => m.remove("max_clients"),
            };
        }
        il.running = true;
        il.from_config = true;
    }
    Ok(())
}
