//! Redis calls of the mover: connect with timeouts, SCAN, the batched read (one Lua call
//! returns PTTL + DUMP of a whole batch, so the source parses one command per batch), and the
//! pipelined write (`RESTORE … ABSTTL [REPLACE]`, `DEL` for vanished keys, merges: see
//! `merge`). The command building and reply reading are shared with the cluster path.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, Pipeline, Value};

use crate::error::{MoverError, Side};

pub(crate) mod merge;

use merge::merge;
pub(crate) use merge::{merge_cmd, merge_outcome};

/// PTTL + DUMP of every key, atomically per batch; a missing key gives PTTL -2 and nil.
pub(crate) const READ: &str = "local o = {} for i, k in ipairs(KEYS) do \
o[2*i-1] = redis.call('PTTL', k) o[2*i] = redis.call('DUMP', k) end return o";

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
    info: ConnectionInfo,
    side: Side,
    timeout: Duration,
) -> Result<MultiplexedConnection, MoverError> {
    let client = redis::Client::open(info).map_err(|e| MoverError::Url(e.to_string()))?;
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

/// One key from its `PTTL` and `DUMP` replies, read at `now` (unix ms).
pub(crate) fn entry(key: &Bytes, pttl: Option<Value>, dump: Option<Value>, now: u64) -> Entry {
    let pttl = match pttl {
        Some(Value::Int(n)) => n,
        _ => -2,
    };
    let payload = match dump {
        Some(Value::BulkString(b)) if pttl != -2 => Some(b),
        _ => None,
    };
    let expire_at = if pttl >= 0 { now + pttl as u64 } else { 0 };
    Entry {
        key: key.clone(),
        expire_at,
        payload,
    }
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
        if writes(e, mode) {
            push_write(&mut pipe, e, mode);
            sent.push(i);
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
        let (outcome, merge) = write_outcome(reply, &entries[i], mode);
        out[i] = outcome;
        if merge {
            busy.push(i);
        }
    }
    for i in busy {
        out[i] = merge(c, &entries[i]).await?;
    }
    Ok(out)
}

/// Whether `e` is written at all in `mode` (a missing key is only deleted authoritatively).
pub(crate) fn writes(e: &Entry, mode: WriteMode) -> bool {
    e.payload.is_some() || mode == WriteMode::Authoritative
}

/// Adds the write of `e` (one command; call only when [`writes`] says so) to `pipe`.
pub(crate) fn push_write(pipe: &mut Pipeline, e: &Entry, mode: WriteMode) {
    match &e.payload {
        None => {
            pipe.cmd("DEL").arg(&e.key[..]);
        }
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
        }
    }
}

/// The outcome of the reply to [`push_write`]; `true` when the key exists and `mode` merges.
pub(crate) fn write_outcome(reply: Value, e: &Entry, mode: WriteMode) -> (Outcome, bool) {
    match (reply, &e.payload) {
        (Value::Int(_), None) => (Outcome::Deleted, false),
        (Value::Okay | Value::SimpleString(_), Some(p)) => (Outcome::Copied(p.len() as u64), false),
        (Value::ServerError(err), _) if err.code() == "BUSYKEY" => {
            (Outcome::Skipped, mode == WriteMode::Merge)
        }
        (Value::ServerError(err), _) => (
            Outcome::Failed(format!(
                "{} {}",
                err.code(),
                err.details().unwrap_or_default()
            )),
            false,
        ),
        (other, _) => (
            Outcome::Failed(format!("unexpected reply {other:?}")),
            false,
        ),
    }
}
