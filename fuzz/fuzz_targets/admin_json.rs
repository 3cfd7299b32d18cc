//! Admin API bodies: arbitrary bytes parsed as JSON (as the admin extractor does) and handed
//! to the control plane's create/patch operations for every resource, on an in-memory store.
//! Never a panic; every refusal is a client error (400/404/409), never an internal one.
#![no_main]

use std::sync::{Arc, OnceLock};

use godwit_control::{Control, ControlConfig, ErrorClass, MemoryStore, NoopDataPlane};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn check(what: &str, r: Result<serde_json::Value, godwit_control::ControlError>) {
    if let Err(e) = r {
        assert!(
            !matches!(e.class(), ErrorClass::Internal),
            "{what}: internal error on client input: {e}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    runtime().block_on(async {
        let dir = std::env::temp_dir().join("godwit-fuzz-unused");
        let c: Arc<Control> = Control::open_with_store(
            ControlConfig::new(dir),
            Arc::new(NoopDataPlane),
            Box::new(MemoryStore::default()),
        )
        .await
        .expect("open");
        let org = "default";
        let seed = serde_json::json!({"id": "e", "url": "redis://127.0.0.1:1"});
        let _ = c.create_endpoint(org, &seed).await;
        check("create_endpoint", c.create_endpoint(org, &body).await);
        check(
            "create_interlay",
            c.create_interlay(org, &body).await.map(|(v, _)| v),
        );
        check("create_migration", c.create_migration(org, &body).await);
        let m = serde_json::json!({"id": "m"});
        let _ = c.create_migration(org, &m).await;
        check("patch_migration", c.patch_migration(org, "m", &body).await);
        check(
            "add_interlay",
            c.add_interlay(org, "m", "i", &body).await.map(|()| serde_json::Value::Null),
        );
        check("traffic", c.traffic(org, "m", &body).await);
        check("rollback", c.rollback(org, "m", &body).await);
        check("pause", c.pause(org, "m", &body).await);
    });
});
