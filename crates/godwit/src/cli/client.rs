//! The admin API over HTTP, as the CLI uses it: a bearer token on every request, the success
//! envelope unwrapped to its `data`, and every failure turned into a [`CliError`] that knows
//! its exit code.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// Why a CLI command failed; [`CliError::exit_code`] maps it to the process exit code.
#[derive(Debug)]
pub enum CliError {
    /// The API answered with an error envelope (or another non-2xx answer).
    Api {
        /// HTTP status.
        status: u16,
        /// The envelope's `error` (`Not found`, `Migration error`, ...).
        kind: String,
        /// The envelope's `message`.
        message: String,
    },
    /// The admin API could not be reached (connection refused, timeout, bad URL).
    Unreachable(String),
    /// Bad local input: an unreadable file, a body that is not JSON.
    Input(String),
    /// A watched migration ended in failure (`failed`, `rolled_back`).
    Ended(String),
    /// Ctrl-C during a watch.
    Interrupted,
}

impl CliError {
    /// 1 for an API error or a migration that failed, 2 for bad input (as clap's usage
    /// errors), 69 (`EX_UNAVAILABLE`) when the admin API cannot be reached, 130 on Ctrl-C.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { .. } | CliError::Ended(_) => 1,
            CliError::Input(_) => 2,
            CliError::Unreachable(_) => 69,
            CliError::Interrupted => 130,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Api {
                status,
                kind,
                message,
            } => {
                write!(f, "{message} ({kind}, HTTP {status})")?;
                if *status == 401 {
                    write!(f, "; pass --token or set GODWIT_TOKEN")?;
                }
                Ok(())
            }
            CliError::Unreachable(e) => write!(f, "cannot reach the admin API: {e}"),
            CliError::Input(e) => write!(f, "{e}"),
            CliError::Ended(e) => write!(f, "{e}"),
            CliError::Interrupted => write!(f, "interrupted"),
        }
    }
}

/// A client of one admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AdminClient {
    /// A client for `base` (`http://host:port`, a trailing `/` ignored) sending `token`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CliError::Unreachable(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.trim().is_empty()),
        })
    }

    /// `GET path` (with `X-Eden-Verbose: true` when `verbose`), the envelope's `data`.
    pub async fn get(&self, path: &str, verbose: bool) -> Result<Value, CliError> {
        self.request(Method::GET, path, None, verbose).await
    }

    /// `method path` with an optional JSON body, the envelope's `data`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        self.request(method, path, body, false).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        verbose: bool,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.trim());
        }
        if verbose {
            req = req.header("X-Eden-Verbose", "true");
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CliError::Unreachable(format!("{url}: {}", error_chain(&e))))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| CliError::Unreachable(format!("{url}: {}", error_chain(&e))))?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return match json.get("data") {
                Some(d) if json["status"] == "success" => Ok(d.clone()),
                _ => Ok(json),
            };
        }
        let field = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
        Err(CliError::Api {
            status,
            kind: field("error").unwrap_or_else(|| "error".into()),
            message: field("message").unwrap_or_else(|| {
                let t = text.trim();
                if t.is_empty() {
                    format!("HTTP {status}")
                } else {
                    t.chars().take(500).collect()
                }
            }),
        })
    }
}

/// An error with its sources (reqwest's top-level text alone hides "connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// A path segment escaped for a URL (ids are `[A-Za-z0-9_.-]`, but a user may type anything).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(seg("to_new-1.a"), "to_new-1.a");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn exit_codes() {
        let api = CliError::Api {
            status: 404,
            kind: "Not found".into(),
            message: "Migration 'x' does not exist".into(),
        };
        assert_eq!(api.exit_code(), 1);
        assert_eq!(
            api.to_string(),
            "Migration 'x' does not exist (Not found, HTTP 404)"
        );
        assert_eq!(CliError::Unreachable("x".into()).exit_code(), 69);
        assert_eq!(CliError::Input("x".into()).exit_code(), 2);
    }
}
