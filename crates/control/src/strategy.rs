//! Migration strategies (`strategy` field, SPEC §4.3): parsing in either casing, defaults,
//! validation of every field, and the snake_case output form.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::casing::{invalid, retag, snake, snake_field, untag};
use crate::ControlError;

/// The strategy types godwit knows; any other gives the seed's 400.
pub const KNOWN_STRATEGIES: [&str; 9] = [
    "big_bang",
    "canary",
    "blue_green",
    "rolling_update",
    "shadow_traffic",
    "strangler_fig",
    "feature_flag",
    "geographic",
    "time_window",
];

/// The seed's text for an unknown strategy type.
pub const NOT_IMPLEMENTED: &str = "Migration strategy not yet implemented";

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}

/// A migration strategy, internally tagged by `type` (the seed's output form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Everything switches at once after the copy; `durability` dual-writes until then.
    BigBang {
        /// Dual write old-authoritative until the switch (default true).
        #[serde(default = "yes")]
        durability: bool,
    },
    /// A fraction of reads goes to new; writes per `write_mode`.
    Canary {
        /// Fraction of reads served by new, in [0, 1].
        #[serde(default)]
        read_percentage: f64,
        /// How writes are sent (default dual write, old authoritative).
        #[serde(default)]
        write_mode: WriteMode,
        /// What the read fraction is sticky to (default per key).
        #[serde(default, skip_serializing_if = "Sticky::is_default")]
        sticky: Sticky,
    },
    /// All traffic to the active side; `toggle` flips it.
    BlueGreen {
        /// True when new is the active side.
        #[serde(default)]
        active_is_new: bool,
        /// Optional write mode (Eden clients send one); dual write with the active side
        /// authoritative when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_mode: Option<WriteMode>,
    },
    /// Proxy instances listed in `migrated_instances` use new.
    RollingUpdate {
        /// Instance ids already migrated.
        #[serde(default)]
        migrated_instances: Vec<String>,
        /// How many instances exist in total (≥ 1).
        total_instances: u32,
    },
    /// Clients get old's replies; reads are mirrored to new and compared.
    ShadowTraffic {},
    /// Features (key patterns) move one by one.
    StranglerFig {
        /// Feature → served by new.
        #[serde(default)]
        features: BTreeMap<String, bool>,
        /// Feature → key patterns (default `<feature>:*`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        feature_keys: BTreeMap<String, Vec<String>>,
    },
    /// Flags gate the new database for a sticky fraction of clients.
    FeatureFlag {
        /// Flag name → enabled.
        #[serde(default)]
        flags: BTreeMap<String, bool>,
        /// Fraction of clients sent to new when enabled, in [0, 1].
        #[serde(default)]
        rollout_percentage: f64,
    },
    /// Regions (instance region or client CIDRs) move one by one.
    Geographic {
        /// Region → served by new.
        #[serde(default)]
        regions: BTreeMap<String, bool>,
        /// Region → client CIDRs.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        region_cidrs: BTreeMap<String, Vec<String>>,
    },
    /// A big-bang cutover run automatically inside a time window.
    TimeWindow {
        /// Window start (RFC 3339).
        window_start: DateTime<Utc>,
        /// Window end (RFC 3339), after the start.
        window_end: DateTime<Utc>,
        /// Set once the cutover ran.
        #[serde(default)]
        executed: bool,
    },
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::BigBang { durability: true }
    }
}

/// How a canary (or blue-green) sends writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum WriteMode {
    /// Write both sides; `policy` decides the reply.
    DualWrite {
        /// Which side's reply the client sees.
        #[serde(default)]
        policy: WritePolicy,
    },
    /// Keys in the `write_percentage` bucket are written new-authoritative.
    Cutover {
        /// Fraction of the key space written new-authoritative, in [0, 1] (default 1.0).
        #[serde(default = "one")]
        write_percentage: f64,
    },
}

impl Default for WriteMode {
    fn default() -> Self {
        WriteMode::DualWrite {
            policy: WritePolicy::OldAuthoritative,
        }
    }
}

/// Reply policy of a dual write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WritePolicy {
    /// Old's reply.
    #[default]
    OldAuthoritative,
    /// New's reply.
    NewAuthoritative,
    /// Success if either side succeeds.
    BestEffort,
    /// Success only if both succeed.
    BothRequired,
    /// First success wins.
    LastWriteWins,
    /// Not possible on Redis; refused by validation.
    TwoPhaseCommit,
}

/// What a canary's read fraction is sticky to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sticky {
    /// Per key (hash of the first key).
    #[default]
    Key,
    /// Per client connection.
    Connection,
    /// Per command.
    None,
}

impl Sticky {
    fn is_default(&self) -> bool {
        *self == Sticky::Key
    }
}

