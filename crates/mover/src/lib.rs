//! godwit-mover: moves the data of a migration from the old Redis to the new one, keeps it
//! convergent while clients write through the proxy, and verifies the result.
//!
//! - [`start`] runs a copy ([`CopyJob`]): `SCAN` batches on the source, one Lua call per batch
//!   reads `PTTL` + `DUMP` of every key, one pipeline per batch restores them on the target
//!   (`RESTORE key <abs-expiry> payload ABSTTL [REPLACE]`), rate-limited, for every type.
//! - Convergence (SPEC §5.2): [`CopyHandle::mark_dirty`] queues a key written through the
//!   proxy into its ordered lane (see `lanes`); its re-copy reads the source after the write
//!   and after any earlier copy of the key landed; a key gone from the source is deleted on the
//!   target. Repairs (failed secondary writes) come from a [`RepairSource`].
//! - Progress (counters, rate, lag, backlog, ETA, SCAN checkpoint) is published on a watch
//!   channel; a restart resumes from the checkpoint ([`CopyJob::resume_cursor`]).
//! - [`verify`] compares both sides key by key with re-check rounds.
//!
//! Decisions: re-copies of dirty keys always replace (the source is authoritative for a key
//! written through the proxy), whatever the `replace` mode of the scan pass; `done` means the
//! pass finished, every scan copy landed at least `settle` ago, and no dirty or repair key is
//! waiting; after `done` dirty marks are ignored (the dual write carries later writes, and a
//! re-copy from the source could overwrite a write made on the target after a cutover), while
//! repairs are still taken in `scan` mode. Absolute expiries use the mover's clock at read
//! time. Source and target are each a standalone Redis (one database, the URL's) or a Redis
//! Cluster (detected by `INFO cluster`; see `conn` and `cluster`): on a cluster, SCAN walks the
//! masters (the checkpoint cursor packs node index and node cursor), reads and writes go to
//! each key's master as per-node pipelines, and `MOVED`/`ASK` redirects are followed.

mod cluster;
mod conn;
mod engine;
mod error;
mod io;
mod lanes;
mod logical;
mod options;
mod progress;
mod raw;
mod verify;

pub use engine::{start, CopyHandle, RepairSource};
pub use error::{MoverError, Side};
pub use options::{CopyJob, CopyOptions, Mode, ReplaceMode};
pub use progress::{Phase, Progress};
pub use verify::{verify, Diff, VerifyOptions, VerifyReport};
