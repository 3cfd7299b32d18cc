//! Driving a migration of an in-process godwit: start one (create, add the `main` interlay with
//! the `new` endpoint as its target, migrate), wait for a condition on it, and copy options
//! that settle fast.

use std::time::Duration;

use serde_json::{json, Value};

use crate::GodwitFixture;

/// The organization of `proxy.toml` resources.
pub const ORG: &str = "default";

/// Creates migration `body` (its `id` names it), adds interlay `main` → endpoint `new`, and
/// runs it.
pub async fn start_migration(fx: &GodwitFixture, body: Value) -> anyhow::Result<()> {
    let c = fx.app().control();
    let id = body["id"].as_str().unwrap_or_default().to_string();
    c.create_migration(ORG, &body).await?;
    c.add_interlay(ORG, &id, "main", &json!({"endpoint": "new"}))
        .await?;
    c.migrate(ORG, &id).await?;
    Ok(())
}

/// A canary migration `id` with a scan copy and dual writes under `policy`.
pub fn canary_dual_write(id: &str, policy: &str) -> Value {
    json!({"id": id, "data": {"type": "scan", "replace": "replace"},
           "strategy": {"type": "canary", "read_percentage": 0.0,
                        "write_mode": {"mode": "dual_write", "policy": policy}}})
}

/// Waits up to `secs` for `f` to hold on migration `id`; returns the migration.
pub async fn wait_migration(
    fx: &GodwitFixture,
    id: &str,
    secs: u64,
    f: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let c = fx.app().control();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let m = c.get_migration(ORG, id, false).await?;
        if f(&m) {
            return Ok(m);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out; migration: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to `secs` for migration `id`'s copy to be `done`.
pub async fn wait_copy_done(fx: &GodwitFixture, id: &str, secs: u64) -> anyhow::Result<Value> {
    wait_migration(fx, id, secs, |m| m["progress"]["phase"] == "done").await
}

/// Copy options that publish progress every 50 ms and settle after 100 ms (small tests).
pub fn quick_copy() -> godwit_mover::CopyOptions {
    godwit_mover::CopyOptions {
        settle: Duration::from_millis(100),
        tick: Duration::from_millis(50),
        ..Default::default()
    }
}
