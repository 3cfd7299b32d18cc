//! Strategies compiled for the data plane: small, allocation-free to evaluate.
//!
//! `control` compiles a migration's strategy into a [`Rule`] (fractions become parts per
//! million, instance ids and regions are resolved for this proxy instance, key patterns are
//! parsed); [`crate::decide`] evaluates it per request.

use std::net::IpAddr;

/// Parts per million: 0 = nothing, [`PPM_ALL`] = everything.
pub type Ppm = u32;
/// One million parts per million.
pub const PPM_ALL: Ppm = 1_000_000;

/// Converts a fraction in [0, 1] to parts per million (clamped).
pub fn ppm(fraction: f64) -> Ppm {
    if fraction.is_nan() {
        return 0;
    }
    (fraction.clamp(0.0, 1.0) * f64::from(PPM_ALL)).round() as Ppm
}

/// A migration strategy, compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// big_bang (and time_window before its cutover): reads old; writes old, and new too
    /// (old-authoritative) when `durable`.
    BigBang {
        /// Dual-write until the switch.
        durable: bool,
    },
    /// A sticky fraction of reads to new; writes per `writes`.
    Canary {
        /// Fraction of reads served by new.
        read_ppm: Ppm,
        /// What the read fraction sticks to.
        sticky: Sticky,
        /// How writes are sent.
        writes: Writes,
    },
    /// Everything served by the active side, written to both (active authoritative).
    BlueGreen {
        /// New is the active side.
        active_is_new: bool,
    },
    /// rolling_update, resolved for this instance: migrated instances use new.
    Instance {
        /// This proxy instance is in `migrated_instances`.
        migrated: bool,
    },
    /// Clients get old's replies; reads are mirrored to new and compared; writes dual, old
    /// authoritative.
    ShadowTraffic,
    /// Keys of features switched to new are served (and written authoritatively) by new.
    StranglerFig {
        /// First matching pattern decides; no match = old.
        features: Vec<FeatureRule>,
    },
    /// A sticky fraction of clients (by identity) uses new when the flags enable it.
    FeatureFlag {
        /// The flags enable the new database.
        enabled: bool,
        /// Fraction of clients sent to new.
        rollout_ppm: Ppm,
    },
    /// Regions switched to new: this instance's region, else the client's address.
    Geographic {
        /// `Some` when this instance's region is listed: whether it is switched.
        instance_to_new: Option<bool>,
        /// Client networks of listed regions.
        cidrs: Vec<CidrRule>,
    },
}

/// How writes are sent under a canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Every write to both sides; the policy picks the reply.
    Dual(Policy),
    /// Keys in the sticky bucket are written new-authoritative, the others old-authoritative;
    /// both sides receive every write.
    Cutover {
        /// Fraction of the key space written new-authoritative.
        write_ppm: Ppm,
    },
}

/// Reply policy of a dual write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The client gets old's reply.
    OldAuthoritative,
    /// The client gets new's reply.
    NewAuthoritative,
    /// Success if either side succeeds (old's reply when both do).
    BestEffort,
    /// Success only if both succeed.
    BothRequired,
}

/// What a fraction sticks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sticky {
    /// The command's first key (hash tags honoured).
    Key,
    /// The client connection.
    Connection,
    /// Nothing: each command draws anew.
    None,
}

/// A strangler-fig feature: keys matching `pattern` follow `to_new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRule {
    /// Glob over the key (`*`, `?`); `prefix*` is matched as a prefix.
    pub pattern: KeyPattern,
    /// The feature is switched to new.
    pub to_new: bool,
}

/// A compiled key glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPattern {
    /// `prefix*`
    Prefix(Box<[u8]>),
    /// Any other glob.
    Glob(Box<[u8]>),
}

impl KeyPattern {
    /// Compiles a glob.
    pub fn new(glob: &str) -> Self {
        let b = glob.as_bytes();
        match b.split_last() {
            Some((b'*', head)) if !head.iter().any(|c| matches!(c, b'*' | b'?' | b'[' | b'\\')) => {
                KeyPattern::Prefix(head.into())
            }
            _ => KeyPattern::Glob(b.into()),
        }
    }

