//! A Redis Cluster as one side of a copy or a verification: the master slot map from
//! `CLUSTER SLOTS`, one multiplexed connection per master (URL = the seed URL's credentials
//! with the node's host:port), and the mover's calls spread over the masters: SCAN walks the
//! masters one after another (node index and node cursor packed into one `u64` cursor),
//! `DBSIZE` sums them, and key commands go to the owning master as one pipeline per node (see
//! `route`), following `MOVED`/`ASK` redirects.

mod route;
mod slots;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, ConnectionInfo, Value};

use crate::error::{MoverError, Side};
use crate::io;
pub(crate) use slots::key_slot;
use slots::{decode_cursor, encode_cursor, parse_cluster_slots, split_addr, SlotMap};

/// Connections to the masters of one cluster. Cloning shares the slot map and clones the
/// (multiplexed) connections.
#[derive(Clone)]
pub(crate) struct ClusterConn {
    side: Side,
    timeout: Duration,
    /// The seed URL's connection info: credentials, db and TLS settings for every node.
    seed: Arc<ConnectionInfo>,
    map: Arc<SlotMap>,
    /// By `host:port`: the masters, and nodes a redirect pointed to.
    conns: HashMap<String, MultiplexedConnection>,
}

impl ClusterConn {
    /// Reads the slot map through `seed_conn` (a connection to the seed URL of a node with
    /// `cluster_enabled:1`) and connects to every master.
    pub(crate) async fn connect(
        seed: ConnectionInfo,
        mut seed_conn: MultiplexedConnection,
        side: Side,
        timeout: Duration,
    ) -> Result<ClusterConn, MoverError> {
        let host = match &seed.addr {
            ConnectionAddr::Tcp(h, _) | ConnectionAddr::TcpTls { host: h, .. } => h.clone(),
            ConnectionAddr::Unix(_) => "127.0.0.1".to_string(),
        };
        let map = slot_map(&mut seed_conn, side, &host).await?;
        let mut c = ClusterConn {
            side,
            timeout,
            seed: Arc::new(seed),
            map: Arc::new(map),
            conns: HashMap::new(),
        };
        for addr in c.map.masters.clone() {
            c.node(&addr).await?;
        }
        tracing::debug!(%side, masters = ?c.map.masters, "cluster mode");
        Ok(c)
    }

    /// The side this cluster is on.
    pub(crate) fn side(&self) -> Side {
        self.side
    }

