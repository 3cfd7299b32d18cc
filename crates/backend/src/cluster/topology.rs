//! The cluster's slot map: parsed from `CLUSTER SLOTS` (pure), fetched over a fresh RESP2
//! connection, and the `MOVED` / `ASK` redirects that correct it between fetches.

use bytes::BytesMut;
use godwit_resp::ReplyScanner;
use godwit_router::keys::SLOTS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::{connect, ConnSpec};
use crate::BackendError;

/// Which master serves each slot. Masters are sorted by address, so their indexes are stable
/// for a given set of masters (the SCAN cursor encodes one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topology {
    /// `host:port` of every master, sorted.
    pub masters: Vec<String>,
    /// Index into `masters` per slot; `u16::MAX` for a slot no master serves.
    pub slots: Vec<u16>,
}

/// A slot with no master.
pub(crate) const UNSERVED: u16 = u16::MAX;

impl Topology {
    /// The master serving `slot`, if any.
    #[inline]
    pub fn master(&self, slot: u16) -> Option<usize> {
        match self.slots.get(slot as usize) {
            Some(&i) if i != UNSERVED => Some(i as usize),
            _ => None,
        }
    }

    /// Builds the map from `(first slot, last slot, master address)` ranges.
    pub fn from_ranges(ranges: &[(u16, u16, String)]) -> Self {
        let mut masters: Vec<String> = ranges.iter().map(|r| r.2.clone()).collect();
        masters.sort();
        masters.dedup();
        let mut slots = vec![UNSERVED; SLOTS as usize];
        for (first, last, addr) in ranges {
            let i = masters.iter().position(|m| m == addr).unwrap_or(0) as u16;
            for s in *first..=(*last).min(SLOTS - 1) {
                slots[s as usize] = i;
            }
        }
        Self { masters, slots }
    }

    /// Slots no master serves.
    pub fn unserved(&self) -> usize {
        self.slots.iter().filter(|&&i| i == UNSERVED).count()
    }
}

/// A redirect reply: `-MOVED <slot> <addr>` or `-ASK <slot> <addr>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// The slot lives on `addr` now (update the map).
    Moved(u16, String),
    /// Ask `addr` once, after `ASKING` (the slot is being migrated).
    Ask(u16, String),
}

/// Parses a redirect reply (the whole reply, `-` included); `None` for anything else.
pub(crate) fn redirect(reply: &[u8]) -> Option<Redirect> {
    let text = reply.strip_prefix(b"-")?;
    let text = std::str::from_utf8(text).ok()?.trim_end();
    let mut parts = text.split(' ');
    let kind = parts.next()?;
    let slot: u16 = parts.next()?.parse().ok().filter(|s| *s < SLOTS)?;
    let addr = parts.next().filter(|a| !a.is_empty())?.to_string();
    // Redis 7 may send ":port" when the node does not know its own address
    match kind {
        "MOVED" => Some(Redirect::Moved(slot, addr)),
        "ASK" => Some(Redirect::Ask(slot, addr)),
        _ => None,
    }
}

/// A parsed RESP2 value (only what `CLUSTER SLOTS` holds).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Value>),
    Other,
}

fn parse_value(buf: &[u8], pos: &mut usize) -> Option<Value> {
    let line_end = buf[*pos..].windows(2).position(|w| w == b"\r\n")? + *pos;
    let kind = *buf.get(*pos)?;
    let line = std::str::from_utf8(&buf[*pos + 1..line_end]).ok()?;
    *pos = line_end + 2;
    match kind {
        b':' => line.parse().ok().map(Value::Int),
        b'$' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some(Value::Other);
            }
            let n = n as usize;
            let data = buf.get(*pos..*pos + n)?.to_vec();
            *pos += n + 2;
            Some(Value::Bulk(data))
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            let mut items = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n.max(0) {
                items.push(parse_value(buf, pos)?);
            }
            Some(Value::Array(items))
        }
        b'+' | b'-' => Some(Value::Other),
        _ => None,
    }
}