    /// True if `key` matches.
    #[inline]
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            KeyPattern::Prefix(p) => key.starts_with(p),
            KeyPattern::Glob(g) => glob_match(g, key),
        }
    }
}

/// `*` and `?` glob matching, iterative with one backtrack point.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A client network of a geographic region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrRule {
    /// Network address (IPv4 as IPv4-mapped IPv6).
    pub net: u128,
    /// Network mask over the 128-bit form (computed once, not per request).
    pub mask: u128,
    /// The region is switched to new.
    pub to_new: bool,
}

impl CidrRule {
    /// Parses `a.b.c.d/n` or `x::y/n`.
    pub fn parse(cidr: &str, to_new: bool) -> Option<Self> {
        let (addr, len) = cidr.split_once('/').unwrap_or((cidr, ""));
        let ip: IpAddr = addr.trim().parse().ok()?;
        let (bits, max) = (ip_bits(ip), if ip.is_ipv4() { 32 } else { 128 });
        let len: u8 = if len.is_empty() {
            max
        } else {
            len.trim().parse().ok()?
        };
        if len > max {
            return None;
        }
        let prefix = if ip.is_ipv4() { 96 + len } else { len };
        Some(Self {
            net: bits & mask(prefix),
            mask: mask(prefix),
            to_new,
        })
    }

    /// True if `ip` is inside the network.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip_bits(ip) & self.mask == self.net
    }
}

fn mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The part of a key Redis Cluster hashes: the first non-empty `{...}` section, else the key.
#[inline]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// A stable bucket in [0, PPM_ALL) for bytes (FNV-1a, then a 64-bit mix for spread).
#[inline]
pub fn bucket(bytes: &[u8]) -> Ppm {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    bucket_u64(h)
}

/// A stable bucket in [0, PPM_ALL) for a number.
#[inline]
pub fn bucket_u64(mut x: u64) -> Ppm {
    // splitmix64 finaliser
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % u64::from(PPM_ALL)) as Ppm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("feature_a:*", b"feature_a:1", true),
            ("feature_a:*", b"feature_b:1", false),
            ("user:*:cart", b"user:42:cart", true),
            ("user:*:cart", b"user:42:carts", false),
            ("a?c", b"abc", true),
            ("*", b"", true),
            ("exact", b"exact", true),
            ("exact", b"exactly", false),
        ];
        for (p, k, want) in cases {
            assert_eq!(
                KeyPattern::new(p).matches(k),
                *want,
                "{p} vs {}",
                String::from_utf8_lossy(k)
            );
        }
        assert!(matches!(KeyPattern::new("x:*"), KeyPattern::Prefix(_)));
    }

    #[test]
    fn cidrs() {
        let r = CidrRule::parse("10.1.0.0/16", true).unwrap();
        assert!(r.contains("10.1.200.3".parse().unwrap()));
        assert!(!r.contains("10.2.0.1".parse().unwrap()));
        let r6 = CidrRule::parse("fd00::/8", false).unwrap();
        assert!(r6.contains("fd12::1".parse().unwrap()));
        assert!(!r6.contains("10.1.0.1".parse().unwrap()));
        assert!(CidrRule::parse("0.0.0.0/0", true)
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(CidrRule::parse("1.2.3.4", true)
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        for bad in ["x/8", "10.0.0.0/33", "::/129", "10.0.0.0/x"] {
            assert!(CidrRule::parse(bad, true).is_none(), "{bad}");
        }
    }

    #[test]
    fn hash_tags_and_buckets() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}"), b"{bar");
        assert_eq!(hash_tag(b"nobraces"), b"nobraces");
        assert_eq!(bucket(b"a"), bucket(b"a"));
        assert!(bucket(b"a") < PPM_ALL);
        assert_eq!(ppm(0.05), 50_000);
        assert_eq!(ppm(2.0), PPM_ALL);
        assert_eq!(ppm(f64::NAN), 0);
    }
}
