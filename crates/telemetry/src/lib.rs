//! godwit-telemetry: metric names and label sets, declared once, and logging setup.
//!
//! Every metric godwit exports is named here (`godwit_*`); labels come from small closed sets
//! (interlay, endpoint, side, class, outcome), never keys or client addresses.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Client connections open now, per interlay (gauge).
pub const CLIENT_CONNECTIONS: &str = "godwit_client_connections";
/// Client connections accepted, per interlay (counter).
pub const CLIENT_CONNECTIONS_TOTAL: &str = "godwit_client_connections_total";
/// Connections refused because `max_clients` was reached (counter).
pub const CLIENT_REJECTED_TOTAL: &str = "godwit_client_rejected_total";
/// Commands received, per interlay and command class (counter).
pub const COMMANDS_TOTAL: &str = "godwit_commands_total";
/// Dual writes where one side failed and the other succeeded, per interlay (counter).
pub const DUAL_WRITE_FAILURES_TOTAL: &str = "godwit_dual_write_failures_total";
/// Shadow reads compared, per interlay (counter).
pub const SHADOW_COMPARED_TOTAL: &str = "godwit_shadow_compared_total";
/// Shadow reads whose replies differed, per interlay (counter).
pub const SHADOW_MISMATCHES_TOTAL: &str = "godwit_shadow_mismatches_total";
/// Routing table version in use (gauge).
pub const ROUTING_TABLE_VERSION: &str = "godwit_routing_table_version";
/// Routing table swaps (counter).
pub const ROUTING_TABLE_SWAPS_TOTAL: &str = "godwit_routing_table_swaps_total";
/// Backend connection failures, per endpoint (counter).
pub const BACKEND_ERRORS_TOTAL: &str = "godwit_backend_errors_total";
/// Time from sending a request batch to a backend until its last reply, per endpoint
/// (histogram, seconds).
pub const BACKEND_LATENCY_SECONDS: &str = "godwit_backend_latency_seconds";
/// Protocol errors from clients (counter).
pub const PROTOCOL_ERRORS_TOTAL: &str = "godwit_protocol_errors_total";
/// Migration status: 1 for each migration's current status, 0 for the others, labels
/// `migration` and `status` (gauge, set by the control plane on every change).
pub const MIGRATION_STATUS: &str = "godwit_migration_status";
/// Keys of a migration's data copy so far, by `outcome`: `scanned`, `copied` (re-copies of
/// keys written meanwhile included), `skipped`, `failed`, `deleted` (gauge, label `migration`).
pub const COPY_KEYS: &str = "godwit_copy_keys";
/// The source's key count when the copy started (gauge, label `migration`).
pub const COPY_KEYS_ESTIMATED: &str = "godwit_copy_keys_estimated";
/// DUMP payload bytes restored on the target (gauge, label `migration`).
pub const COPY_BYTES: &str = "godwit_copy_bytes";
/// Keys copied per second, recent (gauge, label `migration`).
pub const COPY_RATE: &str = "godwit_copy_rate_keys_per_second";
/// Seconds left in the scan pass at the current rate; NaN when unknown (gauge).
pub const COPY_ETA_SECONDS: &str = "godwit_copy_eta_seconds";
/// Keys written through the proxy waiting for their re-copy (gauge, label `migration`).
pub const COPY_DIRTY_BACKLOG: &str = "godwit_copy_dirty_backlog";
/// Age of the oldest waiting dirty key, seconds (gauge, label `migration`).
pub const COPY_LAG_SECONDS: &str = "godwit_copy_lag_seconds";
/// Copy phase: 1 for the current `phase`, 0 for the others (gauge, labels `migration`, `phase`).
pub const COPY_PHASE: &str = "godwit_copy_phase";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0, 5.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // a recorder may already be installed (tests); then ours only renders its own view
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_gauge!(CLIENT_CONNECTIONS, "Client connections open now");
    metrics::describe_counter!(CLIENT_CONNECTIONS_TOTAL, "Client connections accepted");
    metrics::describe_counter!(
        CLIENT_REJECTED_TOTAL,
        "Client connections refused at max_clients"
    );
    metrics::describe_counter!(COMMANDS_TOTAL, "Commands received, by interlay and class");
    metrics::describe_counter!(
        DUAL_WRITE_FAILURES_TOTAL,
        "Dual writes where exactly one side failed"
    );
    metrics::describe_counter!(SHADOW_COMPARED_TOTAL, "Shadow reads compared");
    metrics::describe_counter!(
        SHADOW_MISMATCHES_TOTAL,
        "Shadow reads whose replies differed"
    );
    metrics::describe_gauge!(ROUTING_TABLE_VERSION, "Routing table version in use");
    metrics::describe_counter!(ROUTING_TABLE_SWAPS_TOTAL, "Routing table swaps");
    metrics::describe_counter!(BACKEND_ERRORS_TOTAL, "Backend connection failures");
    metrics::describe_histogram!(
        BACKEND_LATENCY_SECONDS,
        metrics::Unit::Seconds,
        "Backend round trip of a request batch, per endpoint"
    );
    metrics::describe_counter!(PROTOCOL_ERRORS_TOTAL, "Malformed client requests");
    metrics::describe_gauge!(
        MIGRATION_STATUS,
        "1 for each migration's current status, 0 for the others"
    );
    metrics::describe_gauge!(COPY_KEYS, "Keys of a migration's data copy, by outcome");
    metrics::describe_gauge!(
        COPY_KEYS_ESTIMATED,
        "Source key count when the copy started"
    );
    metrics::describe_gauge!(
        COPY_BYTES,
        metrics::Unit::Bytes,
        "Payload bytes restored on the target"
    );
    metrics::describe_gauge!(COPY_RATE, "Keys copied per second (recent)");
    metrics::describe_gauge!(
        COPY_ETA_SECONDS,
        metrics::Unit::Seconds,
        "Seconds left in the scan pass at the current rate (NaN when unknown)"
    );
    metrics::describe_gauge!(
        COPY_DIRTY_BACKLOG,
        "Keys written through the proxy waiting for their re-copy"
    );
    metrics::describe_gauge!(
        COPY_LAG_SECONDS,
        metrics::Unit::Seconds,
        "Age of the oldest waiting dirty key"
    );
    metrics::describe_gauge!(
        COPY_PHASE,
        "1 for each migration's current copy phase, 0 for the others"
    );
}

/// Sets up `tracing` output: `RUST_LOG`-style filter (default `info`), text or JSON lines.
pub fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
