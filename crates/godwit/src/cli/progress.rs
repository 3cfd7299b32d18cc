//! `godwit migrations status`: the status view as text (a summary block, or one progress line
//! for `--watch`), and the watch loop that refreshes it until the migration ends.
//!
//! Formatting is pure (a `serde_json::Value` in, text out) so it is unit-tested; the loop
//! owns the clock and the terminal. On a TTY the line is redrawn in place (`\r` + erase line);
//! otherwise a plain line is printed whenever it changes, so logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{seg, AdminClient, CliError};

/// How a watch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Keep watching.
    Continue,
    /// The migration completed (or is ready for cutover with `--until-ready`).
    Success,
    /// The migration failed or was rolled back.
    Failure,
}

/// What a status view means for a watch.
pub fn outcome(v: &Value, until_ready: bool) -> Outcome {
    match v["status"].as_str().unwrap_or("") {
        "completed" => Outcome::Success,
        "failed" | "rolled_back" => Outcome::Failure,
        _ if until_ready && v["ready_for_cutover"] == Value::Bool(true) => Outcome::Success,
        _ => Outcome::Continue,
    }
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let head = match s.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = s[..head].to_string();
    for group in s.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or(""));
    }
    out
}

/// Seconds as `42s`, `3m05s`, `2h07m`.
pub fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Rate (keys/s) and ETA (s): the server's when it reports them, else `local_rate` (measured
/// by the watch loop between two refreshes) and the keys left in the scan pass.
fn rate_eta(p: &Value, local_rate: Option<f64>) -> (Option<u64>, Option<u64>) {
    let rate = p
        .get("rate_keys_per_s")
        .and_then(Value::as_u64)
        .or(local_rate.map(|r| r.round() as u64));
    let eta = p.get("eta_s").and_then(Value::as_u64).or_else(|| {
        let left = u(p, "keys_total_estimate").saturating_sub(u(p, "keys_scanned"));
        match rate {
            Some(r) if r > 0 && left > 0 => Some(left.div_ceil(r)),
            _ => None,
        }
    });
    (rate, eta)
}

