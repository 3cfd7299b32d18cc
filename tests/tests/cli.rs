//! `godwit migrations …`: the real binary (found, and built if stale, by
//! `godwit_tests::godwit_bin`, see tests/support/process.rs for why) run as a child process
//! against an in-process godwit with real Redis servers: a whole migration driven from the
//! CLI (shadow → canary ramp → complete → verify), `status --watch`, and every kind of error
//! with its message and exit code.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use godwit_tests::{auth_toml, godwit_bin, AdminClient, ApiToken, GodwitFixture, RedisServer};
use serde_json::{json, Value};

/// What one CLI run printed and returned.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:#?}");
        &self.stdout
    }

    #[track_caller]
    fn fails(&self, code: i32, stderr_has: &str) {
        assert_eq!(self.code, code, "{self:#?}");
        assert!(self.stderr.contains(stderr_has), "{self:#?}");
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// The CLI pointed at one admin API.
struct Cli {
    bin: PathBuf,
    admin: String,
    token: Option<String>,
}

impl Cli {
    fn new(admin: std::net::SocketAddr, token: Option<&str>) -> Self {
        Self {
            bin: godwit_bin().unwrap(),
            admin: format!("http://{admin}"),
            token: token.map(str::to_string),
        }
    }

    /// `godwit migrations <args> --admin … [--token …]`, off the runtime's threads (the proxy
    /// under test runs on them).
    async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("migrations")
            .args(args)
            .args(["--admin", &self.admin])
            .env_remove("GODWIT_TOKEN")
            .env_remove("GODWIT_ADMIN")
            .stdin(Stdio::null());
        if let Some(t) = &self.token {
            cmd.args(["--token", t]);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

async fn start(
    redis: &[(&str, &RedisServer)],
    interlays: &[(&str, &str)],
) -> (GodwitFixture, ApiToken) {
    let token = ApiToken::new("ops", "default", "admin");
    let mut b = GodwitFixture::builder();
    for (id, r) in redis {
        b = b.endpoint(id, &r.url());
    }
    for (id, ep) in interlays {
        b = b.interlay(id, ep);
    }
    let godwit = b
        .extra_toml(&auth_toml(std::slice::from_ref(&token), "", ""))
        .start()
        .await
        .unwrap();
    (godwit, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_driven_from_the_cli() {
    let old = RedisServer::start().unwrap();
    let new = RedisServer::start().unwrap();
    let mut o = old.client().await.unwrap();
    let mut mset = redis::cmd("MSET");
    for i in 0..500 {
        mset.arg(format!("user:{i}")).arg(format!("v{i}"));
    }
    mset.query_async::<()>(&mut o).await.unwrap();
    let (godwit, token) = start(&[("old", &old), ("new", &new)], &[("main", "old")]).await;
    let cli = Cli::new(godwit.admin_addr(), Some(&token.token));
    let mut app = godwit.client().await.unwrap();

    let created = cli
        .run(&[
            "create",
            "to_new",
            "--strategy",
            "shadow_traffic",
            "--data",
            "scan",
            "--replace",
            "replace",
            "--description",
            "cli walkthrough",
        ])
        .await;
    assert_eq!(created.json()["id"], "to_new", "{created:#?}");
    let added = cli
        .run(&["add-interlay", "to_new", "main", "--target", "new"])
        .await;
    assert_eq!(added.ok(), "added Interlay to migration\n");
    let tested = cli.run(&["test", "to_new"]).await;
    assert_eq!(tested.json()["valid"], true, "{tested:#?}");
    let migrated = cli.run(&["migrate", "to_new"]).await;
    assert_eq!(migrated.ok(), "migration commit completed\n");

    // writes through the proxy while the copy runs
    for i in 0..50 {
        redis::cmd("SET")
            .arg(format!("live:{i}"))
            .arg(i)
            .query_async::<()>(&mut app)
            .await
            .unwrap();
    }
    let watched = cli
        .run(&[
            "status",
            "to_new",
            "--watch",
            "--until-ready",
            "--interval",
            "0.1",
        ])
        .await;
    let lines: Vec<&str> = watched.ok().lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with("to_new running [")),
        "{watched:#?}"
    );
    assert!(
        lines.last().unwrap().ends_with("ready for cutover"),
        "{watched:#?}"
    );
    assert!(!watched.stdout.contains('\x1b'), "no TTY, no escape codes");

    // shadow phase over: canary ramp
    let switched = cli
        .run(&[
            "update",
            "to_new",
            "--strategy",
            "canary",
            "--read-percentage",
            "0.05",
            "--write-policy",
            "old_authoritative",
        ])
        .await;
    assert_eq!(
        switched.ok(),
        "to_new: running, strategy {\"read_percentage\":0.05,\"type\":\"canary\",\
         \"write_mode\":{\"mode\":\"dual_write\",\"policy\":\"old_authoritative\"}}\n"
    );
    cli.run(&["traffic", "to_new", "--read-percentage", "0.9"])
        .await
        .fails(1, "Cannot change read_percentage by more than 0.25");
    let r = cli
        .run(&[
            "traffic",
            "to_new",
            "--read-percentage",
            "0.25",
            "--reason",
            "ramp",
        ])
        .await;
    assert_eq!(
        r.ok(),
        "to_new: read_percentage 0.05 -> 0.25 (reason: ramp)\n"
    );
    for p in ["0.5", "0.75", "1"] {
        let r = cli
            .run(&["traffic", "to_new", "--read-percentage", p, "--json"])
            .await;
        assert_eq!(
            r.json()["new_percentage"].as_f64(),
            Some(p.parse().unwrap())
        );
    }
    let listed = cli.run(&["list"]).await;
    let row = listed
        .ok()
        .lines()
        .find(|l| l.starts_with("to_new "))
        .unwrap_or_else(|| panic!("{listed:#?}"))
        .to_string();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..3], ["to_new", "running", "canary"], "{row}");
    assert!(row.ends_with("cli walkthrough"), "{row}");

    let completed = cli
        .run(&["complete", "to_new", "--reason", "ramp done"])
        .await;
    assert_eq!(
        completed.ok(),
        "to_new: completed: migration completed; interlays now serve the target \
         (reason: ramp done)\n"
    );
    let verified = cli.run(&["verify", "to_new"]).await;
    assert!(
        verified
            .ok()
            .starts_with("consistent: 0 differing keys (full mode"),
        "{verified:#?}"
    );
    assert!(
        verified
            .stdout
            .contains("main: old -> new: 550 keys checked, 550 matched"),
        "{verified:#?}"
    );
    let status = cli.run(&["status", "to_new"]).await;
    assert!(
        status
            .ok()
            .starts_with("migration         to_new (completed)\n"),
        "{status:#?}"
    );
    let json = cli.run(&["status", "to_new", "--json"]).await.json();
    assert_eq!(json["status"], "completed");
    // a watch of a completed migration ends at once, successfully
    cli.run(&["status", "to_new", "--watch"]).await.ok();
    let got = cli.run(&["get", "to_new"]).await.json();
    assert_eq!(got["status"], "completed");
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_print_the_api_message_and_exit_nonzero() {
    let old = RedisServer::start().unwrap();
    let new = RedisServer::start().unwrap();
    let (godwit, token) = start(&[("old", &old), ("new", &new)], &[("main", "old")]).await;
    let cli = Cli::new(godwit.admin_addr(), Some(&token.token));

    let anonymous = Cli::new(godwit.admin_addr(), None);
    anonymous
        .run(&["list"])
        .await
        .fails(1, "Missing bearer token");
    anonymous.run(&["list"]).await.fails(1, "GODWIT_TOKEN");

    // the token from the environment
    let mut cmd = Command::new(&cli.bin);
    cmd.args(["migrations", "list", "--json"])
        .env("GODWIT_ADMIN", &cli.admin)
        .env("GODWIT_TOKEN", &token.token);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );

    cli.run(&["get", "nope"])
        .await
        .fails(1, "Migration 'nope' does not exist (Not found, HTTP 404)");
    cli.run(&["create", "x", "--strategy", "warp_speed"])
        .await
        .fails(1, "Migration strategy not yet implemented");
    cli.run(&["create", "pending_one"]).await.ok();
    cli.run(&["rollback", "pending_one"])
        .await
        .fails(1, "Cannot set RollingBack migration in status: Pending");
    cli.run(&["create", "y", "--replace", "merge"])
        .await
        .fails(2, "--replace needs --data");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    Cli::new(closed, Some(&token.token))
        .run(&["list"])
        .await
        .fails(69, "cannot reach the admin API");
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_with_the_rollback() {
    let old = RedisServer::start().unwrap();
    let new = RedisServer::start().unwrap();
    let (godwit, token) = start(&[("old", &old), ("new", &new)], &[("main", "old")]).await;
    let cli = Cli::new(godwit.admin_addr(), Some(&token.token));
    cli.run(&["create", "m", "--strategy", "big_bang", "--data", "none"])
        .await
        .ok();
    cli.run(&["add-interlay", "m", "main", "--target", "new"])
        .await
        .ok();
    cli.run(&["migrate", "m"]).await.ok();

    let spawn_watch = || {
        Command::new(&cli.bin)
            .args(["migrations", "status", "m", "--watch", "--interval", "0.1"])
            .args(["--admin", &cli.admin, "--token", &token.token])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // on a terminal the line is redrawn in place (`script` gives the child a pseudo-terminal)
    if Command::new("script").arg("--version").output().is_ok() {
        let line = format!(
            "{} migrations status m --watch --until-ready --admin {} --token {}",
            cli.bin.display(),
            cli.admin,
            token.token
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]).stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        let tty = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(
            tty.starts_with("\r\x1b[2Km running [done]") && tty.contains("ready for cutover"),
            "{tty:?}"
        );
    }

    // Ctrl-C ends a watch with 130
    let mut interrupted = spawn_watch();
    // its first line means it is past start-up, with its Ctrl-C handler installed
    let stdout = interrupted.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(first.starts_with("m running [done]"), "{first}");
    let sigint = Command::new("kill")
        .args(["-INT", &interrupted.id().to_string()])
        .status()
        .unwrap();
    assert!(sigint.success());
    let out = tokio::task::spawn_blocking(move || interrupted.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));

    let watching = spawn_watch();
    let watch = tokio::task::spawn_blocking(move || watching.wait_with_output());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api = AdminClient::new(godwit.admin_addr(), Some(&token.token));
    api.post("/api/v1/migrations/m/rollback", json!({"reason": "test"}))
        .await
        .unwrap()
        .data();
    let out = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .expect("the watch ends after the rollback")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("m running [done]"), "{stdout}");
    assert!(
        stdout.lines().last().unwrap().starts_with("m rolled_back"),
        "{stdout}"
    );
    assert!(stderr.contains("migration m is rolled_back"), "{stderr}");
    godwit.shutdown().await;
}
