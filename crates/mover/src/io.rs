//! Redis calls of the mover: connect with timeouts, SCAN, the batched read (one Lua call
//! returns PTTL + DUMP of a whole batch, so the source parses one command per batch), and the
//! pipelined write (`RESTORE … ABSTTL [REPLACE]`, `DEL` for vanished keys, merges).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use crate::error::{MoverError, Side};

/// PTTL + DUMP of every key, atomically per batch; a missing key gives PTTL -2 and nil.
const READ: &str = "local o = {} for i, k in ipairs(KEYS) do \
o[2*i-1] = redis.call('PTTL', k) o[2*i] = redis.call('DUMP', k) end return o";

/// Merges the payload (restored into a scratch key in the same slot) into the existing key.
const MERGE: &str = r#"local key, tmp = KEYS[1], KEYS[2]
redis.call('RESTORE', tmp, 0, ARGV[1], 'REPLACE')
local tk = redis.call('TYPE', key)['ok']
local tt = redis.call('TYPE', tmp)['ok']
if tk == 'none' then
  redis.call('RENAME', tmp, key)
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIREAT', key, ARGV[2]) end
  return 1
end
local n = 0
if tk == tt then
  if tk == 'hash' then
    local kv = redis.call('HGETALL', tmp)
    for i = 1, #kv, 2 do n = n + redis.call('HSETNX', key, kv[i], kv[i+1]) end
  elseif tk == 'set' then
    local m = redis.call('SMEMBERS', tmp)
    for i = 1, #m do n = n + redis.call('SADD', key, m[i]) end
  elseif tk == 'zset' then
    local m = redis.call('ZRANGE', tmp, 0, -1, 'WITHSCORES')
    for i = 1, #m, 2 do n = n + redis.call('ZADD', key, 'NX', m[i+1], m[i]) end
  end
end
redis.call('DEL', tmp)
return n"#;

/// One key as read from the source.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: Bytes,
    /// Absolute expiry in unix ms (0 = none), computed from PTTL at read time.
    pub(crate) expire_at: u64,
    /// DUMP payload; `None` when the key does not exist.
    pub(crate) payload: Option<Vec<u8>>,
}

/// How a batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// RESTORE … REPLACE; missing keys are deleted on the target.
    Authoritative,
    /// RESTORE without REPLACE: existing keys are skipped.
    SkipExisting,
    /// RESTORE … REPLACE, missing keys left alone.
    Replace,
    /// RESTORE, and a per-type merge when the key exists.
    Merge,
}

/// What happened to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Copied(u64),
    Skipped,
    Deleted,
    Failed(String),
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Opens a multiplexed connection with connect and response timeouts.
pub(crate) async fn connect(
    url: &str,
    side: Side,
    timeout: Duration,
) -> Result<MultiplexedConnection, MoverError> {
    let client = redis::Client::open(url).map_err(|e| MoverError::Url(e.to_string()))?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| MoverError::from_redis(side, e))
}

/// `DBSIZE`.
pub(crate) async fn dbsize(c: &mut MultiplexedConnection, side: Side) -> Result<u64, MoverError> {
    redis::cmd("DBSIZE")
        .query_async(c)
        .await
        .map_err(|e| MoverError::from_redis(side, e))
}

/// One `SCAN cursor COUNT n`: the next cursor and the keys.
pub(crate) async fn scan(
    c: &mut MultiplexedConnection,
    side: Side,
    cursor: u64,
    count: usize,
) -> Result<(u64, Vec<Bytes>), MoverError> {
    let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
        .arg(cursor)
        .arg("COUNT")
        .arg(count)
        .query_async(c)
        .await
        .map_err(|e| MoverError::from_redis(side, e))?;
    Ok((next, keys.into_iter().map(Bytes::from).collect()))
}

/// PTTL + DUMP of `keys` in one call.
pub(crate) async fn read(
    c: &mut MultiplexedConnection,
    side: Side,
    keys: &[Bytes],
) -> Result<Vec<Entry>, MoverError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(READ).arg(keys.len());
    for k in keys {
        cmd.arg(&k[..]);
    }
    let now = now_ms();
    let values: Vec<Value> = cmd
        .query_async(c)
        .await
        .map_err(|e| MoverError::from_redis(side, e))?;
    if values.len() != keys.len() * 2 {
        return Err(MoverError::Protocol {
            side,
            message: format!("{} values for {} keys", values.len(), keys.len()),
        });
    }
    let mut out = Vec::with_capacity(keys.len());
    let mut it = values.into_iter();
    for key in keys {
        let (pttl, dump) = (it.next(), it.next());
        let pttl = match pttl {
            Some(Value::Int(n)) => n,
            _ => -2,
        };
        let payload = match dump {
            Some(Value::BulkString(b)) if pttl != -2 => Some(b),
            _ => None,
        };
        let expire_at = if pttl >= 0 { now + pttl as u64 } else { 0 };
        out.push(Entry {
            key: key.clone(),
            expire_at,
            payload,
        });
    }
    Ok(out)
}

