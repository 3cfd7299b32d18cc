//! godwit-proxy: interlay listeners and per-client tasks.
//!
//! The hot path, per command (see `client.rs`):
//! decode (completeness checked before anything is copied) → command view (slices) →
//! one `table.load()` → `decide()` → forward the original bytes to the chosen backend
//! connection (consecutive commands to the same connection go as one batch) → replies written
//! in request order, one per request, always.
//!
//! Backend connections are shared and pipelined; a client whose state cannot be shared
//! (MULTI/WATCH, blocking commands, SELECT of another db, RESP3, client tracking) gets its own
//! dedicated connection for the rest of its life, and a client entering pub/sub becomes a byte
//! tunnel to its own server connection.

mod client;
mod listener;
mod observe;
mod table;

pub use listener::{serve_interlay, InterlayOptions};
pub use observe::{
    MigrationReport, MismatchSample, Reports, WriteObserver, MAX_REPAIR, MAX_SAMPLES,
};
pub use table::{DataTable, ProxyLimits, ProxyShared};