impl Strategy {
    /// The snake_case `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Strategy::BigBang { .. } => "big_bang",
            Strategy::Canary { .. } => "canary",
            Strategy::BlueGreen { .. } => "blue_green",
            Strategy::RollingUpdate { .. } => "rolling_update",
            Strategy::ShadowTraffic {} => "shadow_traffic",
            Strategy::StranglerFig { .. } => "strangler_fig",
            Strategy::FeatureFlag { .. } => "feature_flag",
            Strategy::Geographic { .. } => "geographic",
            Strategy::TimeWindow { .. } => "time_window",
        }
    }

    /// Parses `strategy` from a request body; `None`/`null` gives the default `big_bang`.
    pub fn parse(v: Option<&Value>) -> Result<Strategy, ControlError> {
        let v = match v {
            None | Some(Value::Null) => return Ok(Strategy::default()),
            Some(v) => v,
        };
        let (ty, mut fields) = untag(v, "type", "strategy")?;
        if !KNOWN_STRATEGIES.contains(&ty.as_str()) {
            return Err(ControlError::bad(NOT_IMPLEMENTED));
        }
        if let Some(wm) = fields.get("write_mode").cloned() {
            if !wm.is_null() {
                let (mode, mut wf) = untag(&wm, "mode", "strategy.write_mode")?;
                snake_field(&mut wf, "policy");
                fields.insert("write_mode".into(), retag("mode", &mode, wf));
            } else {
                fields.remove("write_mode");
            }
        }
        snake_field(&mut fields, "sticky");
        let strategy: Strategy = serde_json::from_value(retag("type", &ty, fields))
            .map_err(|e| invalid("strategy", e))?;
        strategy.validate()?;
        Ok(strategy)
    }
}

/// Normalises a free-form enum string the way strategies do (exposed for other parsers).
pub fn normalize(s: &str) -> String {
    snake(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Strategy, ControlError> {
        Strategy::parse(Some(&v))
    }

    #[test]
    fn defaults_and_seed_examples() {
        assert_eq!(
            Strategy::parse(None).unwrap(),
            Strategy::BigBang { durability: true }
        );
        let c = parse(json!({"type":"canary","read_percentage":0.05,
            "write_mode":{"mode":"dual_write","policy":"old_authoritative"}}))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"type":"canary","read_percentage":0.05,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}})
        );
        for v in [
            json!({"type":"big_bang"}),
            json!({"type":"blue_green","active_is_new":false}),
            json!({"type":"rolling_update","migrated_instances":["instance-1","instance-2"],"total_instances":5}),
            json!({"type":"shadow_traffic"}),
            json!({"type":"strangler_fig","features":{"feature_a":true,"feature_b":false}}),
            json!({"type":"feature_flag","flags":{"new_database":true},"rollout_percentage":0.25}),
            json!({"type":"geographic","regions":{"us-east-1":true,"eu-west-1":false}}),
            json!({"type":"time_window","window_start":"2024-01-15T02:00:00Z","window_end":"2024-01-15T04:00:00Z","executed":false}),
        ] {
            let s = parse(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
            let back = parse(serde_json::to_value(&s).unwrap()).unwrap();
            assert_eq!(s, back);
        }
    }

    #[test]
    fn pascal_case_input() {
        let c = parse(json!({"type":"Canary","read_percentage":0.05,
            "write_mode":{"mode":"DualWrite","policy":"OldAuthoritative"}}))
        .unwrap();
        assert!(matches!(
            c,
            Strategy::Canary {
                write_mode: WriteMode::DualWrite {
                    policy: WritePolicy::OldAuthoritative
                },
                ..
            }
        ));
        let b = parse(json!({"BlueGreen":{"active_is_new":true,"write_mode":{"mode":"dual_write","policy":"LastWriteWins"}}})).unwrap();
        assert_eq!(b.type_name(), "blue_green");
        assert_eq!(
            parse(json!("ShadowTraffic")).unwrap().type_name(),
            "shadow_traffic"
        );
    }

    #[test]
    fn rejects_invalid() {
        let e = parse(json!({"type":"warp_drive"})).unwrap_err();
        assert_eq!(e.to_string(), NOT_IMPLEMENTED);
        for v in [
            json!({"type":"canary","read_percentage":1.5}),
            json!({"type":"canary","read_percentage":-0.1}),
            json!({"type":"canary","read_percentage":"half"}),
            json!({"type":"canary","write_mode":{"mode":"cutover","write_percentage":2}}),
            json!({"type":"canary","write_mode":{"mode":"dual_write","policy":"TwoPhaseCommit"}}),
            json!({"type":"canary","write_mode":{"mode":"dual_write","policy":"whatever"}}),
            json!({"type":"canary","read_percentag":0.5}),
            json!({"type":"rolling_update","total_instances":0}),
            json!({"type":"rolling_update","migrated_instances":["a","a"],"total_instances":3}),
            json!({"type":"rolling_update"}),
            json!({"type":"feature_flag","rollout_percentage":7}),
            json!({"type":"geographic","regions":{"eu":true},"region_cidrs":{"eu":["10.0.0.0/33"]}}),
            json!({"type":"geographic","regions":{},"region_cidrs":{"eu":["10.0.0.0/8"]}}),
            json!({"type":"strangler_fig","features":{},"feature_keys":{"x":["x:*"]}}),
            json!({"type":"time_window","window_start":"2024-01-15T04:00:00Z","window_end":"2024-01-15T02:00:00Z"}),
            json!({"type":"time_window","window_start":"yesterday","window_end":"2024-01-15T02:00:00Z"}),
            json!({"durability": true}),
            json!(42),
        ] {
            let e = parse(v.clone()).expect_err(&v.to_string());
            assert!(matches!(e, ControlError::BadRequest(_)), "{v}: {e:?}");
        }
        let e = parse(json!({"type":"canary","read_percentage":1.5})).unwrap_err();
        assert_eq!(e.to_string(), "read_percentage must be between 0.0 and 1.0");
    }
}
