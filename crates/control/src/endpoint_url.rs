//! Endpoint URLs: validation (`redis://` / `rediss://`, host, numeric db), Eden's connection
//! object form turned into a URL, and redaction of passwords for every view and log.

use serde_json::Value;

use crate::ControlError;

/// Validates a Redis URL (`redis://` or `rediss://`, a host, an optional numeric db).
pub fn check_url(raw: &str) -> Result<url::Url, ControlError> {
    let bad = |why: &str| ControlError::bad(format!("invalid endpoint url: {why}"));
    let u = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "redis" | "rediss") {
        return Err(bad("scheme must be redis:// or rediss://"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("a host is required"));
    }
    let path = u.path().trim_start_matches('/');
    if !path.is_empty() && path.parse::<u32>().is_err() {
        return Err(bad("the path must be a database number"));
    }
    Ok(u)
}

/// The URL with its password replaced by `***`.
pub fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<invalid>".into(),
    }
}

/// Builds a URL from Eden's connection object `{url}` or `{host, port, tls, db, username, password}`.
pub(crate) fn url_from_conn(c: &Value) -> Result<String, ControlError> {
    let Some(obj) = c.as_object() else {
        return Err(ControlError::bad("write_conn must be an object"));
    };
    if let Some(u) = obj.get("url").and_then(Value::as_str) {
        return Ok(u.to_string());
    }
    let host = obj
        .get("host")
        .and_then(Value::as_str)
        .ok_or_else(|| ControlError::bad("Connection URL is required"))?;
    let tls = match obj.get("tls") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) | Some(Value::Object(_)) => true,
        Some(_) => return Err(ControlError::bad("tls must be a boolean or an object")),
    };
    let port = match obj.get("port") {
        None | Some(Value::Null) => 6379,
        Some(p) => p
            .as_u64()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| ControlError::bad("port must be between 1 and 65535"))?,
    };
    let scheme = if tls { "rediss" } else { "redis" };
    let mut u = url::Url::parse(&format!("{scheme}://{host}:{port}"))
        .map_err(|e| ControlError::bad(format!("invalid host: {e}")))?;
    let user = obj.get("username").and_then(Value::as_str).unwrap_or("");
    if !user.is_empty() {
        let _ = u.set_username(user);
    }
    if let Some(p) = obj.get("password").and_then(Value::as_str) {
        let _ = u.set_password(Some(p));
    }
    if let Some(db) = obj.get("db").and_then(Value::as_u64) {
        u.set_path(&format!("/{db}"));
    }
    Ok(u.to_string())
}
