//! Copying a rolled-back interlay's data back from its target to its source (rollback with
//! `overwrite_on_reverse`, SPEC §5.3).
//!
//! While it runs the member is `rolling_back`: its interlay reads from the source and writes to
//! both sides with new's reply ([`crate::compile::reverse_copy_route`]), and one mover copy runs
//! with source = the member's target, target = its source, `replace` (new's values overwrite
//! old's, keys only on old are kept), fed with the keys written through that route and with its
//! repair queue, under the data-plane id [`crate::compile::reverse_key`]. When the copy is
//! `done` (pass finished, settled, no dirty or repair key waiting: the forward copy's rule) the
//! member is `rolled_back`, its dual writes stop, and a `rolling_back` migration with no member
//! left copying becomes `rolled_back`. A failed copy (or a data plane without a mover) ends the
//! member the same way, routing on its source, and fails the migration: `rolling_back` →
//! `failed`, or `partial_failure` when other members still run forward; `status_reason` and
//! `reverse_copy.error` say why. A restart starts reverse copies over from the first key: the
//! dirty marks of the interrupted run are gone, and a full pass covers them.

mod watch;

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;

use crate::compile::reverse_key;
use crate::control::{Control, Inner};
use crate::copy::aggregate;
use crate::dataplane::CopySpec;
use crate::model::{dp_key, MemberState, Migration, OrgState, Progress, ReverseCopy, ReverseState};
use crate::rules::Replace;

/// One member's reverse copy as the control plane follows it.
#[derive(Debug, Default)]
struct Run {
    /// Generation of the running copy; `None` once it finished (its progress stays counted).
    generation: Option<u64>,
    progress: Progress,
}

/// The reverse copies of every migration, by data-plane migration key, then interlay.
#[derive(Debug, Default)]
pub(crate) struct ReverseRuns {
    runs: HashMap<String, BTreeMap<String, Run>>,
}

impl ReverseRuns {
    fn is_current(&self, key: &str, member: &str, gen: u64) -> bool {
        self.runs
            .get(key)
            .and_then(|m| m.get(member))
            .is_some_and(|r| r.generation == Some(gen))
    }

    fn running(&self) -> Vec<(String, String)> {
        self.runs
            .iter()
            .flat_map(|(k, m)| {
                m.iter()
                    .filter(|(_, r)| r.generation.is_some())
                    .map(move |(il, _)| (k.clone(), il.clone()))
            })
            .collect()
    }

    fn total(&self, key: &str) -> Progress {
        let members: BTreeMap<String, Progress> = self
            .runs
            .get(key)
            .map(|m| {
                m.iter()
                    .map(|(il, r)| (il.clone(), r.progress.clone()))
                    .collect()
            })
            .unwrap_or_default();
        aggregate(&members, &Progress::default())
    }
}

/// The copy that brings member `interlay`'s data back: from its target to its source.
pub(crate) fn reverse_spec(
    org: &str,
    os: &OrgState,
    m: &Migration,
    interlay: &str,
) -> Result<CopySpec, String> {
    let x = m
        .interlays
        .iter()
        .find(|x| x.interlay == interlay)
        .ok_or_else(|| format!("interlay '{interlay}' is not a member"))?;
    let url = |e: &str| {
        os.endpoints
            .get(e)
            .map(|ep| ep.url.clone())
            .ok_or_else(|| format!("endpoint '{e}' no longer exists"))
    };
    Ok(CopySpec {
        migration: reverse_key(&dp_key(org, &m.id), interlay),
        member: interlay.to_string(),
        source_url: url(&x.target)?,
        target_url: url(&x.source)?,
        snapshot: false,
        replace: Replace::Replace,
        resume_cursor: None,
        pass_done: false,
        reverse: true,
    })
}

