//! Guards (SPEC §5.5): a migration's optional thresholds on the new side's error rate, p99
//! latency and shadow mismatch rate, watched by one task per control plane that samples the data
//! plane's cumulative counters every [`TICK`] and rolls back or pauses a migration that breaches
//! one over its `window_s`, recording why in `status_reason`.
//!
//! The breach computation ([`Window`], [`breach`]) is pure: samples carry the caller's time.
//! Rates need at least [`MIN_EVENTS`] events in the window, so a single early failure or
//! mismatch never trips a guard by itself. The p99 comes from the backend latency histogram of
//! the migration's target endpoints, so it is an upper bucket bound (coarse: …, 100 ms,
//! 250 ms, 1 s, 5 s).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::control::{org_mut, Control};
use crate::model::{dp_key, MemberState};
use crate::ops_migrations::step;
use crate::rollback::{finish_unless_reversing, roll_back_members};
use crate::rules::{Guard, GuardAction};
use crate::status::{Action, Status};

/// How often the guard task samples the data plane.
pub const TICK: Duration = Duration::from_secs(1);
/// Fewest dual writes, shadow comparisons or latency samples in a window before the matching
/// rate is judged.
pub const MIN_EVENTS: u64 = 20;

/// Cumulative traffic counters of one migration, as the data plane reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardCounters {
    /// Dual writes resolved.
    pub dual_writes: u64,
    /// Dual writes that failed on the new side only.
    pub new_failures: u64,
    /// Shadow reads compared.
    pub compared: u64,
    /// Shadow reads whose replies differed.
    pub mismatches: u64,
    /// Cumulative latency histogram of the new side: `(upper bound in seconds, requests ≤
    /// bound)`, ascending, the last bound `+inf`.
    pub latency: Vec<(f64, u64)>,
}

/// The samples of one migration inside its window (plus the one just before it, the baseline).
#[derive(Debug, Default)]
pub struct Window {
    samples: VecDeque<(u64, GuardCounters)>,
}

