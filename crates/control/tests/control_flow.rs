//! Control-plane flows against a recording data plane: routing tables published for each
//! change, the seed's errors, and restart from the file store.

use std::sync::{Arc, Mutex};

use godwit_control::dataplane::BoxFuture;
use godwit_control::{
    BootstrapEndpoint, BootstrapInterlay, Control, ControlConfig, ControlError, DataPlane,
    EndpointProbe, InterlayListen, Status,
};
use godwit_router::RoutingTable;
use serde_json::json;

#[derive(Default)]
struct Recorder {
    tables: Mutex<Vec<RoutingTable>>,
    started: Mutex<Vec<String>>,
}

impl DataPlane for Recorder {
    fn publish(&self, table: RoutingTable) {
        self.tables.lock().unwrap().push(table);
    }
    fn upsert_endpoint(&self, _id: &str, _url: &str, _cluster: bool) -> Result<(), String> {
        Ok(())
    }
    fn remove_endpoint(&self, _id: &str) {}
    fn start_interlay(&self, spec: InterlayListen) -> BoxFuture<'_, Result<String, String>> {
        self.started.lock().unwrap().push(spec.id.clone());
        Box::pin(async move { Ok(spec.listen) })
    }
    fn stop_interlay(&self, _id: &str) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn probe(&self, url: &str) -> BoxFuture<'_, Result<EndpointProbe, String>> {
        let down = url.contains("down");
        Box::pin(async move {
            if down {
                Err("connection refused".into())
            } else {
                Ok(EndpointProbe {
                    version: "7.2.4".into(),
                    ping_us: 120,
                    cluster_state: None,
                })
            }
        })
    }
}

impl Recorder {
    fn last(&self) -> RoutingTable {
        self.tables.lock().unwrap().last().cloned().unwrap()
    }
}

async fn setup(dir: &std::path::Path, dp: Arc<Recorder>) -> Arc<Control> {
    let mut cfg = ControlConfig::new(dir);
    cfg.bootstrap_endpoints.push(BootstrapEndpoint {
        id: "old".into(),
        url: "redis://127.0.0.1:6379".into(),
        cluster: false,
    });
    cfg.bootstrap_interlays.push(BootstrapInterlay {
        id: "cache".into(),
        endpoint: "old".into(),
        listen: "127.0.0.1:0".into(),
        password: None,
        max_clients: None,
    });
    Control::open(cfg, dp).await.unwrap()
}

