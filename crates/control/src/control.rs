//! [`Control`]: the state behind one mutex, the store, and the only writer of the routing
//! table. Every change runs on a copy of the state, is saved, and only then becomes current and
//! is published, so a failed save changes nothing.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use godwit_router::{InterlayRoute, MigrationRoute, RoutingTable};
use tokio::sync::{Mutex, MutexGuard};

use crate::compile::Instance;
use crate::dataplane::{DataPlane, InterlayListen};
use crate::model::{dp_key, MemberState, OrgState, State, DEFAULT_ORG};
use crate::store::{FileStore, Store};
use crate::ControlError;

/// An endpoint declared in `proxy.toml` (owned by the `default` organization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapEndpoint {
    /// Endpoint id.
    pub id: String,
    /// Redis URL.
    pub url: String,
    /// A Redis Cluster (the URL names a seed node).
    pub cluster: bool,
}

/// An interlay declared in `proxy.toml` (owned by the `default` organization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapInterlay {
    /// Interlay id.
    pub id: String,
    /// Endpoint id it serves.
    pub endpoint: String,
    /// Bind address `host:port`.
    pub listen: String,
    /// AUTH password clients must send.
    pub password: Option<String>,
    /// Most client connections the interlay holds at once.
    pub max_clients: Option<usize>,
}

/// Static configuration of the control plane.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Where the file store keeps its state.
    pub data_dir: PathBuf,
    /// This proxy instance's id (rolling_update).
    pub instance_id: String,
    /// This proxy instance's region (geographic).
    pub instance_region: String,
    /// Host interlays created with only a `port` bind to (default `0.0.0.0`).
    pub interlay_host: String,
    /// Endpoints from `proxy.toml`, re-applied (created or updated) at every start.
    pub bootstrap_endpoints: Vec<BootstrapEndpoint>,
    /// Interlays from `proxy.toml`, re-applied at every start and always started.
    pub bootstrap_interlays: Vec<BootstrapInterlay>,
    /// A Redis shared by a fleet (`[store] url`); `None`: the file store under `data_dir`.
    pub store_url: Option<String>,
    /// Key prefix in the shared store (`[store] key_prefix`).
    pub store_prefix: String,
    /// Added to every non-zero stored interlay port when this instance binds it, so several
    /// instances of a fleet can run on one host (`[instance] port_offset`).
    pub port_offset: u16,
}

impl ControlConfig {
    /// A config with a data dir and defaults for the rest.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            instance_id: "godwit-0".into(),
            instance_region: "default".into(),
            interlay_host: "0.0.0.0".into(),
            bootstrap_endpoints: Vec::new(),
            bootstrap_interlays: Vec::new(),
            store_url: None,
            store_prefix: "godwit".into(),
            port_offset: 0,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) state: State,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) table_version: u64,
    /// Interlays (by data-plane key) listening now, with their bound address.
    pub(crate) listening: HashMap<String, String>,
    /// Running copies, by data-plane migration id.
    pub(crate) copies: HashMap<String, crate::copy::CopyRun>,
    /// Generation counter of copy runs (a stale watcher recognises itself by it).
    pub(crate) copy_generation: u64,
    /// Running reverse copies (rollback with `overwrite_on_reverse`).
    pub(crate) reverse: crate::reverse::ReverseRuns,
}

/// The control plane. Cheap to share (`Arc<Control>`); every operation is scoped to an org.
pub struct Control {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) dataplane: Arc<dyn DataPlane>,
    pub(crate) cfg: ControlConfig,
    /// Itself, for the tasks that supervise copies.
    pub(crate) me: std::sync::Weak<Control>,
    /// What API calls did per migration (templates and APIs run over HTTP).
    pub(crate) api_traffic: crate::api_run::ApiTrafficMap,
    /// Membership in a fleet sharing a Redis store (`None`: file store).
    pub(crate) fleet: Option<crate::fleet::Fleet>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("cfg", &self.cfg).finish()
    }
}

impl Control {
    /// Opens the store (the file store under `cfg.data_dir`, or the fleet's Redis store when
    /// `cfg.store_url` is set), restores the state, applies the bootstrap resources, registers
    /// endpoints, publishes the first table and starts the interlays. In a fleet it then
    /// follows the shared state and reports liveness (`fleet`).
    pub async fn open(
        cfg: ControlConfig,
        dataplane: Arc<dyn DataPlane>,
    ) -> Result<Arc<Control>, ControlError> {
        if let Some(url) = &cfg.store_url {
            let store = Arc::new(crate::store_redis::RedisStore::new(url, &cfg.store_prefix)?);
            let fleet = crate::fleet::Fleet::new(store.clone());
            return Self::open_inner(cfg, dataplane, store, Some(fleet)).await;
        }
        let store = FileStore::new(&cfg.data_dir)?;
        Self::open_with_store(cfg, dataplane, Box::new(store)).await
    }