    /// The connection to `addr`, opened on first use.
    async fn node(&mut self, addr: &str) -> Result<MultiplexedConnection, MoverError> {
        if let Some(c) = self.conns.get(addr) {
            return Ok(c.clone());
        }
        let (host, port) = split_addr(addr).ok_or_else(|| MoverError::Protocol {
            side: self.side,
            message: format!("bad node address {addr:?}"),
        })?;
        let addr_info = match &self.seed.addr {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        let info = ConnectionInfo {
            addr: addr_info,
            redis: self.seed.redis.clone(),
        };
        let c = io::connect(info, self.side, self.timeout).await?;
        self.conns.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Re-reads the slot map from the first master that answers (after a `MOVED`).
    async fn refresh(&mut self) -> Result<(), MoverError> {
        let mut last = None;
        for addr in self.map.masters.clone() {
            let host = split_addr(&addr).map(|a| a.0).unwrap_or_default();
            let fresh = match self.node(&addr).await {
                Ok(mut c) => slot_map(&mut c, self.side, &host).await,
                Err(e) => Err(e),
            };
            match fresh {
                Ok(map) => {
                    tracing::debug!(side = %self.side, masters = ?map.masters, "slot map refreshed");
                    self.map = Arc::new(map);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| MoverError::Unreachable {
            side: self.side,
            message: "no cluster master answered".into(),
        }))
    }

    /// The sum of `DBSIZE` over the masters.
    pub(crate) async fn dbsize(&mut self) -> Result<u64, MoverError> {
        let mut total = 0;
        for addr in self.map.masters.clone() {
            let mut c = self.node(&addr).await?;
            total += io::dbsize(&mut c, self.side).await?;
        }
        Ok(total)
    }

    /// One SCAN step over the whole cluster: masters in address order, each scanned to its
    /// end; `cursor` packs the master's index and its own cursor (0 = start, 0 again = end).
    pub(crate) async fn scan(
        &mut self,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>), MoverError> {
        let masters = self.map.masters.clone();
        let (mut node, mut at) = decode_cursor(cursor);
        if node >= masters.len() {
            // the cluster has fewer masters than when the checkpoint was taken: start over
            tracing::warn!(side = %self.side, node, "scan cursor names an unknown master; rescanning");
            (node, at) = (0, 0);
        }
        let mut c = self.node(&masters[node]).await?;
        let (next, keys) = io::scan(&mut c, self.side, at, count).await?;
        let encoded = match (next, node + 1 < masters.len()) {
            (0, true) => encode_cursor(node + 1, 0),
            (0, false) => Some(0),
            (n, _) => encode_cursor(node, n),
        };
        let encoded = encoded.ok_or_else(|| MoverError::Protocol {
            side: self.side,
            message: format!(
                "SCAN cursor {next} of {} too large to encode",
                masters[node]
            ),
        })?;
        Ok((encoded, keys))
    }

    /// `n` random keys, spread evenly over the masters (`RANDOMKEY` on each).
    pub(crate) async fn random_keys(&mut self, n: usize) -> Result<Vec<Bytes>, MoverError> {
        let masters = self.map.masters.clone();
        let mut out = Vec::with_capacity(n);
        for (i, addr) in masters.iter().enumerate() {
            let share = n / masters.len() + usize::from(i < n % masters.len());
            if share == 0 {
                continue;
            }
            let mut pipe = redis::pipe();
            for _ in 0..share {
                pipe.cmd("RANDOMKEY");
            }
            let mut c = self.node(addr).await?;
            let keys: Vec<Option<Vec<u8>>> = pipe
                .query_async(&mut c)
                .await
                .map_err(|e| MoverError::from_redis(self.side, e))?;
            out.extend(keys.into_iter().flatten().map(Bytes::from));
        }
        Ok(out)
    }
}

/// `CLUSTER SLOTS` through `c` (on a node of host `host`) as a slot map.
async fn slot_map(
    c: &mut MultiplexedConnection,
    side: Side,
    host: &str,
) -> Result<SlotMap, MoverError> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(c)
        .await
        .map_err(|e| MoverError::from_redis(side, e))?;
    let ranges = parse_cluster_slots(&reply, host)
        .map_err(|message| MoverError::Protocol { side, message })?;
    if ranges.is_empty() {
        return Err(MoverError::Unreachable {
            side,
            message: "the cluster serves no slots".into(),
        });
    }
    let map = SlotMap::new(&ranges);
    if map.covered() < slots::SLOTS {
        // keys of the uncovered slots get CLUSTERDOWN, which is retried
        tracing::warn!(%side, covered = map.covered(), "the cluster does not cover every slot");
    }
    Ok(map)
}

/// Whether the server behind `c` runs in cluster mode (`INFO cluster` says
/// `cluster_enabled:1`). A server refusing `INFO` is taken as standalone.
pub(crate) async fn enabled(c: &mut MultiplexedConnection, side: Side) -> Result<bool, MoverError> {
    let info: Result<String, _> = redis::cmd("INFO").arg("cluster").query_async(c).await;
    match info {
        Ok(text) => Ok(text.lines().any(|l| l.trim() == "cluster_enabled:1")),
        Err(e)
            if e.kind() == redis::ErrorKind::ResponseError
                || e.kind() == redis::ErrorKind::ExtensionError =>
        {
            Ok(false)
        }
        Err(e) => Err(MoverError::from_redis(side, e)),
    }
}

#[cfg(test)]
#[path = "cluster/fake_tests.rs"]
mod fake_tests;
