//! Backend errors.

/// Why a backend could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The endpoint URL is not a usable Redis URL.
    #[error("invalid endpoint url: {0}")]
    InvalidUrl(String),
    /// TCP connect failed or timed out.
    #[error("connect to {addr} failed: {reason}")]
    Connect {
        /// host:port
        addr: String,
        /// OS error text.
        reason: String,
    },
    /// The connection handshake (AUTH, SELECT, ...) got an error reply.
    #[error("handshake with {addr} failed: {reply}")]
    Handshake {
        /// host:port
        addr: String,
        /// The error reply, without the leading `-`.
        reply: String,
    },
    /// The connection broke or the server sent something that is not RESP.
    #[error("connection to {addr} lost: {reason}")]
    Lost {
        /// host:port
        addr: String,
        /// What happened.
        reason: String,
    },
}
