//! The metrics catalogue (docs/metrics.md) against a real scrape: godwit runs in front of real
//! Redis servers, every situation of the catalogue's "Appears" column is caused (client
//! traffic, a shadow migration with a mismatch, a dual write whose new side is down, a copy, a
//! malformed frame, a connection over `max_clients`), and `/metrics` must hold every documented
//! metric with its documented type and labels, and nothing `godwit_*` that is undocumented.
//! When `promtool` is installed (Debian `prometheus`, see scripts/check-deploy.sh) the scrape
//! must also pass `promtool check metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use godwit_tests::{auth_toml, AdminClient, ApiToken, GodwitFixture, RedisServer, RespClient};
use serde_json::json;

/// One row of the catalogue.
#[derive(Debug)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
    appears: String,
}

/// The catalogue table of docs/metrics.md: name → type, labels, when it appears.
fn catalogue() -> BTreeMap<String, Documented> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if cells.len() < 5 {
            continue;
        }
        let name = cells[0].trim().trim_matches('`');
        if !name.starts_with("godwit_") {
            continue;
        }
        let labels = cells[2]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_string())
            .filter(|l| !l.is_empty() && l != "—" && l != "-")
            .collect();
        let row = Documented {
            kind: cells[1].trim().to_string(),
            labels,
            appears: cells[3].trim().to_string(),
        };
        assert!(
            out.insert(name.to_string(), row).is_none(),
            "{name} is listed twice in docs/metrics.md"
        );
    }
    assert!(out.len() >= 10, "docs/metrics.md has no catalogue table");
    out
}

/// What a scrape says about one metric family.
#[derive(Debug, Default)]
struct Scraped {
    kind: Option<String>,
    help: bool,
    /// Label names of each sample (without histogram/summary `le`/`quantile`).
    label_sets: BTreeSet<BTreeSet<String>>,
    /// (labels as text, value) of each sample.
    samples: Vec<(String, f64)>,
}

/// The family a sample line belongs to (histogram `_bucket`/`_sum`/`_count` folded).
fn family<'a>(name: &'a str, kinds: &BTreeMap<String, Scraped>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if kinds
                .get(base)
                .and_then(|s| s.kind.as_deref())
                .is_some_and(|k| k == "histogram" || k == "summary")
            {
                return base;
            }
        }
    }
    name
}

/// Label names in `{a="x",b="y"}` (values are quoted; `\"` escapes honoured).
fn label_names(s: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim_start_matches([',', ' ']).to_string();
        names.insert(name);
        let mut i = eq + 2;
        let bytes = rest.as_bytes();
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        rest = &rest[(i + 1).min(rest.len())..];
    }
    names
}

fn parse_scrape(text: &str) -> BTreeMap<String, Scraped> {
    let mut out: BTreeMap<String, Scraped> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (Some(n), Some(k)) = (it.next(), it.next()) else {
                continue;
            };
            out.entry(n.into()).or_default().kind = Some(k.into());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(n) = rest.split_whitespace().next() {
                out.entry(n.into()).or_default().help = true;
            }
        }
    }
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, labels, value) = match line.find('{') {
            Some(b) => {
                let e = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("bad sample: {line}"));
                (&line[..b], &line[b + 1..e], line[e + 1..].trim())
            }
            None => {
                let (n, v) = line.split_once(' ').unwrap_or((line, ""));
                (n, "", v.trim())
            }
        };
        let fam = family(name, &out).to_string();
        let mut names = label_names(labels);
        names.remove("le");
        names.remove("quantile");
        let v: f64 = value
            .split_whitespace()
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let s = out.entry(fam).or_default();
        s.label_sets.insert(names);
        s.samples.push((labels.to_string(), v));
    }
    out
}

async fn scrape(admin: std::net::SocketAddr) -> String {
    let resp = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/plain"), "content-type {ct}");
    resp.text().await.unwrap()
}

