//! The pure side of Redis Cluster support: key slots (CRC16-XMODEM of the `{hash tag}`, modulo
//! 16384), the master slot map parsed from `CLUSTER SLOTS`, `MOVED`/`ASK`/`TRYAGAIN` replies,
//! and the encoding of a per-node SCAN position into the one `u64` cursor the engine
//! checkpoints. No IO.

use redis::Value;

/// Hash slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;
/// Low bits of an encoded cursor that hold the node index (up to 1024 masters).
const NODE_BITS: u32 = 10;
/// A slot no master owns (yet).
const UNASSIGNED: u16 = u16::MAX;

/// The cluster slot of `key` (CRC16 of its hash tag; one implementation for the whole proxy).
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    godwit_router::keys::slot(key)
}

/// Which master serves each slot. Masters are sorted by address, so a master's index (used in
/// encoded SCAN cursors) is stable while the cluster's set of masters is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotMap {
    /// `host:port` of every master, sorted.
    pub(crate) masters: Vec<String>,
    /// Per slot, an index into `masters` (or [`UNASSIGNED`]).
    table: Vec<u16>,
}

impl SlotMap {
    /// Builds the map from `(first, last, master address)` ranges.
    pub(crate) fn new(ranges: &[(u16, u16, String)]) -> SlotMap {
        let mut masters: Vec<String> = ranges.iter().map(|r| r.2.clone()).collect();
        masters.sort();
        masters.dedup();
        let mut table = vec![UNASSIGNED; SLOTS];
        for (first, last, addr) in ranges {
            let idx = masters.binary_search(addr).unwrap_or(0) as u16;
            let last = (*last as usize).min(SLOTS - 1);
            if let Some(range) = table.get_mut(*first as usize..=last) {
                range.fill(idx);
            }
        }
        SlotMap { masters, table }
    }

    /// The master serving `slot`. An unassigned slot goes to the first master, whose
    /// `MOVED`/`CLUSTERDOWN` reply then says what to do.
    pub(crate) fn master_of(&self, slot: u16) -> &str {
        let idx = match self.table[slot as usize % SLOTS] {
            UNASSIGNED => 0,
            i => i as usize,
        };
        &self.masters[idx]
    }

    /// Slots with an owner.
    pub(crate) fn covered(&self) -> usize {
        self.table.iter().filter(|i| **i != UNASSIGNED).count()
    }
}

/// Parses a `CLUSTER SLOTS` reply into `(first, last, master host:port)` ranges (replicas are
/// ignored). An empty or unknown (`?`) master host means the host of the node that answered,
/// `seed_host`.
pub(crate) fn parse_cluster_slots(
    reply: &Value,
    seed_host: &str,
) -> Result<Vec<(u16, u16, String)>, String> {
    let Value::Array(entries) = reply else {
        return Err(format!("CLUSTER SLOTS is not an array: {reply:?}"));
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let bad = || format!("bad CLUSTER SLOTS entry {e:?}");
        let Value::Array(parts) = e else {
            return Err(bad());
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            return Err(bad());
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => return Err(bad()),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return Err(bad());
        };
        let host = if host.is_empty() || host == "?" {
            seed_host.to_string()
        } else {
            host
        };
        let in_range = |n: i64| (0..SLOTS as i64).contains(&n);
        if !in_range(*first) || !in_range(*last) || first > last {
            return Err(bad());
        }
        out.push((*first as u16, *last as u16, join_addr(&host, *port as u16)));
    }
    Ok(out)
}

/// `host:port` (IPv6 hosts in brackets).
pub(crate) fn join_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host:port` (brackets of an IPv6 host removed).
pub(crate) fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// What a cluster error reply asks the client to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// `MOVED slot addr`: the slot lives on `addr` now (refresh the map).
    Moved(String),
    /// `ASK slot addr`: this key is being imported by `addr`; send `ASKING` + the command there.
    Ask(String),
    /// `TRYAGAIN` / `CLUSTERDOWN`: retry the same node after a short pause.
    Wait,
}

/// Reads a redirect from an error reply's code and details; `from` is the address of the node
/// that replied (its host completes an address given as `:port`).
pub(crate) fn parse_redirect(code: &str, details: &str, from: &str) -> Option<Redirect> {
    match code {
        "MOVED" | "ASK" => {
            let addr = details.split_whitespace().nth(1)?;
            let addr = match addr.strip_prefix(':') {
                Some(port) => join_addr(&split_addr(from)?.0, port.parse().ok()?),
                None => addr.to_string(),
            };
            split_addr(&addr)?;
            Some(if code == "MOVED" {
                Redirect::Moved(addr)
            } else {
                Redirect::Ask(addr)
            })
        }
        "TRYAGAIN" | "CLUSTERDOWN" => Some(Redirect::Wait),
        _ => None,
    }
}

/// The engine's cursor for node `node` at its SCAN cursor `cursor`; `None` when the node
/// cursor does not fit in the remaining bits (a table of more than 2^54 buckets).
pub(crate) fn encode_cursor(node: usize, cursor: u64) -> Option<u64> {
    if node >= 1 << NODE_BITS || cursor >> (64 - NODE_BITS) != 0 {
        return None;
    }
    Some((cursor << NODE_BITS) | node as u64)
}

/// `(node index, node SCAN cursor)` of an engine cursor.
pub(crate) fn decode_cursor(cursor: u64) -> (usize, u64) {
    (
        (cursor & ((1 << NODE_BITS) - 1)) as usize,
        cursor >> NODE_BITS,
    )
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
