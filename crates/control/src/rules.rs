//! The `data` (data movement), `failure_handling` and `guard` fields of a migration: parsing in
//! either casing, defaults (`none`, `rollback_all`), validation and the seed's output forms.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

use crate::casing::{fraction, invalid, snake, untag};
use crate::ControlError;

/// Conflict rule of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replace {
    /// Skip keys that exist in the target.
    #[default]
    None,
    /// Overwrite the target.
    Replace,
    /// Per-type merge.
    Merge,
}

/// Data movement rule (`data`). Output: `"none"` or `{"type":…,"replace":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataRule {
    /// No copy.
    #[default]
    None,
    /// Copy every key once.
    Snapshot {
        /// Conflict rule.
        replace: Replace,
    },
    /// Copy every key and keep copying keys that change until completion.
    Scan {
        /// Conflict rule.
        replace: Replace,
    },
}

impl DataRule {
    /// Parses `data`: `null`, `"none"`, `{"type":"scan","replace":"replace"}`, `{"Scan":{…}}`.
    pub fn parse(v: Option<&Value>) -> Result<DataRule, ControlError> {
        let v = match v {
            None | Some(Value::Null) => return Ok(DataRule::None),
            Some(v) => v,
        };
        let (ty, mut fields) = untag(v, "type", "data")?;
        let replace = match fields.remove("replace") {
            None | Some(Value::Null) => Replace::None,
            Some(Value::String(s)) => serde_json::from_value(json!(snake(&s))).map_err(|_| {
                ControlError::bad(format!(
                    "invalid data.replace '{s}' (expected none, replace or merge)"
                ))
            })?,
            Some(_) => return Err(ControlError::bad("data.replace must be a string")),
        };
        if let Some(k) = fields.keys().next() {
            return Err(ControlError::bad(format!(
                "invalid data: unknown field `{k}`"
            )));
        }
        match ty.as_str() {
            "none" => Ok(DataRule::None),
            "snapshot" => Ok(DataRule::Snapshot { replace }),
            "scan" => Ok(DataRule::Scan { replace }),
            other => Err(ControlError::bad(format!(
                "invalid data type '{other}' (expected none, snapshot or scan)"
            ))),
        }
    }

    /// The seed's JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            DataRule::None => json!("none"),
            DataRule::Snapshot { replace } => json!({"type": "snapshot", "replace": replace}),
            DataRule::Scan { replace } => json!({"type": "scan", "replace": replace}),
        }
    }
}

/// What happens when a member fails (`failure_handling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureHandling {
    /// Roll every member back.
    #[default]
    RollbackAll,
    /// Roll the failed member back alone.
    AllowPartial,
    /// Retry the failing step, then roll everything back.
    RetryThenAll {
        /// Retries before rolling back (≤ 100).
        retry_count: u32,
    },
}

impl FailureHandling {
    /// Parses `failure_handling`; `null` gives `rollback_all`.
    pub fn parse(v: Option<&Value>) -> Result<FailureHandling, ControlError> {
        let v = match v {
            None | Some(Value::Null) => return Ok(FailureHandling::RollbackAll),
            Some(v) => v,
        };
        let (ty, mut fields) = untag(v, "type", "failure_handling")?;
        let fh = match ty.as_str() {
            "rollback_all" => FailureHandling::RollbackAll,
            "allow_partial" => FailureHandling::AllowPartial,
            "retry_then_all" => {
                let n = fields
                    .remove("retry_count")
                    .ok_or_else(|| ControlError::bad("failure_handling.retry_count is required"))?;
                let n = n
                    .as_u64()
                    .filter(|n| *n <= 100)
                    .ok_or_else(|| ControlError::bad("retry_count must be an integer between 0 and 100"))?;
                FailureHandling::RetryThenAll {
                    retry_count: n as u32,
                }
            }
            other => {
                return Err(ControlError::bad(format!(
                    "invalid failure_handling '{other}' (expected rollback_all, allow_partial or retry_then_all)"
                )))
            }
        };
        if let Some(k) = fields.keys().next() {
            return Err(ControlError::bad(format!(
                "invalid failure_handling: unknown field `{k}`"
            )));
        }
        Ok(fh)
    }

    /// The seed's JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            FailureHandling::RollbackAll => json!("rollback_all"),
            FailureHandling::AllowPartial => json!("allow_partial"),
            FailureHandling::RetryThenAll { retry_count } => {
                json!({"type": "retry_then_all", "retry_count": retry_count})
            }
        }
    }
}

