//! `GodwitFixture`: the proxy started in-process around given Redis servers, from a generated
//! TOML config with a temp `data_dir`, every listener on port 0. Tests call `shutdown().await`
//! at the end; dropping the fixture without it leaves the tasks to the test runtime's teardown.

use std::net::SocketAddr;

use anyhow::{anyhow, Context};

use crate::redis_server::RedisServer;
use crate::resp_client::RespClient;

/// The interlay id `GodwitFixture::single` creates.
pub const MAIN: &str = "main";

/// Builds the config of a [`GodwitFixture`].
#[derive(Debug, Default)]
pub struct GodwitFixtureBuilder {
    endpoints: Vec<(String, String, bool)>,
    interlays: Vec<(String, String, Option<String>)>,
    limits: Vec<(String, String)>,
    extra: String,
    instance_id: Option<String>,
}

/// A TOML basic string (JSON string escapes are valid TOML).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl GodwitFixtureBuilder {
    /// Adds an `[[endpoints]]` entry.
    pub fn endpoint(mut self, id: &str, url: &str) -> Self {
        self.endpoints.push((id.to_owned(), url.to_owned(), false));
        self
    }

    /// Adds a Redis Cluster `[[endpoints]]` entry (`cluster = true`; `url` names a seed node).
    pub fn cluster_endpoint(mut self, id: &str, url: &str) -> Self {
        self.endpoints.push((id.to_owned(), url.to_owned(), true));
        self
    }

    /// Adds an `[[interlays]]` entry listening on 127.0.0.1:0 in front of `endpoint`.
    pub fn interlay(mut self, id: &str, endpoint: &str) -> Self {
        self.interlays
            .push((id.to_owned(), endpoint.to_owned(), None));
        self
    }

    /// Adds an interlay that requires AUTH with `password`.
    pub fn interlay_with_password(mut self, id: &str, endpoint: &str, password: &str) -> Self {
        self.interlays.push((
            id.to_owned(),
            endpoint.to_owned(),
            Some(password.to_owned()),
        ));
        self
    }

    /// Overrides one `[limits]` key; `value` is TOML (`"1024"`, not quoted).
    pub fn limit(mut self, name: &str, value: &str) -> Self {
        self.limits.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets `[instance] id` (default `godwit-test`), e.g. for several instances of a fleet.
    pub fn instance_id(mut self, id: &str) -> Self {
        self.instance_id = Some(id.to_owned());
        self
    }

    /// Shares control state through the Redis at `url` under `prefix` (`[store]`, a fleet).
    pub fn store(self, url: &str, prefix: &str) -> Self {
        self.extra_toml(&format!(
            "[store]\nurl = {}\nkey_prefix = {}\n",
            quote(url),
            quote(prefix)
        ))
    }

    /// Appends raw TOML (extra tables) to the config.
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// The config text for `data_dir`.
    pub fn config_text(&self, data_dir: &std::path::Path) -> String {
        let mut limits = vec![
            ("max_clients".to_owned(), "10000".to_owned()),
            ("max_frame_bytes".to_owned(), "536870912".to_owned()),
            ("max_pipeline".to_owned(), "1024".to_owned()),
        ];
        for (k, v) in &self.limits {
            limits.retain(|(name, _)| name != k);
            limits.push((k.clone(), v.clone()));
        }
        let mut t = format!(
            "data_dir = {}\n\n[instance]\nid = {}\nregion = \"local\"\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\n[runtime]\nworker_threads = 1\n\n[limits]\n",
            quote(&data_dir.to_string_lossy()),
            quote(self.instance_id.as_deref().unwrap_or("godwit-test"))
        );
        for (k, v) in &limits {
            t.push_str(&format!("{k} = {v}\n"));
        }
        for (id, url, cluster) in &self.endpoints {
            t.push_str(&format!(
                "\n[[endpoints]]\nid = {}\nurl = {}\ncluster = {cluster}\n",
                quote(id),
                quote(url)
            ));
        }
        for (id, endpoint, password) in &self.interlays {
            t.push_str(&format!(
                "\n[[interlays]]\nid = {}\nendpoint = {}\nlisten = \"127.0.0.1:0\"\n",
                quote(id),
                quote(endpoint)
            ));
            if let Some(p) = password {
                t.push_str(&format!("password = {}\n", quote(p)));
            }
        }
        t.push('\n');
        t.push_str(&self.extra);
        t
    }

    /// Parses the config and starts the proxy on the current runtime.
    pub async fn start(self) -> anyhow::Result<GodwitFixture> {
        let data_dir = tempfile::Builder::new().prefix("godwit-data-").tempdir()?;
        let text = self.config_text(data_dir.path());
        let config = godwit_app::Config::from_toml_str(&text)
            .map_err(|e| anyhow!("config rejected: {e:?}\n{text}"))?;
        let godwit = godwit_app::Godwit::start(config)
            .await
            .with_context(|| format!("start godwit with\n{text}"))?;
        Ok(GodwitFixture {
            godwit: Some(godwit),
            config_text: text,
            _data_dir: data_dir,
        })
    }
}

/// A running proxy; its data dir is removed on drop.
pub struct GodwitFixture {
    godwit: Option<godwit_app::Godwit>,
    config_text: String,
    _data_dir: tempfile::TempDir,
}

impl GodwitFixture {
    /// A builder for any topology.
    pub fn builder() -> GodwitFixtureBuilder {
        GodwitFixtureBuilder::default()
    }

    /// Endpoint `old` = `redis`, interlay [`MAIN`] in front of it.
    pub async fn single(redis: &RedisServer) -> anyhow::Result<GodwitFixture> {
        Self::builder()
            .endpoint("old", &redis.url())
            .interlay(MAIN, "old")
            .start()
            .await
    }

    fn godwit(&self) -> &godwit_app::Godwit {
        self.godwit
            .as_ref()
            .expect("godwit is running until shutdown")
    }

    /// The running app (control plane, data plane), for tests that drive them directly.
    pub fn app(&self) -> &godwit_app::Godwit {
        self.godwit()
    }

    /// The listen address of interlay `id`.
    pub fn interlay_addr(&self, id: &str) -> SocketAddr {
        self.godwit()
            .interlay_addr(id)
            .unwrap_or_else(|| panic!("no interlay {id:?} in\n{}", self.config_text))
    }

    /// The listen address of interlay [`MAIN`].
    pub fn addr(&self) -> SocketAddr {
        self.interlay_addr(MAIN)
    }

    /// `redis://` URL of interlay [`MAIN`].
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// The admin API's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.godwit().admin_addr()
    }

    /// The generated config (for failure messages).
    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    /// A raw client connected to interlay [`MAIN`].
    pub async fn raw(&self) -> anyhow::Result<RespClient> {
        RespClient::connect(self.addr()).await
    }

    /// A `redis` crate multiplexed connection through interlay [`MAIN`].
    pub async fn client(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    /// Stops the proxy and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(g) = self.godwit.take() {
            g.shutdown().await;
        }
    }
}

/// A fresh `redis-server` and a proxy in front of it (interlay [`MAIN`] -> endpoint `old`).
pub async fn proxied() -> anyhow::Result<(RedisServer, GodwitFixture)> {
    let redis = RedisServer::start()?;
    let godwit = GodwitFixture::single(&redis).await?;
    Ok((redis, godwit))
}
