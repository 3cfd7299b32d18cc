//! `ClusterClient`: a deliberately small slot-aware test client for a [`crate::RedisCluster`]:
//! one multiplexed connection per master, commands routed by the slot of the key the test
//! names (CRC16-XMODEM of the `{hash tag}`, modulo 16384), pipelines split per master with the
//! replies put back in order, and whole-cluster `DBSIZE`/`SCAN`. It routes by the slot map the
//! fixture agreed at start-up and does not follow redirects (tests do not reshard), so it stays
//! independent of the code under test.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Context};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, Value};

/// `(first slot, last slot, master port)`.
pub type SlotRange = (u16, u16, u16);

/// The Redis Cluster slot of `key`: CRC16-XMODEM of its hash tag (the bytes between the first
/// `{` and the next `}`, when not empty) or of the whole key, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let len = key[open + 1..].iter().position(|&b| b == b'}')?;
        (len > 0).then(|| &key[open + 1..open + 1 + len])
    });
    crc16(tagged.unwrap_or(key)) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |mut crc, &b| {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// One connection per master, routed by key slot.
pub struct ClusterClient {
    /// By port.
    conns: BTreeMap<u16, MultiplexedConnection>,
    slots: Vec<SlotRange>,
}

impl ClusterClient {
    /// Connects to every port of `slots` (and of `ports`).
    pub async fn connect(ports: &[u16], slots: Vec<SlotRange>) -> anyhow::Result<ClusterClient> {
        let mut conns = BTreeMap::new();
        let all: BTreeSet<u16> = ports
            .iter()
            .copied()
            .chain(slots.iter().map(|r| r.2))
            .collect();
        for port in all {
            let c = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
                .get_multiplexed_async_connection()
                .await
                .with_context(|| format!("connect to cluster node {port}"))?;
            conns.insert(port, c);
        }
        Ok(ClusterClient { conns, slots })
    }

    /// The port of the master owning `key`.
    pub fn port_for_key(&self, key: &[u8]) -> u16 {
        let slot = key_slot(key);
        self.slots
            .iter()
            .find(|r| r.0 <= slot && slot <= r.1)
            .map(|r| r.2)
            .unwrap_or_else(|| panic!("slot {slot} not covered by {:?}", self.slots))
    }

    /// The connection to the master owning `key`.
    pub fn conn_for(&mut self, key: &[u8]) -> &mut MultiplexedConnection {
        let port = self.port_for_key(key);
        self.conns.get_mut(&port).expect("a connection per master")
    }

    /// The connection to every master, by port.
    pub fn masters(&mut self) -> impl Iterator<Item = (&u16, &mut MultiplexedConnection)> {
        let masters: BTreeSet<u16> = self.slots.iter().map(|r| r.2).collect();
        self.conns
            .iter_mut()
            .filter(move |(p, _)| masters.contains(p))
    }

    /// Runs `cmd`, whose key is `key`, on the master owning `key`.
    pub async fn query<T: FromRedisValue>(
        &mut self,
        key: &[u8],
        cmd: &redis::Cmd,
    ) -> anyhow::Result<T> {
        Ok(cmd.query_async(self.conn_for(key)).await?)
    }

    /// Runs `(key, command)` pairs as one pipeline per master (concurrently); the replies come
    /// back in the order of `items`, error replies included as values.
    pub async fn pipeline(
        &mut self,
        items: &[(Vec<u8>, redis::Cmd)],
    ) -> anyhow::Result<Vec<Value>> {
        let mut per_node: BTreeMap<u16, (redis::Pipeline, Vec<usize>)> = BTreeMap::new();
        for (i, (key, cmd)) in items.iter().enumerate() {
            let (pipe, idx) = per_node.entry(self.port_for_key(key)).or_default();
            pipe.add_command(cmd.clone());
            idx.push(i);
        }
        let mut set = tokio::task::JoinSet::new();
        for (port, (pipe, idx)) in per_node {
            let mut c = self.conns[&port].clone();
            set.spawn(async move {
                let replies = c.send_packed_commands(&pipe, 0, idx.len()).await;
                (port, idx, replies)
            });
        }
        let mut out = vec![Value::Nil; items.len()];
        while let Some(joined) = set.join_next().await {
            let (port, idx, replies) = joined?;
            let replies = replies.with_context(|| format!("pipeline on node {port}"))?;
            for (i, v) in idx.into_iter().zip(replies) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// The sum of `DBSIZE` over the masters.
    pub async fn dbsize(&mut self) -> anyhow::Result<u64> {
        let mut total = 0;
        for (_, c) in self.masters() {
            total += redis::cmd("DBSIZE").query_async::<u64>(c).await?;
        }
        Ok(total)
    }

    /// Every key of every master (full `SCAN` of each).
    pub async fn all_keys(&mut self) -> anyhow::Result<BTreeSet<Vec<u8>>> {
        let mut out = BTreeSet::new();
        for (_, c) in self.masters() {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(c)
                    .await?;
                out.extend(keys);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// `DUMP key` and `PTTL key` from the owning master (`None`/-2 when the key is missing).
    pub async fn dump_pttl(&mut self, key: &[u8]) -> anyhow::Result<(Option<Vec<u8>>, i64)> {
        let c = self.conn_for(key);
        redis::pipe()
            .cmd("DUMP")
            .arg(key)
            .cmd("PTTL")
            .arg(key)
            .query_async(c)
            .await
            .map_err(|e| anyhow!("DUMP/PTTL {}: {e}", String::from_utf8_lossy(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis_cluster() {
        let cases: &[(&[u8], u16)] = &[
            (b"", 0),
            (b"foo", 12182),
            (b"123456789", 12739),
            (b"{user1000}.following", key_slot(b"user1000")),
            (b"{user1000}.followers", key_slot(b"user1000")),
            (b"foo{}{bar}", key_slot(b"foo{}{bar}")),
            (b"foo{{bar}}zap", key_slot(b"{bar")),
            (b"foo{bar}{zap}", key_slot(b"bar")),
        ];
        for (key, slot) in cases {
            assert_eq!(key_slot(key), *slot, "{}", String::from_utf8_lossy(key));
        }
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    }
}
