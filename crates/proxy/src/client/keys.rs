//! The keys a write command touches, from the command table's key spec (plus the numkeys
//! argument of scripts and functions).

use godwit_resp::Command;
use godwit_router::{flags, CommandInfo};

/// Calls `f` for every key of `cmd` (a multibulk whose bytes are `buf`).
pub(super) fn for_each_key(
    buf: &[u8],
    cmd: &Command,
    info: &CommandInfo,
    mut f: impl FnMut(&[u8]),
) {
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

/// True for writes whose effect each side decides for itself (`XADD` with an `*` id, `SPOP`):
/// under dual write the sides may differ, so the key is re-copied from the authoritative side.
pub(super) fn nondeterministic(buf: &[u8], cmd: &Command, info: Option<&CommandInfo>) -> bool {
    match info.map(|i| i.name) {
        Some("spop") => true,
        Some("xadd") => (2..cmd.argc).any(|i| cmd.arg(buf, i) == Some(&b"*"[..])),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use godwit_resp::{encode, parse_command, Limits};

    fn keys(args: &[&str]) -> Vec<String> {
        let mut b = bytes::BytesMut::new();
        encode::command(&mut b, args);
        let cmd = parse_command(&b, &Limits::default()).unwrap().unwrap();
        let info = godwit_router::lookup(args[0].as_bytes()).unwrap();
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
}
