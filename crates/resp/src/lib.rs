//! godwit-resp.