/// Records that `members` of `m` start (or restart) copying back now.
pub(crate) fn record_start(m: &mut Migration, members: &[String]) {
    if members.is_empty() {
        return;
    }
    let now = Utc::now();
    let rc = match &mut m.reverse_copy {
        Some(rc) if rc.state == ReverseState::Running => rc,
        _ => m.reverse_copy.insert(ReverseCopy {
            state: ReverseState::Running,
            interlays: BTreeMap::new(),
            progress: Progress {
                phase: "starting".into(),
                ..Default::default()
            },
            started_at: now,
            finished_at: None,
            error: None,
        }),
    };
    for il in members {
        rc.interlays.insert(il.clone(), ReverseState::Running);
    }
}

/// Records that `member`'s copy ended in `state`; closes the record when no member is left.
pub(crate) fn record_end(m: &mut Migration, member: &str, state: ReverseState) {
    let reversing = m.reversing();
    let Some(rc) = &mut m.reverse_copy else {
        return;
    };
    rc.interlays.insert(member.to_string(), state);
    if state == ReverseState::Failed || rc.state == ReverseState::Failed {
        rc.state = ReverseState::Failed;
    } else if !reversing {
        rc.state = state;
    }
    if !reversing {
        rc.finished_at = Some(Utc::now());
    }
}

impl Control {
    /// Starts the reverse copies of `members` of migration `id` (after a commit set them
    /// `rolling_back`), replacing any copy they had.
    pub(crate) fn start_reverse(&self, inner: &mut Inner, org: &str, id: &str, members: &[String]) {
        let key = dp_key(org, id);
        for member in members {
            let Some(os) = inner.state.orgs.get(org) else {
                return;
            };
            let Some(m) = os.migrations.get(id) else {
                return;
            };
            let spec = reverse_spec(org, os, m, member);
            inner.copy_generation += 1;
            let gen = inner.copy_generation;
            let rkey = reverse_key(&key, member);
            self.dataplane.stop_copy(&rkey, None);
            inner.reverse.runs.entry(key.clone()).or_default().insert(
                member.clone(),
                Run {
                    generation: Some(gen),
                    progress: Progress::default(),
                },
            );
            let started = spec.and_then(|s| {
                self.dataplane
                    .start_copy(s)?
                    .ok_or_else(|| "this data plane has no data mover".to_string())
            });
            let me = self.me.clone();
            let (org, id, member) = (org.to_string(), id.to_string(), member.clone());
            match started {
                Ok(rx) => {
                    tracing::info!(migration = %key, interlay = %member, "reverse copy started");
                    tokio::spawn(crate::copy::watch_copy(
                        me,
                        org,
                        id,
                        member,
                        gen,
                        rx,
                        crate::copy::Copying::Back,
                    ));
                }
                Err(e) => {
                    tokio::spawn(async move {
                        if let Some(c) = me.upgrade() {
                            c.reverse_failed(&org, &id, &member, gen, e).await;
                        }
                    });
                }
            }
        }
    }

    /// Stops the reverse copies of `members` of migration `id` (all of them with `None`).
    pub(crate) fn stop_reverse(
        &self,
        inner: &mut Inner,
        org: &str,
        id: &str,
        members: Option<&[String]>,
    ) {
        let key = dp_key(org, id);
        let Some(runs) = inner.reverse.runs.get_mut(&key) else {
            return;
        };
        for (il, run) in runs.iter_mut() {
            if members.is_none_or(|ms| ms.contains(il)) && run.generation.take().is_some() {
                self.dataplane.stop_copy(&reverse_key(&key, il), None);
            }
        }
        if members.is_none() {
            inner.reverse.runs.remove(&key);
        }
    }

    /// After a restart: starts over the reverse copies of members still `rolling_back`.
    pub(crate) fn resume_reverse(&self, inner: &mut Inner) {
        let todo: Vec<(String, String, Vec<String>)> = inner
            .state
            .orgs
            .iter()
            .flat_map(|(org, os)| {
                os.migrations.values().filter(|m| m.reversing()).map(|m| {
                    let members = m
                        .interlays
                        .iter()
                        .filter(|x| x.state == MemberState::RollingBack)
                        .map(|x| x.interlay.clone())
                        .collect();
                    (org.clone(), m.id.clone(), members)
                })
            })
            .collect();
        for (org, id, members) in todo {
            tracing::info!(migration = %id, ?members, "restarting the reverse copy from the first key");
            self.start_reverse(inner, &org, &id, &members);
        }
    }

