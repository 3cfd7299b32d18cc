//! The persisted control state: per organization, endpoints, interlays, templates, APIs and
//! migrations. Everything here is plain data; operations live in the `ops_*` modules.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::rules::{DataRule, FailureHandling, Guard};
use crate::status::Status;
use crate::strategy::Strategy;

/// The organization that owns resources declared in `proxy.toml`.
pub const DEFAULT_ORG: &str = "default";

/// The data-plane name of an object: the plain id in the default organization, `org/id`
/// elsewhere (ids cannot contain `/`, so names never collide across organizations).
pub fn dp_key(org: &str, id: &str) -> String {
    if org == DEFAULT_ORG {
        id.to_string()
    } else {
        format!("{org}/{id}")
    }
}

/// A Redis deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// Human id, unique in the organization.
    pub id: String,
    /// Stable uuid (paths accept either).
    pub uuid: Uuid,
    /// `redis://[user:pass@]host:port[/db]` or `rediss://…` (credentials never shown).
    pub url: String,
    /// Whether the endpoint is a Redis Cluster.
    #[serde(default)]
    pub cluster: bool,
    /// Pool size for the data plane.
    pub max_connections: u32,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Declared in `proxy.toml` (re-applied at every start).
    #[serde(default)]
    pub from_config: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A listener that applications connect to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interlay {
    /// Human id.
    pub id: String,
    /// Stable uuid.
    pub uuid: Uuid,
    /// Endpoint id it serves (the "old" side of a migration).
    pub endpoint: String,
    /// Bind address `host:port`.
    pub listen: String,
    /// AUTH password clients must send (never shown).
    #[serde(default)]
    pub password: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Other settings, stored as sent (without the password).
    #[serde(default)]
    pub settings: Value,
    /// Desired state: listening (restored on restart).
    pub running: bool,
    /// Declared in `proxy.toml`.
    #[serde(default)]
    pub from_config: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A parametrised command (minimal until the templates engine lands).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Template {
    /// Human id.
    pub id: String,
    /// Stable uuid.
    pub uuid: Uuid,
    /// Endpoint id it runs on.
    pub endpoint: String,
    /// The validated definition as sent.
    pub body: Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A named group of template bindings (minimal until the APIs engine lands).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Api {
    /// Human id.
    pub id: String,
    /// Stable uuid.
    pub uuid: Uuid,
    /// The validated definition as sent.
    pub body: Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where one member of a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Attached, migration not executed.
    Attached,
    /// Executed: routing follows the migration.
    Active,
    /// Cut over to the target.
    Completed,
    /// Routed back to the source while its data is copied back from the target (rollback with
    /// `overwrite_on_reverse`): reads from the source, writes to both sides, new
    /// authoritative. Becomes `rolled_back` when the reverse copy is done or failed.
    RollingBack,
    /// Rolled back to the source.
    RolledBack,
}

/// An interlay attached to a migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterlayMember {
    /// Interlay id.
    pub interlay: String,
    /// Target endpoint id ("new").
    pub target: String,
    /// Source endpoint id ("old"), recorded when attached and kept for rollback after completion.
    pub source: String,
    /// Optional binding name (`id` of the full add-interlay body).
    #[serde(default)]
    pub binding_id: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Per-interlay strategy override.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Per-interlay data rule override.
    #[serde(default)]
    pub data: Option<DataRule>,
    /// Explicit `migration_rules`, normalised.
    #[serde(default)]
    pub rules: Option<Value>,
    /// `testing_validation`, stored as sent.
    #[serde(default)]
    pub testing_validation: Option<Value>,
    /// Member state.
    pub state: MemberState,
    /// SCAN checkpoint of this member's copy (a restart resumes from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_cursor: Option<String>,
    /// The scan pass of this member's copy finished (a restart only follows changes).
    #[serde(default)]
    pub copy_pass_done: bool,
}

/// One binding of an API member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Binding {
    /// Template id.
    pub template: String,
    /// Field mappings as sent.
    #[serde(default)]
    pub fields: Value,
}

/// An API attached to a migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiMember {
    /// API id.
    pub api: String,
    /// The new-path template bindings.
    pub bindings: Vec<Binding>,
    /// Member state.
    pub state: MemberState,
    /// The API's bindings before completion switched them (restored by a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_bindings: Option<Value>,
}

