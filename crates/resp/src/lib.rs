//! godwit-resp: RESP2/RESP3 framing without copies.
//!
//! - [`parse_command`] finds one complete client request (multibulk or inline) at the start of a
//!   buffer and returns where its arguments are, so the proxy can route on them and forward the
//!   original bytes unchanged.
//! - [`ReplyScanner`] finds where each complete server reply ends (any RESP2/RESP3 type, nested),
//!   resumably, so a 16 MiB reply arriving in pieces is scanned once.
//! - [`encode`] writes the few replies the proxy produces itself.
//!
//! Nothing here allocates per command or touches IO.

pub mod command;
pub mod encode;
mod error;
mod inline;
mod num;
pub mod reply;

pub use command::{parse_command, Command, Limits, MAX_INDEXED_ARGS};
pub use error::ProtocolError;
pub use inline::split_inline;
pub use reply::ReplyScanner;
