//! The command table: class and key positions of every Redis command, generated from a real
//! Redis's `COMMAND` output by `scripts/gen-commands.py` (see `commands/generated.rs`).
//!
//! Lookup is case-insensitive and allocation-free.

#[rustfmt::skip]
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
const SLOTS: usize = 1024; // power of two, > 2x the table size

/// Open-addressing index over [`COMMANDS`], built on first use: slot -> index + 1 (0 = empty).
fn index() -> &'static [u16; SLOTS] {
    static INDEX: std::sync::OnceLock<Box<[u16; SLOTS]>> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let mut slots = Box::new([0u16; SLOTS]);
        for (i, c) in COMMANDS.iter().enumerate() {
            let mut h = hash(c.name.as_bytes()) as usize & (SLOTS - 1);
            while slots[h] != 0 {
                h = (h + 1) & (SLOTS - 1);
            }
            slots[h] = i as u16 + 1;
        }
        slots
    })
}

/// FNV-1a over the ASCII-lower-cased name.
#[inline]
fn hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h ^= u32::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Looks up a command by name, case-insensitively, without allocating.
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static CommandInfo> {
    if name.len() > MAX_NAME {
        return None;
    }
    let slots = index();
    let mut h = hash(name) as usize & (SLOTS - 1);
    loop {
        match slots[h] {
            0 => return None,
            i => {
                let c = &COMMANDS[i as usize - 1];
                if c.name.as_bytes().eq_ignore_ascii_case(name) {
                    return Some(c);
                }
            }
        }
        h = (h + 1) & (SLOTS - 1);
    }
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
    lookup(&buf[..total])
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
    fn every_command_is_found_by_lookup() {
        for c in COMMANDS {
            assert_eq!(
                lookup(c.name.to_ascii_uppercase().as_bytes()).map(|f| f.name),
                Some(c.name)
            );
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