/// Writes `entries` to the target in one pipeline; one outcome per entry.
pub(crate) async fn write(
    c: &mut MultiplexedConnection,
    entries: &[Entry],
    mode: WriteMode,
) -> Result<Vec<Outcome>, MoverError> {
    let side = Side::Target;
    let mut pipe = redis::pipe();
    let mut sent = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        match &e.payload {
            None if mode == WriteMode::Authoritative => {
                pipe.cmd("DEL").arg(&e.key[..]);
                sent.push(i);
            }
            None => {}
            Some(p) => {
                let r = pipe
                    .cmd("RESTORE")
                    .arg(&e.key[..])
                    .arg(e.expire_at)
                    .arg(&p[..]);
                if e.expire_at > 0 {
                    r.arg("ABSTTL");
                }
                if matches!(mode, WriteMode::Authoritative | WriteMode::Replace) {
                    r.arg("REPLACE");
                }
                sent.push(i);
            }
        }
    }
    let mut out = vec![Outcome::Skipped; entries.len()];
    if sent.is_empty() {
        return Ok(out);
    }
    let replies = c
        .send_packed_commands(&pipe, 0, sent.len())
        .await
        .map_err(|e| MoverError::from_redis(side, e))?;
    let mut busy = Vec::new();
    for (i, reply) in sent.into_iter().zip(replies) {
        let e = &entries[i];
        out[i] = match (reply, &e.payload) {
            (Value::Int(_), None) => Outcome::Deleted,
            (Value::Okay | Value::SimpleString(_), Some(p)) => Outcome::Copied(p.len() as u64),
            (Value::ServerError(err), _) if err.code() == "BUSYKEY" => {
                if mode == WriteMode::Merge {
                    busy.push(i);
                }
                Outcome::Skipped
            }
            (Value::ServerError(err), _) => Outcome::Failed(format!(
                "{} {}",
                err.code(),
                err.details().unwrap_or_default()
            )),
            (other, _) => Outcome::Failed(format!("unexpected reply {other:?}")),
        };
    }
    for i in busy {
        out[i] = merge(c, &entries[i]).await?;
    }
    Ok(out)
}

/// The scratch key used by a merge: in the same cluster slot as `key`.
pub(crate) fn scratch_key(key: &[u8]) -> Vec<u8> {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|o| key[o + 1..].iter().position(|b| *b == b'}'))
        .is_some_and(|len| len > 0);
    let mut out = Vec::with_capacity(key.len() + 24);
    if tagged {
        out.extend_from_slice(key);
    } else {
        out.push(b'{');
        out.extend_from_slice(key);
        out.push(b'}');
    }
    out.extend_from_slice(b":godwit-merge-scratch");
    out
}

async fn merge(c: &mut MultiplexedConnection, e: &Entry) -> Result<Outcome, MoverError> {
    let Some(p) = &e.payload else {
        return Ok(Outcome::Skipped);
    };
    let r: Result<i64, _> = redis::cmd("EVAL")
        .arg(MERGE)
        .arg(2)
        .arg(&e.key[..])
        .arg(scratch_key(&e.key))
        .arg(&p[..])
        .arg(e.expire_at)
        .query_async(c)
        .await;
    match r {
        Ok(_) => Ok(Outcome::Copied(p.len() as u64)),
        Err(err) if err.kind() == redis::ErrorKind::ResponseError => {
            Ok(Outcome::Failed(err.to_string()))
        }
        Err(err) => Err(MoverError::from_redis(Side::Target, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::scratch_key;

    #[test]
    fn scratch_keys_share_the_slot() {
        assert_eq!(scratch_key(b"user:1"), b"{user:1}:godwit-merge-scratch");
        assert_eq!(scratch_key(b"{u1}:a"), b"{u1}:a:godwit-merge-scratch");
        // an empty tag does not count as a tag
        assert_eq!(scratch_key(b"{}x"), b"{{}x}:godwit-merge-scratch");
    }
}
