//! Compiles a running migration into the data plane's [`MigrationRoute`]: the strategy becomes
//! a [`Rule`] resolved for this proxy instance (its id and region), fractions become parts per
//! million, key patterns and networks are parsed once here instead of per request.

use godwit_router::{
    ppm, CidrRule, FeatureRule, KeyPattern, MigrationRoute, Policy, Rule, Sticky as RSticky, Writes,
};

use crate::model::Migration;
use crate::rules::DataRule;
use crate::status::Status;
use crate::strategy::{Sticky, Strategy, WriteMode, WritePolicy};

/// This proxy instance, as strategies see it.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// `instance.id` (rolling_update).
    pub id: String,
    /// `instance.region` (geographic).
    pub region: String,
}

/// The route of a migration that routes traffic, for data-plane ids `id` and `target`.
pub fn migration_route(m: &Migration, id: String, target: String, me: &Instance) -> MigrationRoute {
    let mut route = MigrationRoute::new(id, target, rule(&m.strategy, me));
    route.paused = m.status == Status::Paused;
    let copy_done = m.progress.phase == "done";
    route.copying = m.data != DataRule::None && !copy_done;
    route.serve_new = match &m.strategy {
        // big_bang switches once the copy is done (at once when nothing is copied)
        Strategy::BigBang { .. } => copy_done || m.data == DataRule::None,
        // time_window switches when its cutover ran inside the window
        Strategy::TimeWindow { executed, .. } => {
            *executed && (copy_done || m.data == DataRule::None)
        }
        _ => false,
    };
    route
}

/// The data-plane id of the reverse copy of one interlay member of migration `migration`
/// (its data-plane key): written keys and repairs are reported under it, so they reach that
/// copy only. `#` appears in no id, so it collides with no migration's key.
pub fn reverse_key(migration: &str, interlay: &str) -> String {
    format!("{migration}#reverse:{interlay}")
}

/// The route of an interlay whose data is copied back to its source (rollback with
/// `overwrite_on_reverse`), for reverse-copy id `id` and `target` (the "new" endpoint): reads
/// from the source, every write to both sides with **new's** reply, written keys reported.
///
/// New is authoritative because the copy reads new: a write new refuses (say `LPUSH` on a key
/// new holds as a string) is refused to the client, and its re-copy then makes the source match
/// what the client was told; a write only the source refuses is re-copied from new (repair). An
/// old-authoritative reply would acknowledge writes the re-copy from new then undoes.
pub fn reverse_copy_route(id: String, target: String) -> MigrationRoute {
    let mut route = MigrationRoute::new(
        id,
        target,
        Rule::Canary {
            read_ppm: 0,
            sticky: RSticky::Key,
            writes: Writes::Dual(Policy::NewAuthoritative),
        },
    );
    route.copying = true;
    route.copy_from_new = true;
    route
}

/// A strategy as a data-plane rule for instance `me`.
pub fn rule(s: &Strategy, me: &Instance) -> Rule {
    match s {
        Strategy::BigBang { durability } => Rule::BigBang {
            durable: *durability,
        },
        Strategy::TimeWindow { .. } => Rule::BigBang { durable: true },
        Strategy::Canary {
            read_percentage,
            write_mode,
            sticky,
        } => Rule::Canary {
            read_ppm: ppm(*read_percentage),
            sticky: match sticky {
                Sticky::Key => RSticky::Key,
                Sticky::Connection => RSticky::Connection,
                Sticky::None => RSticky::None,
            },
            writes: writes(write_mode),
        },
        Strategy::BlueGreen { active_is_new, .. } => Rule::BlueGreen {
            active_is_new: *active_is_new,
        },
        Strategy::RollingUpdate {
            migrated_instances, ..
        } => Rule::Instance {
            migrated: migrated_instances.contains(&me.id),
        },
        Strategy::ShadowTraffic {} => Rule::ShadowTraffic,
        Strategy::StranglerFig {
            features,
            feature_keys,
        } => Rule::StranglerFig {
            features: features
                .iter()
                .flat_map(|(feature, on)| {
                    let patterns = match feature_keys.get(feature) {
                        Some(p) if !p.is_empty() => p.clone(),
                        _ => vec![format!("{feature}:*")],
                    };
                    patterns.into_iter().map(move |p| FeatureRule {
                        pattern: KeyPattern::new(&p),
                        to_new: *on,
                    })
                })
                .collect(),
        },
        Strategy::FeatureFlag {
            flags,
            rollout_percentage,
        } => Rule::FeatureFlag {
            enabled: flags.values().any(|on| *on),
            rollout_ppm: ppm(*rollout_percentage),
        },
        Strategy::Geographic {
            regions,
            region_cidrs,
        } => Rule::Geographic {
            instance_to_new: regions.get(&me.region).copied(),
            cidrs: region_cidrs
                .iter()
                .flat_map(|(region, nets)| {
                    let on = regions.get(region).copied().unwrap_or(false);
                    nets.iter().filter_map(move |n| CidrRule::parse(n, on))
                })
                .collect(),
        },
    }
}

