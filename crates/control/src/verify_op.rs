//! `POST /migrations/{m}/verify`: validates the request, then asks the data plane to compare
//! the source and the target of every member still migrating (or completed), and sums up.

use serde_json::{json, Value};

use crate::body::Body;
use crate::control::{org, Control};
use crate::dataplane::VerifyRequest;
use crate::model::MemberState;
use crate::ops_migrations::find_migration;
use crate::status::Status;
use crate::ControlError;

/// Default number of keys of a sampled verification.
pub const DEFAULT_SAMPLE: u64 = 1000;
/// Default number of rounds (first pass + re-checks).
pub const DEFAULT_ROUNDS: u64 = 3;

impl Control {
    /// `POST /migrations/{m}/verify` `{mode?: "full"|"sample", sample_size?, rounds?}`: compares
    /// old and new key by key per interlay member; differing keys are re-checked in later rounds
    /// so in-flight writes are not reported. 501 when the data plane has no verification engine.
    pub async fn verify(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "verify")?;
        let mode = b.opt_str("mode")?.unwrap_or_else(|| "full".into());
        let sampled = match mode.to_ascii_lowercase().as_str() {
            "full" => false,
            "sample" | "sampled" => true,
            _ => return Err(ControlError::bad("mode must be full or sample")),
        };
        let sample_size = b.opt_u64("sample_size", 10_000_000)?;
        let rounds = b.opt_u64("rounds", 10)?.unwrap_or(DEFAULT_ROUNDS).max(1);
        b.finish()?;
        let (id, members) = {
            let inner = self.lock().await;
            let os = org(&inner.state, org_id);
            let id = find_migration(&os, key)?;
            let m = &os.migrations[&id];
            if !matches!(
                m.status,
                Status::Running | Status::Paused | Status::Completed
            ) {
                return Err(ControlError::Migration(format!(
                    "Cannot verify migration in status: {}",
                    m.status.pascal()
                )));
            }
            if m.interlays.is_empty() {
                return Err(ControlError::bad(
                    "verify needs at least one interlay member",
                ));
            }
            let url = |e: &str| os.endpoints.get(e).map(|ep| ep.url.clone());
            let members: Vec<(String, String, String, VerifyRequest)> = m
                .interlays
                .iter()
                .filter(|x| x.state != MemberState::RolledBack)
                .filter_map(|x| {
                    Some((
                        x.interlay.clone(),
                        x.source.clone(),
                        x.target.clone(),
                        VerifyRequest {
                            source_url: url(&x.source)?,
                            target_url: url(&x.target)?,
                            sample: sampled.then(|| sample_size.unwrap_or(DEFAULT_SAMPLE)),
                            rounds: rounds as u32,
                        },
                    ))
                })
                .collect();
            (id, members)
        };
        let mut reports = Vec::new();
        let mut differing = 0u64;
        for (interlay, source, target, req) in members {
            let report = self
                .dataplane
                .verify(req)
                .await
                .map_err(|e| {
                    ControlError::DataPlane(format!("verify of interlay '{interlay}': {e}"))
                })?
                .ok_or_else(|| {
                    ControlError::Unavailable("verification engine not available".into())
                })?;
            differing += report.get("differing").and_then(Value::as_u64).unwrap_or(0);
            reports.push(
                json!({"interlay": interlay, "source": source, "target": target,
                                "report": report}),
            );
        }
        Ok(json!({
            "migration_id": id, "mode": if sampled { "sample" } else { "full" },
            "rounds": rounds, "consistent": differing == 0, "differing": differing,
            "interlays": reports,
        }))
    }
}
