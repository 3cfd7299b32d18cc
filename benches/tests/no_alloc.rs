//! The per-command hot path — parse, command lookup, key extraction, table load, decide,
//! reply scan — allocates nothing. Checked with a counting global allocator.
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only counts and delegates

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use godwit_resp::{parse_command, Limits, ReplyScanner};
use godwit_router::{
    decide, lookup, Inputs, InterlayRoute, MigrationRoute, RoutingTable, Rule, Sticky, Writes,
};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn hot_path_does_not_allocate() {
    let mut table = RoutingTable {
        version: 1,
        ..Default::default()
    };
    let mut route = InterlayRoute::direct("old");
    route.migration = Some(MigrationRoute::new(
        "m",
        "new",
        Rule::Canary {
            read_ppm: 500_000,
            sticky: Sticky::Key,
            writes: Writes::Cutover { write_ppm: 250_000 },
        },
    ));
    table.interlays.insert("main".into(), route);
    let swap = ArcSwap::from_pointee(table);
    let reqs = b"*3\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$3\r\nabc\r\n*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n"
        .repeat(8);
    let replies = b"+OK\r\n$3\r\nabc\r\n".repeat(8);
    let limits = Limits::default();
    let route = swap.load().interlay("main").cloned().unwrap();
    let _ = lookup(b"GET"); // builds the command index once, outside the measurement
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut served = 0;
    for _ in 0..100 {
        let mut off = 0;
        while let Some(cmd) = parse_command(&reqs[off..], &limits).unwrap() {
            let buf = &reqs[off..];
            let info = lookup(cmd.name(buf).unwrap()).unwrap();
            let key = cmd.arg(buf, info.first_key as usize);
            let t = swap.load();
            let d = decide(
                &route,
                info,
                &Inputs {
                    conn_id: 1,
                    key,
                    identity: None,
                    ..Default::default()
                },
            );
            served += usize::from(
                t.version == 1
                    && matches!(d.serve, godwit_router::Side::Old | godwit_router::Side::New),
            );
            off += cmd.len;
        }
        let mut s = ReplyScanner::new();
        let mut roff = 0;
        while let Some(n) = s.next(&replies[roff..]).unwrap() {
            roff += n;
        }
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(served, 1600);
    assert_eq!(after - before, 0, "hot path allocated");
}