impl Window {
    /// Adds a sample taken at `now_ms` and forgets those older than the window needs.
    pub fn push(&mut self, now_ms: u64, c: GuardCounters, window_s: u64) {
        if self
            .samples
            .back()
            .is_some_and(|(_, last)| c.dual_writes < last.dual_writes || c.compared < last.compared)
        {
            // counters went backwards (the data plane forgot the migration): start again
            self.samples.clear();
        }
        self.samples.push_back((now_ms, c));
        let start = now_ms.saturating_sub(window_s * 1000);
        while self.samples.len() > 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    part as f64 / whole.max(1) as f64
}

/// p99 in milliseconds of the requests between two cumulative histograms (the upper bound of
/// the bucket holding the 99th percentile); `None` with fewer than [`MIN_EVENTS`] requests.
pub fn p99_ms(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<f64> {
    let count = |h: &[(f64, u64)], le: f64| {
        h.iter()
            .find(|(b, _)| (*b - le).abs() < f64::EPSILON || (b.is_infinite() && le.is_infinite()))
            .map_or(0, |(_, n)| *n)
    };
    let delta: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| (*le, n.saturating_sub(count(before, *le))))
        .collect();
    let total = delta.last()?.1;
    if total < MIN_EVENTS {
        return None;
    }
    let want = (total as f64 * 0.99).ceil() as u64;
    delta
        .iter()
        .find(|(_, n)| *n >= want)
        .map(|(le, _)| le * 1000.0)
}

/// Why `guard` is breached by the traffic in `w`, or `None`.
pub fn breach(guard: &Guard, w: &Window) -> Option<String> {
    let ((t0, a), (t1, b)) = (w.samples.front()?, w.samples.back()?);
    let secs = (t1.saturating_sub(*t0) as f64 / 1000.0).round();
    if let Some(max) = guard.max_mismatch_rate {
        let (n, bad) = (
            b.compared.saturating_sub(a.compared),
            b.mismatches.saturating_sub(a.mismatches),
        );
        let r = rate(bad, n);
        if n >= MIN_EVENTS && r > max {
            return Some(format!(
                "guard tripped: shadow mismatch rate {r:.3} > max_mismatch_rate {max} ({bad} of {n} shadow reads in {secs}s)"
            ));
        }
    }
    if let Some(max) = guard.max_error_rate {
        let (n, bad) = (
            b.dual_writes.saturating_sub(a.dual_writes),
            b.new_failures.saturating_sub(a.new_failures),
        );
        let r = rate(bad, n);
        if n >= MIN_EVENTS && r > max {
            return Some(format!(
                "guard tripped: new-side error rate {r:.3} > max_error_rate {max} ({bad} of {n} dual writes failed on new in {secs}s)"
            ));
        }
    }
    if let Some(max) = guard.max_p99_ms {
        if let Some(p) = p99_ms(&a.latency, &b.latency) {
            if p > max as f64 {
                return Some(format!(
                    "guard tripped: new-side p99 latency ≤ {p}ms bucket > max_p99_ms {max} (in {secs}s)"
                ));
            }
        }
    }
    None
}

/// A guarded migration the task watches.
struct Watched {
    org: String,
    id: String,
    guard: Guard,
    targets: Vec<String>,
}

impl Control {
    /// Starts the guard task (it ends when the control plane is dropped).
    pub(crate) fn spawn_guards(&self) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let mut windows: HashMap<String, Window> = HashMap::new();
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let t0 = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                let Some(c) = me.upgrade() else { return };
                let now_ms = t0.elapsed().as_millis() as u64;
                c.check_guards(&mut windows, now_ms).await;
            }
        });
    }

    async fn check_guards(&self, windows: &mut HashMap<String, Window>, now_ms: u64) {
        let watched: Vec<Watched> = {
            let inner = self.lock().await;
            inner
                .state
                .orgs
                .iter()
                .flat_map(|(org, os)| {
                    os.migrations.values().filter_map(move |m| {
                        let guard = m.guard.clone()?;
                        let eligible = match guard.action {
                            GuardAction::Rollback => m.status.routes_traffic(),
                            GuardAction::Pause => {
                                matches!(m.status, Status::Running | Status::PartialFailure)
                            }
                        };
                        eligible.then(|| Watched {
                            org: org.clone(),
                            id: m.id.clone(),
                            guard,
                            targets: m
                                .interlays
                                .iter()
                                .filter(|x| x.state == MemberState::Active)
                                .map(|x| dp_key(org, &x.target))
                                .collect(),
                        })
                    })
                })
                .collect()
        };
        let keys: Vec<String> = watched.iter().map(|w| dp_key(&w.org, &w.id)).collect();
        windows.retain(|k, _| keys.contains(k));
        for (w, key) in watched.into_iter().zip(keys) {
            let mut c = self.dataplane.guard_counters(&key).unwrap_or_default();
            if w.guard.max_p99_ms.is_some() {
                c.latency =
                    merged_latency(w.targets.iter().map(|t| self.dataplane.endpoint_latency(t)));
            }
            let win = windows.entry(key.clone()).or_default();
            win.push(now_ms, c, w.guard.window_s);
            if let Some(reason) = breach(&w.guard, win) {
                windows.remove(&key);
                self.guard_tripped(&w.org, &w.id, w.guard.action, reason)
                    .await;
            }
        }
    }

    /// Rolls back or pauses migration `id` because its guard tripped.
    async fn guard_tripped(&self, org: &str, id: &str, action: GuardAction, reason: String) {
        let mut inner = self.lock().await;
        let key = dp_key(org, id);
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org);
        let Some(m) = os.migrations.get(id) else {
            return;
        };
        if !m.status.routes_traffic() {
            return;
        }
        tracing::warn!(migration = %key, %reason, ?action, "migration guard tripped");
        match action {
            GuardAction::Rollback => {
                if let Err(e) = roll_back_members(os, id, None, None) {
                    tracing::warn!(migration = %key, error = %e, "rollback of members failed");
                }
                let Some(m) = os.migrations.get_mut(id) else {
                    return;
                };
                let stepped = step(m, Action::Rollback { force: false })
                    .and_then(|()| finish_unless_reversing(m));
                if let Err(e) = stepped {
                    tracing::warn!(migration = %key, error = %e, "status unchanged");
                    return;
                }
                m.status_reason = Some(format!("{reason}; every member rolled back"));
            }
            GuardAction::Pause => {
                let Some(m) = os.migrations.get_mut(id) else {
                    return;
                };
                if let Err(e) = step(m, Action::Pause) {
                    tracing::warn!(migration = %key, error = %e, "status unchanged");
                    return;
                }
                m.status_reason = Some(format!("{reason}; migration paused"));
            }
        }
        if let Err(e) = self.commit(&mut inner, next).await {
            tracing::error!(migration = %key, error = %e, "could not save the guard's action");
            return;
        }
        match action {
            GuardAction::Rollback => self.stop_copies(&mut inner, org, id, None),
            GuardAction::Pause => self.dataplane.pause_copy(&key, true),
        }
    }
}

