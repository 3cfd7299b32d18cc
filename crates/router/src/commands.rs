//! The command table: class and key positions of every Redis command, generated from a real
//! Redis's `COMMAND` output by `scripts/gen-commands.py` (see `commands/generated.rs`).
//!
//! Lookup is case-insensitive and allocation-free.

mod generated;

pub use generated::{COMMANDS, REDIS_VERSION};

/// How the router treats a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Class {
    /// Reads data (may be split between sides).
    Read = 0,
    /// Changes data (may be dual-written).
    Write = 1,
    /// Server administration (served by the interlay's own endpoint).
    Admin = 2,
    /// Changes or reads the client connection's own state; the proxy handles or pins it.
    ConnectionState = 3,
}

impl Class {
    /// Metric label of this class.
    pub fn label(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Admin => "admin",
            Class::ConnectionState => "connection",
        }
    }
}

/// Bit flags of [`CommandInfo::flags`].
pub mod flags {
    /// May block the connection (BLPOP, XREAD BLOCK, WAIT...).
    pub const BLOCKING: u16 = 1;
    /// Pub/sub command.
    pub const PUBSUB: u16 = 1 << 1;
    /// Key positions depend on arguments (EVAL, XREAD, SORT...).
    pub const MOVABLEKEYS: u16 = 1 << 2;
    /// Not allowed in scripts.
    pub const NOSCRIPT: u16 = 1 << 3;
    /// May grow memory.
    pub const DENYOOM: u16 = 1 << 4;
    /// Has subcommands (`container|sub` entries exist).
    pub const HAS_SUBCOMMANDS: u16 = 1 << 5;
    /// Redis's own `write` flag.
    pub const WRITE: u16 = 1 << 6;
    /// Redis's own `readonly` flag.
    pub const READONLY: u16 = 1 << 7;
}

/// One row of the command table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandInfo {
    /// Lower-case name; subcommands as `container|sub`.
    pub name: &'static str,
    /// Redis arity: positive = exact argument count, negative = at least `-arity`.
    pub arity: i16,
    /// Routing class.
    pub class: Class,
    /// [`flags`] bits.
    pub flags: u16,
    /// Index of the first key argument (0 = none).
    pub first_key: i8,
    /// Index of the last key argument (negative counts from the end).
    pub last_key: i8,
    /// Step between keys.
    pub step: u8,
}

impl CommandInfo {
    /// True if any of `bits` is set.
    #[inline]
    pub fn has(&self, bits: u16) -> bool {
        self.flags & bits != 0
    }
}

/// The row for an unknown command: routed like a write to the interlay's endpoint, which answers
/// with Redis's own error.
pub static UNKNOWN: CommandInfo = CommandInfo {
    name: "",
    arity: -1,
    class: Class::Write,
    flags: 0,
    first_key: 0,
    last_key: 0,
    step: 0,
};

const MAX_NAME: usize = 48;

/// Looks up a command by name, case-insensitively.
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static CommandInfo> {
    let mut buf = [0u8; MAX_NAME];
    let lower = lower_into(name, &mut buf)?;
    find(lower)
}

/// Looks up `container|sub` (e.g. `CLIENT`, `SETNAME`), case-insensitively.
pub fn lookup_sub(container: &[u8], sub: &[u8]) -> Option<&'static CommandInfo> {
    let mut buf = [0u8; MAX_NAME];
    let total = container.len() + 1 + sub.len();
    if total > MAX_NAME {
        return None;
    }
    buf[..container.len()].copy_from_slice(container);
    buf[container.len()] = b'|';
    buf[container.len() + 1..total].copy_from_slice(sub);
    buf[..total].make_ascii_lowercase();
    find(&buf[..total])
}

fn lower_into<'b>(name: &[u8], buf: &'b mut [u8; MAX_NAME]) -> Option<&'b [u8]> {
    if name.len() > MAX_NAME {
        return None;
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name);
    out.make_ascii_lowercase();
    Some(out)
}

fn find(lower: &[u8]) -> Option<&'static CommandInfo> {
    COMMANDS
        .binary_search_by(|c| c.name.as_bytes().cmp(lower))
        .ok()
        .map(|i| &COMMANDS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in COMMANDS.windows(2) {
            assert!(w[0].name < w[1].name, "{} !< {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn classes_and_keys() {
        let cases: &[(&[u8], Class, i8)] = &[
            (b"GET", Class::Read, 1),
            (b"set", Class::Write, 1),
            (b"Eval", Class::Write, 0),
            (b"EVAL_RO", Class::Read, 0),
            (b"FLUSHALL", Class::Write, 0),
            (b"MULTI", Class::ConnectionState, 0),
            (b"SELECT", Class::ConnectionState, 0),
            (b"SUBSCRIBE", Class::ConnectionState, 0),
            (b"DEBUG", Class::Admin, 0),
            (b"MGET", Class::Read, 1),
        ];
        for (name, class, first) in cases {
            let c = lookup(name).unwrap_or_else(|| panic!("{:?} missing", name));
            assert_eq!(c.class, *class, "{}", c.name);
            assert_eq!(c.first_key, *first, "{}", c.name);
        }
        assert!(lookup(b"BLPOP").unwrap().has(flags::BLOCKING));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'x'; 100]).is_none());
        assert_eq!(
            lookup_sub(b"CLIENT", b"SetName").unwrap().name,
            "client|setname"
        );
        assert_eq!(lookup_sub(b"config", b"get").unwrap().class, Class::Admin);
    }
}
