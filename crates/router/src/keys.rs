//! The keys a command touches, from the command table's key spec (plus the numkeys argument of
//! scripts and functions), and the Redis Cluster hash slot of a key.

use godwit_resp::Command;

use crate::{flags, CommandInfo};

/// Number of Redis Cluster hash slots.
pub const SLOTS: u16 = 16384;

/// Calls `f` for every key of `cmd` (a multibulk whose bytes are `buf`).
pub fn for_each_key(buf: &[u8], cmd: &Command, info: &CommandInfo, mut f: impl FnMut(&[u8])) {
    let argc = cmd.argc as i64;
    if info.has(flags::MOVABLEKEYS)
        && matches!(
            info.name,
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        )
    {
        let n = cmd
            .arg(buf, 2)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        for i in 3..(3 + n).min(argc) {
            if let Some(k) = cmd.arg(buf, i as usize) {
                f(k);
            }
        }
        return;
    }
    if info.first_key <= 0 {
        return;
    }
    let first = i64::from(info.first_key);
    let last = match info.last_key {
        l if l < 0 => argc + i64::from(l),
        l => i64::from(l),
    };
    let step = i64::from(info.step.max(1));
    let mut i = first;
    while i <= last && i < argc {
        if let Some(k) = cmd.arg(buf, i as usize) {
            f(k);
        }
        i += step;
    }
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag, modulo 16384.
#[inline]
pub fn slot(key: &[u8]) -> u16 {
    crc16(crate::strategy::hash_tag(key)) % SLOTS
}

/// CRC16-CCITT (XMODEM), as Redis Cluster uses it.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use godwit_resp::{encode, parse_command, Limits};

    fn keys(args: &[&str]) -> Vec<String> {
        let mut b = bytes::BytesMut::new();
        encode::command(&mut b, args);
        let cmd = parse_command(&b, &Limits::default()).unwrap().unwrap();
        let info = crate::lookup(args[0].as_bytes()).unwrap();
        let mut out = Vec::new();
        for_each_key(&b, &cmd, info, |k| {
            out.push(String::from_utf8_lossy(k).into_owned())
        });
        out
    }

    #[test]
    fn key_specs() {
        assert_eq!(keys(&["SET", "a", "1"]), ["a"]);
        assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), ["a", "b"]);
        assert_eq!(keys(&["DEL", "a", "b", "c"]), ["a", "b", "c"]);
        assert_eq!(
            keys(&["EVAL", "return 1", "2", "k1", "k2", "arg"]),
            ["k1", "k2"]
        );
        assert_eq!(keys(&["EVAL", "return 1", "9", "k1"]), ["k1"]);
        assert_eq!(keys(&["FLUSHALL"]), Vec::<String>::new());
        assert_eq!(keys(&["XADD", "s", "*", "f", "v"]), ["s"]);
    }

    #[test]
    fn slots_match_redis() {
        // values from CLUSTER KEYSLOT on Redis 7
        for (key, want) in [
            ("foo", 12182),
            ("bar", 5061),
            ("", 0),
            ("123456789", 12739),
            ("{user1000}.following", 3443),
            ("{user1000}.followers", 3443),
            ("foo{}{bar}", 8363),
            ("foo{{bar}}zap", 4015),
            ("foo{bar}{zap}", 5061),
        ] {
            assert_eq!(slot(key.as_bytes()), want, "{key}");
        }
    }
}
