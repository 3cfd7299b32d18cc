//! Data movement as the control plane supervises it, against a data plane whose copies are
//! driven by the test: starting, progress and checkpoints, `done` switching big_bang to new,
//! pause/resume, failure handling (rollback_all, allow_partial, retry_then_all), resume after a
//! restart, and verify.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use godwit_control::dataplane::BoxFuture;
use godwit_control::model::Progress;
use godwit_control::{
    BootstrapEndpoint, BootstrapInterlay, Control, ControlConfig, CopySpec, DataPlane,
    EndpointProbe, InterlayListen, Status, VerifyRequest,
};
use godwit_router::RoutingTable;
use serde_json::{json, Value};
use tokio::sync::watch;

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
        self.events
            .lock()
            .unwrap()
            .push(format!("start {}", spec.member));
        self.started.lock().unwrap().push((spec, tx));
        Ok(Some(rx))
    }
    fn pause_copy(&self, migration: &str, paused: bool) {
        self.events
            .lock()
            .unwrap()
            .push(format!("pause {migration} {paused}"));
    }
    fn stop_copy(&self, migration: &str, member: Option<&str>) {
        self.events
            .lock()
            .unwrap()
            .push(format!("stop {migration} {member:?}"));
    }
    fn verify(&self, req: VerifyRequest) -> BoxFuture<'_, Result<Option<Value>, String>> {
        Box::pin(async move { Ok(Some(json!({"differing": 0, "rounds": req.rounds}))) })
    }
}

impl Copies {
    fn send(&self, i: usize, p: Progress) {
        self.started.lock().unwrap()[i].1.send_replace(p);
    }
    fn count(&self) -> usize {
        self.started.lock().unwrap().len()
    }
    fn has(&self, event: &str) -> bool {
        self.events.lock().unwrap().iter().any(|e| e == event)
    }
    fn serve_new(&self) -> bool {
        let t = self.tables.lock().unwrap().last().cloned().unwrap();
        t.interlay("cache")
            .unwrap()
            .migration
            .as_ref()
            .is_some_and(|m| m.serve_new)
    }
}

