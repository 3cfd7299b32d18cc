//! Admin API helpers for e2e tests: an HTTP client that sends a bearer token ([`AdminClient`]),
//! its response with envelope assertions ([`ApiResponse`]), API tokens for the `[auth]` section
//! of a generated config ([`ApiToken`], [`auth_toml`]), and a runner for `curl` command lines as
//! the seed writes them ([`CurlRequest`]), so its examples are sent byte for byte.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `s` (what `[[auth.tokens]] sha256` holds).
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A long-lived API token: the clear text the client sends and the config entry that accepts it.
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// `name` in the config (the subject).
    pub name: String,
    /// Organization the token acts in.
    pub org: String,
    /// `read`, `write`, `admin` or `superadmin`.
    pub role: String,
    /// The bearer token in clear.
    pub token: String,
}

impl ApiToken {
    /// A token named `name` with a clear text derived from it.
    pub fn new(name: &str, org: &str, role: &str) -> Self {
        Self {
            name: name.into(),
            org: org.into(),
            role: role.into(),
            token: format!("gwt_{name}_{org}_{role}_0123456789abcdef"),
        }
    }

    /// Its `[[auth.tokens]]` entry (the hash, never the clear text).
    pub fn toml(&self) -> String {
        format!(
            "[[auth.tokens]]\nname = {}\norg = {}\nrole = {}\nsha256 = \"{}\"\n",
            quote(&self.name),
            quote(&self.org),
            quote(&self.role),
            sha256_hex(&self.token)
        )
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// An `[auth]` section accepting `tokens`, with `extra` (TOML keys of `[auth]`, e.g.
/// `jwt_secret = "..."`) and `users` (raw `[[auth.users]]` tables) added.
pub fn auth_toml(tokens: &[ApiToken], extra: &str, users: &str) -> String {
    let mut t = format!("\n[auth]\n{extra}\n");
    for tok in tokens {
        t.push('\n');
        t.push_str(&tok.toml());
    }
    t.push_str(users);
    t
}

/// One HTTP answer of the admin API.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
    /// The body as text.
    pub text: String,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `WWW-Authenticate`, if any.
    pub www_authenticate: Option<String>,
}

impl ApiResponse {
    /// The success envelope's `data`; panics (with the response) on anything else.
    #[track_caller]
    pub fn data(&self) -> &Value {
        assert!(
            (200..300).contains(&self.status) && self.body["status"] == "success",
            "expected a success envelope, got {} {}",
            self.status,
            self.text
        );
        &self.body["data"]
    }

    /// Asserts the exact error envelope `{"error": kind, "message": message}` with `status`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, kind: &str, message: &str) {
        assert_eq!(
            (self.status, &self.body),
            (
                status,
                &serde_json::json!({"error": kind, "message": message})
            ),
            "{}",
            self.text
        );
        self.assert_json();
    }

    /// Asserts a 4xx answer with the error envelope (string `error` and `message`, no other key).
    #[track_caller]
    pub fn assert_client_error(&self, context: &str) {
        assert!(
            (400..500).contains(&self.status),
            "{context}: expected 4xx, got {} {}",
            self.status,
            self.text
        );
        self.assert_envelope(context);
    }

    /// Asserts the error envelope shape.
    #[track_caller]
    pub fn assert_envelope(&self, context: &str) {
        let keys: Vec<&String> = self
            .body
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert!(
            self.body["error"].is_string() && self.body["message"].is_string() && keys.len() == 2,
            "{context}: not an error envelope: {} {}",
            self.status,
            self.text
        );
        self.assert_json();
    }

    #[track_caller]
    fn assert_json(&self) {
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json")),
            "content-type {:?}",
            self.content_type
        );
    }
}