/// The situations this test causes (the catalogue's "Appears" values).
const CAUSED: [&str; 10] = [
    "start",
    "client",
    "migration",
    "shadow",
    "mismatch",
    "dual-write failure",
    "backend error",
    "protocol error",
    "rejected",
    "copy",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_metric_is_exported_and_nothing_else() {
    let docs = catalogue();
    for (name, d) in &docs {
        assert!(
            CAUSED.contains(&d.appears.as_str()),
            "{name}: the test does not cause \"{}\" (update CAUSED and the traffic below)",
            d.appears
        );
        assert!(
            ["counter", "gauge", "histogram"].contains(&d.kind.as_str()),
            "{name}: type {}",
            d.kind
        );
    }

    let old = RedisServer::start().unwrap();
    let shadow_target = RedisServer::start().unwrap();
    let mut failing_target = RedisServer::start().unwrap();
    let copy_target = RedisServer::start().unwrap();
    let token = ApiToken::new("ops", "default", "admin");
    let godwit = GodwitFixture::builder()
        .endpoint("old", &old.url())
        .endpoint("shadow_new", &shadow_target.url())
        .endpoint("failing_new", &failing_target.url())
        .endpoint("copy_new", &copy_target.url())
        .interlay("main", "old")
        .interlay("side", "old")
        .interlay("bulk", "old")
        .limit("max_clients", "8")
        .extra_toml(&auth_toml(std::slice::from_ref(&token), "", ""))
        .start()
        .await
        .unwrap();
    let api = AdminClient::new(godwit.admin_addr(), Some(&token.token));

    // a key only the old side has: a shadow read of it differs
    let mut o = old.client().await.unwrap();
    redis::cmd("SET")
        .arg("only_old")
        .arg("x")
        .query_async::<()>(&mut o)
        .await
        .unwrap();

    let migrations = [
        (
            "shadow",
            json!({"type": "shadow_traffic"}),
            json!("none"),
            "main",
            "shadow_new",
        ),
        (
            "canary",
            json!({"type": "canary", "read_percentage": 0.0,
                   "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}}),
            json!("none"),
            "side",
            "failing_new",
        ),
        (
            "copy",
            json!({"type": "big_bang"}),
            json!({"type": "scan", "replace": "replace"}),
            "bulk",
            "copy_new",
        ),
    ];
    for (id, strategy, data, interlay, target) in &migrations {
        api.post(
            "/api/v1/migrations",
            json!({"id": id, "strategy": strategy, "data": data}),
        )
        .await
        .unwrap()
        .data();
        api.post(
            &format!("/api/v1/migrations/{id}/interlay/{interlay}"),
            json!({"endpoint": target}),
        )
        .await
        .unwrap()
        .data();
        let r = api
            .post(&format!("/api/v1/migrations/{id}/migrate"), json!(null))
            .await
            .unwrap();
        assert_eq!(r.data(), &json!("migration commit completed"));
    }
    // a pending migration too: every status series exists for it
    api.post("/api/v1/migrations", json!({"id": "later"}))
        .await
        .unwrap()
        .data();

    // client traffic; shadow reads (one differs)
    let mut main = RespClient::connect(godwit.interlay_addr("main"))
        .await
        .unwrap();
    main.ok(&["SET", "k", "v"]).await.unwrap();
    main.cmd(&["GET", "k"]).await.unwrap();
    main.cmd(&["GET", "only_old"]).await.unwrap();
    main.cmd(&["PING"]).await.unwrap();
    main.cmd(&["INFO", "server"]).await.unwrap();

    // a dual write whose new side is down: old answers, the failure is counted
    failing_target.stop();
    let mut side = RespClient::connect(godwit.interlay_addr("side"))
        .await
        .unwrap();
    side.ok(&["SET", "dw", "1"]).await.unwrap();

    // a malformed frame
    let mut bad = RespClient::connect(godwit.interlay_addr("main"))
        .await
        .unwrap();
    bad.send_raw(b"*1\r\n$abc\r\n").await.unwrap();
    let r = bad.read_reply().await.unwrap();
    assert!(
        r.error_text()
            .unwrap_or_default()
            .contains("Protocol error"),
        "{r:?}"
    );
    bad.expect_closed(Duration::from_secs(5)).await.unwrap();
    drop(bad);

    // connections over max_clients (8)
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = RespClient::connect(godwit.interlay_addr("bulk"))
            .await
            .unwrap();
        c.send(&["PING"]).await.unwrap();
        let r = c.read_reply().await.unwrap();
        if r.error_text()
            .is_some_and(|t| t.contains("max number of clients"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "max_clients never refused");
        held.push(c);
    }
    drop(held);

    // the copy migration's data copy, when a mover runs it (its metrics appear meanwhile)
    let copy_runs = wait_for_copy(&api).await;

    let text = scrape(godwit.admin_addr()).await;
    let scraped = parse_scrape(&text);
    let mut problems = Vec::new();
    for (name, d) in &docs {
        if d.appears == "copy" && !copy_runs {
            continue;
        }
        let Some(s) = scraped.get(name) else {
            problems.push(format!("{name} (appears: {}) is not exported", d.appears));
            continue;
        };
        if s.kind.as_deref() != Some(d.kind.as_str()) {
            problems.push(format!("{name}: type {:?}, documented {}", s.kind, d.kind));
        }
        if !s.help {
            problems.push(format!(
                "{name}: no # HELP (describe it in godwit-telemetry)"
            ));
        }
        if s.label_sets.is_empty() {
            problems.push(format!("{name}: no samples"));
        }
        for set in &s.label_sets {
            if set != &d.labels {
                problems.push(format!("{name}: labels {set:?}, documented {:?}", d.labels));
            }
        }
    }
    for name in scraped.keys().filter(|n| n.starts_with("godwit_")) {
        if !docs.contains_key(name) {
            problems.push(format!("{name} is exported but not in docs/metrics.md"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nscrape:\n{text}",
        problems.join("\n")
    );

    // values: the status gauge marks the current status only
    let status = &scraped["godwit_migration_status"].samples;
    let value = |m: &str, st: &str| {
        status
            .iter()
            .find(|(l, _)| {
                l.contains(&format!("migration=\"{m}\"")) && l.contains(&format!("status=\"{st}\""))
            })
            .map(|(_, v)| *v)
    };
    assert_eq!(value("shadow", "running"), Some(1.0), "{text}");
    assert_eq!(value("shadow", "pending"), Some(0.0), "{text}");
    assert_eq!(value("later", "pending"), Some(1.0), "{text}");
    assert_eq!(
        status.iter().filter(|(_, v)| *v == 1.0).count(),
        4,
        "one current status per migration:\n{text}"
    );

    // the copy gauges follow the migration's progress
    let copy = &scraped["godwit_copy_keys"].samples;
    let scanned = copy
        .iter()
        .find(|(l, _)| l.contains("migration=\"copy\"") && l.contains("outcome=\"scanned\""))
        .map(|(_, v)| *v);
    let phase_done = scraped["godwit_copy_phase"]
        .samples
        .iter()
        .find(|(l, _)| l.contains("migration=\"copy\"") && l.contains("phase=\"done\""))
        .map(|(_, v)| *v);
    if copy_runs {
        assert!(scanned.is_some_and(|n| n >= 1.0), "{text}");
        assert_eq!(phase_done, Some(1.0), "{text}");
    }

    // a deleted migration's series all drop to 0
    api.delete("/api/v1/migrations/later").await.unwrap().data();
    let after = parse_scrape(&scrape(godwit.admin_addr()).await);
    assert!(after["godwit_migration_status"]
        .samples
        .iter()
        .filter(|(l, _)| l.contains("migration=\"later\""))
        .all(|(_, v)| *v == 0.0));

    promtool_check(&text);
    godwit.shutdown().await;
}

/// Waits (up to 10 s) for the `copy` migration's copy to report progress; false when no mover
/// runs copies in this build (the phase stays `waiting_for_mover`).
async fn wait_for_copy(api: &AdminClient) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = api.get("/api/v1/migrations/copy/status").await.unwrap();
        let phase = r.data()["phase"].as_str().unwrap_or("").to_string();
        match phase.as_str() {
            "waiting_for_mover" => return false,
            "done" => return true,
            _ if Instant::now() > deadline => return true,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `promtool check metrics` on the scrape, when promtool is installed.
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("promtool not installed: skipping `promtool check metrics` (scripts/check-deploy.sh installs it)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n\nscrape:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
