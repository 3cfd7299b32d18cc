//! Logical comparison of one key on both sides, for keys whose DUMP payloads differ only in
//! encoding (a hash whose fields arrived in another order, a set built up differently): the
//! type and the normalised content (sorted fields and members) must be equal.

use redis::Value;

use crate::conn::Conn;
use crate::error::MoverError;

/// Reads `key` as a normalised list of byte strings (type first).
async fn read(c: &mut Conn, key: &[u8]) -> Result<Vec<Vec<u8>>, MoverError> {
    let ty = c.query_key(key, redis::cmd("TYPE").arg(key)).await?;
    let ty: String = redis::from_redis_value(&ty).map_err(|e| MoverError::Protocol {
        side: c.side(),
        message: format!("TYPE: {e}"),
    })?;
    let (cmd, args): (&str, &[&str]) = match ty.as_str() {
        "string" => ("GET", &[]),
        "list" => ("LRANGE", &["0", "-1"]),
        "set" => ("SMEMBERS", &[]),
        "zset" => ("ZRANGE", &["0", "-1", "WITHSCORES"]),
        "hash" => ("HGETALL", &[]),
        "stream" => ("XRANGE", &["-", "+"]),
        _ => return Ok(vec![ty.into_bytes()]),
    };
    let v = c.query_key(key, redis::cmd(cmd).arg(key).arg(args)).await?;
    let mut flat = Vec::new();
    flatten(v, &mut flat);
    match ty.as_str() {
        "set" => flat.sort(),
        "hash" | "zset" => {
            let mut pairs: Vec<Vec<u8>> = flat
                .chunks(2)
                .map(|p| {
                    let mut x = p[0].clone();
                    x.push(0);
                    x.extend_from_slice(p.get(1).map(|v| &v[..]).unwrap_or_default());
                    x
                })
                .collect();
            pairs.sort();
            flat = pairs;
        }
        _ => {}
    }
    flat.insert(0, ty.into_bytes());
    Ok(flat)
}

fn flatten(v: Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::BulkString(b) => out.push(b),
        Value::SimpleString(s) => out.push(s.into_bytes()),
        Value::Int(n) => out.push(n.to_string().into_bytes()),
        Value::Array(items) | Value::Set(items) => items.into_iter().for_each(|i| flatten(i, out)),
        Value::Map(kv) => kv.into_iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        Value::Nil => out.push(b"(nil)".to_vec()),
        other => out.push(format!("{other:?}").into_bytes()),
    }
}

/// Whether `key` holds the same logical value on both sides.
pub(crate) async fn equal(src: &mut Conn, dst: &mut Conn, key: &[u8]) -> Result<bool, MoverError> {
    Ok(read(src, key).await? == read(dst, key).await?)
}
