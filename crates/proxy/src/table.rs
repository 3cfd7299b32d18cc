//! What every client task shares: the one routing/backends table and the limits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use arc_swap::ArcSwap;
use godwit_backend::Pool;
use godwit_router::{Id, RoutingTable};

/// One immutable version of everything routing needs: the routing table and a pool for every
/// endpoint it names. Swapped whole; its single writer is the control plane (through the app).
#[derive(Debug, Default)]
pub struct DataTable {
    /// Routes per interlay.
    pub routing: RoutingTable,
    /// Backend pool per endpoint id.
    pub pools: HashMap<Id, Arc<Pool>>,
}

/// Limits that protect the proxy (SPEC §4.1).
#[derive(Debug, Clone, Copy)]
pub struct ProxyLimits {
    /// Client connections across all interlays; more are refused with `-ERR max number of
    /// clients reached`.
    pub max_clients: usize,
    /// Largest request accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Requests in flight per client; the proxy stops reading a client that has more.
    pub max_pipeline: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        Self {
            max_clients: 10_000,
            max_frame_bytes: 512 * 1024 * 1024,
            max_pipeline: 1024,
        }
    }
}

/// State shared by every listener and client task of a process.
#[derive(Debug)]
pub struct ProxyShared {
    /// The one table; read with one `load()` per command.
    pub table: ArcSwap<DataTable>,
    /// Limits.
    pub limits: ProxyLimits,
    /// Per-migration reports (dual-write failures, shadow mismatches) and the write observer.
    pub reports: crate::Reports,
    pub(crate) next_conn_id: AtomicU64,
    pub(crate) clients: AtomicUsize,
}

impl ProxyShared {
    /// Shared state with an empty table.
    pub fn new(limits: ProxyLimits) -> Arc<Self> {
        Arc::new(Self {
            table: ArcSwap::from_pointee(DataTable::default()),
            limits,
            reports: crate::Reports::default(),
            next_conn_id: AtomicU64::new(1),
            clients: AtomicUsize::new(0),
        })
    }

    /// Client connections open now.
    pub fn client_count(&self) -> usize {
        self.clients.load(std::sync::atomic::Ordering::Relaxed)
    }
}
