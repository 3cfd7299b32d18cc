//! godwit-backend.
