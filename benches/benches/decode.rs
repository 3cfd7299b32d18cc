//! Criterion: request parsing, command lookup and reply scanning — the per-command CPU of the
//! hot path. `cargo bench -p godwit-benches --bench decode`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use godwit_resp::{parse_command, Limits, ReplyScanner};

fn pipeline(n: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..n {
        let key = format!("key:{i:08}");
        b.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$3\r\nxyz\r\n",
                key.len()
            )
            .as_bytes(),
        );
    }
    b
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    let one = pipeline(1);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_command/SET", |b| {
        b.iter(|| {
            parse_command(black_box(&one), &limits)
                .unwrap()
                .unwrap()
                .len
        })
    });
    g.bench_function("parse+lookup+first_key/SET", |b| {
        b.iter(|| {
            let cmd = parse_command(black_box(&one), &limits).unwrap().unwrap();
            let info = godwit_router::lookup(cmd.name(&one).unwrap()).unwrap();
            (
                info.class,
                cmd.arg(&one, info.first_key as usize).map(|k| k.len()),
            )
        })
    });
    let sixteen = pipeline(16);
    g.throughput(Throughput::Elements(16));
    g.bench_function("parse_command/pipeline16", |b| {
        b.iter(|| {
            let mut off = 0;
            while let Some(cmd) = parse_command(&sixteen[off..], &limits).unwrap() {
                off += cmd.len;
            }
            off
        })
    });
    let replies: Vec<u8> = b"$3\r\nxyz\r\n".repeat(16);
    g.bench_function("reply_scan/bulk16", |b| {
        b.iter(|| {
            let mut s = ReplyScanner::new();
            let mut off = 0;
            while let Some(n) = s.next(&replies[off..]).unwrap() {
                off += n;
            }
            off
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