/// Copy progress, filled by the data mover (zero until it runs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// `idle`, `waiting_for_mover`, `starting`, `scanning`, `streaming`, `done` (`failed` is
    /// reported by a member copy and handled by the failure handling).
    pub phase: String,
    /// Keys scanned so far.
    pub keys_scanned: u64,
    /// Estimated keys in total.
    pub keys_total_estimate: u64,
    /// Keys copied.
    pub keys_copied: u64,
    /// Keys skipped (exist in target with `replace: none`).
    pub keys_skipped: u64,
    /// Keys that failed to copy.
    pub keys_failed: u64,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// Dirty keys waiting to be re-copied.
    pub dirty_backlog: u64,
    /// Replication lag in milliseconds.
    pub lag_ms: u64,
    /// SCAN cursor checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Keys deleted on the target because they were gone from the source.
    #[serde(default)]
    pub keys_deleted: u64,
    /// Keys copied per second (recent).
    #[serde(default)]
    pub rate_keys_per_s: u64,
    /// Seconds left in the scan pass, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<u64>,
    /// Why the copy failed (`phase: failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Migration {
    /// Human id.
    pub id: String,
    /// Stable uuid.
    pub uuid: Uuid,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Lifecycle status.
    pub status: Status,
    /// Why the status last changed (reason given by the caller, or the failure).
    #[serde(default)]
    pub status_reason: Option<String>,
    /// Strategy.
    pub strategy: Strategy,
    /// Data movement.
    pub data: DataRule,
    /// Failure handling.
    pub failure_handling: FailureHandling,
    /// Optional automatic rollback/pause thresholds.
    #[serde(default)]
    pub guard: Option<Guard>,
    /// `tests` as sent on create (echoed back).
    #[serde(default)]
    pub tests: Value,
    /// Attached APIs.
    #[serde(default)]
    pub apis: Vec<ApiMember>,
    /// Attached interlays.
    #[serde(default)]
    pub interlays: Vec<InterlayMember>,
    /// Copy progress.
    #[serde(default)]
    pub progress: Progress,
    /// Result of the last `test`.
    #[serde(default)]
    pub last_test: Option<Value>,
    /// When `migrate` last ran.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the migration completed.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The copy back from the target of the last rollback with `overwrite_on_reverse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_copy: Option<ReverseCopy>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where a reverse copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReverseState {
    /// Copying back; writes go to both sides.
    Running,
    /// Every member's data is back on its source.
    Done,
    /// A member's copy failed (that member routes to its source without the rest of the copy).
    Failed,
    /// A forced rollback without `overwrite_on_reverse` stopped it.
    Cancelled,
}

/// A copy from the target back to the source, started by a rollback with
/// `overwrite_on_reverse` (per interlay member; the target's values overwrite the source's,
/// keys only on the source are kept).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReverseCopy {
    /// Overall state: `running` while any member copies back.
    pub state: ReverseState,
    /// Each member's state, by interlay id.
    pub interlays: BTreeMap<String, ReverseState>,
    /// Sum of the members' copy progress (phase of the slowest).
    pub progress: Progress,
    /// When the first member started copying back.
    pub started_at: DateTime<Utc>,
    /// When the last member finished (done, failed or cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why a member's copy failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Migration {
    /// The members that still hold their interlay: not rolled back while the migration is
    /// active, and always while its data is copied back.
    pub fn holds_interlay(&self, interlay: &str) -> bool {
        self.interlays.iter().any(|m| {
            m.interlay == interlay
                && match m.state {
                    MemberState::RollingBack => true,
                    MemberState::RolledBack => false,
                    _ => self.status.is_active(),
                }
        })
    }

    /// Whether any interlay member's data is being copied back.
    pub fn reversing(&self) -> bool {
        self.interlays
            .iter()
            .any(|x| x.state == MemberState::RollingBack)
    }

    /// Whether the API is held by this migration.
    pub fn holds_api(&self, api: &str) -> bool {
        self.status.is_active()
            && self
                .apis
                .iter()
                .any(|m| m.api == api && m.state != MemberState::RolledBack)
    }

    /// Number of members (APIs + interlays).
    pub fn member_count(&self) -> usize {
        self.apis.len() + self.interlays.len()
    }
}

/// Everything one organization owns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrgState {
    /// Endpoints by id.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Interlays by id.
    #[serde(default)]
    pub interlays: BTreeMap<String, Interlay>,
    /// Templates by id.
    #[serde(default)]
    pub templates: BTreeMap<String, Template>,
    /// APIs by id.
    #[serde(default)]
    pub apis: BTreeMap<String, Api>,
    /// Migrations by id.
    #[serde(default)]
    pub migrations: BTreeMap<String, Migration>,
}

/// The whole persisted control state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Format version of the stored document.
    #[serde(default)]
    pub format: u32,
    /// Organizations by id.
    #[serde(default)]
    pub orgs: BTreeMap<String, OrgState>,
}

/// Objects addressable by id or uuid.
pub trait Named {
    /// The object's uuid.
    fn uuid(&self) -> Uuid;
}

macro_rules! named {
    ($($t:ty),*) => {$(impl Named for $t { fn uuid(&self) -> Uuid { self.uuid } })*};
}
named!(Endpoint, Interlay, Template, Api, Migration);

/// Resolves an id or uuid to the map key (the id).
pub fn resolve<T: Named>(map: &BTreeMap<String, T>, key: &str) -> Option<String> {
    if map.contains_key(key) {
        return Some(key.to_string());
    }
    let uuid = Uuid::parse_str(key).ok()?;
    map.iter()
        .find(|(_, v)| v.uuid() == uuid)
        .map(|(k, _)| k.clone())
}
