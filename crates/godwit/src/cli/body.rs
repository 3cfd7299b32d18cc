//! Request bodies built from command-line flags: `migrations create` and `migrations update`
//! start from a JSON file (or `{}`) and let flags override its fields. The server validates
//! every value; this only assembles the JSON the API documents.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::client::CliError;

/// The flags of `create`/`update` that shape the body.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct BodyArgs {
    /// Start from this JSON body (`-` reads stdin); the flags below override its fields.
    #[arg(long, short)]
    pub file: Option<std::path::PathBuf>,
    /// Free-text description.
    #[arg(long)]
    pub description: Option<String>,
    /// Strategy type: big_bang, canary, blue_green, rolling_update, shadow_traffic,
    /// strangler_fig, feature_flag, geographic, time_window.
    #[arg(long)]
    pub strategy: Option<String>,
    /// The whole strategy object as JSON (any type and field), instead of --strategy.
    #[arg(long, conflicts_with = "strategy")]
    pub strategy_json: Option<String>,
    /// canary: fraction of reads served by the new side, 0 to 1.
    #[arg(long)]
    pub read_percentage: Option<f64>,
    /// canary: dual-write policy (old_authoritative, new_authoritative, best_effort).
    #[arg(long)]
    pub write_policy: Option<String>,
    /// Data movement: none, snapshot (copy once) or scan (copy and follow changes).
    #[arg(long)]
    pub data: Option<String>,
    /// What the copy does with keys that exist in the target: none (skip), replace, merge.
    #[arg(long)]
    pub replace: Option<String>,
    /// rollback_all, allow_partial, or retry_then_all:N.
    #[arg(long)]
    pub failure_handling: Option<String>,
}

fn read_file(path: &Path) -> Result<Value, CliError> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::Input(format!("{}: not JSON: {e}", path.display())))
}

fn object(v: Value, what: &str) -> Result<Map<String, Value>, CliError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(CliError::Input(format!("{what} must be a JSON object"))),
    }
}

impl BodyArgs {
    /// The body: the file's object (or `{}`) with `id` (when given) and every flag applied.
    pub fn build(&self, id: Option<&str>) -> Result<Value, CliError> {
        let mut body = match &self.file {
            Some(p) => object(read_file(p)?, &p.display().to_string())?,
            None => Map::new(),
        };
        if let Some(id) = id {
            body.insert("id".into(), json!(id));
        }
        if let Some(d) = &self.description {
            body.insert("description".into(), json!(d));
        }
        if let Some(s) = &self.strategy_json {
            let v = serde_json::from_str(s)
                .map_err(|e| CliError::Input(format!("--strategy-json: not JSON: {e}")))?;
            body.insert(
                "strategy".into(),
                Value::Object(object(v, "--strategy-json")?),
            );
        } else if let Some(t) = &self.strategy {
            body.insert("strategy".into(), json!({"type": t}));
        }
        if self.read_percentage.is_some() || self.write_policy.is_some() {
            let s = body
                .entry("strategy")
                .or_insert_with(|| json!({"type": "canary"}));
            let Some(s) = s.as_object_mut() else {
                return Err(CliError::Input("strategy must be a JSON object".into()));
            };
            if let Some(r) = self.read_percentage {
                s.insert("read_percentage".into(), json!(r));
            }
            if let Some(p) = &self.write_policy {
                s.insert(
                    "write_mode".into(),
                    json!({"mode": "dual_write", "policy": p}),
                );
            }
        }
        match (&self.data, &self.replace) {
            (Some(d), _) if d.eq_ignore_ascii_case("none") => {
                if self.replace.is_some() {
                    return Err(CliError::Input(
                        "--replace needs --data scan or snapshot".into(),
                    ));
                }
                body.insert("data".into(), json!("none"));
            }
            (Some(d), r) => {
                let mut data = json!({"type": d});
                if let Some(r) = r {
                    data["replace"] = json!(r);
                }
                body.insert("data".into(), data);
            }
            (None, Some(r)) => match body.get_mut("data").and_then(Value::as_object_mut) {
                Some(d) => {
                    d.insert("replace".into(), json!(r));
                }
                None => {
                    return Err(CliError::Input(
                        "--replace needs --data scan or snapshot".into(),
                    ))
                }
            },
            (None, None) => {}
        }
        if let Some(f) = &self.failure_handling {
            let v = match f.split_once(':') {
                Some((t, n)) => {
                    let n: u32 = n.trim().parse().map_err(|_| {
                        CliError::Input(format!("--failure-handling {f}: expected {t}:<count>"))
                    })?;
                    json!({"type": t, "retry_count": n})
                }
                None => json!(f),
            };
            body.insert("failure_handling".into(), v);
        }
        Ok(Value::Object(body))
    }
}