    /// Stops reverse copies whose member is no longer `rolling_back` (a fleet peer changed it).
    pub(crate) fn prune_reverse(&self, inner: &mut Inner) {
        for (key, member) in inner.reverse.running() {
            let still = inner.state.orgs.iter().any(|(org, os)| {
                os.migrations.values().any(|m| {
                    dp_key(org, &m.id) == key
                        && m.interlays
                            .iter()
                            .any(|x| x.interlay == member && x.state == MemberState::RollingBack)
                })
            });
            if !still {
                if let Some(run) = inner
                    .reverse
                    .runs
                    .get_mut(&key)
                    .and_then(|m| m.get_mut(&member))
                {
                    run.generation = None;
                }
                self.dataplane.stop_copy(&reverse_key(&key, &member), None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration() -> Migration {
        serde_json::from_value(serde_json::json!({
            "id": "m", "uuid": uuid::Uuid::nil(), "status": "rolling_back",
            "strategy": {"type": "big_bang"}, "data": "none", "failure_handling": "rollback_all",
            "interlays": [
                {"interlay": "a", "target": "new", "source": "old", "state": "rolling_back"},
                {"interlay": "b", "target": "new", "source": "old", "state": "rolling_back"}],
            "created_at": Utc::now(), "updated_at": Utc::now(),
        }))
        .unwrap()
    }

    #[test]
    fn record_closes_when_the_last_member_ends() {
        let mut m = migration();
        record_start(&mut m, &["a".into(), "b".into()]);
        let rc = m.reverse_copy.clone().unwrap();
        assert_eq!(rc.state, ReverseState::Running);
        assert_eq!(rc.progress.phase, "starting");
        m.interlays[0].state = MemberState::RolledBack;
        record_end(&mut m, "a", ReverseState::Done);
        let rc = m.reverse_copy.clone().unwrap();
        assert_eq!(rc.state, ReverseState::Running);
        assert_eq!(rc.interlays["a"], ReverseState::Done);
        assert!(rc.finished_at.is_none());
        m.interlays[1].state = MemberState::RolledBack;
        record_end(&mut m, "b", ReverseState::Done);
        let rc = m.reverse_copy.clone().unwrap();
        assert_eq!(rc.state, ReverseState::Done);
        assert!(rc.finished_at.is_some());
    }

    #[test]
    fn one_failed_member_fails_the_record() {
        let mut m = migration();
        record_start(&mut m, &["a".into(), "b".into()]);
        m.interlays[0].state = MemberState::RolledBack;
        record_end(&mut m, "a", ReverseState::Failed);
        m.interlays[1].state = MemberState::RolledBack;
        record_end(&mut m, "b", ReverseState::Done);
        let rc = m.reverse_copy.unwrap();
        assert_eq!(rc.state, ReverseState::Failed);
        assert_eq!(rc.interlays["b"], ReverseState::Done);
    }

    #[test]
    fn reverse_spec_swaps_the_sides() {
        let mut os = OrgState::default();
        for (id, port) in [("old", 1), ("new", 2)] {
            os.endpoints.insert(
                id.into(),
                serde_json::from_value(serde_json::json!({
                    "id": id, "uuid": uuid::Uuid::nil(), "url": format!("redis://h:{port}"),
                    "max_connections": 4, "created_at": Utc::now(), "updated_at": Utc::now(),
                }))
                .unwrap(),
            );
        }
        let m = migration();
        let s = reverse_spec("acme", &os, &m, "a").unwrap();
        assert_eq!(s.migration, "acme/m#reverse:a");
        assert_eq!(
            (s.source_url.as_str(), s.target_url.as_str()),
            ("redis://h:2", "redis://h:1")
        );
        assert_eq!(s.replace, Replace::Replace);
        assert!(!s.snapshot && s.resume_cursor.is_none() && !s.pass_done && s.reverse);
        os.endpoints.remove("new");
        assert!(reverse_spec("acme", &os, &m, "a")
            .unwrap_err()
            .contains("'new'"));
    }
}
