//! Redis Cluster endpoints. A cluster looks to the proxy like one pipelined connection: a
//! routing task takes the same [`Request`](crate::Request)s, sends each command to the master
//! serving its keys' slot, follows `MOVED` (and refreshes the slot map) and `ASK` redirects,
//! and hands the replies back in request order.
//!
//! Contract (beyond the connection's): `MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS` and `TOUCH`
//! with keys in several slots are split per slot (replies merged); any other command whose keys
//! hash to different slots is answered `-CROSSSLOT Keys in request don't hash to the same
//! slot`, as Redis Cluster does;
//! keyless commands go to one master, except DBSIZE (summed), KEYS (concatenated), FLUSHALL,
//! FLUSHDB, SCRIPT/FUNCTION LOAD/FLUSH, CONFIG SET (every master; the first error wins) and
//! SCAN, whose cursor walks every master in turn (the low 10 bits name the master). A routing
//! task for one client (dedicated: MULTI, WATCH, blocking commands) keeps a transaction on the
//! node of its first key; a key on another node inside it is answered CROSSSLOT and EXEC then
//! fails with EXECABORT. At most 5 redirects per command.

mod plan;
mod shared;
mod task;
mod topology;

pub(crate) use shared::ClusterShared;
pub(crate) use task::spawn;

/// How a routing task talks to the nodes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mode {
    /// Node connections said `HELLO 3`.
    pub resp3: bool,
    /// One client's task: dedicated node connections opened with these commands (the client's
    /// state); `None` for a shared task.
    pub client_init: Option<Vec<Vec<bytes::Bytes>>>,
}
