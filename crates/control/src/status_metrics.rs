//! Control-plane metrics, exported whenever a routing table is published (every committed
//! change): `godwit_migration_status{migration, status}` is 1 for each migration's current
//! status and 0 for the other nine, so a dashboard or an alert selects on the `status` label.
//! A deleted migration's series drop to 0 ([`forget`]).

use crate::model::{dp_key, State};
use crate::status::Status;

/// Sets the status gauges of every migration in `state`.
pub(crate) fn export_statuses(state: &State) {
    for (org, os) in &state.orgs {
        for m in os.migrations.values() {
            set(&dp_key(org, &m.id), Some(m.status));
        }
    }
}

/// Zeroes the status gauges of a deleted migration (data-plane name).
pub(crate) fn forget(migration: &str) {
    set(migration, None);
}

fn set(migration: &str, current: Option<Status>) {
    for s in Status::ALL {
        let v = if Some(s) == current { 1.0 } else { 0.0 };
        metrics::gauge!(
            godwit_telemetry::MIGRATION_STATUS,
            "migration" => migration.to_string(),
            "status" => s.as_str()
        )
        .set(v);
    }
}
