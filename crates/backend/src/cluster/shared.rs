//! What every routing task of one cluster endpoint shares: the endpoint's settings and the
//! current slot map, re-fetched (at most every 100 ms) when a redirect or a node failure says
//! it changed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::topology::{self, Topology};
use crate::conn::{spawn, ConnSpec};
use crate::{BackendError, ConnHandle, EndpointSpec};

/// Shortest time between two topology fetches.
const REFRESH_GAP: Duration = Duration::from_millis(100);

/// Settings and slot map of one cluster endpoint.
#[derive(Debug)]
pub(crate) struct ClusterShared {
    /// The seed node (the endpoint URL) and the credentials every node gets.
    pub spec: EndpointSpec,
    pub label: Arc<str>,
    pub connect_timeout: Duration,
    pub request_timeout: Option<Duration>,
    topo: Mutex<Option<Arc<Topology>>>,
    version: AtomicU64,
    last_fetch: Mutex<Option<Instant>>,
    last_error: Mutex<Option<BackendError>>,
    fetching: tokio::sync::Mutex<()>,
}

impl ClusterShared {
    pub(crate) fn new(
        spec: EndpointSpec,
        label: Arc<str>,
        connect_timeout: Duration,
        request_timeout: Option<Duration>,
    ) -> Arc<Self> {
        Arc::new(Self {
            spec,
            label,
            connect_timeout,
            request_timeout,
            topo: Mutex::new(None),
            version: AtomicU64::new(0),
            last_fetch: Mutex::new(None),
            last_error: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The slot map's version (0: none fetched yet).
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current slot map, if one was fetched.
    pub(crate) fn topology(&self) -> Option<Arc<Topology>> {
        self.topo.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Why the last fetch failed.
    pub(crate) fn last_error(&self) -> Option<BackendError> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fetches the slot map unless another caller just did (or is doing it now).
    pub(crate) async fn refresh(&self) {
        let seen = self.version();
        let _guard = self.fetching.lock().await;
        if self.version() != seen {
            return; // fetched while we waited
        }
        {
            let mut last = self.last_fetch.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < REFRESH_GAP) {
                return;
            }
            *last = Some(Instant::now());
        }
        // ask the known masters first, then the seed
        let mut addrs: Vec<String> = self
            .topology()
            .map(|t| t.masters.clone())
            .unwrap_or_default();
        if !addrs.contains(&self.spec.addr) {
            addrs.push(self.spec.addr.clone());
        }
        let mut error = None;
        for addr in addrs {
            match topology::fetch(&self.node_spec(&addr, false, &[])).await {
                Ok(t) => {
                    if t.unserved() > 0 {
                        tracing::warn!(endpoint = %self.label, unserved = t.unserved(), "cluster has slots no master serves");
                    }
                    *self.topo.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(t));
                    self.version.fetch_add(1, Ordering::AcqRel);
                    *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    return;
                }
                Err(e) => error = Some(e),
            }
        }
        if let Some(e) = error {
            tracing::warn!(endpoint = %self.label, error = %e, "cluster topology fetch failed");
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    }

    /// Starts a refresh in the background (a redirect or a failed node suggests a change).
    pub(crate) fn refresh_soon(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.refresh().await });
    }

    /// How to connect to node `addr`: the endpoint's credentials, `HELLO 3` for RESP3 tasks,
    /// and the client's state for dedicated ones.
    pub(crate) fn node_spec(
        &self,
        addr: &str,
        resp3: bool,
        client_init: &[Vec<Bytes>],
    ) -> ConnSpec {
        let (base, mut count) = self.spec.handshake();
        let mut init = BytesMut::from(&base[..]);
        if resp3 {
            godwit_resp::encode::command(&mut init, &["HELLO", "3"]);
            count += 1;
        }
        for cmd in client_init {
            godwit_resp::encode::command(&mut init, cmd);
            count += 1;
        }
        ConnSpec {
            addr: addr.to_string(),
            init: init.freeze(),
            init_count: count,
            dedicated: false,
            connect_timeout: self.connect_timeout,
            label: self.label.clone(),
            request_timeout: self.request_timeout,
        }
    }

    /// A connection task to node `addr`.
    pub(crate) fn connect_node(&self, addr: &str, mode: &super::Mode) -> ConnHandle {
        let mut spec = self.node_spec(addr, mode.resp3, mode.client_init.as_deref().unwrap_or(&[]));
        if mode.client_init.is_some() {
            spec.dedicated = true;
            spec.request_timeout = None;
        }
        spawn(Arc::new(spec))
    }
}
