//! godwit-control: resources (endpoints, interlays, migrations), the migration state machine,
//! persistence, and the only writer of the routing table.
//!
//! The data plane is reached only through the [`DataPlane`] trait, implemented by `godwit-app`.

pub mod dataplane;

pub use dataplane::{DataPlane, EndpointProbe, InterlayListen, NoopDataPlane};
