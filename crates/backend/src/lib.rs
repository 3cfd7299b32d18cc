//! godwit-backend: pipelined connections to one Redis endpoint.
//!
//! A [`ConnHandle`] is the sending side of one connection task. Requests carry the bytes to
//! write, how many replies they produce and where those replies go; the task writes requests in
//! arrival order, reads replies in the same order and hands each caller its replies, batched.
//! Many clients share a few connections ([`Pool::shared`]); a client whose state needs its own
//! connection gets one from [`Pool::dedicated`].

mod cluster;
mod conn;
mod endpoint;
mod error;
mod pool;
mod probe;

pub use conn::{ConnHandle, Reply, ReplyTx, Request};
pub use endpoint::EndpointSpec;
pub use error::BackendError;
pub use pool::{Pool, PoolOptions};
pub use probe::{probe, Probe};
