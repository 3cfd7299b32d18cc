//! A small reader over a JSON request body: typed getters with field-named 400s, and a final
//! check that no unknown field was sent (typos in a migration must not pass silently).

use serde_json::{Map, Value};

use crate::ControlError;

/// A JSON object being consumed field by field.
#[derive(Debug)]
pub struct Body {
    what: &'static str,
    map: Map<String, Value>,
}

impl Body {
    /// Wraps a request body; `null` (no body) is an empty object, anything else but an object
    /// is a 400.
    pub fn new(v: &Value, what: &'static str) -> Result<Body, ControlError> {
        match v {
            Value::Null => Ok(Body {
                what,
                map: Map::new(),
            }),
            Value::Object(map) => Ok(Body {
                what,
                map: map.clone(),
            }),
            _ => Err(ControlError::bad(format!(
                "{what} body must be a JSON object"
            ))),
        }
    }

    /// Takes a raw field; `null` counts as absent.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// Whether the field was sent (even as `null`).
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// An optional string field.
    pub fn opt_str(&mut self, key: &str) -> Result<Option<String>, ControlError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ControlError::bad(format!("{key} must be a string"))),
        }
    }

    /// A required string field.
    pub fn req_str(&mut self, key: &str) -> Result<String, ControlError> {
        self.opt_str(key)?
            .ok_or_else(|| ControlError::bad(format!("Required field '{key}' is missing")))
    }

    /// An optional boolean field.
    pub fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, ControlError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(ControlError::bad(format!("{key} must be a boolean"))),
        }
    }

    /// An optional number field.
    pub fn opt_f64(&mut self, key: &str) -> Result<Option<f64>, ControlError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ControlError::bad(format!("{key} must be a number"))),
        }
    }

    /// An optional unsigned integer field with an upper bound.
    pub fn opt_u64(&mut self, key: &str, max: u64) -> Result<Option<u64>, ControlError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
                ControlError::bad(format!("{key} must be an integer between 0 and {max}"))
            }),
        }
    }

    /// Ignores fields that Eden clients send but godwit has no use for.
    pub fn ignore(&mut self, keys: &[&str]) {
        for k in keys {
            self.map.remove(*k);
        }
    }

    /// Fails with a 400 if any field was not consumed.
    pub fn finish(self) -> Result<(), ControlError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(ControlError::bad(format!(
                "unknown field `{k}` in {} body",
                self.what
            ))),
        }
    }
}

/// Checks an object id: 1–64 characters of letters, digits, `_`, `-`, `.`.
pub fn check_id(kind: &str, id: &str) -> Result<(), ControlError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ControlError::bad(format!(
            "invalid {kind} id '{}': use 1-64 letters, digits, '_', '-' or '.'",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// Checks an optional description (≤ 1024 characters).
pub fn check_description(d: &Option<String>) -> Result<(), ControlError> {
    match d {
        Some(d) if d.chars().count() > 1024 => Err(ControlError::bad(
            "description must be at most 1024 characters",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_rejects() {
        let v = json!({"id": "a", "n": 1.5, "b": true, "x": null, "extra": 1});
        let mut b = Body::new(&v, "thing").unwrap();
        assert_eq!(b.req_str("id").unwrap(), "a");
        assert_eq!(b.opt_f64("n").unwrap(), Some(1.5));
        assert_eq!(b.opt_bool("b").unwrap(), Some(true));
        assert_eq!(b.opt_str("x").unwrap(), None);
        assert!(b.req_str("missing").is_err());
        let err = b.finish().unwrap_err();
        assert_eq!(err.to_string(), "unknown field `extra` in thing body");
        assert!(Body::new(&json!([1]), "t").is_err());
        assert!(Body::new(&json!({"id": 3}), "t")
            .unwrap()
            .req_str("id")
            .is_err());
    }

    #[test]
    fn ids() {
        assert!(check_id("migration", "redis_migration_v2").is_ok());
        assert!(check_id("migration", "adam-demo.1").is_ok());
        assert!(check_id("migration", "").is_err());
        assert!(check_id("migration", "a/b").is_err());
        assert!(check_id("migration", &"x".repeat(65)).is_err());
    }
}
