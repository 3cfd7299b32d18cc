//! The routing table: what every interlay serves, swapped whole by its one writer (`control`).
//!
//! The proxy holds it in one `ArcSwap`, does one `load()` per command and never mutates it.
//! Endpoints are referred to by id; the proxy maps ids to backend pools.

use std::collections::HashMap;
use std::sync::Arc;

use crate::strategy::Rule;

/// A shared, cheap-to-clone identifier (endpoint, interlay or migration id).
pub type Id = Arc<str>;

/// One immutable version of the routing state of a process.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    /// Monotonic version; the proxy compares it to notice a swap.
    pub version: u64,
    /// Route of every interlay, by interlay id.
    pub interlays: HashMap<Id, InterlayRoute>,
}

impl RoutingTable {
    /// The route of an interlay, if the table knows it.
    pub fn interlay(&self, id: &str) -> Option<&InterlayRoute> {
        self.interlays.get(id)
    }
}

/// What one interlay serves.
#[derive(Debug, Clone)]
pub struct InterlayRoute {
    /// The interlay's own endpoint (the "old" side while a migration holds the interlay).
    pub endpoint: Id,
    /// The migration holding this interlay, if one is running.
    pub migration: Option<MigrationRoute>,
}

impl InterlayRoute {
    /// A route that serves everything from `endpoint`.
    pub fn direct(endpoint: impl Into<Id>) -> Self {
        Self {
            endpoint: endpoint.into(),
            migration: None,
        }
    }
}

/// The part of a running migration that per-request routing needs, compiled by `control`.
#[derive(Debug, Clone)]
pub struct MigrationRoute {
    /// Migration id (for metrics, reports and dirty-key marking).
    pub id: Id,
    /// The endpoint data moves to ("new").
    pub target: Id,
    /// Everything is served by the target only (switched over, not yet completed).
    pub serve_new: bool,
    /// Paused: reads from old, writes dual old-authoritative, whatever the rule says.
    pub paused: bool,
    /// The data copy is running: keys written through the proxy must be reported so the
    /// copy re-copies them after the write (convergence).
    pub copying: bool,
    /// The copy reads the target and writes the source (a rollback's copy back): a written key
    /// is re-copied from the target side.
    pub copy_from_new: bool,
    /// The strategy, compiled for this proxy instance.
    pub rule: Rule,
}

impl MigrationRoute {
    /// A route for migration `id` to `target` under `rule`, not paused, not copying.
    pub fn new(id: impl Into<Id>, target: impl Into<Id>, rule: Rule) -> Self {
        Self {
            id: id.into(),
            target: target.into(),
            serve_new: false,
            paused: false,
            copying: false,
            copy_from_new: false,
            rule,
        }
    }
}
