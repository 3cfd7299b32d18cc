//! Criterion: `table.load()` + `decide()` per command, as the proxy does it, for simple and for
//! the most complex routes (strangler fig with many patterns, geographic with many networks).
//! `cargo bench -p godwit-benches --bench decide`

use arc_swap::ArcSwap;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use godwit_router::{
    decide, lookup, ppm, CidrRule, FeatureRule, Id, Inputs, InterlayRoute, KeyPattern,
    MigrationRoute, Policy, RoutingTable, Rule, Sticky, Writes,
};

fn table() -> RoutingTable {
    let rules = vec![
        ("direct", None),
        (
            "canary",
            Some(Rule::Canary {
                read_ppm: ppm(0.3),
                sticky: Sticky::Key,
                writes: Writes::Dual(Policy::OldAuthoritative),
            }),
        ),
        (
            "strangler",
            Some(Rule::StranglerFig {
                features: (0..16)
                    .map(|i| FeatureRule {
                        pattern: KeyPattern::new(&format!("feature_{i}:*")),
                        to_new: i % 2 == 0,
                    })
                    .chain([FeatureRule {
                        pattern: KeyPattern::new("user:*:cart"),
                        to_new: true,
                    }])
                    .collect(),
            }),
        ),
        (
            "geographic",
            Some(Rule::Geographic {
                instance_to_new: None,
                cidrs: (0..16)
                    .filter_map(|i| CidrRule::parse(&format!("10.{i}.0.0/16"), i % 2 == 0))
                    .collect(),
            }),
        ),
    ];
    let mut t = RoutingTable {
        version: 7,
        ..Default::default()
    };
    for (name, rule) in rules {
        let mut r = InterlayRoute::direct("old");
        r.migration = rule.map(|rule| MigrationRoute::new("m", "new", rule));
        t.interlays.insert(Id::from(name), r);
    }
    t
}

fn bench(c: &mut Criterion) {
    let swap = ArcSwap::from_pointee(table());
    let get = lookup(b"GET").unwrap();
    let mut g = c.benchmark_group("decide");
    for (name, key) in [
        ("direct", &b"user:1000"[..]),
        ("canary", b"user:1000"),
        ("strangler", b"user:1000:cart"),
        ("geographic", b"user:1000"),
    ] {
        let route = swap.load().interlay(name).cloned().unwrap();
        let ip = "10.15.3.4".parse().ok();
        g.bench_function(format!("load+decide/{name}"), |b| {
            b.iter(|| {
                let t = swap.load();
                let inputs = Inputs {
                    conn_id: 42,
                    key: Some(key),
                    client_ip: ip,
                    ..Default::default()
                };
                (t.version, decide(black_box(&route), get, &inputs))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
