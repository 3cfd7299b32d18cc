//! Merge mode on the target: when a restored key already exists, one Lua call restores the
//! payload into a scratch key in the same cluster slot and merges it into the existing key by
//! type (hash fields, set and sorted-set members; the target's value wins a conflict).

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Value};

use super::{Entry, Outcome};
use crate::error::{MoverError, Side};

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

/// The scratch key used by a merge: in the same cluster slot as `key`. A key with a hash tag
/// keeps it; another key becomes the tag (`{key}`) unless it is empty or holds a `}`, which a
/// tag cannot; those get the first `{n}` tag that hashes to their slot.
pub(crate) fn scratch_key(key: &[u8]) -> Vec<u8> {
    const SUFFIX: &[u8] = b":godwit-merge-scratch";
    let mut out = Vec::with_capacity(key.len() + 24);
    if godwit_router::strategy::hash_tag(key).len() < key.len() {
        out.extend_from_slice(key);
    } else if !key.is_empty() && !key.contains(&b'}') {
        out.push(b'{');
        out.extend_from_slice(key);
        out.push(b'}');
    } else {
        let slot = crate::cluster::key_slot(key);
        let tag = (0u32..)
            .map(|n| format!("{{{n}}}"))
            .find(|t| crate::cluster::key_slot(t.as_bytes()) == slot)
            .unwrap_or_default();
        out.extend_from_slice(tag.as_bytes());
    }
    out.extend_from_slice(SUFFIX);
    out
}

/// The merge script call for `e` (which has a payload): the key and its scratch key share a
/// slot, so it also runs on a cluster node.
pub(crate) fn merge_cmd(e: &Entry) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(MERGE)
        .arg(2)
        .arg(&e.key[..])
        .arg(scratch_key(&e.key))
        .arg(e.payload.as_deref().unwrap_or_default())
        .arg(e.expire_at);
    cmd
}

pub(super) async fn merge(c: &mut MultiplexedConnection, e: &Entry) -> Result<Outcome, MoverError> {
    let Some(p) = &e.payload else {
        return Ok(Outcome::Skipped);
    };
    let r: Result<i64, _> = merge_cmd(e).query_async(c).await;
    match r {
        Ok(_) => Ok(Outcome::Copied(p.len() as u64)),
        Err(err) if err.kind() == redis::ErrorKind::ResponseError => {
            Ok(Outcome::Failed(err.to_string()))
        }
        Err(err) => Err(MoverError::from_redis(Side::Target, err)),
    }
}

/// The outcome of a merge script reply (as a pipeline value).
pub(crate) fn merge_outcome(reply: Value, e: &Entry) -> Outcome {
    let len = e.payload.as_ref().map_or(0, |p| p.len() as u64);
    match reply {
        Value::Int(_) => Outcome::Copied(len),
        Value::ServerError(err) => Outcome::Failed(format!(
            "{} {}",
            err.code(),
            err.details().unwrap_or_default()
        )),
        other => Outcome::Failed(format!("unexpected reply {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::scratch_key;
    use crate::cluster::key_slot;

    #[test]
    fn scratch_keys_share_the_slot() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"user:1", Some(b"{user:1}:godwit-merge-scratch")),
            (b"{u1}:a", Some(b"{u1}:a:godwit-merge-scratch")),
            (b"a{b", Some(b"{a{b}:godwit-merge-scratch")),
            // an empty tag does not count as a tag, and a tag cannot hold a `}`
            (b"{}x", None),
            (b"x}y", None),
            (b"", None),
        ];
        for (key, want) in cases {
            let scratch = scratch_key(key);
            if let Some(want) = want {
                assert_eq!(&scratch[..], *want);
            }
            assert!(scratch.ends_with(b":godwit-merge-scratch"));
            assert_ne!(&scratch[..], *key);
            assert_eq!(key_slot(&scratch), key_slot(key), "{key:?}");
        }
    }
}
