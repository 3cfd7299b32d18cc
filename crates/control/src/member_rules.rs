//! `migration_rules` of the full add-interlay body (eden-spec §4.7.2): traffic read/write
//! routing, error and rollback rules, completion milestone. Accepted in Eden's PascalCase or
//! snake_case, validated, and stored in snake_case.

use serde_json::{json, Map, Value};

use crate::casing::{fraction, snake, untag};
use crate::ControlError;

const POLICIES: [&str; 6] = [
    "old_authoritative",
    "new_authoritative",
    "best_effort",
    "both_required",
    "last_write_wins",
    "two_phase_commit",
];

fn bad(msg: String) -> ControlError {
    ControlError::bad(format!("invalid migration_rules: {msg}"))
}

fn read_routing(v: &Value) -> Result<Value, ControlError> {
    let (t, f) = untag(v, "type", "migration_rules.traffic.read")?;
    match t.as_str() {
        "old" | "new" | "fallback_on_miss" | "version_compare" | "replicated" => Ok(json!(t)),
        "ratio" => {
            let strat = f
                .get("strategy")
                .ok_or_else(|| bad("Ratio needs a strategy".into()))?;
            let (kind, sf) = untag(strat, "type", "Ratio.strategy")?;
            if !matches!(kind.as_str(), "random" | "user_hash") {
                return Err(bad(format!("unknown ratio strategy '{kind}'")));
            }
            let ratio = sf
                .get("ratio")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad("Ratio needs a numeric ratio".into()))?;
            fraction("ratio", ratio)?;
            Ok(json!({"ratio": {"strategy": kind, "ratio": ratio}}))
        }
        other => Err(bad(format!("unknown read routing '{other}'"))),
    }
}

fn write_routing(v: &Value) -> Result<Value, ControlError> {
    let (t, f) = untag(v, "type", "migration_rules.traffic.write")?;
    match t.as_str() {
        "old" | "new" => Ok(json!(t)),
        "both" => Ok(json!({"replicated": {"policy": "best_effort"}})),
        "replicated" => {
            let p = match f.get("policy") {
                None | Some(Value::Null) => "old_authoritative".to_string(),
                Some(Value::String(s)) => snake(s),
                Some(_) => return Err(bad("policy must be a string".into())),
            };
            if !POLICIES.contains(&p.as_str()) {
                return Err(bad(format!("unknown write policy '{p}'")));
            }
            if p == "two_phase_commit" {
                return Err(ControlError::bad(
                    "TwoPhaseCommit is not supported for redis",
                ));
            }
            Ok(json!({"replicated": {"policy": p}}))
        }
        other => Err(bad(format!("unknown write routing '{other}'"))),
    }
}

fn one_of(
    v: Option<&Value>,
    field: &str,
    allowed: &[&str],
    default: &str,
) -> Result<Value, ControlError> {
    match v {
        None | Some(Value::Null) => Ok(json!(default)),
        Some(Value::String(s)) => {
            let s = snake(s);
            if allowed.contains(&s.as_str()) {
                Ok(json!(s))
            } else {
                Err(bad(format!(
                    "{field} must be one of {}",
                    allowed.join(", ")
                )))
            }
        }
        Some(_) => Err(bad(format!("{field} must be a string"))),
    }
}

