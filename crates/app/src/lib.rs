//! godwit-app.
