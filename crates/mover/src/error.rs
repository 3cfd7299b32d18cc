//! The mover's error type: which side failed (source, target) and whether retrying may help.

/// Which Redis an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source ("old") Redis.
    Source,
    /// The target ("new") Redis.
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// Errors of a copy or a verification.
#[derive(Debug, thiserror::Error)]
pub enum MoverError {
    /// The URL does not parse as a Redis URL.
    #[error("invalid redis url: {0}")]
    Url(String),
    /// A connection to one side failed or timed out (retryable).
    #[error("{side} unreachable: {message}")]
    Unreachable {
        /// The side.
        side: Side,
        /// What the client library said (no credentials).
        message: String,
    },
    /// One side answered with an error a retry will not fix.
    #[error("{side} refused: {message}")]
    Refused {
        /// The side.
        side: Side,
        /// The Redis error text.
        message: String,
    },
    /// A reply had an unexpected shape.
    #[error("unexpected reply from {side}: {message}")]
    Protocol {
        /// The side.
        side: Side,
        /// What was wrong.
        message: String,
    },
}

impl MoverError {
    /// Whether retrying the same step may succeed (the side was unreachable or timed out).
    pub fn retryable(&self) -> bool {
        matches!(self, MoverError::Unreachable { .. })
    }

    /// Classifies a client error from `side`.
    pub(crate) fn from_redis(side: Side, e: redis::RedisError) -> MoverError {
        let message = e.to_string();
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                redis::ErrorKind::BusyLoadingError | redis::ErrorKind::TryAgain
            )
        {
            MoverError::Unreachable { side, message }
        } else {
            MoverError::Refused { side, message }
        }
    }
}
