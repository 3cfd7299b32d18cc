//! Rollback with `overwrite_on_reverse` as the control plane supervises it, against a data
//! plane whose copies are driven by the test: the reverse copy (new → old, replace) and its
//! route (reads old, writes both, new authoritative), progress, `done` ending the rollback,
//! a failed copy failing the migration, rollback after completion and per interlay, a forced
//! rollback cancelling it, a restart starting it over, and the instant rollback without it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use godwit_control::dataplane::BoxFuture;
use godwit_control::model::Progress;
use godwit_control::rules::Replace;
use godwit_control::{
    BootstrapEndpoint, BootstrapInterlay, Control, ControlConfig, CopySpec, DataPlane,
    EndpointProbe, InterlayListen,
};
use godwit_router::{MigrationRoute, Policy, RoutingTable, Rule, Writes};
use serde_json::{json, Value};
use tokio::sync::watch;

const REVERSE: &str = "m#reverse:cache";

#[derive(Default)]
struct Copies {
    tables: Mutex<Vec<RoutingTable>>,
    started: Mutex<Vec<(CopySpec, watch::Sender<Progress>)>>,
    events: Mutex<Vec<String>>,
}

impl DataPlane for Copies {
    fn publish(&self, table: RoutingTable) {
        self.tables.lock().unwrap().push(table);
    }
    fn upsert_endpoint(&self, _id: &str, _url: &str, _cluster: bool) -> Result<(), String> {
        Ok(())
    }
    fn remove_endpoint(&self, _id: &str) {}
    fn start_interlay(&self, spec: InterlayListen) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move { Ok(spec.listen) })
    }
    fn stop_interlay(&self, _id: &str) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn probe(&self, _url: &str) -> BoxFuture<'_, Result<EndpointProbe, String>> {
        Box::pin(async {
            Ok(EndpointProbe {
                version: "7.2.4".into(),
                ping_us: 1,
                cluster_state: None,
            })
        })
    }
    fn start_copy(&self, spec: CopySpec) -> Result<Option<watch::Receiver<Progress>>, String> {
        let (tx, rx) = watch::channel(Progress::default());
        self.started.lock().unwrap().push((spec, tx));
        Ok(Some(rx))
    }
    fn stop_copy(&self, migration: &str, member: Option<&str>) {
        self.events
            .lock()
            .unwrap()
            .push(format!("stop {migration} {member:?}"));
    }
}

impl Copies {
    /// Sends progress to the last copy started under data-plane id `id`.
    fn send(&self, id: &str, p: Progress) {
        let started = self.started.lock().unwrap();
        let (_, tx) = started
            .iter()
            .rev()
            .find(|(s, _)| s.migration == id)
            .expect("copy started");
        tx.send_replace(p);
    }
    fn specs(&self, id: &str) -> Vec<CopySpec> {
        let started = self.started.lock().unwrap();
        started
            .iter()
            .filter(|(s, _)| s.migration == id)
            .map(|(s, _)| s.clone())
            .collect()
    }
    fn has(&self, event: &str) -> bool {
        self.events.lock().unwrap().iter().any(|e| e == event)
    }
    fn route(&self) -> Option<MigrationRoute> {
        let t = self.tables.lock().unwrap().last().cloned().unwrap();
        t.interlay("cache").unwrap().migration.clone()
    }
    fn endpoint(&self) -> String {
        let t = self.tables.lock().unwrap().last().cloned().unwrap();
        t.interlay("cache").unwrap().endpoint.to_string()
    }
}

fn progress(phase: &str, copied: u64) -> Progress {
    Progress {
        phase: phase.into(),
        keys_copied: copied,
        keys_scanned: copied,
        ..Default::default()
    }
}

fn failed(error: &str) -> Progress {
    Progress {
        phase: "failed".into(),
        error: Some(error.into()),
        ..Default::default()
    }
}

async fn setup(dir: &std::path::Path, dp: Arc<Copies>) -> Arc<Control> {
    let mut cfg = ControlConfig::new(dir);
    for (id, port) in [("old", 1), ("new", 2)] {
        cfg.bootstrap_endpoints.push(BootstrapEndpoint {
            id: id.into(),
            url: format!("redis://127.0.0.1:{port}"),
            cluster: false,
        });
    }
    cfg.bootstrap_interlays.push(BootstrapInterlay {
        id: "cache".into(),
        endpoint: "old".into(),
        listen: "127.0.0.1:0".into(),
        password: None,
        max_clients: None,
    });
    Control::open(cfg, dp).await.unwrap()
}

