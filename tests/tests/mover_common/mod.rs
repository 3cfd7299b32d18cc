//! Helpers shared by the mover e2e tests: filling a Redis with every type, and an independent
//! full comparison of two servers (DUMP of every key + PTTL), written without the mover's code.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// Writes `n` keys of every type (strings, hashes small and large, lists, sets, zsets,
/// streams), a tenth of them with a TTL.
pub async fn fill_all_types(c: &mut MultiplexedConnection, n: usize) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    for i in 0..n {
        match i % 7 {
            0 => pipe
                .cmd("SET")
                .arg(format!("str:{i}"))
                .arg(format!("value-{i}")),
            1 => pipe
                .cmd("HSET")
                .arg(format!("hash:{i}"))
                .arg("a")
                .arg(i)
                .arg("b")
                .arg("x"),
            2 => pipe
                .cmd("RPUSH")
                .arg(format!("list:{i}"))
                .arg(&["1", "2", "3"][..]),
            3 => pipe
                .cmd("SADD")
                .arg(format!("set:{i}"))
                .arg(&["x", "y", "7"][..]),
            4 => pipe
                .cmd("ZADD")
                .arg(format!("zset:{i}"))
                .arg(1.5)
                .arg("a")
                .arg(2)
                .arg("b"),
            5 => pipe
                .cmd("XADD")
                .arg(format!("stream:{i}"))
                .arg("*")
                .arg("f")
                .arg(i),
            _ => pipe.cmd("SET").arg(format!("int:{i}")).arg(i),
        };
        if i % 10 == 3 {
            pipe.cmd("PEXPIRE").arg(key_name(i)).arg(600_000 + i as u64);
        }
    }
    // large encodings: a hashtable hash, a big set, a long list, a skiplist zset
    for j in 0..300 {
        pipe.cmd("HSET").arg("big:hash").arg(format!("f{j}")).arg(j);
        pipe.cmd("SADD").arg("big:set").arg(format!("m{j}"));
        pipe.cmd("RPUSH").arg("big:list").arg(format!("e{j}"));
        pipe.cmd("ZADD").arg("big:zset").arg(j).arg(format!("z{j}"));
    }
    pipe.cmd("XGROUP")
        .arg("CREATE")
        .arg("stream:5")
        .arg("g1")
        .arg("0");
    pipe.query_async::<()>(c).await?;
    Ok(())
}

/// The key `fill_all_types` wrote for index `i`.
pub fn key_name(i: usize) -> String {
    let prefix = ["str", "hash", "list", "set", "zset", "stream", "int"][i % 7];
    format!("{prefix}:{i}")
}

/// Every key of a server.
pub async fn all_keys(c: &mut MultiplexedConnection) -> anyhow::Result<BTreeSet<Vec<u8>>> {
    let mut out = BTreeSet::new();
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
            return Ok(out);
        }
    }
}

/// The type and the content of a key, sorted where the type has no order.
pub async fn content(c: &mut MultiplexedConnection, key: &[u8]) -> anyhow::Result<Vec<String>> {
    let ty: String = redis::cmd("TYPE").arg(key).query_async(c).await?;
    let mut v: Vec<String> = match ty.as_str() {
        "string" => vec![redis::cmd("GET").arg(key).query_async(c).await?],
        "list" => {
            redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(c)
                .await?
        }
        "set" => redis::cmd("SMEMBERS").arg(key).query_async(c).await?,
        "hash" => {
            let m: Vec<(String, String)> = redis::cmd("HGETALL").arg(key).query_async(c).await?;
            m.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
        }
        "zset" => {
            let m: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(c)
                .await?;
            m.into_iter().map(|(k, s)| format!("{k}={s}")).collect()
        }
        other => vec![format!("unsupported type {other}")],
    };
    if ty != "list" {
        v.sort();
    }
    v.insert(0, ty);
    Ok(v)
}

/// Compares two servers key by key: same key set, equal DUMP payloads, expiries within
/// `ttl_tol`. Returns the differing keys (with a reason), empty when identical.
pub async fn differences(
    a: &mut MultiplexedConnection,
    b: &mut MultiplexedConnection,
    ttl_tol: Duration,
) -> anyhow::Result<Vec<String>> {
    let ka = all_keys(a).await?;
    let kb = all_keys(b).await?;
    let mut out = Vec::new();
    for k in ka.symmetric_difference(&kb) {
        out.push(format!("{} only on one side", String::from_utf8_lossy(k)));
    }
    let common: Vec<&Vec<u8>> = ka.intersection(&kb).collect();
    for chunk in common.chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("DUMP").arg(&k[..]).cmd("PTTL").arg(&k[..]);
        }
        let ra: Vec<(Option<Vec<u8>>, i64)> = pipe.query_async(a).await?;
        let rb: Vec<(Option<Vec<u8>>, i64)> = pipe.query_async(b).await?;
        for ((k, x), y) in chunk.iter().zip(ra).zip(rb) {
            let name = String::from_utf8_lossy(k);
            // hashtable-encoded sets and hashes iterate in table order, so equal values may
            // DUMP differently: such keys are compared by content
            if x.0 != y.0 && content(a, k).await? != content(b, k).await? {
                out.push(format!("{name}: value differs"));
            } else if (x.1 < 0) != (y.1 < 0) || x.1.abs_diff(y.1) > ttl_tol.as_millis() as u64 {
                out.push(format!("{name}: pttl {} vs {}", x.1, y.1));
            }
        }
    }
    Ok(out)
}
