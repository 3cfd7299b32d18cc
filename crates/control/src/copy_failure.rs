//! What happens when a member's copy fails (SPEC §5.3): `rollback_all` rolls every member back
//! at once (routing to old, copies stopped, `rolling_back` → `rolled_back`); `allow_partial`
//! rolls the failed member back alone (`partial_failure`, or `failed` when none is left);
//! `retry_then_all` restarts the member's copy from its checkpoint after 1 s, 2 s, 4 s … (at
//! most 30 s), `retry_count` times, then rolls everything back.

use std::time::Duration;

use chrono::Utc;

use crate::control::{org_mut, Control};
use crate::copy::save_quiet;
use crate::model::{dp_key, MemberState};
use crate::ops_migrations::step;
use crate::rollback::{finish_unless_reversing, roll_back_members};
use crate::rules::FailureHandling;
use crate::status::Action;

/// Delay before retry `attempt` (1-based).
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

impl Control {
    /// Member `member`'s copy (run `gen`) failed with `error`.
    pub(crate) async fn copy_failed(
        &self,
        org: &str,
        id: &str,
        member: &str,
        gen: u64,
        error: String,
    ) {
        let mut inner = self.lock().await;
        let key = dp_key(org, id);
        let Some(run) = inner.copies.get_mut(&key).filter(|r| r.generation == gen) else {
            return;
        };
        let attempts = run.attempts.entry(member.to_string()).or_default();
        *attempts += 1;
        let attempt = *attempts;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org);
        let Some(m) = os.migrations.get_mut(id) else {
            return;
        };
        if !m.status.routes_traffic() {
            return;
        }
        tracing::warn!(migration = %key, interlay = %member, %error, attempt, "data copy failed");
        let what = format!("data copy of interlay '{member}' failed: {error}");
        match m.failure_handling {
            FailureHandling::RetryThenAll { retry_count } if attempt <= retry_count => {
                let delay = backoff(attempt);
                m.status_reason = Some(format!(
                    "{what} (attempt {attempt} of {retry_count}); retrying in {}s",
                    delay.as_secs()
                ));
                m.updated_at = Utc::now();
                if let Err(e) = save_quiet(&mut inner, next).await {
                    tracing::warn!(migration = %key, error = %e, "could not save");
                }
                let me = self.me.clone();
                let (org, id, member) = (org.to_string(), id.to_string(), member.to_string());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(c) = me.upgrade() {
                        c.retry_copy(&org, &id, &member, gen).await;
                    }
                });
                return;
            }
            FailureHandling::AllowPartial => {
                if let Err(e) = roll_back_members(os, id, Some(member), None) {
                    tracing::warn!(migration = %key, error = %e, "partial rollback failed");
                }
                let Some(m) = os.migrations.get_mut(id) else {
                    return;
                };
                let left = m.interlays.iter().any(|x| x.state == MemberState::Active)
                    || m.apis.iter().any(|a| a.state == MemberState::Active);
                let action = if left {
                    Action::PartialFail
                } else {
                    Action::Fail
                };
                if let Err(e) = step(m, action) {
                    tracing::warn!(migration = %key, error = %e, "status unchanged");
                }
                m.status_reason = Some(format!(
                    "{what}; interlay rolled back alone (allow_partial)"
                ));
                self.stop_copies(&mut inner, org, id, Some(member));
            }
            _ => {
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
                }
                m.status_reason = Some(format!("{what}; every member rolled back"));
                self.stop_copies(&mut inner, org, id, None);
            }
        }
        if let Err(e) = self.commit(&mut inner, next).await {
            tracing::error!(migration = %key, error = %e, "could not save the failure handling");
        }
    }

    /// Restarts one member's copy from its checkpoint (retry_then_all).
    async fn retry_copy(&self, org: &str, id: &str, member: &str, gen: u64) {
        let mut inner = self.lock().await;
        let key = dp_key(org, id);
        if inner.copies.get(&key).is_none_or(|r| r.generation != gen) {
            return;
        }
        let Some(os) = inner.state.orgs.get(org) else {
            return;
        };
        let Some(m) = os.migrations.get(id).filter(|m| m.status.routes_traffic()) else {
            return;
        };
        let Some(spec) = crate::copy::copy_specs(org, os, m)
            .into_iter()
            .find(|s| s.member == member)
        else {
            return;
        };
        let paused = m.status == crate::status::Status::Paused;
        tracing::info!(migration = %key, interlay = %member, "retrying data copy");
        self.dataplane.stop_copy(&key, Some(member));
        self.launch_member(&mut inner, org, id, spec, gen);
        if paused {
            self.dataplane.pause_copy(&key, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
