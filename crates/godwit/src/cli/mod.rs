//! `godwit migrations …`: the operator's CLI over the admin API (HTTP, bearer token).
//!
//! Every subcommand is one API call (`status --watch` repeats one). Output is text for people
//! (`--json` prints the API's `data` as JSON instead); API errors are printed with their
//! message and give exit code 1, an unreachable API 69, bad local input 2, Ctrl-C 130
//! ([`CliError::exit_code`]).

mod body;
mod client;
mod progress;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

pub use body::BodyArgs;
pub use client::{AdminClient, CliError};

use body::reason_body;
use client::seg;

/// Where the admin API is and who calls it (shared by every `migrations` subcommand).
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Admin API base URL (plain http).
    #[arg(
        long,
        global = true,
        env = "GODWIT_ADMIN",
        default_value = "http://127.0.0.1:7070"
    )]
    pub admin: String,
    /// Bearer token: an API token declared in proxy.toml, or a JWT from /api/v1/auth/login.
    #[arg(long, global = true, env = "GODWIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON `data` instead of text (one object per refresh with --watch).
    #[arg(long, global = true)]
    pub json: bool,
}

/// `godwit migrations …`.
#[derive(Debug, Args)]
pub struct MigrationsCmd {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    op: Op,
}

/// `--reason`, recorded with the status change.
#[derive(Debug, Args)]
struct Reason {
    /// Why (kept with the migration's status).
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Op {
    /// List migrations (id, status, strategy, last change, description).
    List {
        /// Only migrations in this status (pending, running, completed, ...).
        #[arg(long)]
        status: Option<String>,
        /// Full objects (X-Eden-Verbose) instead of the list view (with --json).
        #[arg(long)]
        verbose: bool,
    },
    /// Show one migration (JSON).
    Get {
        /// Migration id.
        id: String,
        /// Full object (X-Eden-Verbose).
        #[arg(long)]
        verbose: bool,
    },
    /// Create a migration from flags and/or a JSON file.
    Create {
        /// Migration id (or `id` in --file).
        id: Option<String>,
        #[command(flatten)]
        body: BodyArgs,
    },
    /// Change a migration (description, strategy fields, data rule, failure handling).
    #[command(alias = "patch")]
    Update {
        /// Migration id.
        id: String,
        #[command(flatten)]
        body: BodyArgs,
    },
    /// Delete a migration (--force while it routes traffic).
    Delete {
        /// Migration id.
        id: String,
        /// Delete even while it routes traffic.
        #[arg(long)]
        force: bool,
    },
    /// Attach an interlay: its clients move to --target under the migration's strategy.
    AddInterlay {
        /// Migration id.
        id: String,
        /// Interlay id.
        interlay: String,
        /// Endpoint the interlay migrates to.
        #[arg(long)]
        target: String,
    },
    /// Probe every member's source and target (status ready → testing → ready, or failed).
    Test {
        /// Migration id.
        id: String,
    },
    /// Execute: install the routing and start the copy (status running).
    Migrate {
        /// Migration id.
        id: String,
    },
    /// Set the fraction of reads served by new (canary, feature_flag; at most 0.25 per step).
    Traffic {
        /// Migration id.
        id: String,
        /// New fraction, 0 to 1.
        #[arg(long)]
        read_percentage: f64,
        #[command(flatten)]
        reason: Reason,
    },
    /// Pause: reads from old, writes dual old-authoritative, copy suspended.
    Pause {
        /// Migration id.
        id: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Resume a paused migration.
    Resume {
        /// Migration id.
        id: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Cut over: interlays serve the target from now on (the copy must be done unless --force).
    Complete {
        /// Migration id.
        id: String,
        /// Complete even though the copy is not done.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        reason: Reason,
    },
    /// Roll back: traffic returns to the source at once.
    Rollback {
        /// Migration id.
        id: String,
        /// Copy the target's data back to the source first (the migration stays
        /// `rolling_back` until the copy is done; docs/data-movement.md).
        #[arg(long)]
        overwrite_on_reverse: bool,
        /// Roll back a migration that is already rolling back.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        reason: Reason,
    },
    /// blue_green: flip (or set) the active side.
    Toggle {
        /// Migration id.
        id: String,
        /// Make new the active side (true) or old (false); default flips.
        #[arg(long)]
        activate_new: Option<bool>,
        #[command(flatten)]
        reason: Reason,
    },
    /// Compare old and new key by key; exit code 1 if they differ.
    Verify {
        /// Migration id.
        id: String,
        /// full or sample.
        #[arg(long)]
        mode: Option<String>,
        /// Keys to compare with --mode sample.
        #[arg(long)]
        sample_size: Option<u64>,
        /// Rounds (first pass plus re-checks of differing keys).
        #[arg(long)]
        rounds: Option<u64>,
    },
    /// Phase, copy progress, lag, health of both sides; --watch refreshes until it ends.
    Status {
        /// Migration id.
        id: String,
        /// Refresh a progress line until the migration completes, fails or Ctrl-C.
        #[arg(long, short)]
        watch: bool,
        /// With --watch: also stop (exit 0) once the copy is done and cutover is possible.
        #[arg(long)]
        until_ready: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
}

/// Runs one `migrations` subcommand; prints errors and maps them to the exit code.
pub fn run(cmd: MigrationsCmd) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("godwit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("godwit: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn path(id: &str, action: &str) -> String {
    let base = format!("/api/v1/migrations/{}", seg(id));
    if action.is_empty() {
        base
    } else {
        format!("{base}/{action}")
    }
}

async fn dispatch(cmd: MigrationsCmd) -> Result<ExitCode, CliError> {
    let api = cmd.api;
    let c = AdminClient::new(&api.admin, api.token.clone())?;
    let json_out = api.json;
    let out = |v: &Value| print_value(v, json_out);
    match cmd.op {
        Op::List { status, verbose } => {
            let q = status.map(|s| format!("?status={}", seg(&s)));
            let p = format!("/api/v1/migrations{}", q.unwrap_or_default());
            let v = c.get(&p, verbose).await?;
            if json_out {
                out(&v);
            } else {
                print!("{}", list_table(&v));
            }
        }
        Op::Get { id, verbose } => {
            let v = c.get(&path(&id, ""), verbose).await?;
            print_value(&v, true);
        }
        Op::Create { id, body } => {
            let b = body.build(id.as_deref())?;
            out(&c.send(Method::POST, "/api/v1/migrations", Some(b)).await?);
        }
        Op::Update { id, body } => {
            let b = body.build(None)?;
            let v = c.send(Method::PATCH, &path(&id, ""), Some(b)).await?;
            if json_out {
                out(&v);
            } else {
                println!(
                    "{}: {}, strategy {}",
                    v["id"].as_str().unwrap_or(&id),
                    v["status"].as_str().unwrap_or("?"),
                    v["strategy"]
                );
            }
        }
        Op::Delete { id, force } => {
            let p = path(&id, "") + if force { "?force=true" } else { "" };
            out(&c.send(Method::DELETE, &p, None).await?);
        }
        Op::AddInterlay {
            id,
            interlay,
            target,
        } => {
            let p = path(&id, &format!("interlay/{}", seg(&interlay)));
            let b = json!({"endpoint": target});
            out(&c.send(Method::POST, &p, Some(b)).await?);
        }
        Op::Test { id } => {
            let v = c.send(Method::POST, &path(&id, "test"), None).await?;
            out(&v);
            if v["valid"] == Value::Bool(false) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Op::Migrate { id } => out(&c.send(Method::POST, &path(&id, "migrate"), None).await?),
        Op::Traffic {
            id,
            read_percentage,
            reason,
        } => {
            let b = reason_body(
                &reason.reason,
                &[("read_percentage", json!(read_percentage))],
            );
            let v = c.send(Method::PATCH, &path(&id, "traffic"), b).await?;
            if json_out {
                out(&v);
            } else {
                println!(
                    "{}: read_percentage {} -> {}{}",
                    v["migration_id"].as_str().unwrap_or(&id),
                    v["old_percentage"],
                    v["new_percentage"],
                    reason_suffix(&v)
                );
            }
        }
        Op::Pause { id, reason } => {
            let b = reason_body(&reason.reason, &[]);
            status_out(
                &c.send(Method::POST, &path(&id, "pause"), b).await?,
                json_out,
            );
        }
        Op::Resume { id, reason } => {
            let b = reason_body(&reason.reason, &[]);
            status_out(
                &c.send(Method::POST, &path(&id, "resume"), b).await?,
                json_out,
            );
        }
        Op::Complete { id, force, reason } => {
            let force = if force { json!(true) } else { Value::Null };
            let b = reason_body(&reason.reason, &[("force", force)]);
            status_out(
                &c.send(Method::POST, &path(&id, "complete"), b).await?,
                json_out,
            );
        }
        Op::Rollback {
            id,
            overwrite_on_reverse,
            force,
            reason,
        } => {
            let flag = |on: bool| if on { json!(true) } else { Value::Null };
            let b = reason_body(
                &reason.reason,
                &[
                    ("overwrite_on_reverse", flag(overwrite_on_reverse)),
                    ("force", flag(force)),
                ],
            );
            status_out(
                &c.send(Method::POST, &path(&id, "rollback"), b).await?,
                json_out,
            );
        }
        Op::Toggle {
            id,
            activate_new,
            reason,
        } => {
            let a = activate_new.map(Value::Bool).unwrap_or(Value::Null);
            let b = reason_body(&reason.reason, &[("activate_new", a)]);
            out(&c.send(Method::PATCH, &path(&id, "toggle"), b).await?);
        }
        Op::Verify {
            id,
            mode,
            sample_size,
            rounds,
        } => {
            let b = reason_body(
                &None,
                &[
                    ("mode", json!(mode)),
                    ("sample_size", json!(sample_size)),
                    ("rounds", json!(rounds)),
                ],
            );
            let v = c.send(Method::POST, &path(&id, "verify"), b).await?;
            if json_out {
                out(&v);
            } else {
                print!("{}", verify_summary(&v));
            }
            if differences(&v).is_some_and(|n| n > 0) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Op::Status {
            id,
            watch,
            until_ready,
            interval,
        } => {
            if watch {
                let every = Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
                progress::watch(&c, &id, every, until_ready, json_out).await?;
            } else {
                let v = c.get(&path(&id, "status"), false).await?;
                if json_out {
                    out(&v);
                } else {
                    print!("{}", progress::summary(&v));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The number of keys that still differ in a verify answer (`differing`, or `consistent`).
fn differences(v: &Value) -> Option<u64> {
    v.get("differing")
        .and_then(Value::as_u64)
        .or_else(|| match v.get("consistent") {
            Some(Value::Bool(true)) => Some(0),
            Some(Value::Bool(false)) => Some(1),
            _ => None,
        })
}

/// A verify answer as text: the verdict, then one line per interlay and its first differences.
fn verify_summary(v: &Value) -> String {
    let n = |v: &Value, k: &str| progress::thousands(v[k].as_u64().unwrap_or(0));
    let mut out = match differences(v) {
        Some(0) => "consistent: 0 differing keys".to_string(),
        Some(d) => format!("NOT consistent: {} differing keys", progress::thousands(d)),
        None => "verify answered without a verdict".to_string(),
    };
    out.push_str(&format!(
        " ({} mode, {} rounds)\n",
        v["mode"].as_str().unwrap_or("?"),
        v["rounds"].as_u64().unwrap_or(0)
    ));
    for m in v["interlays"].as_array().into_iter().flatten() {
        let r = &m["report"];
        out.push_str(&format!(
            "  {}: {} -> {}: {} keys checked, {} matched, {} missing in target, {} extra in \
             target, {} value and {} TTL mismatches, {} resolved by re-check\n",
            m["interlay"].as_str().unwrap_or("?"),
            m["source"].as_str().unwrap_or("?"),
            m["target"].as_str().unwrap_or("?"),
            n(r, "keys_checked"),
            n(r, "matched"),
            n(r, "missing_in_target"),
            n(r, "extra_in_target"),
            n(r, "value_mismatch"),
            n(r, "ttl_mismatch"),
            n(r, "resolved_by_recheck"),
        ));
        for d in r["differences"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    {} ({})\n",
                d["key"].as_str().unwrap_or("?"),
                d["reason"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}

/// ` (reason: …)` when the answer carries a reason.
fn reason_suffix(v: &Value) -> String {
    v["reason"]
        .as_str()
        .map(|r| format!(" (reason: {r})"))
        .unwrap_or_default()
}

/// A lifecycle answer (`{migration_id, status, message?, reason?, warning?}`) as one line.
fn status_out(v: &Value, json_out: bool) {
    let (Some(id), Some(st)) = (v["migration_id"].as_str(), v["status"].as_str()) else {
        return print_value(v, json_out);
    };
    if json_out {
        return print_value(v, true);
    }
    let msg = v["message"]
        .as_str()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    println!("{id}: {st}{msg}{}", reason_suffix(v));
    if let Some(w) = v["warning"].as_str() {
        println!("warning: {w}");
    }
}

/// Strings as they are (`migration commit completed`), anything else as pretty JSON.
fn print_value(v: &Value, json_out: bool) {
    match v {
        Value::String(s) if !json_out => println!("{s}"),
        _ => println!(
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        ),
    }
}

/// The list view as an aligned table (the description last, it may hold spaces).
fn list_table(v: &Value) -> String {
    let rows: Vec<[String; 5]> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("-").to_string();
            [
                s("id"),
                s("status"),
                m["strategy"]["type"].as_str().unwrap_or("-").to_string(),
                s("updated_at"),
                m["description"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    let head = [
        "ID".to_string(),
        "STATUS".into(),
        "STRATEGY".into(),
        "UPDATED".into(),
        "DESCRIPTION".into(),
    ];
    let mut w = [0usize; 5];
    for r in std::iter::once(&head).chain(&rows) {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let v = json!([
            {"id": "to_new", "status": "running", "strategy": {"type": "canary"},
             "updated_at": "2024-01-15T10:30:00Z", "description": "move to new"},
            {"id": "b", "status": "pending", "strategy": {"type": "big_bang"},
             "updated_at": "2024-01-15T10:31:00Z", "description": null}
        ]);
        assert_eq!(
            list_table(&v),
            "ID      STATUS   STRATEGY  UPDATED               DESCRIPTION\n\
             to_new  running  canary    2024-01-15T10:30:00Z  move to new\n\
             b       pending  big_bang  2024-01-15T10:31:00Z\n"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(path("m", ""), "/api/v1/migrations/m");
        assert_eq!(path("m", "status"), "/api/v1/migrations/m/status");
    }

    #[test]
    fn verify_differences() {
        assert_eq!(
            differences(&json!({"differing": 0, "consistent": true})),
            Some(0)
        );
        assert_eq!(differences(&json!({"differing": 3})), Some(3));
        assert_eq!(differences(&json!({"consistent": false})), Some(1));
        assert_eq!(differences(&json!({})), None);
        let v = json!({"migration_id": "m", "mode": "full", "rounds": 3, "consistent": false,
            "differing": 1, "interlays": [{"interlay": "main", "source": "old", "target": "new",
            "report": {"keys_checked": 1000, "matched": 999, "missing_in_target": 1,
                       "differences": [{"key": "k:1", "reason": "missing_in_target"}]}}]});
        assert_eq!(
            verify_summary(&v),
            "NOT consistent: 1 differing keys (full mode, 3 rounds)\n  main: old -> new: 1,000 \
             keys checked, 999 matched, 1 missing in target, 0 extra in target, 0 value and 0 \
             TTL mismatches, 0 resolved by re-check\n    k:1 (missing_in_target)\n"
        );
    }
}
