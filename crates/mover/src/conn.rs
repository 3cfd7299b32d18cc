//! `Conn`: one side of a copy or a verification, a standalone Redis or a Redis Cluster,
//! detected after connecting (`INFO cluster` says `cluster_enabled:1`). The standalone calls
//! are exactly the ones of `io` (one Lua read and one write pipeline per batch); the cluster
//! calls route by key slot (see `cluster`). Callers never see the difference.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{Cmd, IntoConnectionInfo, Value};

use crate::cluster::{self, ClusterConn};
use crate::error::{MoverError, Side};
use crate::io::{self, Entry, Outcome, WriteMode};
use crate::raw::RawConn;

/// The lazily opened raw connection of a standalone side (shared by clones; reopened after an
/// error).
#[derive(Clone)]
pub(crate) struct Raw(Arc<RawSlot>);

struct RawSlot {
    info: redis::ConnectionInfo,
    side: Side,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<RawConn>>,
}

impl Raw {
    fn new(info: redis::ConnectionInfo, side: Side, timeout: Duration) -> Raw {
        Raw(Arc::new(RawSlot {
            info,
            side,
            timeout,
            conn: tokio::sync::Mutex::new(None),
        }))
    }

    async fn read(&self, keys: &[Bytes]) -> Result<Vec<Entry>, MoverError> {
        let mut slot = self.0.conn.lock().await;
        let r = match self.open(&mut slot).await? {
            Some(c) => c.read(keys).await,
            None => return Err(self.unsupported()),
        };
        if r.is_err() {
            *slot = None;
        }
        r
    }

    async fn write(&self, entries: &[Entry], mode: WriteMode) -> Result<Vec<Outcome>, MoverError> {
        let mut slot = self.0.conn.lock().await;
        let r = match self.open(&mut slot).await? {
            Some(c) => c.write(entries, mode).await,
            None => return Err(self.unsupported()),
        };
        if r.is_err() {
            *slot = None;
        }
        r
    }

    async fn open<'a>(
        &self,
        slot: &'a mut Option<RawConn>,
    ) -> Result<Option<&'a mut RawConn>, MoverError> {
        if slot.is_none() {
            *slot = RawConn::connect(&self.0.info, self.0.side, self.0.timeout).await?;
        }
        Ok(slot.as_mut())
    }

    fn unsupported(&self) -> MoverError {
        MoverError::Refused {
            side: self.0.side,
            message: "only TCP endpoints are supported".into(),
        }
    }
}

/// A connection to one side. Cloning is cheap (multiplexed connections are shared).
#[derive(Clone)]
pub(crate) enum Conn {
    /// A standalone Redis (the URL's database); the copy's reads and writes use the raw path.
    Single(MultiplexedConnection, Side, Raw),
    /// A Redis Cluster reached through the URL of any of its nodes.
    Cluster(ClusterConn),
}

impl Conn {
    /// Connects to `url` (with connect and response timeouts) and finds out whether it is a
    /// cluster node; for a cluster, connects to every master.
    pub(crate) async fn connect(
        url: &str,
        side: Side,
        timeout: Duration,
    ) -> Result<Conn, MoverError> {
        let info = url
            .into_connection_info()
            .map_err(|e| MoverError::Url(e.to_string()))?;
        let mut c = io::connect(info.clone(), side, timeout).await?;
        if cluster::enabled(&mut c, side).await? {
            Ok(Conn::Cluster(
                ClusterConn::connect(info, c, side, timeout).await?,
            ))
        } else {
            Ok(Conn::Single(c, side, Raw::new(info, side, timeout)))
        }
    }

    /// `DBSIZE` (summed over the masters of a cluster).
    pub(crate) async fn dbsize(&mut self) -> Result<u64, MoverError> {
        match self {
            Conn::Single(c, side, _) => io::dbsize(c, *side).await,
            Conn::Cluster(c) => c.dbsize().await,
        }
    }

    /// One SCAN step: the next cursor (0 at the end) and the keys. On a cluster the cursor
    /// packs the master's index and its own cursor.
    pub(crate) async fn scan(
        &mut self,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>), MoverError> {
        match self {
            Conn::Single(c, side, _) => io::scan(c, *side, cursor, count).await,
            Conn::Cluster(c) => c.scan(cursor, count).await,
        }
    }

    /// PTTL + DUMP of `keys`, in order.
    pub(crate) async fn read(&mut self, keys: &[Bytes]) -> Result<Vec<Entry>, MoverError> {
        match self {
            Conn::Single(_, _, raw) => raw.read(keys).await,
            Conn::Cluster(c) => c.read(keys).await,
        }
    }

    /// Writes `entries`; one outcome per entry, in order.
    pub(crate) async fn write(
        &mut self,
        entries: &[Entry],
        mode: WriteMode,
    ) -> Result<Vec<Outcome>, MoverError> {
        match self {
            Conn::Single(c, _, _) if mode == WriteMode::Merge => io::write(c, entries, mode).await,
            Conn::Single(_, _, raw) => raw.write(entries, mode).await,
            Conn::Cluster(c) => c.write(entries, mode).await,
        }
    }

    /// Whether each of `keys` exists.
    pub(crate) async fn exists(&mut self, keys: &[Bytes]) -> Result<Vec<bool>, MoverError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Conn::Single(c, side, _) => {
                let mut pipe = redis::pipe();
                for k in keys {
                    pipe.cmd("EXISTS").arg(&k[..]);
                }
                let n: Vec<i64> = pipe
                    .query_async(c)
                    .await
                    .map_err(|e| MoverError::from_redis(*side, e))?;
                Ok(n.into_iter().map(|n| n > 0).collect())
            }
            Conn::Cluster(c) => c.exists(keys).await,
        }
    }

    /// Up to `n` random keys (`RANDOMKEY`), sorted and without duplicates.
    pub(crate) async fn random_keys(&mut self, n: usize) -> Result<Vec<Bytes>, MoverError> {
        let mut keys = match self {
            Conn::Single(c, side, _) => {
                let mut pipe = redis::pipe();
                for _ in 0..n {
                    pipe.cmd("RANDOMKEY");
                }
                let keys: Vec<Option<Vec<u8>>> = pipe
                    .query_async(c)
                    .await
                    .map_err(|e| MoverError::from_redis(*side, e))?;
                keys.into_iter().flatten().map(Bytes::from).collect()
            }
            Conn::Cluster(c) => c.random_keys(n).await?,
        };
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Runs `cmd`, a command whose key is `key` (on the key's master in a cluster); an error
    /// reply is an error.
    pub(crate) async fn query_key(&mut self, key: &[u8], cmd: &Cmd) -> Result<Value, MoverError> {
        match self {
            Conn::Single(c, side, _) => cmd
                .query_async(c)
                .await
                .map_err(|e| MoverError::from_redis(*side, e)),
            Conn::Cluster(c) => c.query_key(key, cmd).await,
        }
    }

    /// The side this connection is on.
    pub(crate) fn side(&self) -> Side {
        match self {
            Conn::Single(_, side, _) => *side,
            Conn::Cluster(c) => c.side(),
        }
    }
}