fn writes(w: &WriteMode) -> Writes {
    match w {
        WriteMode::DualWrite { policy } => Writes::Dual(match policy {
            WritePolicy::OldAuthoritative | WritePolicy::TwoPhaseCommit => Policy::OldAuthoritative,
            WritePolicy::NewAuthoritative => Policy::NewAuthoritative,
            WritePolicy::BestEffort | WritePolicy::LastWriteWins => Policy::BestEffort,
            WritePolicy::BothRequired => Policy::BothRequired,
        }),
        WriteMode::Cutover { write_percentage } => Writes::Cutover {
            write_ppm: ppm(*write_percentage),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn me() -> Instance {
        Instance {
            id: "godwit-2".into(),
            region: "eu".into(),
        }
    }

    #[test]
    fn reverse_copy_reads_old_and_writes_both_new_authoritative() {
        use godwit_router::{decide, lookup, Inputs, InterlayRoute, Mirror, ReplyPolicy, Side};
        let route = reverse_copy_route(reverse_key("o/m", "cache"), "o/new".into());
        assert_eq!(&*route.id, "o/m#reverse:cache");
        assert!(route.copying && !route.serve_new && !route.paused);
        let mut il = InterlayRoute::direct("o/old");
        il.migration = Some(route);
        let inputs = Inputs {
            key: Some(b"k"),
            ..Default::default()
        };
        let get = decide(&il, lookup(b"get").unwrap(), &inputs);
        assert_eq!((get.serve, get.mirror), (Side::Old, Mirror::None));
        let set = decide(&il, lookup(b"set").unwrap(), &inputs);
        assert_eq!(
            (set.serve, set.mirror, set.reply),
            (Side::New, Mirror::Write, ReplyPolicy::Serve)
        );
    }

    #[test]
    fn strategies_compile() {
        let canary = Strategy::Canary {
            read_percentage: 0.05,
            write_mode: WriteMode::DualWrite {
                policy: WritePolicy::NewAuthoritative,
            },
            sticky: Sticky::Connection,
        };
        assert_eq!(
            rule(&canary, &me()),
            Rule::Canary {
                read_ppm: 50_000,
                sticky: RSticky::Connection,
                writes: Writes::Dual(Policy::NewAuthoritative)
            }
        );
        let rolling = Strategy::RollingUpdate {
            migrated_instances: vec!["godwit-2".into()],
            total_instances: 3,
        };
        assert_eq!(rule(&rolling, &me()), Rule::Instance { migrated: true });
        let strangler = Strategy::StranglerFig {
            features: BTreeMap::from([("a".to_string(), true), ("b".to_string(), false)]),
            feature_keys: BTreeMap::from([(
                "b".to_string(),
                vec!["legacy:*".to_string(), "x?".to_string()],
            )]),
        };
        let Rule::StranglerFig { features } = rule(&strangler, &me()) else {
            panic!()
        };
        assert_eq!(features.len(), 3);
        assert!(features[0].pattern.matches(b"a:1") && features[0].to_new);
        assert!(features[1].pattern.matches(b"legacy:1") && !features[1].to_new);
        let geo = Strategy::Geographic {
            regions: BTreeMap::from([("us".to_string(), true)]),
            region_cidrs: BTreeMap::from([(
                "us".to_string(),
                vec!["10.0.0.0/8".to_string(), "bad".to_string()],
            )]),
        };
        let Rule::Geographic {
            instance_to_new,
            cidrs,
        } = rule(&geo, &me())
        else {
            panic!()
        };
        assert_eq!(instance_to_new, None);
        assert_eq!(cidrs.len(), 1);
        let flag = Strategy::FeatureFlag {
            flags: BTreeMap::from([("new_db".to_string(), true)]),
            rollout_percentage: 0.5,
        };
        assert_eq!(
            rule(&flag, &me()),
            Rule::FeatureFlag {
                enabled: true,
                rollout_ppm: 500_000
            }
        );
    }
}
