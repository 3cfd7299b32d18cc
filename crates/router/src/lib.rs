//! godwit-router: the command table, the routing table and the pure `decide()`.
//!
//! No IO, no clock, no randomness: time and identity arrive as [`Inputs`].

pub mod commands;
pub mod decision;
pub mod keys;
pub mod strategy;
pub mod table;

pub use commands::{flags, lookup, lookup_sub, Class, CommandInfo};
pub use decision::{decide, Decision, Inputs, Mirror, ReplyPolicy, Side};
pub use strategy::{ppm, CidrRule, FeatureRule, KeyPattern, Policy, Rule, Sticky, Writes, PPM_ALL};
pub use table::{Id, InterlayRoute, MigrationRoute, RoutingTable};
