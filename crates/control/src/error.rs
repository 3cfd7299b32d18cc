//! The control plane's error type. Each error knows its class (which HTTP status the admin API
//! answers with) and the `error` kind string of the envelope; the message is the seed's exact text.

/// What kind of failure an error is, which decides the HTTP status in the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is malformed or invalid (400).
    BadRequest,
    /// The named object does not exist in the caller's organization (404).
    NotFound,
    /// The object already exists or is in use (409).
    Conflict,
    /// A migration rule forbids the operation: illegal transition, already active (409).
    Migration,
    /// The feature exists in the API but its engine is not available yet (501).
    Unavailable,
    /// The proxy itself failed: a data-plane error (500).
    Internal,
    /// The state store could not be written (or read) now; nothing changed, a retry may work
    /// (503).
    StoreUnavailable,
    /// A Redis endpoint behind the proxy could not be reached or answered garbage (502).
    BadGateway,
    /// The change was saved but the fleet did not acknowledge it in time (504).
    GatewayTimeout,
}

/// Every failure of a control-plane operation.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A migration id or uuid that the organization does not have. Seed text, kind `Not found`.
    #[error("Migration '{0}' does not exist")]
    MigrationNotFound(String),
    /// Any other object (`Endpoint`, `Interlay`, `Template`, `API`) that does not exist.
    #[error("{kind} '{id}' does not exist")]
    NotFound {
        /// Resource kind as shown in the message (`Endpoint`, `Interlay`, ...).
        kind: &'static str,
        /// The id or uuid that was asked for.
        id: String,
    },
    /// A 404 with a free message (e.g. `Interlay not running`).
    #[error("{0}")]
    Missing(String),
    /// Invalid input; the message says which field and why.
    #[error("{0}")]
    BadRequest(String),
    /// The object exists already or is still in use.
    #[error("{0}")]
    Conflict(String),
    /// A migration rule was broken (status transition, active migration on a member).
    #[error("{0}")]
    Migration(String),
    /// The engine behind this operation is not part of this build yet.
    #[error("{0}")]
    Unavailable(String),
    /// The store could not read or write the state.
    #[error("store error: {0}")]
    Store(String),
    /// The data plane refused an operation in a way the caller cannot fix.
    #[error("data plane error: {0}")]
    DataPlane(String),
    /// Redis answered a template's command with an error reply (the caller's input, 400).
    #[error("{0}")]
    Redis(String),
    /// A template's endpoint is unreachable (502).
    #[error("{0}")]
    Backend(String),
    /// A cutover was saved but not every live fleet instance acknowledged it in time (504).
    #[error("{0}")]
    Timeout(String),
}

impl ControlError {
    /// Shorthand for a [`ControlError::BadRequest`].
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    /// Shorthand for a [`ControlError::NotFound`].
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// The class of this error (decides the HTTP status).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::MigrationNotFound(_) | Self::NotFound { .. } | Self::Missing(_) => {
                ErrorClass::NotFound
            }
            Self::BadRequest(_) | Self::Redis(_) => ErrorClass::BadRequest,
            Self::Backend(_) => ErrorClass::BadGateway,
            Self::Timeout(_) => ErrorClass::GatewayTimeout,
            Self::Conflict(_) => ErrorClass::Conflict,
            Self::Migration(_) => ErrorClass::Migration,
            Self::Unavailable(_) => ErrorClass::Unavailable,
            Self::Store(_) => ErrorClass::StoreUnavailable,
            Self::DataPlane(_) => ErrorClass::Internal,
        }
    }

    /// The `error` field of the envelope. Migration lookups use the seed's `Not found`; the
    /// other resources use Eden's `Not Found` (eden-spec §9 G23).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MigrationNotFound(_) => "Not found",
            Self::NotFound { .. } | Self::Missing(_) => "Not Found",
            Self::BadRequest(_) => "Bad Request",
            Self::Conflict(_) => "Conflict",
            Self::Migration(_) => "Migration error",
            Self::Unavailable(_) => "Not Implemented",
            Self::Store(_) => "Service Unavailable",
            Self::DataPlane(_) => "Internal error",
            Self::Redis(_) => "Redis error",
            Self::Backend(_) => "Bad Gateway",
            Self::Timeout(_) => "Gateway Timeout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_texts() {
        let e = ControlError::MigrationNotFound("redis_migration_v2".into());
        assert_eq!(
            e.to_string(),
            "Migration 'redis_migration_v2' does not exist"
        );
        assert_eq!(e.kind(), "Not found");
        assert_eq!(e.class(), ErrorClass::NotFound);
        let e = ControlError::not_found("Interlay", "cache_interlay");
        assert_eq!(e.to_string(), "Interlay 'cache_interlay' does not exist");
        assert_eq!(e.kind(), "Not Found");
    }
}