/// Runs migration `m` (big_bang, scan) on interlay `cache`, old → new.
async fn running(c: &Control) {
    c.create_migration(
        "default",
        &json!({"id": "m", "strategy": {"type": "big_bang"}, "data": {"type": "scan", "replace": "replace"}}),
    )
    .await
    .unwrap();
    c.add_interlay("default", "m", "cache", &json!({"endpoint": "new"}))
        .await
        .unwrap();
    c.migrate("default", "m").await.unwrap();
}

async fn until<F: Fn(&Value) -> bool>(c: &Control, f: F) -> Value {
    for _ in 0..200 {
        let m = c.get_migration("default", "m", false).await.unwrap();
        if f(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "condition not reached: {}",
        c.get_migration("default", "m", false).await.unwrap()
    );
}

fn reverse_body() -> Value {
    json!({"overwrite_on_reverse": true, "reason": "new is wrong"})
}

#[tokio::test]
async fn rollback_without_the_flag_is_instant() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    running(&c).await;
    let r = c.rollback("default", "m", &json!({})).await.unwrap();
    assert_eq!(r["status"], "rolled_back", "{r}");
    assert!(r.get("reverse_copy").is_none(), "{r}");
    assert!(dp.specs(REVERSE).is_empty());
    assert!(dp.route().is_none());
    let m = c.get_migration("default", "m", false).await.unwrap();
    assert_eq!(m["interlays"][0]["state"], "rolled_back");
    assert!(m.get("reverse_copy").is_none());
}

#[tokio::test]
async fn reverse_copy_runs_until_done_then_the_rollback_ends() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    running(&c).await;
    let r = c.rollback("default", "m", &reverse_body()).await.unwrap();
    assert_eq!(r["status"], "rolling_back", "{r}");
    assert_eq!(r["reverse_copy"]["state"], "running", "{r}");
    assert_eq!(r["reverse_copy"]["interlays"]["cache"], "running", "{r}");
    assert!(r["warning"].is_null(), "{r}");
    assert!(dp.has("stop m None"), "the forward copy stops");

    // one copy from new back to old, replacing, from the first key
    let specs = dp.specs(REVERSE);
    assert_eq!(specs.len(), 1);
    let s = &specs[0];
    assert!(s.source_url.ends_with(":2") && s.target_url.ends_with(":1"));
    assert_eq!((s.member.as_str(), s.replace), ("cache", Replace::Replace));
    assert!(!s.snapshot && s.resume_cursor.is_none() && !s.pass_done && s.reverse);

    // reads old, writes both with new's reply, written keys reported to the reverse copy
    let route = dp.route().expect("a reverse-copy route");
    assert_eq!((&*route.id, &*route.target), (REVERSE, "new"));
    assert!(route.copying && !route.serve_new && !route.paused);
    assert!(matches!(
        route.rule,
        Rule::Canary {
            read_ppm: 0,
            writes: Writes::Dual(Policy::NewAuthoritative),
            ..
        }
    ));
    assert_eq!(dp.endpoint(), "old");

    dp.send(REVERSE, progress("scanning", 40));
    let m = until(&c, |m| m["reverse_copy"]["progress"]["keys_copied"] == 40).await;
    assert_eq!(m["status"], "rolling_back");
    assert_eq!(m["interlays"][0]["state"], "rolling_back");
    assert_eq!(m["reverse_copy"]["progress"]["phase"], "scanning");
    let s = c.status_view("default", "m").await.unwrap();
    assert_eq!(s["reverse_copy"]["progress"]["keys_copied"], 40, "{s}");
    // the reverse copy holds the interlay and the migration
    let err = c.delete_migration("default", "m", false).await.unwrap_err();
    assert!(err.to_string().contains("RollingBack"), "{err}");
    let err = c
        .rollback("default", "m", &reverse_body())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Cannot set RollingBack migration in status: RollingBack"),
        "{err}"
    );

    dp.send(REVERSE, progress("done", 50));
    let m = until(&c, |m| m["status"] == "rolled_back").await;
    assert_eq!(m["interlays"][0]["state"], "rolled_back");
    assert_eq!(m["reverse_copy"]["state"], "done");
    assert_eq!(m["reverse_copy"]["interlays"]["cache"], "done");
    assert_eq!(m["reverse_copy"]["progress"]["keys_copied"], 50);
    assert!(m["reverse_copy"]["finished_at"].is_string());
    assert_eq!(m["status_reason"], "new is wrong");
    assert!(dp.route().is_none(), "dual writes stop: old only");
    assert!(dp.has(&format!("stop {REVERSE} None")));
    // and the migration may run again
    c.migrate("default", "m").await.unwrap();
}

