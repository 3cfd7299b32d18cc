//! godwit-telemetry.
