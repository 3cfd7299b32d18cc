//! godwit-proxy.
