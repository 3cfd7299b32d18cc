//! Where one command goes in a cluster (pure): the slot of its keys, any node, every master
//! (with the rule that merges their replies), or a local error; plus the SCAN cursor that
//! walks every master in turn.

use bytes::{BufMut, Bytes, BytesMut};
use godwit_resp::{encode, Command};
use godwit_router::{flags, keys, lookup, lookup_sub, CommandInfo};

/// The reply Redis Cluster gives a command whose keys live in different slots.
pub(crate) const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";

/// Bits of a proxy SCAN cursor that hold the master's index (so up to 1024 masters).
const NODE_BITS: u32 = 10;

/// What to do with one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The node serving this slot.
    Slot(u16),
    /// No key: any node answers the same.
    Any,
    /// Every master; their replies are merged.
    All(Merge),
    /// `SCAN`: the master and cursor the proxy cursor encodes.
    Scan {
        node: usize,
        cursor: u64,
    },
    /// `MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS`, `TOUCH` with keys in several slots: one
    /// command per slot (not atomic across slots), replies merged.
    Split(Merge),
    /// Keys in more than one slot.
    CrossSlot,
    /// Transaction commands (a dedicated connection tracks their node).
    Multi,
    Exec,
    Discard,
    /// `WATCH` of keys in this slot.
    Watch(u16),
    Unwatch,
}

/// How the replies of every master become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// Integers added up (DBSIZE).
    Sum,
    /// Arrays concatenated (KEYS).
    Concat,
    /// The first error, else the first master's reply (FLUSHALL, SCRIPT LOAD, ...).
    First,
    /// `MGET` split by slot: the values put back in the order of the keys.
    Values,
}

/// Plans the command `cmd` (whose bytes are `buf`).
pub(crate) fn plan(buf: &[u8], cmd: &Command) -> Plan {
    let Some(name) = cmd.name(buf) else {
        return Plan::Any;
    };
    let Some(mut info) = lookup(name) else {
        return Plan::Any;
    };
    if info.has(flags::HAS_SUBCOMMANDS) {
        if let Some(sub) = cmd.arg(buf, 1).and_then(|s| lookup_sub(name, s)) {
            info = sub;
        }
    }
    match info.name {
        "multi" => return Plan::Multi,
        "exec" => return Plan::Exec,
        "discard" => return Plan::Discard,
        "unwatch" => return Plan::Unwatch,
        "dbsize" => return Plan::All(Merge::Sum),
        "keys" => return Plan::All(Merge::Concat),
        "flushall" | "flushdb" | "script|load" | "script|flush" | "function|load"
        | "function|flush" | "function|delete" | "config|set" | "config|resetstat" => {
            return Plan::All(Merge::First)
        }
        "scan" => {
            let c = cmd
                .arg(buf, 1)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse::<u64>().ok());
            return match c {
                Some(c) => {
                    let (node, cursor) = split_cursor(c);
                    Plan::Scan { node, cursor }
                }
                None => Plan::Any, // let Redis answer "invalid cursor"
            };
        }
        _ => {}
    }
    match key_slot(buf, cmd, info) {
        KeySlot::None => Plan::Any,
        KeySlot::One(s) if info.name == "watch" => Plan::Watch(s),
        KeySlot::One(s) => Plan::Slot(s),
        KeySlot::Many => match info.name {
            "mget" => Plan::Split(Merge::Values),
            "mset" => Plan::Split(Merge::First),
            "del" | "unlink" | "exists" | "touch" => Plan::Split(Merge::Sum),
            _ => Plan::CrossSlot,
        },
    }
}

/// One command of a split: its slot, its bytes, and the positions (among the original
/// command's keys) of the keys it holds.
pub(crate) type Part = (u16, Bytes, Vec<u32>);