/// `{"reason": …}` when a reason was given, plus `extra` fields; `None` when empty.
pub fn reason_body(reason: &Option<String>, extra: &[(&str, Value)]) -> Option<Value> {
    let mut m = Map::new();
    if let Some(r) = reason {
        m.insert("reason".into(), json!(r));
    }
    for (k, v) in extra {
        if !v.is_null() {
            m.insert((*k).into(), v.clone());
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_and_flags() {
        let r = Some("bad p99".to_string());
        assert_eq!(
            reason_body(
                &r,
                &[
                    ("overwrite_on_reverse", json!(true)),
                    ("force", Value::Null)
                ]
            ),
            Some(json!({"reason": "bad p99", "overwrite_on_reverse": true}))
        );
        assert_eq!(reason_body(&None, &[("force", Value::Null)]), None);
    }

    #[test]
    fn canary_from_flags() {
        let a = BodyArgs {
            strategy: Some("canary".into()),
            read_percentage: Some(0.05),
            write_policy: Some("old_authoritative".into()),
            data: Some("scan".into()),
            replace: Some("replace".into()),
            failure_handling: Some("rollback_all".into()),
            ..Default::default()
        };
        assert_eq!(
            a.build(Some("to_new")).unwrap(),
            json!({"id": "to_new",
                   "strategy": {"type": "canary", "read_percentage": 0.05,
                                "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}},
                   "data": {"type": "scan", "replace": "replace"},
                   "failure_handling": "rollback_all"})
        );
    }

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("godwit-cli-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("m.json");
        std::fs::write(
            &f,
            r#"{"id": "x", "strategy": {"type": "canary", "read_percentage": 0.1},
                "data": {"type": "scan"}}"#,
        )
        .unwrap();
        let a = BodyArgs {
            file: Some(f),
            read_percentage: Some(0.2),
            replace: Some("merge".into()),
            failure_handling: Some("retry_then_all:3".into()),
            ..Default::default()
        };
        let b = a.build(None).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            b,
            json!({"id": "x", "strategy": {"type": "canary", "read_percentage": 0.2},
                   "data": {"type": "scan", "replace": "merge"},
                   "failure_handling": {"type": "retry_then_all", "retry_count": 3}})
        );
    }

    #[test]
    fn bad_input() {
        let a = BodyArgs {
            replace: Some("merge".into()),
            ..Default::default()
        };
        assert!(matches!(a.build(None), Err(CliError::Input(_))));
        let a = BodyArgs {
            strategy_json: Some("[1]".into()),
            ..Default::default()
        };
        assert!(matches!(a.build(None), Err(CliError::Input(_))));
        let a = BodyArgs {
            data: Some("none".into()),
            ..Default::default()
        };
        assert_eq!(a.build(None).unwrap(), json!({"data": "none"}));
    }

    #[test]
    fn reasons() {
        assert_eq!(reason_body(&None, &[]), None);
        assert_eq!(
            reason_body(&Some("ramp".into()), &[("force", json!(true))]),
            Some(json!({"reason": "ramp", "force": true}))
        );
    }
}
