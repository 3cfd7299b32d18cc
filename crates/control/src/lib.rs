//! godwit-control: resources (endpoints, interlays, templates, APIs, migrations), the migration
//! state machine, persistence, and the only writer of the routing table.
//!
//! The data plane is reached only through the [`DataPlane`] trait, implemented by `godwit-app`.
//! Every operation takes the caller's organization; objects of other organizations are
//! invisible (404). Operations take and return `serde_json::Value` bodies so the admin API and
//! MCP share one validation.
//!
//! Decisions (where the seed and eden-spec are silent):
//! - Data-plane names: plain ids in the `default` organization (which owns `proxy.toml`
//!   resources), `org/id` elsewhere ([`dp_key`]); ids are `[A-Za-z0-9_.-]{1,64}`.
//! - Bootstrap endpoints/interlays are re-applied at every start; config interlays must bind
//!   or `open` fails, stored ones that cannot bind are logged and left stopped.
//! - Completion re-points each interlay to its target (a direct route, `migration: None`);
//!   rollback after completion re-points it to the recorded source. While running or paused,
//!   the route carries `MigrationRoute { serve_new: false }` (per-strategy routing is issue 4).
//! - Rollback finishes at once (`rolling_back` → `rolled_back`), except with
//!   `overwrite_on_reverse`: executed interlay members stay `rolling_back` while a copy from
//!   new back to old runs (`reverse`, replace mode `replace`, keys only on old kept); reads go
//!   to old at once, writes to both sides **new authoritative** (the copy reads new, so new's
//!   reply is what ends on old; old's reply would acknowledge writes the re-copy undoes). The
//!   copy's `done` (the forward rule) ends the rollback; its failure ends the member on old and
//!   the migration `failed` (`partial_failure` while others run forward). Members already rolled
//!   back are never copied back (old took writes alone since); automatic rollbacks never copy
//!   back; a restart starts a reverse copy over from the first key.
//! - `complete` without `force` needs the copy done (`progress.phase == "done"`, immediate with
//!   `data: none`); `verify` validates, then answers 501 until the mover lands.
//! - `test` with no members answers `valid:false` and keeps the status; probe failures move
//!   the migration to `failed` (from which `test` or `migrate` may be retried).
//! - Errors: `Not found` for migrations (seed), `Not Found` for other resources, 409
//!   `Migration error` for illegal transitions and active-member conflicts.

mod api_run;
pub mod body;
mod bootstrap;
pub mod casing;
mod catalog;
pub mod compile;
pub mod control;
mod copy;
mod copy_failure;
pub mod dataplane;
mod endpoint_url;
pub mod error;
mod fleet;
pub mod guard;
mod lifecycle;
pub mod member_rules;
mod members;
pub mod model;
mod ops_endpoints;
mod ops_interlays;
mod ops_listeners;
mod ops_migrations;
mod probes;
pub mod resp_json;
mod reverse;
mod rollback;
pub mod rules;
pub mod status;
mod status_metrics;
pub mod store;
pub mod store_redis;
pub mod strategy;
mod strategy_check;
pub mod template;
mod verify_op;
mod views;

pub use control::{build_table, BootstrapEndpoint, BootstrapInterlay, Control, ControlConfig};
pub use dataplane::{
    CopySpec, DataPlane, EndpointProbe, InterlayListen, NoopDataPlane, VerifyRequest,
};
pub use endpoint_url::{check_url, redact};
pub use error::{ControlError, ErrorClass};
pub use guard::GuardCounters;
pub use members::{API_ACTIVE, INTERLAY_ACTIVE};
pub use model::{dp_key, DEFAULT_ORG};
pub use status::{transition, Action, Status};
pub use store::{FileStore, MemoryStore, Store};
pub use store_redis::RedisStore;
pub use strategy::{Strategy, NOT_IMPLEMENTED};
pub use views::migration_list_view;
