//! godwit-admin.