#[tokio::test]
async fn a_failed_reverse_copy_fails_the_migration_on_old() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    running(&c).await;
    c.rollback("default", "m", &reverse_body()).await.unwrap();
    dp.send(REVERSE, progress("scanning", 3));
    dp.send(REVERSE, failed("source unreachable"));
    let m = until(&c, |m| m["status"] == "failed").await;
    let reason = m["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("reverse copy of interlay 'cache' failed: source unreachable"),
        "{m}"
    );
    assert_eq!(m["reverse_copy"]["state"], "failed");
    assert_eq!(m["interlays"][0]["state"], "rolled_back");
    assert!(dp.route().is_none(), "routing on old only");
    assert_eq!(dp.endpoint(), "old");
    assert!(dp.has(&format!("stop {REVERSE} None")));
    // members rolled back alone have taken writes since: nothing is copied back again
    let r = c.rollback("default", "m", &reverse_body()).await.unwrap();
    assert_eq!(r["status"], "rolled_back", "{r}");
    assert!(
        r["warning"]
            .as_str()
            .unwrap()
            .contains("no interlay member to copy back"),
        "{r}"
    );
    assert_eq!(dp.specs(REVERSE).len(), 1);
}

#[tokio::test]
async fn after_completion_per_interlay_the_interlay_is_repointed_then_copied_back() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    running(&c).await;
    c.complete("default", "m", &json!({"force": true}))
        .await
        .unwrap();
    assert_eq!(dp.endpoint(), "new");
    let r = c
        .rollback_interlay("default", "m", "cache", &reverse_body())
        .await
        .unwrap();
    assert_eq!(
        (r["status"].as_str(), r["interlay_id"].as_str()),
        (Some("rolling_back"), Some("cache")),
        "{r}"
    );
    assert_eq!(dp.endpoint(), "old", "re-pointed to the source at once");
    let route = dp.route().expect("a reverse-copy route");
    assert_eq!((&*route.id, &*route.target), (REVERSE, "new"));
    let s = &dp.specs(REVERSE)[0];
    assert!(s.source_url.ends_with(":2") && s.target_url.ends_with(":1"));
    dp.send(REVERSE, progress("done", 7));
    until(&c, |m| m["status"] == "rolled_back").await;
    assert!(dp.route().is_none());
    assert_eq!(dp.endpoint(), "old");
}

#[tokio::test]
async fn a_forced_rollback_without_the_flag_cancels_the_reverse_copy() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    running(&c).await;
    c.rollback("default", "m", &reverse_body()).await.unwrap();
    // forced with the flag: the copy starts over
    let r = c
        .rollback(
            "default",
            "m",
            &json!({"force": true, "overwrite_on_reverse": true}),
        )
        .await
        .unwrap();
    assert_eq!(r["status"], "rolling_back", "{r}");
    assert_eq!(dp.specs(REVERSE).len(), 2);
    // forced without it: cancelled, old only at once
    let r = c
        .rollback("default", "m", &json!({"force": true}))
        .await
        .unwrap();
    assert_eq!(r["status"], "rolled_back", "{r}");
    assert_eq!(r["reverse_copy"]["state"], "cancelled", "{r}");
    assert!(r["warning"].as_str().unwrap().contains("cancelled"), "{r}");
    assert!(dp.route().is_none());
    // a late progress report of the cancelled copy changes nothing
    dp.send(REVERSE, progress("done", 1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = c.get_migration("default", "m", false).await.unwrap();
    assert_eq!(m["reverse_copy"]["state"], "cancelled");
}

#[tokio::test]
async fn a_restart_starts_the_reverse_copy_over() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    running(&c).await;
    c.rollback("default", "m", &reverse_body()).await.unwrap();
    dp.send(REVERSE, progress("scanning", 9));
    until(&c, |m| m["reverse_copy"]["progress"]["keys_copied"] == 9).await;
    drop(c);
    let dp2 = Arc::new(Copies::default());
    let c2 = setup(dir.path(), dp2.clone()).await;
    assert!(dp2.specs("m").is_empty(), "no forward copy");
    let specs = dp2.specs(REVERSE);
    assert_eq!(specs.len(), 1);
    assert!(specs[0].resume_cursor.is_none() && !specs[0].pass_done);
    assert!(dp2.route().is_some_and(|r| &*r.id == REVERSE));
    dp2.send(REVERSE, progress("done", 12));
    until(&c2, |m| m["status"] == "rolled_back").await;
    assert!(dp2.route().is_none());
}