    /// Like [`Control::open`] with any store (no fleet membership).
    pub async fn open_with_store(
        cfg: ControlConfig,
        dataplane: Arc<dyn DataPlane>,
        store: Box<dyn Store>,
    ) -> Result<Arc<Control>, ControlError> {
        Self::open_inner(cfg, dataplane, Arc::from(store), None).await
    }

    async fn open_inner(
        cfg: ControlConfig,
        dataplane: Arc<dyn DataPlane>,
        store: Arc<dyn Store>,
        fleet: Option<crate::fleet::Fleet>,
    ) -> Result<Arc<Control>, ControlError> {
        // A fleet member may lose the race against another instance saving at the same time:
        // reload and re-apply the bootstrap resources.
        let mut attempt = 0;
        let state = loop {
            attempt += 1;
            let mut state = store.load()?.unwrap_or_default();
            state.format = 1;
            crate::bootstrap::apply(&mut state, &cfg)?;
            for (org, os) in &state.orgs {
                for ep in os.endpoints.values() {
                    let key = dp_key(org, &ep.id);
                    if let Err(e) = dataplane.upsert_endpoint(&key, &ep.url, ep.cluster) {
                        if ep.from_config {
                            return Err(ControlError::DataPlane(format!("endpoint '{key}': {e}")));
                        }
                        tracing::warn!(endpoint = %key, error = %e, "stored endpoint rejected by the data plane");
                    }
                }
            }
            match store.save(&state) {
                Ok(()) => break state,
                Err(ControlError::Conflict(_)) if attempt < 5 => continue,
                Err(e) => return Err(e),
            }
        };
        let boot_interlays: HashSet<String> = cfg
            .bootstrap_interlays
            .iter()
            .map(|b| b.id.clone())
            .collect();
        let control = Arc::new_cyclic(|me| Control {
            inner: Mutex::new(Inner {
                state,
                store,
                table_version: 0,
                listening: HashMap::new(),
                copies: HashMap::new(),
                copy_generation: 0,
                reverse: Default::default(),
            }),
            dataplane,
            cfg,
            me: me.clone(),
            api_traffic: Default::default(),
            fleet,
        });
        let mut inner = control.inner.lock().await;
        control.publish(&mut inner);
        let to_start: Vec<(String, InterlayListen)> = inner
            .state
            .orgs
            .iter()
            .flat_map(|(org, os)| {
                os.interlays
                    .values()
                    .filter(|i| i.running)
                    .map(move |i| (i.id.clone(), InterlayListen::of(dp_key(org, &i.id), i)))
            })
            .collect();
        for (id, spec) in to_start {
            let key = spec.id.clone();
            match control
                .dataplane
                .start_interlay(control.local_listen(spec))
                .await
            {
                Ok(addr) => {
                    tracing::info!(interlay = %key, %addr, "interlay listening");
                    inner.listening.insert(key, addr);
                }
                Err(e) if boot_interlays.contains(&id) && key == id => {
                    return Err(ControlError::DataPlane(format!("interlay '{key}': {e}")));
                }
                Err(e) => tracing::warn!(interlay = %key, error = %e, "could not restart interlay"),
            }
        }
        control.resume_copies(&mut inner);
        control.resume_reverse(&mut inner);
        drop(inner);
        control.spawn_guards();
        control.spawn_fleet();
        if control.fleet.is_some() {
            control.fleet_heartbeat().await?;
        }
        Ok(control)
    }

    /// This instance's id.
    pub fn instance_id(&self) -> &str {
        &self.cfg.instance_id
    }

    /// This proxy instance (id and region), as strategies are compiled for it.
    pub fn instance(&self) -> Instance {
        Instance {
            id: self.cfg.instance_id.clone(),
            region: self.cfg.instance_region.clone(),
        }
    }

    /// The version of the last published routing table.
    pub async fn table_version(&self) -> u64 {
        self.inner.lock().await.table_version
    }

