//! Data and checks for the mover's cluster tests: a dataset of every type (TTLs, hash-tagged
//! keys, large encodings, a stream with a consumer group) as `(key, command)` pairs that fill a
//! standalone server or a cluster alike; an independent standalone-vs-cluster comparison (key
//! sets, DUMP payloads or logical content, PTTL) written without the mover's code; and slot
//! moves on a live cluster to provoke `MOVED` and `ASK`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::{Cmd, Value};

use crate::mover_common::{all_keys, content};
use godwit_tests::{key_slot, ClusterClient, RedisCluster};

fn c(key: &str, args: &[&str]) -> (Vec<u8>, Cmd) {
    let mut cmd = redis::cmd(args[0]);
    cmd.arg(&args[1..]);
    (key.as_bytes().to_vec(), cmd)
}

/// `n` keys cycling through strings, hashes, lists, sets, sorted sets, streams, integers and
/// hash-tagged strings (`{user:<i % 100>}:<i>`), a tenth with a TTL; four large keys (hashtable,
/// big set, long list, skiplist) and a consumer group on `stream:5`. `n + 4` keys in all.
pub fn dataset(n: usize) -> Vec<(Vec<u8>, Cmd)> {
    let mut out = Vec::with_capacity(n + 1300);
    for i in 0..n {
        let v = i.to_string();
        let key = match i % 8 {
            0 => format!("str:{i}"),
            1 => format!("hash:{i}"),
            2 => format!("list:{i}"),
            3 => format!("set:{i}"),
            4 => format!("zset:{i}"),
            5 => format!("stream:{i}"),
            6 => format!("int:{i}"),
            _ => format!("{{user:{}}}:{i}", i % 100),
        };
        let k = key.as_str();
        out.push(match i % 8 {
            0 => c(k, &["SET", k, &format!("value-{i}")]),
            1 => c(k, &["HSET", k, "a", &v, "b", "x"]),
            2 => c(k, &["RPUSH", k, "1", "2", "3"]),
            3 => c(k, &["SADD", k, "x", "y", "7"]),
            4 => c(k, &["ZADD", k, "1.5", "a", "2", "b"]),
            5 => c(k, &["XADD", k, "*", "f", &v]),
            6 => c(k, &["SET", k, &v]),
            _ => c(k, &["SET", k, &format!("tagged-{i}")]),
        });
        if i % 10 == 3 {
            out.push(c(k, &["PEXPIRE", k, &(600_000 + i).to_string()]));
        }
    }
    for j in 0..300 {
        let (f, m, e, z) = (
            format!("f{j}"),
            format!("m{j}"),
            format!("e{j}"),
            format!("z{j}"),
        );
        let v = j.to_string();
        out.push(c("big:hash", &["HSET", "big:hash", &f, &v]));
        out.push(c("big:set", &["SADD", "big:set", &m]));
        out.push(c("big:list", &["RPUSH", "big:list", &e]));
        out.push(c("big:zset", &["ZADD", "big:zset", &v, &z]));
    }
    if n > 5 {
        out.push(c("stream:5", &["XGROUP", "CREATE", "stream:5", "g1", "0"]));
    }
    out
}

/// How many keys [`dataset`] writes.
fn key_count(items: &[(Vec<u8>, Cmd)]) -> u64 {
    let mut keys: Vec<&Vec<u8>> = items.iter().map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    keys.len() as u64
}

/// Writes `items` to a standalone server in one pipeline; returns the number of keys.
pub async fn fill_single(
    c: &mut MultiplexedConnection,
    items: &[(Vec<u8>, Cmd)],
) -> anyhow::Result<u64> {
    let mut pipe = redis::pipe();
    for (_, cmd) in items {
        pipe.add_command(cmd.clone());
    }
    pipe.query_async::<()>(c).await?;
    Ok(key_count(items))
}

/// Writes `items` to a cluster (one pipeline per master); returns the number of keys.
pub async fn fill_cluster(c: &mut ClusterClient, items: &[(Vec<u8>, Cmd)]) -> anyhow::Result<u64> {
    let replies = c.pipeline(items).await?;
    if let Some(e) = replies.iter().find(|v| matches!(v, Value::ServerError(_))) {
        anyhow::bail!("filling the cluster: {e:?}");
    }
    Ok(key_count(items))
}