macro_rules! json_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.to_json().serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = Value::deserialize(d)?;
                <$t>::parse(Some(&v)).map_err(serde::de::Error::custom)
            }
        }
    };
}
json_serde!(DataRule);
json_serde!(FailureHandling);

/// What a tripped guard does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Roll the migration back.
    #[default]
    Rollback,
    /// Pause the migration.
    Pause,
}

/// Automatic rollback/pause thresholds on the new side (SPEC §5.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// Max fraction of failed commands on new, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Max p99 latency of new in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<u64>,
    /// Max fraction of shadow mismatches, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mismatch_rate: Option<f64>,
    /// Observation window in seconds (1..=3600, default 60).
    #[serde(default = "sixty")]
    pub window_s: u64,
    /// What to do when tripped.
    #[serde(default)]
    pub action: GuardAction,
}

fn sixty() -> u64 {
    60
}

impl Guard {
    /// Parses and validates `guard`; `null` means none.
    pub fn parse(v: Option<&Value>) -> Result<Option<Guard>, ControlError> {
        let mut v = match v {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v.clone(),
        };
        if let Some(Value::String(a)) = v.get("action") {
            let a = snake(a);
            v["action"] = json!(a);
        }
        let g: Guard = serde_json::from_value(v).map_err(|e| invalid("guard", e))?;
        if let Some(r) = g.max_error_rate {
            fraction("max_error_rate", r)?;
        }
        if let Some(r) = g.max_mismatch_rate {
            fraction("max_mismatch_rate", r)?;
        }
        if !(1..=3600).contains(&g.window_s) {
            return Err(ControlError::bad("window_s must be between 1 and 3600"));
        }
        Ok(Some(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_forms() {
        assert_eq!(DataRule::parse(None).unwrap(), DataRule::None);
        assert_eq!(
            DataRule::parse(Some(&json!("None"))).unwrap(),
            DataRule::None
        );
        let scan = DataRule::Scan {
            replace: Replace::Replace,
        };
        assert_eq!(
            DataRule::parse(Some(&json!({"type":"scan","replace":"replace"}))).unwrap(),
            scan
        );
        assert_eq!(
            DataRule::parse(Some(&json!({"Scan":{"replace":"Replace"}}))).unwrap(),
            scan
        );
        assert_eq!(scan.to_json(), json!({"type":"scan","replace":"replace"}));
        assert_eq!(DataRule::None.to_json(), json!("none"));
        for bad in [
            json!({"type":"teleport"}),
            json!({"type":"scan","replace":"maybe"}),
            json!({"type":"scan","x":1}),
            json!(3),
        ] {
            assert!(DataRule::parse(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn failure_forms() {
        assert_eq!(
            FailureHandling::parse(Some(&Value::Null)).unwrap(),
            FailureHandling::RollbackAll
        );
        assert_eq!(
            FailureHandling::parse(Some(&json!("AllowPartial"))).unwrap(),
            FailureHandling::AllowPartial
        );
        let r = FailureHandling::parse(Some(&json!({"type":"retry_then_all","retry_count":3})))
            .unwrap();
        assert_eq!(r, FailureHandling::RetryThenAll { retry_count: 3 });
        assert_eq!(
            r.to_json(),
            json!({"type":"retry_then_all","retry_count":3})
        );
        let r2 = FailureHandling::parse(Some(&json!({"RetryThenAll":{"retry_count":3}}))).unwrap();
        assert_eq!(r, r2);
        for bad in [
            json!("explode"),
            json!({"type":"retry_then_all"}),
            json!({"type":"retry_then_all","retry_count":-1}),
        ] {
            assert!(FailureHandling::parse(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn guard_validation() {
        assert!(Guard::parse(None).unwrap().is_none());
        let g = Guard::parse(Some(&json!({"max_error_rate":0.01,"action":"Pause"})))
            .unwrap()
            .unwrap();
        assert_eq!(g.action, GuardAction::Pause);
        assert_eq!(g.window_s, 60);
        assert!(Guard::parse(Some(&json!({"max_error_rate":2.0}))).is_err());
        assert!(Guard::parse(Some(&json!({"window_s":0}))).is_err());
        assert!(Guard::parse(Some(&json!({"bogus":1}))).is_err());
    }
}
