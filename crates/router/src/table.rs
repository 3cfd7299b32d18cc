//! The routing table: what every interlay serves, swapped whole by its one writer (`control`).
//!
//! The proxy holds it in one `ArcSwap`, does one `load()` per command and never mutates it.
//! Endpoints are referred to by id; the proxy maps ids to backend pools.

use std::collections::HashMap;
use std::sync::Arc;

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

/// The part of a migration that per-request routing needs (filled in by the routing-engine work).
#[derive(Debug, Clone)]
pub struct MigrationRoute {
    /// Migration id (for metrics and reports).
    pub id: Id,
    /// The endpoint data moves to ("new").
    pub target: Id,
    /// True once every request is served by the target (after cutover/completion).
    pub serve_new: bool,
}
