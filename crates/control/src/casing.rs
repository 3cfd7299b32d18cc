//! Input casing: Eden clients send PascalCase enum values (`OldAuthoritative`,
//! `{"Scan":{"replace":"None"}}`), the seed snake_case. Everything is normalised to the seed's
//! snake_case, internally tagged form before typed parsing.

use serde_json::{Map, Value};

use crate::ControlError;

/// `OldAuthoritative` → `old_authoritative`; `big_bang` and `BIG_BANG` → `big_bang`;
/// `dual-write` → `dual_write`.
pub fn snake(s: &str) -> String {
    let s = s.trim();
    if s.contains('_') || s.contains('-') || !s.chars().any(|c| c.is_ascii_lowercase()) {
        return s.replace('-', "_").to_ascii_lowercase();
    }
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c);
        }
    }
    out
}

/// Splits a tagged value into its (snake_case) tag and its fields. Accepts
/// `"name"`, `{"<tag_key>":"name", ...fields}` and `{"Name": {...fields}}` / `{"Name": null}`.
pub fn untag(
    v: &Value,
    tag_key: &str,
    what: &str,
) -> Result<(String, Map<String, Value>), ControlError> {
    match v {
        Value::String(s) => Ok((snake(s), Map::new())),
        Value::Object(map) => {
            if let Some(tag) = map.get(tag_key) {
                let Some(tag) = tag.as_str() else {
                    return Err(ControlError::bad(format!(
                        "{what}.{tag_key} must be a string"
                    )));
                };
                let mut rest = map.clone();
                rest.remove(tag_key);
                return Ok((snake(tag), rest));
            }
            if map.len() == 1 {
                if let Some((k, inner)) = map.iter().next() {
                    match inner {
                        Value::Object(fields) => return Ok((snake(k), fields.clone())),
                        Value::Null => return Ok((snake(k), Map::new())),
                        _ => {}
                    }
                }
            }
            Err(ControlError::bad(format!("{what}.{tag_key} is required")))
        }
        _ => Err(ControlError::bad(format!(
            "{what} must be a string or an object"
        ))),
    }
}

/// Replaces a string field with its snake_case form, if present.
pub fn snake_field(map: &mut Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = map.get(key) {
        let n = snake(s);
        map.insert(key.to_string(), Value::String(n));
    }
}

/// Rebuilds `{"<tag_key>": tag, ...fields}`.
pub fn retag(tag_key: &str, tag: &str, mut fields: Map<String, Value>) -> Value {
    fields.insert(tag_key.to_string(), Value::String(tag.to_string()));
    Value::Object(fields)
}

/// Turns a serde error into a 400 naming the object.
pub fn invalid(what: &str, e: serde_json::Error) -> ControlError {
    ControlError::bad(format!("invalid {what}: {e}"))
}

/// Checks that a fraction is in [0, 1]; the message names the field.
pub fn fraction(name: &str, v: f64) -> Result<(), ControlError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ControlError::bad(format!(
            "{name} must be between 0.0 and 1.0"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snake_cases() {
        assert_eq!(snake("OldAuthoritative"), "old_authoritative");
        assert_eq!(snake("old_authoritative"), "old_authoritative");
        assert_eq!(snake("BigBang"), "big_bang");
        assert_eq!(snake("None"), "none");
        assert_eq!(snake("dual-write"), "dual_write");
        assert_eq!(snake("BIG_BANG"), "big_bang");
        assert_eq!(snake("canary"), "canary");
    }

    #[test]
    fn untag_forms() {
        let (t, f) = untag(&json!({"Scan": {"replace": "None"}}), "type", "data").unwrap();
        assert_eq!(t, "scan");
        assert_eq!(f.get("replace"), Some(&json!("None")));
        let (t, f) = untag(
            &json!({"type": "Canary", "read_percentage": 0.1}),
            "type",
            "s",
        )
        .unwrap();
        assert_eq!(t, "canary");
        assert_eq!(f.len(), 1);
        assert_eq!(untag(&json!("None"), "type", "d").unwrap().0, "none");
        assert!(untag(&json!(3), "type", "d").is_err());
        assert!(untag(&json!({"a": 1, "b": 2}), "type", "d").is_err());
        assert!(untag(&json!({"type": 1}), "type", "d").is_err());
    }
}