#[tokio::test]
async fn full_lifecycle_publishes_routes() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Recorder::default());
    let c = setup(dir.path(), dp.clone()).await;
    let org = "default";
    assert!(dp.last().interlay("cache").unwrap().migration.is_none());
    c.create_endpoint(org, &json!({"id":"new","url":"redis://127.0.0.1:6380"}))
        .await
        .unwrap();
    c.create_migration(
        org,
        &json!({"id":"m1","strategy":{"type":"canary","read_percentage":0.05}}),
    )
    .await
    .unwrap();
    let e = c.rollback(org, "m1", &json!(null)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot set RollingBack migration in status: Pending"
    );
    let e = c.migrate(org, "m1").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot set Running migration in status: Pending"
    );
    let e = c
        .add_interlay(org, "m1", "cache", &json!({"endpoint":"old"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ControlError::BadRequest(_)));
    c.add_interlay(org, "m1", "cache", &json!({"endpoint":"new"}))
        .await
        .unwrap();
    assert_eq!(c.migration_status(org, "m1").await.unwrap(), Status::Ready);
    c.create_migration(org, &json!({"id":"m2"})).await.unwrap();
    let e = c
        .add_interlay(org, "m2", "cache", &json!({"endpoint":"new"}))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Interlay Schema already has an active migration"
    );
    let t = c.test_migration(org, "m1").await.unwrap();
    assert_eq!(t["valid"], true);
    assert_eq!(t["interlays_tested"], 1);
    assert_eq!(
        c.migrate(org, "m1").await.unwrap(),
        "migration commit completed"
    );
    let route = dp.last().interlay("cache").unwrap().clone();
    let mr = route.migration.unwrap();
    assert_eq!(&*mr.target, "new");
    assert!(!mr.serve_new);
    let e = c
        .traffic(org, "m1", &json!({"read_percentage":0.5}))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot change read_percentage by more than 0.25 per update (current 0.05, requested 0.50)"
    );
    let r = c
        .traffic(org, "m1", &json!({"read_percentage":0.25}))
        .await
        .unwrap();
    assert_eq!(r["new_percentage"], 0.25);
    c.pause(org, "m1", &json!({"reason":"look"})).await.unwrap();
    assert!(dp.last().interlay("cache").unwrap().migration.is_some());
    c.resume(org, "m1", &json!(null)).await.unwrap();
    c.complete(org, "m1", &json!({})).await.unwrap();
    let route = dp.last().interlay("cache").unwrap().clone();
    assert_eq!(&*route.endpoint, "new");
    // the old side is kept current (reverse dual writes, new authoritative) for a rollback
    let reverse = route.migration.expect("reverse route after completion");
    assert_eq!(&*reverse.target, "old");
    assert_eq!(
        reverse.rule,
        godwit_router::Rule::BlueGreen {
            active_is_new: false
        }
    );
    // Rollback after completion re-points the interlay to the source.
    c.rollback(org, "m1", &json!({"reason":"oops"}))
        .await
        .unwrap();
    assert_eq!(
        c.migration_status(org, "m1").await.unwrap(),
        Status::RolledBack
    );
    assert_eq!(&*dp.last().interlay("cache").unwrap().endpoint, "old");
    // Versions only go up.
    let versions: Vec<u64> = dp
        .tables
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.version)
        .collect();
    assert!(versions.windows(2).all(|w| w[1] > w[0]));
}

#[tokio::test]
async fn test_reports_unreachable_target() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Recorder::default());
    let c = setup(dir.path(), dp).await;
    c.create_endpoint(
        "default",
        &json!({"id":"down","url":"redis://down.invalid:6379"}),
    )
    .await
    .unwrap();
    c.create_migration("default", &json!({"id":"m"}))
        .await
        .unwrap();
    c.add_interlay("default", "m", "cache", &json!({"endpoint":"down"}))
        .await
        .unwrap();
    let t = c.test_migration("default", "m").await.unwrap();
    assert_eq!(t["valid"], false);
    assert_eq!(
        c.migration_status("default", "m").await.unwrap(),
        Status::Failed
    );
}

#[tokio::test]
async fn restart_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let dp = Arc::new(Recorder::default());
        let c = setup(dir.path(), dp).await;
        c.create_endpoint("acme", &json!({"id":"a","url":"redis://10.0.0.1:6379"}))
            .await
            .unwrap();
        c.create_endpoint("acme", &json!({"id":"b","url":"redis://:pw@10.0.0.2:6379"}))
            .await
            .unwrap();
        c.create_interlay(
            "acme",
            &json!({"id":"il","endpoint":"a","listen":"127.0.0.1:0"}),
        )
        .await
        .unwrap();
        c.create_migration(
            "acme",
            &json!({"id":"m","data":{"type":"scan","replace":"merge"}}),
        )
        .await
        .unwrap();
        c.add_interlay("acme", "m", "il", &json!({"endpoint":"b"}))
            .await
            .unwrap();
        c.migrate("acme", "m").await.unwrap();
    }
    let dp = Arc::new(Recorder::default());
    let c = setup(dir.path(), dp.clone()).await;
    assert_eq!(
        c.migration_status("acme", "m").await.unwrap(),
        Status::Running
    );
    let started = dp.started.lock().unwrap().clone();
    assert!(started.contains(&"acme/il".to_string()) && started.contains(&"cache".to_string()));
    let route = dp.last().interlay("acme/il").unwrap().clone();
    assert_eq!(&*route.migration.unwrap().target, "acme/b");
    let ep = c.get_endpoint("acme", "b").await.unwrap();
    assert_eq!(ep["url"], "redis://:***@10.0.0.2:6379");
    let m = c.get_migration("acme", "m", false).await.unwrap();
    assert_eq!(m["data"], json!({"type":"scan","replace":"merge"}));
    // Another organization sees nothing.
    let e = c.get_migration("other", "m", false).await.unwrap_err();
    assert_eq!(e.to_string(), "Migration 'm' does not exist");
}