fn milestone(v: Option<&Value>) -> Result<Value, ControlError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(json!("immediate"));
    };
    // Eden sends {"TotalRequests": 1000000}: a one-key object whose value is a number.
    let scalar = v
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.iter().next())
        .filter(|(_, x)| x.is_number())
        .map(|(k, _)| (snake(k), Map::new()));
    let (t, f) = match scalar {
        Some(s) => s,
        None => untag(v, "type", "milestone")?,
    };
    let num = |k: &str| f.get(k).and_then(Value::as_u64);
    match t.as_str() {
        "immediate" => Ok(json!("immediate")),
        "total_requests" => {
            let n = v
                .as_object()
                .and_then(|m| m.values().next())
                .and_then(Value::as_u64)
                .or_else(|| num("count"))
                .ok_or_else(|| bad("TotalRequests needs a count".into()))?;
            Ok(json!({"total_requests": n}))
        }
        "duration" => {
            let s = num("secs").ok_or_else(|| bad("Duration needs secs".into()))?;
            Ok(json!({"duration": {"secs": s}}))
        }
        "error_rate_below" => {
            let r = v
                .as_object()
                .and_then(|m| m.values().next())
                .and_then(Value::as_f64)
                .ok_or_else(|| bad("ErrorRateBelow needs a rate".into()))?;
            fraction("error_rate_below", r)?;
            Ok(json!({"error_rate_below": r}))
        }
        other => Err(bad(format!("unknown milestone '{other}'"))),
    }
}

/// Validates and normalises `migration_rules`.
pub fn parse_rules(v: &Value) -> Result<Value, ControlError> {
    let Some(m) = v.as_object() else {
        return Err(bad("must be an object".into()));
    };
    let mut out = Map::new();
    for k in m.keys() {
        if !matches!(k.as_str(), "traffic" | "error" | "rollback" | "completion") {
            return Err(bad(format!("unknown field `{k}`")));
        }
    }
    if let Some(t) = m.get("traffic").filter(|t| !t.is_null()) {
        let read = t
            .get("read")
            .map(read_routing)
            .transpose()?
            .unwrap_or(json!("old"));
        let write = t
            .get("write")
            .map(write_routing)
            .transpose()?
            .unwrap_or(json!({"replicated": {"policy": "old_authoritative"}}));
        out.insert("traffic".into(), json!({"read": read, "write": write}));
    }
    out.insert(
        "error".into(),
        one_of(
            m.get("error"),
            "error",
            &["do_nothing", "rollback"],
            "do_nothing",
        )?,
    );
    out.insert(
        "rollback".into(),
        one_of(
            m.get("rollback"),
            "rollback",
            &["ignore", "revert"],
            "ignore",
        )?,
    );
    let c = m.get("completion").filter(|c| !c.is_null());
    let ms = milestone(c.and_then(|c| c.get("milestone")))?;
    let approval = match c.and_then(|c| c.get("require_manual_approval")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("require_manual_approval must be a boolean".into())),
    };
    out.insert(
        "completion".into(),
        json!({"milestone": ms, "require_manual_approval": approval}),
    );
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eden_journey_rules() {
        let v = json!({"traffic":{"read":"Old","write":{"Replicated":{"policy":"OldAuthoritative"}}},
            "error":"DoNothing","rollback":"Ignore",
            "completion":{"milestone":{"TotalRequests":1000000},"require_manual_approval":false}});
        let r = parse_rules(&v).unwrap();
        assert_eq!(
            r["traffic"]["write"]["replicated"]["policy"],
            "old_authoritative"
        );
        assert_eq!(r["traffic"]["read"], "old");
        assert_eq!(r["error"], "do_nothing");
        assert_eq!(r["completion"]["milestone"]["total_requests"], 1000000);
        let v = json!({"traffic":{"read":{"Ratio":{"strategy":{"Random":{"ratio":0.05}}}},"write":"Both"}});
        let r = parse_rules(&v).unwrap();
        assert_eq!(r["traffic"]["read"]["ratio"]["ratio"], 0.05);
        assert_eq!(r["traffic"]["write"]["replicated"]["policy"], "best_effort");
    }

    #[test]
    fn rejects_bad_rules() {
        for v in [
            json!({"traffic":{"read":"Sideways"}}),
            json!({"traffic":{"read":{"Ratio":{"strategy":{"Random":{"ratio":1.5}}}}}}),
            json!({"error":"Explode"}),
            json!({"bogus":1}),
            json!({"traffic":{"write":{"Replicated":{"policy":"TwoPhaseCommit"}}}}),
            json!([1]),
        ] {
            assert!(parse_rules(&v).is_err(), "{v}");
        }
    }
}