/// An HTTP client for one godwit admin listener, sending `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for the admin API at `addr`, with `token` (or none).
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Self {
        let http = reqwest::Client::builder()
            // No idle connections: a test that kills godwit must not reuse a dead socket.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .expect("reqwest client");
        Self {
            base: format!("http://{addr}"),
            token: token.map(String::from),
            http,
        }
    }

    /// The same listener with another token.
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(String::from),
            ..self.clone()
        }
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request with exactly these headers (plus the bearer token, unless `headers`
    /// has an `Authorization`) and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<ApiResponse> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        let has_auth = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if let (Some(t), false) = (&self.token, has_auth) {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let status = resp.status().as_u16();
        let content_type = header("content-type");
        let www_authenticate = header("www-authenticate");
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(ApiResponse {
            status,
            body,
            text,
            content_type,
            www_authenticate,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<ApiResponse> {
        self.request("GET", path, &[], None).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<ApiResponse> {
        self.request("DELETE", path, &[], None).await
    }

    /// `method path` with a JSON body (`Content-Type: application/json`).
    pub async fn json(&self, method: &str, path: &str, body: Value) -> anyhow::Result<ApiResponse> {
        let bytes = serde_json::to_vec(&body)?;
        self.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(bytes),
        )
        .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<ApiResponse> {
        self.json("POST", path, body).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<ApiResponse> {
        self.json("PATCH", path, body).await
    }

    /// Runs a `curl` command line (see [`CurlRequest::parse`]) with `$TOKEN` = this client's
    /// token; only the path of its URL is kept.
    pub async fn curl(&self, command: &str) -> anyhow::Result<ApiResponse> {
        let c = CurlRequest::parse(command, self.token.as_deref().unwrap_or(""))?;
        let headers: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // curl sends exactly its -H headers: never add the client's own token.
        let bare = self.with_token(None);
        bare.request(&c.method, &c.path, &headers, c.body.map(String::into_bytes))
            .await
    }
}

/// A `curl` command line as the seed writes it: `curl URL [-H "K: V"]... [-d 'BODY'] [-X M]`,
/// `\` line continuations, single and double quotes, `$TOKEN` expanded inside double quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlRequest {
    /// `-X`, else `POST` with `-d`, else `GET` (curl's rules).
    pub method: String,
    /// The URL's path (and query).
    pub path: String,
    /// `-H` headers in order.
    pub headers: Vec<(String, String)>,
    /// `-d` as written.
    pub body: Option<String>,
}

impl CurlRequest {
    /// Parses `command`, expanding `$TOKEN` to `token`.
    pub fn parse(command: &str, token: &str) -> anyhow::Result<CurlRequest> {
        let words = shell_words(&command.replace("\\\n", " "), token)?;
        let mut it = words.into_iter();
        if it.next().as_deref() != Some("curl") {
            bail!("not a curl command: {command}");
        }
        let (mut url, mut method, mut headers, mut body) = (None, None, Vec::new(), None);
        while let Some(w) = it.next() {
            match w.as_str() {
                "-H" | "--header" => {
                    let h = it.next().context("-H without a value")?;
                    let (k, v) = h.split_once(':').context("header without ':'")?;
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
                "-d" | "--data" | "--data-raw" => {
                    body = Some(it.next().context("-d without a value")?)
                }
                "-X" | "--request" => method = Some(it.next().context("-X without a value")?),
                "-s" | "-S" | "-sS" => {}
                w if w.starts_with('-') => bail!("unsupported curl option {w}"),
                _ => url = Some(w),
            }
        }
        let url = url.context("curl without a URL")?;
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let path = rest.find('/').map_or("/", |i| &rest[i..]).to_string();
        let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
        Ok(CurlRequest {
            method,
            path,
            headers,
            body,
        })
    }
}

/// Splits a shell command line into words (single quotes literal, double quotes expanding
/// `$TOKEN`, no other expansion).
fn shell_words(s: &str, token: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => bail!("unterminated single quote"),
                    }
                }
            }
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.push(chars.next().context("dangling backslash")?),
                        Some('$') => {
                            let name: String = std::iter::from_fn(|| {
                                chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_')
                            })
                            .collect();
                            if name != "TOKEN" {
                                bail!("unknown variable ${name}");
                            }
                            w.push_str(token);
                        }
                        Some(c) => w.push(c),
                        None => bail!("unterminated double quote"),
                    }
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = cur {
        words.push(w);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_forms() {
        let c = CurlRequest::parse(
            "curl http://{host}:8000/api/v1/migrations \\\n  -H \"Content-Type: application/json\" \\\n  -H \"Authorization: Bearer $TOKEN\" \\\n  -d '{\n    \"id\": \"x\"\n  }'",
            "tok",
        )
        .unwrap();
        assert_eq!(c.method, "POST");
        assert_eq!(c.path, "/api/v1/migrations");
        assert_eq!(c.headers[1], ("Authorization".into(), "Bearer tok".into()));
        assert_eq!(c.body.as_deref(), Some("{\n    \"id\": \"x\"\n  }"));
        let c = CurlRequest::parse(
            "curl http://{host}:8000/api/v1/migrations/m/test \\\n  -H \"Authorization: Bearer $TOKEN\" \\\n  -X POST",
            "tok",
        )
        .unwrap();
        assert_eq!((c.method.as_str(), c.body), ("POST", None));
        let c = CurlRequest::parse("curl http://h:1/api/v1/migrations", "t").unwrap();
        assert_eq!(c.method, "GET");
        assert_eq!(
            sha256_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
