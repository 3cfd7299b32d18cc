//! `decide()`: a pure function from (route, command, inputs) to where the command goes.
//!
//! Reads go to one side; writes under a migration go to both sides (dual write), with one side
//! authoritative; shadow reads go to both and are compared. The proxy executes the decision.

use std::net::IpAddr;

use crate::commands::{Class, CommandInfo};
use crate::strategy::{bucket, bucket_u64, hash_tag, Policy, Rule, Sticky, Writes};
use crate::table::InterlayRoute;

/// Which side of a route serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The interlay's own endpoint.
    Old,
    /// The migration's target endpoint.
    New,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Old => Side::New,
            Side::New => Side::Old,
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Side::Old => "old",
            Side::New => "new",
        }
    }

    fn of(to_new: bool) -> Side {
        if to_new {
            Side::New
        } else {
            Side::Old
        }
    }
}

/// Per-request facts that are not part of the command itself. Time, identity and randomness
/// are inputs, so `decide()` stays pure.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    /// The proxy's id of the client connection.
    pub conn_id: u64,
    /// The first key of the command, if it has one.
    pub key: Option<&'a [u8]>,
    /// Client identity (AUTH user or CLIENT SETNAME), if known.
    pub identity: Option<&'a [u8]>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// A random number (for `sticky: none`).
    pub rand: u32,
}

/// Whether the request is also sent to the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirror {
    /// Only `serve` receives it.
    None,
    /// Dual write: the other side receives it too.
    Write,
    /// Shadow read: the other side receives it too and the replies are compared.
    Shadow,
}

/// How the reply the client gets is chosen when the request went to both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyPolicy {
    /// `serve`'s reply.
    Serve,
    /// `serve`'s reply if it succeeded, else the other side's (best effort).
    EitherSucceeds,
    /// `serve`'s reply if both succeeded, else the error.
    BothSucceed,
}

/// Where one command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The authoritative side for this request.
    pub serve: Side,
    /// Also sent to the other side?
    pub mirror: Mirror,
    /// How the client's reply is chosen.
    pub reply: ReplyPolicy,
}

const fn only(side: Side) -> Decision {
    Decision {
        serve: side,
        mirror: Mirror::None,
        reply: ReplyPolicy::Serve,
    }
}

const fn dual(side: Side, reply: ReplyPolicy) -> Decision {
    Decision {
        serve: side,
        mirror: Mirror::Write,
        reply,
    }
}

const OLD: Decision = only(Side::Old);

/// Decides where a command is served.
#[inline]
pub fn decide(route: &InterlayRoute, cmd: &CommandInfo, inputs: &Inputs<'_>) -> Decision {
    let Some(m) = &route.migration else {
        return OLD;
    };
    if m.serve_new {
        return only(Side::New);
    }
    let write = cmd.class == Class::Write;
    if m.paused {
        return if write {
            dual(Side::Old, ReplyPolicy::Serve)
        } else {
            OLD
        };
    }
    let key = inputs.key.map(hash_tag);
    match &m.rule {
        Rule::BigBang { durable } => {
            if write && *durable {
                dual(Side::Old, ReplyPolicy::Serve)
            } else {
                OLD
            }
        }
        Rule::Canary {
            read_ppm,
            sticky,
            writes,
        } => {
            if write {
                return match writes {
                    Writes::Dual(Policy::OldAuthoritative) => dual(Side::Old, ReplyPolicy::Serve),
                    Writes::Dual(Policy::NewAuthoritative) => dual(Side::New, ReplyPolicy::Serve),
                    Writes::Dual(Policy::BestEffort) => {
                        dual(Side::Old, ReplyPolicy::EitherSucceeds)
                    }
                    Writes::Dual(Policy::BothRequired) => dual(Side::Old, ReplyPolicy::BothSucceed),
                    Writes::Cutover { write_ppm } => {
                        let b = match key {
                            Some(k) => bucket(k),
                            None => bucket_u64(inputs.conn_id),
                        };
                        dual(Side::of(b < *write_ppm), ReplyPolicy::Serve)
                    }
                };
            }
            if cmd.class != Class::Read {
                return OLD;
            }
            let b = match (sticky, key) {
                (Sticky::Key, Some(k)) => bucket(k),
                (Sticky::None, _) => bucket_u64(u64::from(inputs.rand)),
                _ => bucket_u64(inputs.conn_id),
            };
            only(Side::of(b < *read_ppm))
        }
        Rule::BlueGreen { active_is_new } => follow(Side::of(*active_is_new), write),
        Rule::Instance { migrated } => follow(Side::of(*migrated), write),
        Rule::ShadowTraffic => {
            if write {
                dual(Side::Old, ReplyPolicy::Serve)
            } else if cmd.class == Class::Read {
                Decision {
                    serve: Side::Old,
                    mirror: Mirror::Shadow,
                    reply: ReplyPolicy::Serve,
                }
            } else {
                OLD
            }
        }
        Rule::StranglerFig { features } => {
            let to_new = key.is_some_and(|k| {
                let full = inputs.key.unwrap_or(k);
                features
                    .iter()
                    .find(|f| f.pattern.matches(full))
                    .is_some_and(|f| f.to_new)
            });
            follow(Side::of(to_new), write)
        }
        Rule::FeatureFlag {
            enabled,
            rollout_ppm,
        } => {
            let b = match inputs.identity {
                Some(id) => bucket(id),
                None => bucket_u64(inputs.conn_id),
            };
            follow(Side::of(*enabled && b < *rollout_ppm), write)
        }
        Rule::Geographic {
            instance_to_new,
            cidrs,
        } => {
            let to_new = match instance_to_new {
                Some(b) => *b,
                None => inputs
                    .client_ip
                    .and_then(|ip| cidrs.iter().find(|c| c.contains(ip)))
                    .is_some_and(|c| c.to_new),
            };
            follow(Side::of(to_new), write)
        }
    }
}

/// Reads (and everything else) served by `side`; writes dual with `side` authoritative.
#[inline]
fn follow(side: Side, write: bool) -> Decision {
    if write {
        dual(side, ReplyPolicy::Serve)
    } else {
        only(side)
    }
}

#[cfg(test)]
mod tests;
