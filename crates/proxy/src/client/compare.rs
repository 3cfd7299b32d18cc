//! Shadow-read comparison: replies are compared after normalisation, so a difference means the
//! data differs, not that Redis ordered a set differently or a TTL ticked.

use godwit_resp::ReplyScanner;

/// How a command's two replies are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Not compared: the reply is random, volatile or about the server itself.
    Skip,
    /// Byte for byte.
    Exact,
    /// As a multiset of top-level elements (sets, hashes, KEYS).
    Unordered,
    /// Integers that may drift by `tolerance` (TTL, PTTL).
    Drift(i64),
}

pub(super) fn mode(command: &str) -> Mode {
    match command {
        "randomkey" | "srandmember" | "spop" | "hrandfield" | "zrandmember" | "time"
        | "lastsave" | "info" | "dbsize" | "scan" | "sscan" | "hscan" | "zscan" | "object"
        | "memory" | "debug" | "config" | "role" | "lolwut" | "command" | "slowlog" | "latency"
        | "client" | "ping" | "echo" | "hello" | "select" | "wait" | "pubsub" | "xinfo" => {
            Mode::Skip
        }
        "ttl" | "expiretime" => Mode::Drift(2),
        "pttl" | "pexpiretime" => Mode::Drift(2000),
        "smembers" | "sunion" | "sinter" | "sdiff" | "hgetall" | "hkeys" | "hvals" | "keys" => {
            Mode::Unordered
        }
        _ => Mode::Exact,
    }
}

/// True if the two replies agree under `mode`.
pub(super) fn equal(mode: Mode, a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    match mode {
        Mode::Skip => true,
        Mode::Exact => false,
        Mode::Drift(tol) => match (int(a), int(b)) {
            (Some(x), Some(y)) if x >= 0 && y >= 0 => (x - y).abs() <= tol,
            _ => false,
        },
        Mode::Unordered => match (elements(a), elements(b)) {
            (Some(mut x), Some(mut y)) => {
                x.sort_unstable();
                y.sort_unstable();
                x == y
            }
            _ => false,
        },
    }
}

/// A nil reply (RESP2 null bulk or array, RESP3 null).
pub(super) fn is_null(r: &[u8]) -> bool {
    matches!(r, b"$-1\r\n" | b"*-1\r\n" | b"_\r\n")
}

fn int(r: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(r.strip_prefix(b":")?).ok()?;
    s.trim_end().parse().ok()
}

/// The top-level elements of an array, set or map reply, as raw slices.
fn elements(r: &[u8]) -> Option<Vec<&[u8]>> {
    let t = *r.first()?;
    if !matches!(t, b'*' | b'~' | b'%') {
        return None;
    }
    let nl = r.iter().position(|&c| c == b'\n')?;
    let n: usize = std::str::from_utf8(&r[1..nl])
        .ok()?
        .trim_end()
        .parse()
        .ok()?;
    let n = if t == b'%' { 2 * n } else { n };
    let mut out = Vec::with_capacity(n);
    let mut off = nl + 1;
    for _ in 0..n {
        let len = ReplyScanner::new().next(&r[off..]).ok()??;
        out.push(&r[off..off + len]);
        off += len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases: &[(&str, &[u8], &[u8], bool)] = &[
            ("get", b"$1\r\na\r\n", b"$1\r\na\r\n", true),
            ("get", b"$1\r\na\r\n", b"$1\r\nb\r\n", false),
            (
                "smembers",
                b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
                b"*2\r\n$1\r\nb\r\n$1\r\na\r\n",
                true,
            ),
            (
                "smembers",
                b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
                b"*2\r\n$1\r\na\r\n$1\r\nc\r\n",
                false,
            ),
            ("smembers", b"~1\r\n$1\r\na\r\n", b"~1\r\n$1\r\na\r\n", true),
            ("ttl", b":100\r\n", b":99\r\n", true),
            ("ttl", b":100\r\n", b":90\r\n", false),
            ("ttl", b":-1\r\n", b":5\r\n", false),
            ("randomkey", b"$1\r\na\r\n", b"$1\r\nb\r\n", true),
            (
                "lrange",
                b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
                b"*2\r\n$1\r\nb\r\n$1\r\na\r\n",
                false,
            ),
        ];
        for (cmd, a, b, want) in cases {
            assert_eq!(equal(mode(cmd), a, b), *want, "{cmd}");
        }
        assert!(is_null(b"$-1\r\n") && is_null(b"_\r\n") && !is_null(b"$0\r\n\r\n"));
    }
}