/// Compares a standalone server with a cluster key by key: the same key sets, equal DUMP
/// payloads (or equal content where only the encoding differs), PTTLs within `ttl_tol`.
/// Returns the differing keys with a reason, empty when identical.
pub async fn cluster_differences(
    single: &mut MultiplexedConnection,
    cluster: &mut ClusterClient,
    ttl_tol: Duration,
) -> anyhow::Result<Vec<String>> {
    let ka = all_keys(single).await?;
    let kb = cluster.all_keys().await?;
    let mut out = Vec::new();
    for k in ka.symmetric_difference(&kb) {
        out.push(format!("{} only on one side", String::from_utf8_lossy(k)));
    }
    let common: Vec<&Vec<u8>> = ka.intersection(&kb).collect();
    for chunk in common.chunks(500) {
        let mut pipe = redis::pipe();
        let mut items = Vec::with_capacity(chunk.len() * 2);
        for k in chunk {
            pipe.cmd("DUMP").arg(&k[..]).cmd("PTTL").arg(&k[..]);
            items.push(((*k).clone(), redis::cmd("DUMP").arg(&k[..]).clone()));
            items.push(((*k).clone(), redis::cmd("PTTL").arg(&k[..]).clone()));
        }
        let ra: Vec<(Option<Vec<u8>>, i64)> = pipe.query_async(single).await?;
        let rb = cluster.pipeline(&items).await?;
        for (i, (k, x)) in chunk.iter().zip(ra).enumerate() {
            let name = String::from_utf8_lossy(k);
            let dump: Option<Vec<u8>> =
                redis::from_redis_value(&rb[2 * i]).with_context(|| format!("DUMP {name}"))?;
            let pttl: i64 = redis::from_redis_value(&rb[2 * i + 1])?;
            // hashtable-encoded sets and hashes iterate in table order: compare content
            if x.0 != dump && content(single, k).await? != content(cluster.conn_for(k), k).await? {
                out.push(format!("{name}: value differs"));
            } else if (x.1 < 0) != (pttl < 0) || x.1.abs_diff(pttl) > ttl_tol.as_millis() as u64 {
                out.push(format!("{name}: pttl {} vs {pttl}", x.1));
            }
        }
    }
    Ok(out)
}

/// Moves slots between the masters of a live cluster (the documented `SETSLOT` sequence).
pub struct Slots {
    ids: HashMap<u16, String>,
    ports: Vec<u16>,
}

impl Slots {
    /// Reads every node's id.
    pub async fn new(cluster: &RedisCluster) -> anyhow::Result<Slots> {
        let mut ids = HashMap::new();
        for port in cluster.ports() {
            let id: String = redis::cmd("CLUSTER")
                .arg("MYID")
                .query_async(&mut conn(port).await?)
                .await?;
            ids.insert(port, id);
        }
        Ok(Slots {
            ids,
            ports: cluster.ports(),
        })
    }

    /// A connection to the node on `port`.
    pub async fn conn(&self, port: u16) -> anyhow::Result<MultiplexedConnection> {
        conn(port).await
    }

    /// A key `prefix:<n>` whose slot the node on `port` serves and holds no key in.
    pub async fn empty_key_on(&self, port: u16, prefix: &str) -> anyhow::Result<String> {
        let mut c = conn(port).await?;
        for n in 0..100_000 {
            let key = format!("{prefix}:{n}");
            // a node not serving the slot answers MOVED
            let exists: Result<i64, _> = redis::cmd("EXISTS").arg(&key).query_async(&mut c).await;
            let count: i64 = redis::cmd("CLUSTER")
                .arg("COUNTKEYSINSLOT")
                .arg(key_slot(key.as_bytes()))
                .query_async(&mut c)
                .await?;
            if exists.is_ok() && count == 0 {
                return Ok(key);
            }
        }
        anyhow::bail!("no empty slot on {port}")
    }

    /// Starts moving the (empty) slot of `key` from `from` to `to` (IMPORTING on `to`,
    /// MIGRATING on `from`); with `finish`, also assigns it to `to` everywhere.
    pub async fn migrate_empty_slot(
        &self,
        key: &[u8],
        from: u16,
        to: u16,
        finish: bool,
    ) -> anyhow::Result<()> {
        let slot = key_slot(key);
        self.setslot(to, slot, "IMPORTING", &self.ids[&from])
            .await?;
        self.setslot(from, slot, "MIGRATING", &self.ids[&to])
            .await?;
        if finish {
            self.finish_migration(key, to).await?;
        }
        Ok(())
    }

    /// Assigns the slot of `key` to `to` on every node (the new owner first).
    pub async fn finish_migration(&self, key: &[u8], to: u16) -> anyhow::Result<()> {
        let slot = key_slot(key);
        self.setslot(to, slot, "NODE", &self.ids[&to]).await?;
        for &p in self.ports.iter().filter(|p| **p != to) {
            self.setslot(p, slot, "NODE", &self.ids[&to]).await?;
        }
        Ok(())
    }

    async fn setslot(&self, port: u16, slot: u16, state: &str, id: &str) -> anyhow::Result<()> {
        let () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id)
            .query_async(&mut conn(port).await?)
            .await
            .with_context(|| format!("CLUSTER SETSLOT {slot} {state} on {port}"))?;
        Ok(())
    }
}

async fn conn(port: u16) -> anyhow::Result<MultiplexedConnection> {
    Ok(redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_multiplexed_async_connection()
        .await?)
}

/// How many `code` errors the server replied (`INFO errorstats`).
pub async fn errorstat(c: &mut MultiplexedConnection, code: &str) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("errorstats").query_async(c).await?;
    let prefix = format!("errorstat_{code}:count=");
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.split(',').next()?.trim().parse().ok())
        .unwrap_or(0))
}
