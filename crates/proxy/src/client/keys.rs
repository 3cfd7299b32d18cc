//! The keys a write command touches, from the command table's key spec (plus the numkeys
//! argument of scripts and functions).

use godwit_resp::Command;
pub(super) use godwit_router::keys::for_each_key;
use godwit_router::CommandInfo;

/// True for writes whose effect each side decides for itself (`XADD` with an `*` id, `SPOP`):
/// under dual write the sides may differ, so the key is re-copied from the authoritative side.
pub(super) fn nondeterministic(buf: &[u8], cmd: &Command, info: Option<&CommandInfo>) -> bool {
    match info.map(|i| i.name) {
        Some("spop") => true,
        Some("xadd") => (2..cmd.argc).any(|i| cmd.arg(buf, i) == Some(&b"*"[..])),
        _ => false,
    }
}
