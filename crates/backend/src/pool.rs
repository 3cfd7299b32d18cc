//! A pool for one endpoint: a few shared pipelined connections, plus dedicated connections on
//! demand for clients whose state cannot be shared.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::cluster::{ClusterShared, Mode};
use crate::conn::{spawn, ConnSpec};
use crate::{BackendError, ConnHandle, EndpointSpec};

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Shared connections (clients are spread over them by connection id).
    pub shared_connections: usize,
    /// TCP connect + handshake timeout.
    pub connect_timeout: Duration,
    /// Longest wait for a reply on a shared connection before its pending requests fail and it
    /// reconnects (`None`: wait forever). Dedicated connections never time out.
    pub request_timeout: Option<Duration>,
    /// The endpoint is a Redis Cluster: its URL names a seed node, and commands are routed by
    /// slot (see the `cluster` module).
    pub cluster: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            shared_connections: 1,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Some(Duration::from_secs(10)),
            cluster: false,
        }
    }
}

/// Connections to one endpoint. Must be created inside a tokio runtime.
#[derive(Debug)]
pub struct Pool {
    spec: EndpointSpec,
    label: Arc<str>,
    opts: PoolOptions,
    /// Shared connections speaking RESP2 (`[0]`) and RESP3 (`[1]`, after `HELLO 3`); for a
    /// cluster, routing tasks that look like connections.
    shared: [Vec<ConnHandle>; 2],
    cluster: Option<Arc<ClusterShared>>,
}

impl Pool {
    /// A pool for the endpoint at `url`; connections open lazily on first use. Metrics are
    /// labelled with the endpoint's address.
    pub fn new(url: &str, opts: PoolOptions) -> Result<Arc<Self>, BackendError> {
        let spec = EndpointSpec::parse(url)?;
        let label = Arc::from(spec.addr.as_str());
        Self::build(spec, label, opts)
    }

    /// A pool for endpoint `id` at `url`; metrics are labelled `endpoint = id`.
    pub fn labeled(id: &str, url: &str, opts: PoolOptions) -> Result<Arc<Self>, BackendError> {
        let spec = EndpointSpec::parse(url)?;
        Self::build(spec, Arc::from(id), opts)
    }

    fn build(
        spec: EndpointSpec,
        label: Arc<str>,
        opts: PoolOptions,
    ) -> Result<Arc<Self>, BackendError> {
        if opts.cluster {
            return Ok(Self::build_cluster(spec, label, opts));
        }
        let (init, init_count) = spec.handshake();
        let mut init3 = BytesMut::from(&init[..]);
        godwit_resp::encode::command(&mut init3, &["HELLO", "3"]);
        let init3 = init3.freeze();
        let conns = |init: &Bytes, count: u32| -> Vec<ConnHandle> {
            (0..opts.shared_connections.max(1))
                .map(|_| {
                    spawn(Arc::new(ConnSpec {
                        addr: spec.addr.clone(),
                        init: init.clone(),
                        init_count: count,
                        dedicated: false,
                        connect_timeout: opts.connect_timeout,
                        label: label.clone(),
                        request_timeout: opts.request_timeout,
                    }))
                })
                .collect()
        };
        // connections open lazily: the RESP3 set costs nothing until a RESP3 client uses it
        let shared = [conns(&init, init_count), conns(&init3, init_count + 1)];
        Ok(Arc::new(Self {
            spec,
            opts,
            shared,
            label,
            cluster: None,
        }))
    }

    fn build_cluster(spec: EndpointSpec, label: Arc<str>, opts: PoolOptions) -> Arc<Self> {
        let cluster = ClusterShared::new(
            spec.clone(),
            label.clone(),
            opts.connect_timeout,
            opts.request_timeout,
        );
        let tasks = |resp3: bool| -> Vec<ConnHandle> {
            (0..opts.shared_connections.max(1))
                .map(|_| {
                    let mode = Mode {
                        resp3,
                        client_init: None,
                    };
                    crate::cluster::spawn(cluster.clone(), mode)
                })
                .collect()
        };
        let shared = [tasks(false), tasks(true)];
        Arc::new(Self {
            spec,
            label,
            opts,
            shared,
            cluster: Some(cluster),
        })
    }

    /// True for a Redis Cluster endpoint.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The endpoint this pool connects to.
    pub fn spec(&self) -> &EndpointSpec {
        &self.spec
    }

    /// The shared RESP2 connection for client `conn_id` (always the same one for the same id,
    /// so one client's requests stay in order).
    #[inline]
    pub fn shared(&self, conn_id: u64) -> &ConnHandle {
        self.shared_for(conn_id, false)
    }

    /// The shared connection for client `conn_id` speaking the client's protocol: RESP3
    /// clients share connections that said `HELLO 3`, so their replies keep RESP3 types.
    #[inline]
    pub fn shared_for(&self, conn_id: u64, resp3: bool) -> &ConnHandle {
        let set = &self.shared[usize::from(resp3)];
        &set[(conn_id % set.len() as u64) as usize]
    }

    /// A new connection owned by one client. `client_init` holds commands restoring the client's
    /// state (SELECT, CLIENT SETNAME, ...), each as an argument list; their replies are checked
    /// and dropped.
    pub fn dedicated(&self, client_init: &[Vec<Bytes>]) -> ConnHandle {
        if let Some(c) = &self.cluster {
            // RESP3 is in the client's init (HELLO 3) like any other state
            let mode = Mode {
                resp3: false,
                client_init: Some(client_init.to_vec()),
            };
            return crate::cluster::spawn(c.clone(), mode);
        }
        let (base, mut count) = self.spec.handshake();
        let mut init = BytesMut::from(&base[..]);
        for cmd in client_init {
            godwit_resp::encode::command(&mut init, cmd);
            count += 1;
        }
        spawn(Arc::new(ConnSpec {
            addr: self.spec.addr.clone(),
            init: init.freeze(),
            init_count: count,
            dedicated: true,
            connect_timeout: self.opts.connect_timeout,
            label: self.label.clone(),
            request_timeout: None,
        }))
    }
}

impl Pool {
    /// A raw, handshaken TCP connection for a client that leaves request/reply mode (pub/sub):
    /// the proxy then copies bytes both ways.
    pub async fn raw(
        &self,
        client_init: &[Vec<Bytes>],
    ) -> Result<tokio::net::TcpStream, BackendError> {
        let (base, mut count) = self.spec.handshake();
        let mut init = BytesMut::from(&base[..]);
        for cmd in client_init {
            godwit_resp::encode::command(&mut init, cmd);
            count += 1;
        }
        let spec = ConnSpec {
            addr: self.spec.addr.clone(),
            init: init.freeze(),
            init_count: count,
            dedicated: true,
            connect_timeout: self.opts.connect_timeout,
            label: self.label.clone(),
            request_timeout: None,
        };
        crate::conn::connect(&spec).await
    }
}
