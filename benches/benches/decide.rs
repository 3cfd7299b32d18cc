//! Criterion: `table.load()` + `decide()` per command, as the proxy does it.
//! `cargo bench -p godwit-benches --bench decide`

use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use godwit_router::{decide, lookup, Id, Inputs, InterlayRoute, MigrationRoute, RoutingTable};

fn table() -> RoutingTable {
    let mut t = RoutingTable {
        version: 7,
        ..Default::default()
    };
    for i in 0..64 {
        let mut r = InterlayRoute::direct(format!("old{i}").as_str());
        r.migration = Some(MigrationRoute {
            id: Id::from("m"),
            target: Id::from("new"),
            serve_new: i % 2 == 0,
        });
        t.interlays.insert(Id::from(format!("il{i}").as_str()), r);
    }
    t
}

fn bench(c: &mut Criterion) {
    let swap = ArcSwap::from_pointee(table());
    let get = lookup(b"GET").unwrap();
    let mut g = c.benchmark_group("decide");
    g.bench_function("load+decide", |b| {
        let route = swap.load().interlay("il3").cloned().unwrap();
        b.iter(|| {
            let t = swap.load();
            let inputs = Inputs {
                conn_id: 42,
                key: Some(b"user:1000"),
                identity: None,
                now_ms: 0,
            };
            (t.version, decide(black_box(&route), get, &inputs).serve)
        })
    });
    g.bench_function("load+lookup_route+decide", |b| {
        b.iter(|| {
            let t = swap.load();
            let route = t.interlay(black_box("il3")).unwrap();
            let inputs = Inputs {
                conn_id: 42,
                key: Some(b"user:1000"),
                identity: None,
                now_ms: 0,
            };
            decide(route, get, &inputs).serve
        })
    });
    let _ = Arc::new(());
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
