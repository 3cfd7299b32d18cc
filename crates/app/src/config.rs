//! `proxy.toml`: parsed once at the edge, unknown keys rejected, every problem reported at once
//! with its path.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the control state is persisted.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// This proxy instance.
    #[serde(default)]
    pub instance: InstanceConfig,
    /// The admin HTTP listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Tokio runtime.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Protective limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Admin API authentication (`[auth]`).
    #[serde(default)]
    pub auth: godwit_admin::AuthConfig,
    /// Redis endpoints declared statically.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// Interlays (client listeners) declared statically.
    #[serde(default)]
    pub interlays: Vec<InterlayConfig>,
    /// Where the control state lives (`[store]`): the file under `data_dir` by default, or a
    /// Redis shared by a fleet.
    #[serde(default)]
    pub store: StoreConfig,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `redis://[user:pass@]host:port[/db]` of the Redis shared by the fleet; unset: the file
    /// store under `data_dir` (docs/fleet.md).
    pub url: Option<String>,
    /// Prefix of the store's keys (`<prefix>:state`, `<prefix>:version`, ...).
    pub key_prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "godwit".into(),
        }
    }
}

/// `[instance]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceConfig {
    /// Instance id (rolling_update matches it).
    pub id: String,
    /// Region (geographic strategy matches it).
    pub region: String,
    /// Added to every non-zero interlay port this instance binds (several fleet instances on
    /// one host); 0 by default.
    pub port_offset: u16,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        Self {
            id: "godwit-1".into(),
            region: "default".into(),
            port_offset: 0,
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address of the admin API, `/metrics` and health checks (loopback by default).
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".into(),
        }
    }
}

/// `[runtime]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Tokio worker threads; 1 (the default) runs everything on one thread like twemproxy,
    /// which costs the least CPU per request; 0 = one per core.
    pub worker_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { worker_threads: 1 }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Client connections across all interlays.
    pub max_clients: usize,
    /// Largest request, in bytes.
    pub max_frame_bytes: usize,
    /// Requests in flight per client before the proxy stops reading it.
    pub max_pipeline: usize,
    /// Shared pipelined connections per endpoint.
    pub backend_connections: usize,
    /// Backend connect + handshake timeout, ms.
    pub connect_timeout_ms: u64,
    /// Longest wait for a reply on a shared backend connection, ms, before its pending requests
    /// fail and it reconnects (0 = wait forever). Blocking commands use dedicated connections,
    /// which never time out.
    pub backend_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_clients: 10_000,
            max_frame_bytes: 512 * 1024 * 1024,
            max_pipeline: 1024,
            backend_connections: 1,
            connect_timeout_ms: 2000,
            backend_timeout_ms: 10_000,
        }
    }
}

/// `[[endpoints]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Endpoint id.
    pub id: String,
    /// `redis://[user:pass@]host:port[/db]`
    pub url: String,
    /// A Redis Cluster: `url` names a seed node; commands are routed by slot.
    #[serde(default)]
    pub cluster: bool,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// `[[interlays]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterlayConfig {
    /// Interlay id.
    pub id: String,
    /// Endpoint it serves.
    pub endpoint: String,
    /// Listen address (`host:port`; port 0 = any free port).
    pub listen: String,
    /// Password clients must AUTH with.
    #[serde(default)]
    pub password: Option<String>,
    /// Most client connections this interlay holds at once (`limits.max_clients` still caps
    /// the whole process).
    #[serde(default)]
    pub max_clients: Option<usize>,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// Everything wrong with a configuration, one problem per line, each with its path.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Parses and validates a configuration text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text)
            .map_err(|e| ConfigError(vec![e.to_string().trim().to_string()]))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
        Self::from_toml_str(&text)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        if self.admin.listen.parse::<SocketAddr>().is_err() {
            errs.push(format!(
                "admin.listen: '{}' is not a socket address",
                self.admin.listen
            ));
        }
        let l = &self.limits;
        for (name, v) in [
            ("max_clients", l.max_clients),
            ("max_frame_bytes", l.max_frame_bytes),
            ("max_pipeline", l.max_pipeline),
            ("backend_connections", l.backend_connections),
        ] {
            if v == 0 {
                errs.push(format!("limits.{name}: must be at least 1"));
            }
        }
        if l.backend_connections > 64 {
            errs.push("limits.backend_connections: at most 64".into());
        }
        let mut ids = HashSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            if e.id.is_empty() || !ids.insert(e.id.as_str()) {
                errs.push(format!(
                    "endpoints[{i}].id: '{}' is empty or not unique",
                    e.id
                ));
            }
            if let Err(err) = godwit_backend::EndpointSpec::parse(&e.url) {
                errs.push(format!("endpoints[{i}].url: {err}"));
            }
        }
        let mut iids = HashSet::new();
        for (i, it) in self.interlays.iter().enumerate() {
            if it.id.is_empty() || !iids.insert(it.id.as_str()) {
                errs.push(format!(
                    "interlays[{i}].id: '{}' is empty or not unique",
                    it.id
                ));
            }
            if !ids.contains(it.endpoint.as_str()) {
                errs.push(format!(
                    "interlays[{i}].endpoint: no endpoint '{}'",
                    it.endpoint
                ));
            }
            if it.max_clients == Some(0) {
                errs.push(format!("interlays[{i}].max_clients: must be at least 1"));
            }
            if it.listen.parse::<SocketAddr>().is_err() {
                errs.push(format!(
                    "interlays[{i}].listen: '{}' is not a socket address",
                    it.listen
                ));
            }
        }
        if let Some(url) = &self.store.url {
            if let Err(err) = godwit_backend::EndpointSpec::parse(url) {
                errs.push(format!("store.url: {err}"));
            }
        }
        if self.store.key_prefix.is_empty() {
            errs.push("store.key_prefix: must not be empty".into());
        }
        errs.extend(self.auth.problems());
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errs))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../proxy.toml");
        let cfg = Config::from_toml_str(text).unwrap();
        assert!(!cfg.endpoints.is_empty());
        assert!(!cfg.interlays.is_empty());
    }

    #[test]
    fn reports_every_problem_at_once() {
        let text = r#"
            [admin]
            listen = "nope"
            [limits]
            max_pipeline = 0
            [[endpoints]]
            id = "a"
            url = "http://x"
            [[interlays]]
            id = "i"
            endpoint = "b"
            listen = "127.0.0.1:x"
        "#;
        let e = Config::from_toml_str(text).unwrap_err();
        assert_eq!(e.0.len(), 5, "{e}");
        assert!(Config::from_toml_str("bogus = 1")
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
    }
}