#[tokio::test]
async fn interlay_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let dp = Arc::new(Recorder::default());
    let c = setup(dir.path(), dp.clone()).await;
    let org = "default";
    let e = c
        .create_interlay(org, &json!({"id":"x","endpoint":"old","port":80}))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Port 80 is privileged and cannot be used for an interlay"
    );
    let e = c
        .create_interlay(org, &json!({"id":"x","endpoint":"old"}))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "either `port` or `listeners` must be provided"
    );
    let e = c
        .create_interlay(
            org,
            &json!({"id":"x","endpoint":"old","port":7000,"tls":true}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "tls cannot be set to true, use an object instead"
    );
    let e = c
        .create_interlay(org, &json!({"id":"x","endpoint":"ghost","port":7000}))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "Endpoint 'ghost' does not exist");
    let (v, created) = c
        .create_interlay(
            org,
            &json!({"id":"x","endpoint":"old","port":7000,"settings":{"password":"pw","note":"n"}}),
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(v["running"], true);
    assert_eq!(v["auth_required"], true);
    assert_eq!(v["settings"], json!({"note":"n"}));
    assert!(!v.to_string().contains("\"pw\""), "password leaked: {v}");
    let (_, created) = c
        .create_interlay(org, &json!({"id":"x","endpoint":"old","port":7000}))
        .await
        .unwrap();
    assert!(!created, "re-post is an idempotent upsert");
    let e = c
        .create_interlay(org, &json!({"id":"y","endpoint":"old","port":7000}))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "Port 7000 is already in use by interlay 'x'");
    let e = c.start_interlay(org, "x").await.unwrap_err();
    assert_eq!(e.to_string(), "Interlay already running");
    c.stop_interlay(org, "x").await.unwrap();
    let e = c.stop_interlay(org, "x").await.unwrap_err();
    assert_eq!(e.to_string(), "Interlay not running");
    assert_eq!(e.kind(), "Not Found");
    c.start_interlay(org, "x").await.unwrap();
    let before = dp.started.lock().unwrap().len();
    c.create_endpoint(org, &json!({"id":"new","config":{"write_conn":{"host":"10.1.1.1","port":6390,"password":"p@ss"}}})).await.unwrap();
    let ep = c.get_endpoint(org, "new").await.unwrap();
    assert_eq!(ep["url"], "redis://:***@10.1.1.1:6390");
    // Endpoint change is a hot route swap: no restart.
    let v = c
        .patch_interlay(org, "x", &json!({"endpoint":"new"}))
        .await
        .unwrap();
    assert_eq!(v["endpoint"], "new");
    assert_eq!(dp.started.lock().unwrap().len(), before);
    assert_eq!(&*dp.last().interlay("x").unwrap().endpoint, "new");
    // A new port restarts the listener.
    c.patch_interlay(org, "x", &json!({"port":7001}))
        .await
        .unwrap();
    assert_eq!(dp.started.lock().unwrap().len(), before + 1);
    // Held by a migration: no endpoint change, no delete.
    c.create_migration(org, &json!({"id":"m"})).await.unwrap();
    c.add_interlay(org, "m", "x", &json!({"endpoint":"old"}))
        .await
        .unwrap();
    let e = c
        .patch_interlay(org, "x", &json!({"endpoint":"old"}))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Interlay Schema already has an active migration"
    );
    assert!(c.delete_interlay(org, "x").await.is_err());
    let e = c.delete_endpoint(org, "new").await.unwrap_err();
    assert_eq!(e.to_string(), "Endpoint 'new' is in use by interlay 'x'");
    c.delete_migration(org, "m", false).await.unwrap();
    c.delete_interlay(org, "x").await.unwrap();
    assert!(dp.last().interlay("x").is_none());
    c.delete_endpoint(org, "new").await.unwrap();
}