/// Splits a multi-key command (`MGET`, `MSET`, `DEL`, ...) into one command per slot; the keys
/// keep their order within each part, parts come in the order of their first key.
pub(crate) fn split(buf: &[u8], cmd: &Command) -> Vec<Part> {
    let name = cmd.name(buf).unwrap_or_default();
    let step = if name.eq_ignore_ascii_case(b"mset") {
        2
    } else {
        1
    };
    let mut groups: Vec<(u16, Vec<usize>, Vec<u32>)> = Vec::new();
    let mut i = 1;
    let mut nth = 0u32;
    while i + step - 1 < cmd.argc {
        let slot = keys::slot(cmd.arg(buf, i).unwrap_or_default());
        let g = match groups.iter().position(|g| g.0 == slot) {
            Some(g) => g,
            None => {
                groups.push((slot, Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        groups[g].1.push(i);
        groups[g].2.push(nth);
        i += step;
        nth += 1;
    }
    groups
        .into_iter()
        .map(|(slot, args, idx)| {
            let mut parts: Vec<&[u8]> = vec![name];
            for a in args {
                for j in 0..step {
                    parts.push(cmd.arg(buf, a + j).unwrap_or_default());
                }
            }
            let mut out = BytesMut::new();
            encode::command(&mut out, &parts);
            (slot, out.freeze(), idx)
        })
        .collect()
}

/// The `MGET` reply from the replies of its parts (`index[p]`: the key positions of part `p`).
pub(crate) fn merge_values(parts: &[Bytes], index: &[Vec<u32>]) -> Bytes {
    if let Some(e) = parts
        .iter()
        .find(|p| matches!(p.first(), Some(b'-' | b'!')))
    {
        return e.clone();
    }
    let total: usize = index.iter().map(Vec::len).sum();
    let mut values: Vec<&[u8]> = vec![b"$-1\r\n"; total];
    for (p, idx) in parts.iter().zip(index) {
        let Some(nl) = p.windows(2).position(|w| w == b"\r\n") else {
            continue;
        };
        let mut off = nl + 2;
        for &k in idx {
            match godwit_resp::ReplyScanner::new().next(&p[off..]) {
                Ok(Some(n)) => {
                    if let Some(v) = values.get_mut(k as usize) {
                        *v = &p[off..off + n];
                    }
                    off += n;
                }
                _ => break,
            }
        }
    }
    let mut out = BytesMut::new();
    out.put_slice(format!("*{total}\r\n").as_bytes());
    for v in values {
        out.put_slice(v);
    }
    out.freeze()
}

enum KeySlot {
    None,
    One(u16),
    Many,
}

fn key_slot(buf: &[u8], cmd: &Command, info: &CommandInfo) -> KeySlot {
    let mut out = KeySlot::None;
    keys::for_each_key(buf, cmd, info, |k| {
        let s = keys::slot(k);
        out = match out {
            KeySlot::None => KeySlot::One(s),
            KeySlot::One(x) if x == s => KeySlot::One(x),
            _ => KeySlot::Many,
        };
    });
    out
}

/// `(master index, that master's cursor)` of a proxy cursor.
pub(crate) fn split_cursor(c: u64) -> (usize, u64) {
    ((c & ((1 << NODE_BITS) - 1)) as usize, c >> NODE_BITS)
}

/// The proxy cursor after master `node` answered `cursor`: the same master while it has more,
/// else the next master from 0, else 0 (done).
pub(crate) fn join_cursor(node: usize, cursor: u64, masters: usize) -> u64 {
    if cursor != 0 {
        (cursor << NODE_BITS) | node as u64
    } else if node + 1 < masters {
        (node + 1) as u64
    } else {
        0
    }
}

/// The command with argument 1 (the cursor) replaced.
pub(crate) fn with_cursor(buf: &[u8], cmd: &Command, cursor: u64) -> Bytes {
    let c = cursor.to_string();
    let args: Vec<&[u8]> = (0..cmd.argc)
        .map(|i| match i {
            1 => c.as_bytes(),
            _ => cmd.arg(buf, i).unwrap_or_default(),
        })
        .collect();
    let mut out = BytesMut::with_capacity(buf.len() + 8);
    encode::command(&mut out, &args);
    out.freeze()
}

/// A SCAN reply with its cursor replaced by `f(cursor)`; other replies unchanged.
pub(crate) fn rewrite_scan_reply(reply: &[u8], f: impl FnOnce(u64) -> u64) -> Bytes {
    let parsed = (|| {
        let rest = reply.strip_prefix(b"*2\r\n$")?;
        let nl = rest.windows(2).position(|w| w == b"\r\n")?;
        let len: usize = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
        let body = rest.get(nl + 2..nl + 2 + len)?;
        let cursor: u64 = std::str::from_utf8(body).ok()?.parse().ok()?;
        Some((cursor, &rest[nl + 4 + len..]))
    })();
    let Some((cursor, tail)) = parsed else {
        return Bytes::copy_from_slice(reply);
    };
    let mut out = BytesMut::with_capacity(reply.len() + 8);
    out.put_slice(b"*2\r\n");
    encode::bulk(&mut out, f(cursor).to_string().as_bytes());
    out.put_slice(tail);
    out.freeze()
}

/// Merges the replies of every master (in master order).
pub(crate) fn merge(how: Merge, parts: &[Bytes]) -> Bytes {
    if let Some(e) = parts
        .iter()
        .find(|p| matches!(p.first(), Some(b'-' | b'!')))
    {
        return e.clone();
    }
    match how {
        Merge::First => parts.first().cloned().unwrap_or_default(),
        Merge::Sum => {
            let total: i64 = parts
                .iter()
                .filter_map(|p| std::str::from_utf8(p.get(1..p.len().saturating_sub(2))?).ok())
                .filter_map(|s| s.parse::<i64>().ok())
                .sum();
            let mut out = BytesMut::new();
            encode::integer(&mut out, total);
            out.freeze()
        }
        Merge::Concat | Merge::Values => {
            let mut n = 0i64;
            let mut body = BytesMut::new();
            for p in parts {
                let Some(nl) = p.windows(2).position(|w| w == b"\r\n") else {
                    continue;
                };
                let k: i64 = std::str::from_utf8(&p[1..nl])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                n += k.max(0);
                body.put_slice(&p[nl + 2..]);
            }
            let mut out = BytesMut::with_capacity(body.len() + 16);
            out.put_slice(format!("*{n}\r\n").as_bytes());
            out.put_slice(&body);
            out.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use godwit_resp::{parse_command, Limits};

    fn planned(args: &[&str]) -> Plan {
        let mut b = BytesMut::new();
        encode::command(&mut b, args);
        let cmd = parse_command(&b, &Limits::default()).unwrap().unwrap();
        plan(&b, &cmd)
    }

    #[test]
    fn plans_commands() {
        let foo = keys::slot(b"foo");
        let cases: Vec<(&[&str], Plan)> = vec![
            (&["GET", "foo"], Plan::Slot(foo)),
            (&["set", "foo", "1"], Plan::Slot(foo)),
            (&["MGET", "{u}a", "{u}b"], Plan::Slot(keys::slot(b"u"))),
            (&["MGET", "a", "b"], Plan::Split(Merge::Values)),
            (&["MSET", "a", "1", "b", "2"], Plan::Split(Merge::First)),
            (&["DEL", "foo", "bar"], Plan::Split(Merge::Sum)),
            (&["EXISTS", "foo", "bar"], Plan::Split(Merge::Sum)),
            (&["MSETNX", "a", "1", "b", "2"], Plan::CrossSlot),
            (&["SUNIONSTORE", "d", "a", "b"], Plan::CrossSlot),
            (&["EVAL", "return 1", "2", "a", "b"], Plan::CrossSlot),
            (&["EVAL", "return 1", "0"], Plan::Any),
            (&["PING"], Plan::Any),
            (&["INFO", "server"], Plan::Any),
            (&["NOSUCHCOMMAND", "x"], Plan::Any),
            (&["DBSIZE"], Plan::All(Merge::Sum)),
            (&["KEYS", "*"], Plan::All(Merge::Concat)),
            (&["FLUSHALL"], Plan::All(Merge::First)),
            (&["SCRIPT", "LOAD", "return 1"], Plan::All(Merge::First)),
            (&["SCAN", "0"], Plan::Scan { node: 0, cursor: 0 }),
            (
                &["SCAN", "2049", "COUNT", "5"],
                Plan::Scan { node: 1, cursor: 2 },
            ),
            (&["SCAN", "x"], Plan::Any),
            (&["MULTI"], Plan::Multi),
            (&["EXEC"], Plan::Exec),
            (&["DISCARD"], Plan::Discard),
            (&["WATCH", "foo"], Plan::Watch(foo)),
            (&["WATCH", "foo", "bar"], Plan::CrossSlot),
            (&["UNWATCH"], Plan::Unwatch),
            (&["BLPOP", "foo", "0"], Plan::Slot(foo)),
        ];
        for (args, want) in cases {
            assert_eq!(planned(args), want, "{args:?}");
        }
    }

    #[test]
    fn scan_cursors_walk_every_master() {
        assert_eq!(split_cursor(0), (0, 0));
        assert_eq!(join_cursor(0, 7, 3), 7 << 10);
        assert_eq!(split_cursor(join_cursor(2, 7, 3)), (2, 7));
        assert_eq!(join_cursor(0, 0, 3), 1);
        assert_eq!(split_cursor(1), (1, 0));
        assert_eq!(join_cursor(2, 0, 3), 0);
        let r = rewrite_scan_reply(b"*2\r\n$2\r\n12\r\n*1\r\n$1\r\na\r\n", |c| c + 1);
        assert_eq!(&r[..], b"*2\r\n$2\r\n13\r\n*1\r\n$1\r\na\r\n");
        let e = rewrite_scan_reply(b"-ERR invalid cursor\r\n", |c| c + 1);
        assert_eq!(&e[..], b"-ERR invalid cursor\r\n");
        let mut b = BytesMut::new();
        encode::command(&mut b, &["SCAN", "2049", "MATCH", "k*"]);
        let cmd = godwit_resp::parse_command(&b, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            &with_cursor(&b, &cmd, 2)[..],
            b"*4\r\n$4\r\nSCAN\r\n$1\r\n2\r\n$5\r\nMATCH\r\n$2\r\nk*\r\n"
        );
    }

    #[test]
    fn splits_multi_key_commands_by_slot() {
        let mut b = BytesMut::new();
        encode::command(&mut b, &["MSET", "a", "1", "{a}x", "2", "b", "3"]);
        let cmd = godwit_resp::parse_command(&b, &Limits::default())
            .unwrap()
            .unwrap();
        let parts = split(&b, &cmd);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, keys::slot(b"a"));
        assert_eq!(
            &parts[0].1[..],
            b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$4\r\n{a}x\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            (parts[0].2.clone(), parts[1].2.clone()),
            (vec![0, 1], vec![2])
        );
        let merged = merge_values(
            &[
                Bytes::from_static(b"*2\r\n$1\r\nx\r\n$-1\r\n"),
                Bytes::from_static(b"*1\r\n$1\r\nz\r\n"),
            ],
            &[vec![0, 2], vec![1]],
        );
        assert_eq!(&merged[..], b"*3\r\n$1\r\nx\r\n$1\r\nz\r\n$-1\r\n");
    }

    #[test]
    fn merges_replies() {
        let b = |s: &'static [u8]| Bytes::from_static(s);
        assert_eq!(
            &merge(Merge::Sum, &[b(b":3\r\n"), b(b":4\r\n")])[..],
            b":7\r\n"
        );
        assert_eq!(
            &merge(
                Merge::Concat,
                &[
                    b(b"*1\r\n$1\r\na\r\n"),
                    b(b"*0\r\n"),
                    b(b"*1\r\n$1\r\nb\r\n")
                ]
            )[..],
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(
            &merge(Merge::First, &[b(b"+OK\r\n"), b(b"+OK\r\n")])[..],
            b"+OK\r\n"
        );
        assert_eq!(
            &merge(Merge::Sum, &[b(b":3\r\n"), b(b"-ERR down\r\n")])[..],
            b"-ERR down\r\n"
        );
    }
}