/// The bucket-wise sum of several endpoints' cumulative histograms (same bounds).
fn merged_latency(hs: impl Iterator<Item = Vec<(f64, u64)>>) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for h in hs {
        if out.is_empty() {
            out = h;
            continue;
        }
        for (o, (_, n)) in out.iter_mut().zip(h) {
            o.1 += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guard(v: serde_json::Value) -> Guard {
        Guard::parse(Some(&v)).unwrap().unwrap()
    }

    fn counters(dual: u64, failed: u64, compared: u64, mismatched: u64) -> GuardCounters {
        GuardCounters {
            dual_writes: dual,
            new_failures: failed,
            compared,
            mismatches: mismatched,
            latency: Vec::new(),
        }
    }

    fn hist(counts: [u64; 4]) -> Vec<(f64, u64)> {
        // cumulative: ≤1ms, ≤10ms, ≤100ms, +inf
        let mut acc = 0;
        [0.001, 0.01, 0.1, f64::INFINITY]
            .into_iter()
            .zip(counts)
            .map(|(le, n)| {
                acc += n;
                (le, acc)
            })
            .collect()
    }

    #[test]
    fn mismatch_rate_over_the_window() {
        let g = guard(json!({"max_mismatch_rate": 0.1, "window_s": 10}));
        let mut w = Window::default();
        w.push(0, counters(0, 0, 0, 0), 10);
        assert_eq!(breach(&g, &w), None);
        // 5 of 19: too few comparisons to judge
        w.push(1000, counters(0, 0, 19, 5), 10);
        assert_eq!(breach(&g, &w), None);
        // 2 of 40: under the threshold
        let mut ok = Window::default();
        ok.push(0, counters(0, 0, 0, 0), 10);
        ok.push(1000, counters(0, 0, 40, 2), 10);
        assert_eq!(breach(&g, &ok), None);
        // 5 of 20
        w.push(2000, counters(0, 0, 20, 5), 10);
        let why = breach(&g, &w).unwrap();
        assert!(why.contains("mismatch rate 0.250"), "{why}");
        assert!(why.contains("5 of 20"), "{why}");
    }

    #[test]
    fn old_traffic_leaves_the_window() {
        let g = guard(json!({"max_mismatch_rate": 0.1, "window_s": 5}));
        let mut w = Window::default();
        w.push(0, counters(0, 0, 0, 0), 5);
        w.push(1000, counters(0, 0, 100, 50), 5);
        assert!(breach(&g, &w).is_some());
        // 10 s later, 1000 clean comparisons: the bad second is out of the window
        for s in 2..=12u64 {
            w.push(s * 1000, counters(0, 0, 100 + (s - 1) * 100, 50), 5);
        }
        assert_eq!(breach(&g, &w), None);
        assert!(w.samples.len() <= 7, "{}", w.samples.len());
    }

    #[test]
    fn error_rate_counts_new_side_failures_of_dual_writes() {
        let g = guard(json!({"max_error_rate": 0.05, "window_s": 60, "action": "pause"}));
        let mut w = Window::default();
        w.push(0, counters(100, 0, 0, 0), 60);
        w.push(1000, counters(200, 5, 0, 0), 60);
        assert_eq!(breach(&g, &w), None, "5% is not more than 5%");
        w.push(2000, counters(300, 20, 0, 0), 60);
        let why = breach(&g, &w).unwrap();
        assert!(why.contains("error rate 0.100"), "{why}");
        assert!(why.contains("20 of 200"), "{why}");
    }

    #[test]
    fn p99_from_histogram_deltas() {
        // 1000 requests before, all fast; then 100 more of which 2 took over 100 ms
        let before = hist([1000, 0, 0, 0]);
        let after = hist([1090, 8, 0, 2]);
        assert_eq!(p99_ms(&before, &after), Some(f64::INFINITY));
        let after = hist([1090, 9, 1, 0]);
        assert_eq!(p99_ms(&before, &after), Some(10.0));
        assert_eq!(p99_ms(&before, &hist([1010, 0, 0, 0])), None, "too few");
        let g = guard(json!({"max_p99_ms": 50, "window_s": 10}));
        let mut w = Window::default();
        let with = |h| GuardCounters {
            latency: h,
            ..Default::default()
        };
        w.push(0, with(before.clone()), 10);
        w.push(1000, with(hist([1090, 9, 1, 0])), 10);
        assert_eq!(breach(&g, &w), None);
        w.push(2000, with(hist([1090, 9, 30, 0])), 10);
        assert!(breach(&g, &w).unwrap().contains("p99"));
    }

    #[test]
    fn counters_going_backwards_restart_the_window() {
        let g = guard(json!({"max_mismatch_rate": 0.1}));
        let mut w = Window::default();
        w.push(0, counters(0, 0, 500, 0), 60);
        w.push(1000, counters(0, 0, 10, 5), 60);
        assert_eq!(w.samples.len(), 1);
        assert_eq!(breach(&g, &w), None);
    }

    #[test]
    fn merged_histograms_add_up() {
        let m = merged_latency([hist([1, 2, 3, 4]), hist([10, 0, 0, 0])].into_iter());
        assert_eq!(m, hist([11, 2, 3, 4]));
    }
}
