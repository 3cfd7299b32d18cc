//! Endpoint URLs (`redis://[user:pass@]host:port[/db]`) and the handshake they imply.

use bytes::{Bytes, BytesMut};
use godwit_resp::encode;

use crate::BackendError;

/// Where and how to connect to one Redis endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// `host:port` to connect to.
    pub addr: String,
    /// ACL user, if the URL names one.
    pub username: Option<String>,
    /// Password, if the URL has one. Never logged.
    pub password: Option<String>,
    /// Database selected on every connection.
    pub db: i64,
}

impl EndpointSpec {
    /// Parses a `redis://` URL. `rediss://` (TLS) is rejected with a clear error for now.
    pub fn parse(url: &str) -> Result<Self, BackendError> {
        let bad = |why: &str| BackendError::InvalidUrl(format!("{why} (in {})", redact(url)));
        let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        match u.scheme() {
            "redis" => {}
            "rediss" => return Err(bad("TLS endpoints (rediss://) are not supported yet")),
            s => return Err(bad(&format!("scheme must be redis://, got {s}://"))),
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("missing host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = u.port().unwrap_or(6379);
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let username = Some(u.username()).filter(|s| !s.is_empty()).map(decode);
        let password = u.password().map(decode);
        let path = u.path().trim_start_matches('/');
        let db = if path.is_empty() {
            0
        } else {
            path.parse().map_err(|_| bad("database must be a number"))?
        };
        if db < 0 {
            return Err(bad("database must be >= 0"));
        }
        Ok(Self {
            addr,
            username,
            password,
            db,
        })
    }

    /// The commands a new connection sends first (AUTH, SELECT), and how many replies they give.
    pub fn handshake(&self) -> (Bytes, u32) {
        let mut out = BytesMut::new();
        let mut n = 0;
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => {
                encode::command(&mut out, &["AUTH", u.as_str(), p.as_str()]);
                n += 1;
            }
            (None, Some(p)) => {
                encode::command(&mut out, &["AUTH", p.as_str()]);
                n += 1;
            }
            _ => {}
        }
        if self.db != 0 {
            encode::command(&mut out, &["SELECT".to_string(), self.db.to_string()]);
            n += 1;
        }
        (out.freeze(), n)
    }
}

/// The URL with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let s = EndpointSpec::parse("redis://127.0.0.1:7000").unwrap();
        assert_eq!(
            (s.addr.as_str(), s.db, s.password.is_none()),
            ("127.0.0.1:7000", 0, true)
        );
        let s = EndpointSpec::parse("redis://u:p%40ss@h/3").unwrap();
        assert_eq!(s.addr, "h:6379");
        assert_eq!(s.username.as_deref(), Some("u"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.db, 3);
        let s = EndpointSpec::parse("redis://:secret@h:1").unwrap();
        assert_eq!(
            (s.username.as_deref(), s.password.as_deref()),
            (None, Some("secret"))
        );
        assert_eq!(s.handshake().1, 1);
        for bad in [
            "http://h",
            "rediss://h",
            "redis://h/x",
            "nonsense",
            "redis:///0",
        ] {
            assert!(EndpointSpec::parse(bad).is_err(), "{bad}");
        }
        let e = EndpointSpec::parse("rediss://u:hunter2@h")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