fn progress(phase: &str, copied: u64, cursor: Option<&str>) -> Progress {
    Progress {
        phase: phase.into(),
        keys_copied: copied,
        cursor: cursor.map(str::to_string),
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

async fn migration(c: &Control, body: Value) {
    c.create_migration("default", &body).await.unwrap();
    let id = body["id"].as_str().unwrap();
    c.add_interlay("default", id, "cache", &json!({"endpoint": "new"}))
        .await
        .unwrap();
    c.migrate("default", id).await.unwrap();
}

async fn until<F: Fn(&Value) -> bool>(c: &Control, id: &str, f: F) -> Value {
    for _ in 0..200 {
        let m = c.get_migration("default", id, false).await.unwrap();
        if f(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "condition not reached: {}",
        c.get_migration("default", id, false).await.unwrap()
    );
}

#[tokio::test]
async fn big_bang_switches_when_the_copy_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    migration(
        &c,
        json!({"id": "m", "strategy": {"type": "big_bang", "durability": true},
                          "data": {"type": "scan", "replace": "replace"}}),
    )
    .await;
    assert_eq!(dp.count(), 1);
    let spec = dp.started.lock().unwrap()[0].0.clone();
    assert_eq!(
        (spec.member.as_str(), spec.snapshot, spec.resume_cursor),
        ("cache", false, None)
    );
    assert!(spec.target_url.ends_with(":2"));
    let err = c.complete("default", "m", &json!({})).await.unwrap_err();
    assert!(err.to_string().contains("not finished"), "{err}");
    dp.send(0, progress("scanning", 10, Some("42")));
    let m = until(&c, "m", |m| m["progress"]["keys_copied"] == 10).await;
    assert_eq!(m["progress"]["phase"], "scanning");
    assert_eq!(m["progress"]["cursor"], "42");
    assert!(!dp.serve_new());
    c.pause("default", "m", &json!({})).await.unwrap();
    c.resume("default", "m", &json!({})).await.unwrap();
    assert!(dp.has("pause m true") && dp.has("pause m false"));
    dp.send(0, progress("done", 20, None));
    until(&c, "m", |m| m["progress"]["phase"] == "done").await;
    assert!(dp.serve_new(), "big_bang reads new once the copy is done");
    assert!(dp.has("stop m None"), "no copy from old after the cutover");
    let v = c
        .verify("default", "m", &json!({"rounds": 2}))
        .await
        .unwrap();
    assert_eq!(v["consistent"], true);
    assert_eq!(v["interlays"][0]["report"]["rounds"], 2);
    c.complete("default", "m", &json!({})).await.unwrap();
}

#[tokio::test]
async fn failure_rolls_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    migration(&c, json!({"id": "m", "data": {"type": "scan"}})).await;
    dp.send(
        0,
        Progress {
            phase: "failed".into(),
            error: Some("target unreachable".into()),
            ..Default::default()
        },
    );
    let m = until(&c, "m", |m| m["status"] == "rolled_back").await;
    assert!(m["status_reason"]
        .as_str()
        .unwrap()
        .contains("target unreachable"));
    assert!(dp.has("stop m None"));
    let t = dp.tables.lock().unwrap().last().cloned().unwrap();
    assert!(
        t.interlay("cache").unwrap().migration.is_none(),
        "routing back to old"
    );
}

#[tokio::test]
async fn allow_partial_fails_the_only_member() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    migration(
        &c,
        json!({"id": "m", "data": {"type": "scan"}, "failure_handling": "allow_partial"}),
    )
    .await;
    dp.send(
        0,
        Progress {
            phase: "failed".into(),
            error: Some("boom".into()),
            ..Default::default()
        },
    );
    until(&c, "m", |m| m["status"] == "failed").await;
    assert!(dp.has("stop m Some(\"cache\")"));
}

#[tokio::test(start_paused = true)]
async fn retry_then_all_restarts_from_the_checkpoint_then_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    migration(
        &c,
        json!({"id": "m", "data": {"type": "scan"},
                          "failure_handling": {"type": "retry_then_all", "retry_count": 1}}),
    )
    .await;
    dp.send(0, progress("scanning", 5, Some("7")));
    until(&c, "m", |m| m["progress"]["cursor"] == "7").await;
    dp.send(
        0,
        Progress {
            phase: "failed".into(),
            error: Some("timeout".into()),
            ..Default::default()
        },
    );
    until(&c, "m", |m| {
        m["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("retrying"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..100 {
        if dp.count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dp.count(), 2, "retried");
    assert_eq!(
        dp.started.lock().unwrap()[1].0.resume_cursor.as_deref(),
        Some("7")
    );
    assert_eq!(
        c.migration_status("default", "m").await.unwrap(),
        Status::Running
    );
    dp.send(
        1,
        Progress {
            phase: "failed".into(),
            error: Some("timeout".into()),
            ..Default::default()
        },
    );
    until(&c, "m", |m| m["status"] == "rolled_back").await;
}

#[tokio::test]
async fn restart_resumes_the_copy_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Copies::default());
    let c = setup(dir.path(), dp.clone()).await;
    migration(
        &c,
        json!({"id": "m", "data": {"type": "snapshot", "replace": "none"}}),
    )
    .await;
    dp.send(0, progress("scanning", 5, Some("99")));
    until(&c, "m", |m| m["progress"]["cursor"] == "99").await;
    drop(c);
    let dp2 = Arc::new(Copies::default());
    let c2 = setup(dir.path(), dp2.clone()).await;
    assert_eq!(dp2.count(), 1);
    let spec = dp2.started.lock().unwrap()[0].0.clone();
    assert_eq!(
        (spec.resume_cursor.as_deref(), spec.snapshot),
        (Some("99"), true)
    );
    c2.rollback("default", "m", &json!({})).await.unwrap();
    assert!(dp2.has("stop m None"));
}
