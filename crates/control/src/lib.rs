//! godwit-control: resources (endpoints, interlays, templates, APIs, migrations), the migration
//! state machine, persistence, and the only writer of the routing table.
//!
//! The data plane is reached only through the [`DataPlane`] trait, implemented by `godwit-app`.
//! Every operation takes the caller's organization; objects of other organizations are
//! invisible (404). Operations take and return `serde_json::Value` bodies so the admin API and
//! MCP share one validation.

pub mod body;
mod bootstrap;
pub mod casing;
mod catalog;
pub mod control;
pub mod dataplane;
mod endpoint_url;
pub mod error;
mod lifecycle;
pub mod member_rules;
mod members;
pub mod model;
mod ops_endpoints;
mod ops_interlays;
mod ops_listeners;
mod ops_migrations;
mod probes;
mod rollback;
pub mod rules;
pub mod status;
pub mod store;
pub mod strategy;
mod strategy_check;
mod views;

pub use control::{build_table, BootstrapEndpoint, BootstrapInterlay, Control, ControlConfig};
pub use dataplane::{DataPlane, EndpointProbe, InterlayListen, NoopDataPlane};
pub use endpoint_url::{check_url, redact};
pub use error::{ControlError, ErrorClass};
pub use members::{API_ACTIVE, INTERLAY_ACTIVE};
pub use model::{dp_key, DEFAULT_ORG};
pub use status::{transition, Action, Status};
pub use store::{FileStore, MemoryStore, Store};
pub use strategy::{Strategy, NOT_IMPLEMENTED};
pub use views::migration_list_view;