/// The one-line progress of a status view (what `--watch` redraws).
pub fn line(v: &Value, local_rate: Option<f64>) -> String {
    let p = &v["progress"];
    let phase = v["phase"]
        .as_str()
        .or(p["phase"].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("idle");
    let mut parts = vec![format!(
        "{} {} [{}]",
        v["migration_id"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?"),
        phase
    )];
    // scanned against the start-time key count is the pass's progress; copied also counts
    // re-copies of keys written meanwhile, so it may end above the total
    let (scanned, total) = (u(p, "keys_scanned"), u(p, "keys_total_estimate"));
    if total > 0 {
        let pct = (scanned.min(total) as f64 * 100.0 / total as f64).floor();
        parts.push(format!(
            "{}/{} scanned ({pct:.0}%)",
            thousands(scanned),
            thousands(total)
        ));
    } else {
        parts.push(format!("{} scanned", thousands(scanned)));
    }
    parts.push(format!("{} copied", thousands(u(p, "keys_copied"))));
    let (rate, eta) = rate_eta(p, local_rate);
    if let Some(r) = rate {
        parts.push(format!("{}/s", thousands(r)));
    }
    if phase != "done" {
        if let Some(e) = eta {
            parts.push(format!("ETA {}", duration(e)));
        }
    }
    parts.push(format!("dirty {}", thousands(u(v, "dirty_backlog"))));
    parts.push(format!("lag {} ms", u(v, "replication_lag_ms")));
    let t = &v["traffic"];
    if t.get("shadow_compared").is_some() {
        parts.push(format!(
            "mismatches {}/{}",
            thousands(u(t, "shadow_mismatches")),
            thousands(u(t, "shadow_compared"))
        ));
    }
    if let Some(f) = t.get("dual_write_failures").and_then(Value::as_u64) {
        if f > 0 {
            parts.push(format!("dual-write failures {}", thousands(f)));
        }
    }
    if v["ready_for_cutover"] == Value::Bool(true) {
        parts.push("ready for cutover".into());
    }
    parts.join(" | ")
}

fn side(v: &Value) -> String {
    let ep = v["endpoint"].as_str().unwrap_or("-");
    let health = v["health"].as_str().unwrap_or("unknown");
    let mut s = format!("{ep} {health}");
    if let Some(ver) = v["version"].as_str() {
        s.push_str(&format!(", redis {ver}"));
    }
    if let Some(ms) = v["ping_ms"].as_f64() {
        s.push_str(&format!(", ping {ms:.2} ms"));
    }
    if let Some(e) = v["error"].as_str() {
        s.push_str(&format!(" ({e})"));
    }
    s
}

/// The multi-line summary `status` prints without `--watch`.
pub fn summary(v: &Value) -> String {
    let p = &v["progress"];
    let mut out = String::new();
    let mut row = |k: &str, val: String| out.push_str(&format!("{k:<18}{val}\n"));
    row(
        "migration",
        format!(
            "{} ({})",
            v["migration_id"].as_str().unwrap_or("?"),
            v["status"].as_str().unwrap_or("?")
        ),
    );
    let phase = v["phase"].as_str().filter(|s| !s.is_empty());
    row("phase", phase.unwrap_or("idle").to_string());
    row(
        "keys",
        format!(
            "{} scanned of ~{}, {} copied, {} skipped, {} failed",
            thousands(u(p, "keys_scanned")),
            thousands(u(p, "keys_total_estimate")),
            thousands(u(p, "keys_copied")),
            thousands(u(p, "keys_skipped")),
            thousands(u(p, "keys_failed"))
        ),
    );
    let (rate, eta) = rate_eta(p, None);
    let eta = eta.filter(|_| phase != Some("done"));
    row(
        "rate",
        format!(
            "{} keys/s, ETA {}",
            rate.map(thousands).unwrap_or_else(|| "-".into()),
            eta.map(duration).unwrap_or_else(|| "-".into())
        ),
    );
    row(
        "dirty backlog",
        format!(
            "{} keys, lag {} ms",
            thousands(u(v, "dirty_backlog")),
            u(v, "replication_lag_ms")
        ),
    );
    row("source", side(&v["source"]));
    row("target", side(&v["target"]));
    let t = &v["traffic"];
    if t.as_object().is_some_and(|o| !o.is_empty()) {
        row(
            "dual writes",
            format!(
                "{} failed, repair backlog {}",
                thousands(u(t, "dual_write_failures")),
                thousands(u(t, "repair_backlog"))
            ),
        );
        row(
            "shadow reads",
            format!(
                "{} compared, {} mismatched",
                thousands(u(t, "shadow_compared")),
                thousands(u(t, "shadow_mismatches"))
            ),
        );
    }
    if let Some(e) = p["error"].as_str() {
        row("copy error", e.to_string());
    }
    row(
        "ready for cutover",
        if v["ready_for_cutover"] == Value::Bool(true) {
            "yes".into()
        } else {
            "no".into()
        },
    );
    out
}

/// Refreshes `GET /migrations/{id}/status` every `interval` until the migration completes
/// (Ok), fails or is rolled back ([`CliError::Ended`]), or Ctrl-C ([`CliError::Interrupted`],
/// also while a request is in flight).
pub async fn watch(
    client: &AdminClient,
    id: &str,
    interval: Duration,
    until_ready: bool,
    json: bool,
) -> Result<(), CliError> {
    let tty = std::io::stdout().is_terminal() && !json;
    let r = tokio::select! {
        r = refresh_loop(client, id, interval, until_ready, json, tty) => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    };
    if tty {
        println!();
    }
    r
}

async fn refresh_loop(
    client: &AdminClient,
    id: &str,
    interval: Duration,
    until_ready: bool,
    json: bool,
    tty: bool,
) -> Result<(), CliError> {
    let path = format!("/api/v1/migrations/{}/status", seg(id));
    let mut last_line = String::new();
    let mut prev: Option<(u64, Instant)> = None;
    let mut local_rate = None;
    let mut stdout = std::io::stdout();
    loop {
        let v = client.get(&path, false).await?;
        let copied = u(&v["progress"], "keys_copied");
        let now = Instant::now();
        if let Some((c0, t0)) = prev {
            let secs = now.duration_since(t0).as_secs_f64();
            if secs > 0.0 {
                local_rate = Some(copied.saturating_sub(c0) as f64 / secs);
            }
        }
        prev = Some((copied, now));
        let text = if json {
            v.to_string()
        } else {
            line(&v, local_rate)
        };
        if tty {
            let _ = write!(stdout, "\r\x1b[2K{text}");
            let _ = stdout.flush();
        } else if text != last_line {
            let _ = writeln!(stdout, "{text}");
        }
        last_line = text;
        match outcome(&v, until_ready) {
            Outcome::Continue => tokio::time::sleep(interval).await,
            Outcome::Success => return Ok(()),
            Outcome::Failure => {
                let reason = v["progress"]["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(CliError::Ended(format!(
                    "migration {id} is {}{reason}",
                    v["status"].as_str().unwrap_or("?")
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view() -> Value {
        json!({
            "migration_id": "to_new", "status": "running", "phase": "scanning",
            "progress": {"phase": "scanning", "keys_scanned": 45000, "keys_total_estimate": 100000,
                         "keys_copied": 45000, "keys_skipped": 0, "keys_failed": 0,
                         "dirty_backlog": 3, "lag_ms": 12, "rate_keys_per_s": 11000, "eta_s": 5},
            "replication_lag_ms": 12, "dirty_backlog": 3, "ready_for_cutover": false,
            "source": {"endpoint": "old", "health": "healthy", "version": "7.0.15", "ping_ms": 0.2},
            "target": {"endpoint": "new", "health": "unreachable", "error": "refused"},
            "traffic": {"dual_write_failures": 0, "repair_backlog": 0, "shadow_compared": 1234,
                        "shadow_mismatches": 2}
        })
    }

    #[test]
    fn progress_line() {
        assert_eq!(
            line(&view(), None),
            "to_new running [scanning] | 45,000/100,000 scanned (45%) | 45,000 copied | \
             11,000/s | ETA 5s | dirty 3 | lag 12 ms | mismatches 2/1,234"
        );
    }

    #[test]
    fn local_rate_and_eta_when_the_server_has_none() {
        let mut v = view();
        let p = v["progress"].as_object_mut().unwrap();
        p.remove("rate_keys_per_s");
        p.remove("eta_s");
        let l = line(&v, Some(5500.4));
        assert!(l.contains("5,500/s | ETA 10s"), "{l}");
        assert!(!line(&v, None).contains("ETA"));
    }

    #[test]
    fn done_and_ready() {
        let mut v = view();
        v["phase"] = json!("done");
        v["ready_for_cutover"] = json!(true);
        let l = line(&v, None);
        assert!(
            !l.contains("ETA") && l.ends_with("ready for cutover"),
            "{l}"
        );
        assert_eq!(outcome(&v, false), Outcome::Continue);
        assert_eq!(outcome(&v, true), Outcome::Success);
        v["status"] = json!("completed");
        assert_eq!(outcome(&v, false), Outcome::Success);
        v["status"] = json!("rolled_back");
        assert_eq!(outcome(&v, true), Outcome::Failure);
    }

    #[test]
    fn summary_block() {
        let s = summary(&view());
        assert!(s.contains("migration         to_new (running)\n"), "{s}");
        assert!(
            s.contains("target            new unreachable (refused)\n"),
            "{s}"
        );
        assert!(
            s.contains("shadow reads      1,234 compared, 2 mismatched\n"),
            "{s}"
        );
        assert!(s.ends_with("ready for cutover no\n"), "{s}");
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(185), "3m05s");
        assert_eq!(duration(7620), "2h07m");
    }
}
