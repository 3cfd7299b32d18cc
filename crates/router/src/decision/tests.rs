//! Table-driven tests of `decide()` for every strategy and edge.

use super::*;
use crate::commands::lookup;
use crate::strategy::{ppm, CidrRule, FeatureRule, KeyPattern, PPM_ALL};
use crate::table::MigrationRoute;

fn route(rule: Rule) -> InterlayRoute {
    let mut r = InterlayRoute::direct("old");
    r.migration = Some(MigrationRoute::new("m", "new", rule));
    r
}

fn inputs(key: Option<&'static [u8]>) -> Inputs<'static> {
    Inputs {
        conn_id: 7,
        key,
        ..Default::default()
    }
}

const R: fn(Side) -> Decision = only;
fn w(side: Side) -> Decision {
    dual(side, ReplyPolicy::Serve)
}

#[test]
fn every_strategy() {
    use Side::{New, Old};
    let canary = |read: f64, writes| Rule::Canary {
        read_ppm: ppm(read),
        sticky: Sticky::Key,
        writes,
    };
    let strangler = Rule::StranglerFig {
        features: vec![
            FeatureRule {
                pattern: KeyPattern::new("feature_a:*"),
                to_new: true,
            },
            FeatureRule {
                pattern: KeyPattern::new("feature_b:*"),
                to_new: false,
            },
        ],
    };
    let geo = |inst| Rule::Geographic {
        instance_to_new: inst,
        cidrs: vec![
            CidrRule::parse("10.0.0.0/8", true).unwrap(),
            CidrRule::parse("192.168.0.0/16", false).unwrap(),
        ],
    };
    let old_auth = Writes::Dual(Policy::OldAuthoritative);
    // (rule, command, key, expected)
    type Case = (Rule, &'static [u8], Option<&'static [u8]>, Decision);
    let cases: Vec<Case> = vec![
        (Rule::BigBang { durable: true }, b"GET", Some(b"k"), R(Old)),
        (Rule::BigBang { durable: true }, b"SET", Some(b"k"), w(Old)),
        (Rule::BigBang { durable: false }, b"SET", Some(b"k"), R(Old)),
        (canary(0.0, old_auth), b"GET", Some(b"k"), R(Old)),
        (canary(1.0, old_auth), b"GET", Some(b"k"), R(New)),
        (canary(1.0, old_auth), b"SET", Some(b"k"), w(Old)),
        (
            canary(0.5, Writes::Dual(Policy::NewAuthoritative)),
            b"SET",
            Some(b"k"),
            w(New),
        ),
        (
            canary(0.5, Writes::Dual(Policy::BestEffort)),
            b"DEL",
            Some(b"k"),
            dual(Old, ReplyPolicy::EitherSucceeds),
        ),
        (
            canary(0.5, Writes::Dual(Policy::BothRequired)),
            b"INCR",
            Some(b"k"),
            dual(Old, ReplyPolicy::BothSucceed),
        ),
        (
            canary(0.0, Writes::Cutover { write_ppm: PPM_ALL }),
            b"SET",
            Some(b"k"),
            w(New),
        ),
        (
            canary(0.0, Writes::Cutover { write_ppm: 0 }),
            b"SET",
            Some(b"k"),
            w(Old),
        ),
        (canary(1.0, old_auth), b"CONFIG", None, R(Old)),
        (
            Rule::BlueGreen {
                active_is_new: false,
            },
            b"GET",
            Some(b"k"),
            R(Old),
        ),
        (
            Rule::BlueGreen {
                active_is_new: true,
            },
            b"GET",
            Some(b"k"),
            R(New),
        ),
        (
            Rule::BlueGreen {
                active_is_new: true,
            },
            b"SET",
            Some(b"k"),
            w(New),
        ),
        (
            Rule::Instance { migrated: true },
            b"HGET",
            Some(b"k"),
            R(New),
        ),
        (
            Rule::Instance { migrated: false },
            b"HSET",
            Some(b"k"),
            w(Old),
        ),
        (
            Rule::ShadowTraffic,
            b"GET",
            Some(b"k"),
            Decision {
                serve: Old,
                mirror: Mirror::Shadow,
                reply: ReplyPolicy::Serve,
            },
        ),
        (Rule::ShadowTraffic, b"SET", Some(b"k"), w(Old)),
        (Rule::ShadowTraffic, b"CONFIG", None, R(Old)),
        (strangler.clone(), b"GET", Some(b"feature_a:1"), R(New)),
        (strangler.clone(), b"SET", Some(b"feature_a:1"), w(New)),
        (strangler.clone(), b"GET", Some(b"feature_b:1"), R(Old)),
        (strangler.clone(), b"GET", Some(b"other"), R(Old)),
        (strangler.clone(), b"GET", Some(b"{feature_a:1}x"), R(Old)),
        (strangler, b"PING", None, R(Old)),
        (
            Rule::FeatureFlag {
                enabled: false,
                rollout_ppm: PPM_ALL,
            },
            b"GET",
            Some(b"k"),
            R(Old),
        ),
        (
            Rule::FeatureFlag {
                enabled: true,
                rollout_ppm: PPM_ALL,
            },
            b"GET",
            Some(b"k"),
            R(New),
        ),
        (
            Rule::FeatureFlag {
                enabled: true,
                rollout_ppm: 0,
            },
            b"SET",
            Some(b"k"),
            w(Old),
        ),
        (geo(Some(true)), b"GET", Some(b"k"), R(New)),
        (geo(Some(false)), b"SET", Some(b"k"), w(Old)),
        (geo(None), b"GET", Some(b"k"), R(Old)), // no client address known
    ];
    for (i, (rule, cmd, key, want)) in cases.into_iter().enumerate() {
        let info = lookup(cmd).unwrap();
        let got = decide(&route(rule.clone()), info, &inputs(key));
        assert_eq!(
            got,
            want,
            "case {i}: {rule:?} {}",
            String::from_utf8_lossy(cmd)
        );
    }
}

#[test]
fn geographic_by_client_address() {
    let rule = Rule::Geographic {
        instance_to_new: None,
        cidrs: vec![
            CidrRule::parse("10.0.0.0/8", true).unwrap(),
            CidrRule::parse("192.168.0.0/16", false).unwrap(),
        ],
    };
    let get = lookup(b"GET").unwrap();
    for (ip, want) in [
        ("10.1.2.3", Side::New),
        ("192.168.1.1", Side::Old),
        ("8.8.8.8", Side::Old),
    ] {
        let i = Inputs {
            client_ip: Some(ip.parse().unwrap()),
            ..inputs(Some(b"k"))
        };
        assert_eq!(decide(&route(rule.clone()), get, &i).serve, want, "{ip}");
    }
}

#[test]
fn no_migration_serve_new_and_paused() {
    let get = lookup(b"GET").unwrap();
    let set = lookup(b"SET").unwrap();
    assert_eq!(
        decide(&InterlayRoute::direct("old"), set, &inputs(Some(b"k"))),
        OLD
    );
    let mut r = route(Rule::BlueGreen {
        active_is_new: true,
    });
    r.migration.as_mut().unwrap().paused = true;
    assert_eq!(decide(&r, get, &inputs(Some(b"k"))), OLD);
    assert_eq!(decide(&r, set, &inputs(Some(b"k"))), w(Side::Old));
    r.migration.as_mut().unwrap().serve_new = true;
    assert_eq!(decide(&r, set, &inputs(Some(b"k"))), only(Side::New));
}

/// Sticky per key: the same key always lands on the same side, hash tags included, and the
/// split over many keys is close to the configured fraction.
#[test]
fn canary_split_is_sticky_and_close_to_the_fraction() {
    let get = lookup(b"GET").unwrap();
    for pct in [0.05, 0.25, 0.5, 0.9] {
        let r = route(Rule::Canary {
            read_ppm: ppm(pct),
            sticky: Sticky::Key,
            writes: Writes::Dual(Policy::OldAuthoritative),
        });
        let mut new = 0;
        let n = 100_000;
        for i in 0..n {
            let key = format!("user:{i}");
            let d1 = decide(
                &r,
                get,
                &Inputs {
                    key: Some(key.as_bytes()),
                    ..Default::default()
                },
            );
            let d2 = decide(
                &r,
                get,
                &Inputs {
                    conn_id: 99,
                    key: Some(key.as_bytes()),
                    ..Default::default()
                },
            );
            assert_eq!(d1, d2, "sticky per key");
            new += usize::from(d1.serve == Side::New);
        }
        let got = new as f64 / n as f64;
        assert!((got - pct).abs() < 0.01, "configured {pct}, got {got}");
    }
    let r = route(Rule::Canary {
        read_ppm: ppm(0.5),
        sticky: Sticky::Key,
        writes: Writes::Dual(Policy::OldAuthoritative),
    });
    let a = decide(&r, get, &inputs(Some(b"{tag}a")));
    let b = decide(&r, get, &inputs(Some(b"{tag}b")));
    assert_eq!(a, b, "hash tags share a bucket");
}

#[test]
fn canary_sticky_connection_and_none() {
    let get = lookup(b"GET").unwrap();
    let r = route(Rule::Canary {
        read_ppm: ppm(0.5),
        sticky: Sticky::Connection,
        writes: Writes::Dual(Policy::OldAuthoritative),
    });
    for conn in 0..100u64 {
        let first = decide(
            &r,
            get,
            &Inputs {
                conn_id: conn,
                key: Some(b"a"),
                ..Default::default()
            },
        );
        for key in [&b"b"[..], b"c", b"d"] {
            assert_eq!(
                decide(
                    &r,
                    get,
                    &Inputs {
                        conn_id: conn,
                        key: Some(key),
                        ..Default::default()
                    }
                ),
                first
            );
        }
    }
    let r = route(Rule::Canary {
        read_ppm: ppm(0.5),
        sticky: Sticky::None,
        writes: Writes::Dual(Policy::OldAuthoritative),
    });
    let sides: std::collections::HashSet<_> = (0..64u32)
        .map(|rand| {
            decide(
                &r,
                get,
                &Inputs {
                    rand,
                    key: Some(b"same"),
                    ..Default::default()
                },
            )
            .serve
        })
        .collect();
    assert_eq!(sides.len(), 2, "sticky none varies per command");
}
