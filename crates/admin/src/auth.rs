//! Authentication and roles: the `[auth]` config, HS256 JWTs issued by login, long-lived API
//! tokens stored as sha256 hashes, argon2 password hashes, constant-time comparisons.

use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::auth_config::{AuthConfig, Role, TokenConfig, UserConfig};
use crate::error::{AdminError, ApiError};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User or token name.
    pub subject: String,
    /// Organization.
    pub org: String,
    /// Access level.
    pub role: Role,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    user_id: String,
    org: String,
    org_id: String,
    role: Role,
    subject_type: String,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// Ready-to-use keys and hashed tokens.
pub struct Authenticator {
    enc: EncodingKey,
    dec: DecodingKey,
    ttl_s: u64,
    tokens: Vec<(TokenConfig, [u8; 32])>,
    users: Vec<UserConfig>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("users", &self.users.len())
            .finish()
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Compares two byte strings in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    /// Validates the config and loads or generates the secret.
    pub fn new(cfg: &AuthConfig) -> Result<Authenticator, AdminError> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(AdminError::Config(problems));
        }
        let secret: Vec<u8> = match (&cfg.jwt_secret, &cfg.jwt_secret_file) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(path)) => {
                let raw = std::fs::read(path).map_err(|source| AdminError::SecretFile {
                    path: path.display().to_string(),
                    source,
                })?;
                let s = String::from_utf8_lossy(&raw).trim_end().as_bytes().to_vec();
                if s.len() < 32 {
                    return Err(AdminError::Config(vec![
                        "auth.jwt_secret_file: secret must be at least 32 bytes".into(),
                    ]));
                }
                s
            }
            (None, None) => {
                let mut s = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut s);
                s
            }
        };
        let tokens = cfg
            .tokens
            .iter()
            .filter_map(|t| hex32(&t.sha256.to_ascii_lowercase()).map(|h| (t.clone(), h)))
            .collect();
        Ok(Authenticator {
            enc: EncodingKey::from_secret(&secret),
            dec: DecodingKey::from_secret(&secret),
            ttl_s: cfg.token_ttl_s,
            tokens,
            users: cfg.users.clone(),
        })
    }

    /// Token lifetime in seconds.
    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    /// Checks a bearer token: a configured API token, or a JWT this process family signed.
    pub fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&TokenConfig> = None;
        for (t, h) in &self.tokens {
            // No early exit: every configured hash is compared.
            if ct_eq(&digest, h) {
                found = Some(t);
            }
        }
        if let Some(t) = found {
            return Ok(Identity {
                subject: t.name.clone(),
                org: t.org.clone(),
                role: t.role,
            });
        }
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        match decode::<Claims>(token, &self.dec, &v) {
            Ok(d) => Ok(Identity {
                subject: d.claims.sub,
                org: d.claims.org,
                role: d.claims.role,
            }),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                Err(ApiError::unauthorized("Token has expired"))
            }
            Err(_) => Err(ApiError::unauthorized("Invalid token format")),
        }
    }

    /// Issues a JWT for an identity, valid `ttl` seconds from `now` (epoch seconds).
    pub fn issue_at(&self, id: &Identity, now: u64, ttl: u64) -> Result<String, ApiError> {
        let claims = Claims {
            sub: id.subject.clone(),
            user_id: id.subject.clone(),
            org: id.org.clone(),
            org_id: id.org.clone(),
            role: id.role,
            subject_type: "user".into(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.enc).map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "could not sign token",
            )
        })
    }

    /// Issues a JWT valid for the configured lifetime.
    pub fn issue(&self, id: &Identity) -> Result<String, ApiError> {
        self.issue_at(id, now_s(), self.ttl_s)
    }

    /// Checks a user's password (argon2, on a blocking thread). Unknown users cost the same as
    /// known ones, so timing does not reveal which names exist.
    pub async fn login(&self, org: &str, user: &str, password: &str) -> Result<Identity, ApiError> {
        let found = self
            .users
            .iter()
            .find(|u| u.org == org && u.name == user)
            .cloned();
        let hash = found
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    argon2::Argon2::default()
                        .verify_password(pw.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        match found {
            Some(u) if ok => Ok(Identity {
                subject: u.name,
                org: u.org,
                role: u.role,
            }),
            _ => Err(ApiError::unauthorized("Invalid credentials")),
        }
    }
}

// An argon2id hash of a random password with the default cost, verified for unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0rUBWvEWOiZq2M1jGQ3NV7k1ZgkPRG9B4ah4ryzxOj0";
