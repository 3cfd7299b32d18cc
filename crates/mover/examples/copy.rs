//! Copies every key of one Redis to another with the mover and prints the rate (used by
//! `benches/copy-compare.sh`). `cargo run --release -p godwit-mover --example copy -- SRC DST`

use std::time::{Duration, Instant};

use godwit_mover::{start, CopyJob, CopyOptions, Mode, Phase, ReplaceMode};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(src), Some(dst)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: copy redis://SRC redis://DST");
        std::process::exit(64);
    };
    let job = CopyJob {
        name: "bench".into(),
        source_url: src.clone(),
        target_url: dst.clone(),
        mode: Mode::Snapshot,
        replace: ReplaceMode::Replace,
        resume_cursor: None,
        pass_done: false,
        options: CopyOptions {
            settle: Duration::ZERO,
            tick: Duration::from_millis(10),
            // BATCH / LANES override the defaults (to try tunings)
            batch: env_or("BATCH", CopyOptions::default().batch),
            lanes: env_or("LANES", CopyOptions::default().lanes),
            ..Default::default()
        },
    };
    let started = Instant::now();
    let h = start(job, None);
    let mut rx = h.progress();
    let p = rx
        .wait_for(|p| matches!(p.phase, Phase::Done | Phase::Failed))
        .await
        .map(|p| p.clone())
        .unwrap_or_default();
    let secs = started.elapsed().as_secs_f64();
    if p.phase == Phase::Failed {
        eprintln!("copy failed: {:?}", p.error);
        std::process::exit(1);
    }
    println!(
        "copied {} keys ({} bytes) in {secs:.3} s: {:.0} keys/s",
        p.keys_copied,
        p.bytes_copied,
        p.keys_copied as f64 / secs
    );
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