/// Parses a `CLUSTER SLOTS` reply into `(first, last, master host:port)` ranges. `seed_host`
/// replaces an empty host (a node that does not know its address answers `""`).
pub(crate) fn parse_slots(
    reply: &[u8],
    seed_host: &str,
) -> Result<Vec<(u16, u16, String)>, String> {
    if reply.first() == Some(&b'-') {
        return Err(String::from_utf8_lossy(&reply[1..]).trim_end().to_string());
    }
    let mut pos = 0;
    let Some(Value::Array(ranges)) = parse_value(reply, &mut pos) else {
        return Err("CLUSTER SLOTS: not an array".into());
    };
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let Value::Array(items) = r else {
            return Err("CLUSTER SLOTS: range is not an array".into());
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(node))) =
            (items.first(), items.get(1), items.get(2))
        else {
            return Err("CLUSTER SLOTS: malformed range".into());
        };
        let (Some(Value::Bulk(host)), Some(Value::Int(port))) = (node.first(), node.get(1)) else {
            return Err("CLUSTER SLOTS: malformed node".into());
        };
        let host = String::from_utf8_lossy(host);
        let host = if host.is_empty() || host == "?" {
            seed_host.to_string()
        } else {
            host.into_owned()
        };
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let ok = |n: i64| u16::try_from(n).ok().filter(|s| *s < SLOTS);
        match (ok(*first), ok(*last)) {
            (Some(f), Some(l)) if f <= l => out.push((f, l, addr)),
            _ => return Err("CLUSTER SLOTS: slot out of range".into()),
        }
    }
    Ok(out)
}

/// The host part of `host:port`.
pub(crate) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// Asks `spec.addr` for `CLUSTER SLOTS` over a fresh connection (RESP2, with the endpoint's
/// credentials).
pub(crate) async fn fetch(spec: &ConnSpec) -> Result<Topology, BackendError> {
    let lost = |reason: String| BackendError::Lost {
        addr: spec.addr.clone(),
        reason,
    };
    let mut stream = connect(spec).await?;
    let work = async {
        stream
            .write_all(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n")
            .await
            .map_err(|e| lost(e.to_string()))?;
        let mut buf = BytesMut::with_capacity(4096);
        let mut scanner = ReplyScanner::new();
        loop {
            if let Some(n) = scanner.next(&buf).map_err(|e| lost(e.to_string()))? {
                return Ok(buf.split_to(n));
            }
            if stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| lost(e.to_string()))?
                == 0
            {
                return Err(lost("closed before CLUSTER SLOTS answered".into()));
            }
        }
    };
    let reply = tokio::time::timeout(spec.connect_timeout, work)
        .await
        .map_err(|_| lost("CLUSTER SLOTS timed out".into()))??;
    let ranges = parse_slots(&reply, host_of(&spec.addr)).map_err(&lost)?;
    if ranges.is_empty() {
        return Err(lost("CLUSTER SLOTS: no slot is served".into()));
    }
    Ok(Topology::from_ranges(&ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_slots() {
        let reply = b"*2\r\n\
*3\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$4\r\nid-a\r\n\
*4\r\n:8192\r\n:16383\r\n*3\r\n$0\r\n\r\n:7002\r\n$4\r\nid-b\r\n*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$4\r\nid-c\r\n";
        let ranges = parse_slots(reply, "10.0.0.1").unwrap();
        assert_eq!(
            ranges,
            [
                (0, 8191, "127.0.0.1:7001".to_string()),
                (8192, 16383, "10.0.0.1:7002".to_string())
            ]
        );
        let t = Topology::from_ranges(&ranges);
        assert_eq!(t.masters, ["10.0.0.1:7002", "127.0.0.1:7001"]);
        assert_eq!(t.master(0), Some(1));
        assert_eq!(t.master(16383), Some(0));
        assert_eq!(t.unserved(), 0);
        let partial = Topology::from_ranges(&[(0, 99, "a:1".into())]);
        assert_eq!((partial.master(100), partial.unserved()), (None, 16284));
    }

    #[test]
    fn rejects_bad_slot_replies() {
        for bad in [
            &b"-ERR This instance has cluster support disabled\r\n"[..],
            b"+OK\r\n",
            b"*1\r\n:1\r\n",
            b"*1\r\n*3\r\n:0\r\n:99999\r\n*2\r\n$1\r\nh\r\n:1\r\n",
            b"*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",
            b"*1\r\n*3\r\n:0\r\n",
        ] {
            assert!(
                parse_slots(bad, "h").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn parses_redirects() {
        let cases: [(&[u8], Option<Redirect>); 6] = [
            (
                b"-MOVED 3999 127.0.0.1:6381\r\n",
                Some(Redirect::Moved(3999, "127.0.0.1:6381".into())),
            ),
            (
                b"-ASK 1 10.0.0.2:7000\r\n",
                Some(Redirect::Ask(1, "10.0.0.2:7000".into())),
            ),
            (b"-MOVED 16384 h:1\r\n", None),
            (b"-MOVED x h:1\r\n", None),
            (b"-ERR MOVED 1 h:1\r\n", None),
            (b"+MOVED 1 h:1\r\n", None),
        ];
        for (reply, want) in cases {
            assert_eq!(redirect(reply), want, "{}", String::from_utf8_lossy(reply));
        }
        assert_eq!(host_of("[::1]:7000"), "::1");
        assert_eq!(host_of("10.1.2.3:7000"), "10.1.2.3");
    }
}
