//! The `[auth]` section of `proxy.toml` and the role scale. Parsed once at the edge
//! (`deny_unknown_fields`); [`AuthConfig::problems`] lists every problem with its path.

use argon2::password_hash::PasswordHash;
use serde::{Deserialize, Serialize};

/// Access level, ordered `read < write < admin < superadmin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read resources.
    Read,
    /// Run templates and APIs.
    Write,
    /// Create and change resources and migrations.
    Admin,
    /// Everything.
    SuperAdmin,
}

impl Role {
    /// Parses `read`, `Read`, `super_admin`, `SuperAdmin`, ...
    pub fn parse(s: &str) -> Option<Role> {
        match s.replace(['_', '-'], "").to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            "superadmin" => Some(Role::SuperAdmin),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Role::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown role '{s}' (read, write, admin, superadmin)"
            ))
        })
    }
}

/// A long-lived API token: only its sha256 (hex) is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name (shown as the subject in logs).
    pub name: String,
    /// Organization the token acts in.
    pub org: String,
    /// Access level.
    pub role: Role,
    /// Lowercase hex sha256 of the token.
    pub sha256: String,
}

/// A user that can log in.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// User name (HTTP Basic user).
    pub name: String,
    /// Organization (`X-Org-Id` at login).
    pub org: String,
    /// Access level.
    pub role: Role,
    /// Argon2 PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
}

/// The `[auth]` section of `proxy.toml`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret (at least 32 bytes). With neither this nor `jwt_secret_file`, a random
    /// secret is generated at start (tokens then end with the process).
    pub jwt_secret: Option<String>,
    /// File holding the secret (trailing whitespace ignored).
    pub jwt_secret_file: Option<std::path::PathBuf>,
    /// Lifetime of login tokens in seconds (default 900).
    pub token_ttl_s: u64,
    /// API tokens.
    pub tokens: Vec<TokenConfig>,
    /// Users.
    pub users: Vec<UserConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_secret_file: None,
            token_ttl_s: 900,
            tokens: vec![],
            users: vec![],
        }
    }
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("org", &self.org)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

// Secrets never reach logs: the JWT secret is redacted from Debug output.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_secret_file", &self.jwt_secret_file)
            .field("token_ttl_s", &self.token_ttl_s)
            .field("tokens", &self.tokens)
            .field("users", &self.users)
            .finish()
    }
}

impl AuthConfig {
    /// Every problem of the section, each prefixed with its path.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.jwt_secret.is_some() && self.jwt_secret_file.is_some() {
            p.push("auth: set jwt_secret or jwt_secret_file, not both".into());
        }
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            p.push("auth.jwt_secret: must be at least 32 bytes".into());
        }
        if !(60..=86_400).contains(&self.token_ttl_s) {
            p.push("auth.token_ttl_s: must be between 60 and 86400".into());
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if t.sha256.len() != 64 || !t.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                p.push(format!(
                    "auth.tokens[{i}].sha256: must be 64 hex characters"
                ));
            }
            if t.org.is_empty() || t.name.is_empty() {
                p.push(format!("auth.tokens[{i}]: name and org must not be empty"));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if !seen.insert((u.org.as_str(), u.name.as_str())) {
                p.push(format!(
                    "auth.users[{i}]: duplicate user '{}' in org '{}'",
                    u.name, u.org
                ));
            }
            if PasswordHash::new(&u.password_hash).is_err() {
                p.push(format!(
                    "auth.users[{i}].password_hash: not an argon2 PHC string"
                ));
            }
            if u.org.is_empty() || u.name.is_empty() {
                p.push(format!("auth.users[{i}]: name and org must not be empty"));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
jwt_secret_file = "/etc/godwit/jwt.key"
token_ttl_s = 900

[[tokens]]
name = "ci"
org = "default"
role = "admin"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

[[users]]
name = "alice"
org = "default"
role = "SuperAdmin"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0rUBWvEWOiZq2M1jGQ3NV7k1ZgkPRG9B4ah4ryzxOj0"
"#;

    #[test]
    fn example_parses_and_validates() {
        let cfg: AuthConfig = toml::from_str(EXAMPLE).unwrap();
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        assert_eq!(cfg.users[0].role, Role::SuperAdmin);
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("argon2id"), "{dbg}");
    }

    #[test]
    fn problems_are_listed_with_paths() {
        let cfg: AuthConfig = toml::from_str(
            "jwt_secret = \"short\"\ntoken_ttl_s = 5\n[[tokens]]\nname=\"a\"\norg=\"o\"\nrole=\"read\"\nsha256=\"xyz\"",
        )
        .unwrap();
        let p = cfg.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[2].starts_with("auth.tokens[0].sha256"));
        assert!(toml::from_str::<AuthConfig>("bogus = 1").is_err());
        assert!(toml::from_str::<AuthConfig>(
            "[[tokens]]\nname=\"a\"\norg=\"o\"\nrole=\"god\"\nsha256=\"x\""
        )
        .is_err());
    }
}
