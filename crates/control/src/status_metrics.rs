//! Control-plane metrics, exported whenever a routing table is published (every committed
//! change) and whenever a copy reports progress: `godwit_migration_status{migration, status}`
//! is 1 for each migration's current status and 0 for the other nine (a dashboard or an alert
//! selects on the `status` label), `godwit_copy_*{migration}` mirror `migration.progress`.
//! A deleted migration's status and phase series drop to 0 ([`forget`]).

use godwit_telemetry as tm;
use metrics::gauge;

use crate::model::{dp_key, Progress, State};
use crate::status::Status;

/// The copy phases `godwit_copy_phase` has a series for.
const PHASES: [&str; 7] = [
    "idle",
    "waiting_for_mover",
    "starting",
    "scanning",
    "streaming",
    "done",
    "failed",
];

/// Sets the status and copy gauges of every migration in `state`.
pub(crate) fn export_statuses(state: &State) {
    for (org, os) in &state.orgs {
        for m in os.migrations.values() {
            let name = dp_key(org, &m.id);
            set(&name, Some(m.status));
            export_progress(&name, &m.progress);
        }
    }
}

/// Sets the copy gauges of one migration (data-plane name) from its progress.
pub(crate) fn export_progress(migration: &str, p: &Progress) {
    let m = || migration.to_string();
    for (outcome, v) in [
        ("scanned", p.keys_scanned),
        ("copied", p.keys_copied),
        ("skipped", p.keys_skipped),
        ("failed", p.keys_failed),
        ("deleted", p.keys_deleted),
    ] {
        gauge!(tm::COPY_KEYS, "migration" => m(), "outcome" => outcome).set(v as f64);
    }
    gauge!(tm::COPY_KEYS_ESTIMATED, "migration" => m()).set(p.keys_total_estimate as f64);
    gauge!(tm::COPY_BYTES, "migration" => m()).set(p.bytes_copied as f64);
    gauge!(tm::COPY_RATE, "migration" => m()).set(p.rate_keys_per_s as f64);
    gauge!(tm::COPY_ETA_SECONDS, "migration" => m()).set(p.eta_s.map_or(f64::NAN, |s| s as f64));
    gauge!(tm::COPY_DIRTY_BACKLOG, "migration" => m()).set(p.dirty_backlog as f64);
    gauge!(tm::COPY_LAG_SECONDS, "migration" => m()).set(p.lag_ms as f64 / 1000.0);
    set_phase(
        migration,
        Some(p.phase.as_str())
            .filter(|s| !s.is_empty())
            .or(Some("idle")),
    );
}

fn set_phase(migration: &str, current: Option<&str>) {
    for ph in PHASES {
        let v = if Some(ph) == current { 1.0 } else { 0.0 };
        gauge!(tm::COPY_PHASE, "migration" => migration.to_string(), "phase" => ph).set(v);
    }
}

/// Zeroes the status and phase gauges of a deleted migration (data-plane name).
pub(crate) fn forget(migration: &str) {
    set(migration, None);
    set_phase(migration, None);
}

fn set(migration: &str, current: Option<Status>) {
    for s in Status::ALL {
        let v = if Some(s) == current { 1.0 } else { 0.0 };
        gauge!(
            tm::MIGRATION_STATUS,
            "migration" => migration.to_string(),
            "status" => s.as_str()
        )
        .set(v);
    }
}