    pub(crate) async fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().await
    }

    /// Saves `next` and makes it current, then publishes a new routing table. The write (and
    /// its fsync) runs on the blocking pool: the proxy may share this runtime's only thread.
    pub(crate) async fn commit(&self, inner: &mut Inner, next: State) -> Result<(), ControlError> {
        let store = inner.store.clone();
        let snapshot = next.clone();
        let saved = tokio::task::spawn_blocking(move || store.save(&snapshot))
            .await
            .map_err(|e| ControlError::Store(format!("save task failed: {e}")))?;
        if let Err(e) = saved {
            if matches!(e, ControlError::Conflict(_)) {
                // another fleet member saved first: catch up so the caller's retry is based on it
                if let Err(e) = self.sync_locked(inner).await {
                    tracing::warn!(error = %e, "fleet: reload after a conflict failed");
                }
            }
            return Err(e);
        }
        inner.state = next;
        self.publish(inner);
        Ok(())
    }

    /// Builds the full routing table (version + 1) from the current state and publishes it.
    pub(crate) fn publish(&self, inner: &mut Inner) {
        inner.table_version += 1;
        let table = build_table(&inner.state, inner.table_version, &self.instance());
        self.dataplane.publish(table);
        crate::status_metrics::export_statuses(&inner.state);
    }
}

/// The routing table for a state: every interlay routes to its endpoint, and to its
/// migration's target while a migration in a traffic-routing status holds it actively.
pub fn build_table(state: &State, version: u64, me: &Instance) -> RoutingTable {
    let mut table = RoutingTable {
        version,
        interlays: HashMap::new(),
    };
    for (org, os) in &state.orgs {
        for il in os.interlays.values() {
            let mut route = InterlayRoute::direct(dp_key(org, &il.endpoint));
            route.migration = route_of(org, os, &il.id, me);
            table.interlays.insert(dp_key(org, &il.id).into(), route);
        }
    }
    table
}

fn route_of(org: &str, os: &OrgState, interlay: &str, me: &Instance) -> Option<MigrationRoute> {
    if let Some(r) = reverse_copy_route(org, os, interlay) {
        return Some(r);
    }
    let running = os.migrations.values().find_map(|m| {
        if !m.status.routes_traffic() {
            return None;
        }
        let member = m
            .interlays
            .iter()
            .find(|x| x.interlay == interlay && x.state == MemberState::Active)?;
        Some(crate::compile::migration_route(
            m,
            dp_key(org, &m.id),
            dp_key(org, &member.target),
            me,
        ))
    });
    running.or_else(|| reverse_route(org, os, interlay))
}

/// While an interlay member's data is copied back to its source, whatever its migration's
/// status: reads from the source, writes to both sides (new authoritative), keys reported to
/// the reverse copy ([`crate::compile::reverse_copy_route`]).
fn reverse_copy_route(org: &str, os: &OrgState, interlay: &str) -> Option<MigrationRoute> {
    let current = &os.interlays.get(interlay)?.endpoint;
    os.migrations.values().find_map(|m| {
        let x = m.interlays.iter().find(|x| {
            x.interlay == interlay && x.state == MemberState::RollingBack && x.source == *current
        })?;
        Some(crate::compile::reverse_copy_route(
            crate::compile::reverse_key(&dp_key(org, &m.id), interlay),
            dp_key(org, &x.target),
        ))
    })
}

/// After a migration completed, the interlay serves the new endpoint and keeps writing to the
/// old one too (new authoritative), so a rollback after completion loses nothing. This lasts
/// while the interlay still serves that migration's target and the migration exists; deleting
/// the migration decommissions the old side.
fn reverse_route(org: &str, os: &OrgState, interlay: &str) -> Option<MigrationRoute> {
    let current = &os.interlays.get(interlay)?.endpoint;
    os.migrations
        .values()
        .filter(|m| m.status == crate::status::Status::Completed)
        .filter_map(|m| {
            let member = m.interlays.iter().find(|x| {
                x.interlay == interlay && x.state == MemberState::Completed && x.target == *current
            })?;
            Some((m, member))
        })
        .max_by_key(|(m, _)| m.completed_at)
        .map(|(m, member)| {
            MigrationRoute::new(
                dp_key(org, &m.id),
                dp_key(org, &member.source),
                godwit_router::Rule::BlueGreen {
                    active_is_new: false,
                },
            )
        })
}

/// The org's state, or an empty one (an org with nothing has nothing to find).
pub(crate) fn org<'a>(state: &'a State, org: &str) -> std::borrow::Cow<'a, OrgState> {
    match state.orgs.get(org) {
        Some(os) => std::borrow::Cow::Borrowed(os),
        None => std::borrow::Cow::Owned(OrgState::default()),
    }
}

/// The org's state for writing (created on first use).
pub(crate) fn org_mut<'a>(state: &'a mut State, org: &str) -> &'a mut OrgState {
    state.orgs.entry(org.to_string()).or_default()
}

/// Whether `org` is the default organization (bootstrap owner).
pub fn is_default_org(org: &str) -> bool {
    org == DEFAULT_ORG
}
