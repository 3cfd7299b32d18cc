//! [`RedisStore`]: the control state shared by a fleet of godwit instances through one Redis
//! (`[store] url` in `proxy.toml`).
//!
//! Keys (`<p>` is the key prefix, `godwit` by default):
//! - `<p>:state`: the whole state as JSON, `<p>:version`: its version (the fleet's *epoch*),
//!   incremented by every save;
//! - `<p>:changes`: a pub/sub channel carrying the new version after every save;
//! - `<p>:instance:<id>`: one instance's liveness record (JSON, expires after
//!   [`LIVENESS_TTL`] unless refreshed).
//!
//! Concurrency is optimistic: a save carries the version the change was based on (the one this
//! store last loaded or saved) and a Lua script writes the state, `INCR`s the version and
//! publishes it only if that base is still current. Otherwise the save fails with
//! [`ControlError::Conflict`] ("retry"), nothing is written, and the caller reloads.
//!
//! Every call is synchronous on a plain `redis::Connection` (no tokio inside): the control plane
//! calls it from tokio's blocking pool, so it cannot deadlock a `current_thread` runtime, and a
//! slow or dead store delays only the admin call that saves, never the proxy. Each command has
//! an I/O timeout; a failed connection is dropped and re-opened on the next call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::model::State;
use crate::store::Store;
use crate::ControlError;

/// How long a liveness record lives without a refresh.
pub const LIVENESS_TTL: Duration = Duration::from_secs(3);
/// Connect and per-command timeout of the store connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes the state only if the caller's base version is current; returns `{ok, version}`.
const SAVE_LUA: &str = r#"
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if cur ~= tonumber(ARGV[2]) then return {0, cur} end
redis.call('SET', KEYS[1], ARGV[1])
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], v)
return {1, v}
"#;

/// The state in a Redis shared by every instance of a fleet (see the module docs).
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    con: Mutex<Option<redis::Connection>>,
    /// The version this store last loaded or saved: the base of the next save.
    version: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", &self.client.get_connection_info().addr.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn store_err(what: &str, e: impl std::fmt::Display) -> ControlError {
    ControlError::Store(format!("redis store: {what}: {e}"))
}

impl RedisStore {
    /// A store at `url` (`redis://[user:pass@]host:port[/db]`) under `prefix`. Does not connect
    /// yet.
    pub fn new(url: &str, prefix: &str) -> Result<RedisStore, ControlError> {
        let client = redis::Client::open(url).map_err(|e| store_err("url", e))?;
        Ok(RedisStore {
            client,
            prefix: prefix.to_string(),
            con: Mutex::new(None),
            version: AtomicU64::new(0),
        })
    }

    /// The Redis client (for the change subscription).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// `<prefix>:<name>`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Runs `f` on the (re)opened connection; a failed call drops the connection.
    pub fn with_con<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, ControlError> {
        let mut guard = self
            .con
            .lock()
            .map_err(|_| ControlError::Store("redis store lock poisoned".into()))?;
        if guard.is_none() {
            let con = self
                .client
                .get_connection_with_timeout(IO_TIMEOUT)
                .map_err(|e| store_err("connect", e))?;
            con.set_read_timeout(Some(IO_TIMEOUT))
                .and_then(|_| con.set_write_timeout(Some(IO_TIMEOUT)))
                .map_err(|e| store_err("connect", e))?;
            *guard = Some(con);
        }
        let con = guard.as_mut().expect("connection opened above");
        match f(con) {
            Ok(v) => Ok(v),
            Err(e) => {
                *guard = None;
                Err(store_err(what, e))
            }
        }
    }

    /// The current version in Redis (0 when nothing was saved).
    pub fn current_version(&self) -> Result<u64, ControlError> {
        let v: Option<u64> = self.with_con("get version", |c| {
            redis::cmd("GET").arg(self.key("version")).query(c)
        })?;
        Ok(v.unwrap_or(0))
    }

    fn read(&self) -> Result<(u64, Option<State>), ControlError> {
        let (state, version): (Option<Vec<u8>>, Option<u64>) = self.with_con("load", |c| {
            redis::cmd("MGET")
                .arg(self.key("state"))
                .arg(self.key("version"))
                .query(c)
        })?;
        let state = match state {
            None => None,
            Some(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| store_err("parse the stored state", e))?,
            ),
        };
        Ok((version.unwrap_or(0), state))
    }

    /// Writes this instance's liveness record (expires after [`LIVENESS_TTL`]).
    pub fn heartbeat(&self, id: &str, record: &serde_json::Value) -> Result<(), ControlError> {
        self.with_con("heartbeat", |c| {
            redis::cmd("SET")
                .arg(self.key(&format!("instance:{id}")))
                .arg(record.to_string())
                .arg("PX")
                .arg(LIVENESS_TTL.as_millis() as u64)
                .query::<()>(c)
        })
    }

    /// Removes this instance's liveness record (a graceful leave).
    pub fn leave(&self, id: &str) -> Result<(), ControlError> {
        self.with_con("leave", |c| {
            redis::cmd("DEL")
                .arg(self.key(&format!("instance:{id}")))
                .query::<()>(c)
        })
    }

    /// The liveness records of the instances alive now, sorted by id.
    pub fn instances(&self) -> Result<Vec<serde_json::Value>, ControlError> {
        let pattern = self.key("instance:*");
        let keys: Vec<String> = self.with_con("list instances", |c| {
            let mut keys = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                keys.extend(batch);
                if next == 0 {
                    return Ok(keys);
                }
                cursor = next;
            }
        })?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> =
            self.with_con("list instances", |c| redis::cmd("MGET").arg(&keys).query(c))?;
        let mut out: Vec<serde_json::Value> = values
            .into_iter()
            .flatten()
            .filter_map(|v| serde_json::from_str(&v).ok())
            .collect();
        out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        Ok(out)
    }
}

impl Store for RedisStore {
    fn load(&self) -> Result<Option<State>, ControlError> {
        let (version, state) = self.read()?;
        self.version.store(version, Ordering::SeqCst);
        Ok(state)
    }

    fn save(&self, state: &State) -> Result<(), ControlError> {
        let bytes = serde_json::to_vec(state).map_err(|e| store_err("encode the state", e))?;
        let base = self.version.load(Ordering::SeqCst);
        let (ok, version): (i64, u64) = self.with_con("save", |c| {
            redis::cmd("EVAL")
                .arg(SAVE_LUA)
                .arg(3)
                .arg(self.key("state"))
                .arg(self.key("version"))
                .arg(self.key("changes"))
                .arg(bytes)
                .arg(base)
                .query(c)
        })?;
        if ok != 1 {
            return Err(ControlError::Conflict(format!(
                "the shared control state changed on another instance (epoch {version}, this \
                 change was based on epoch {base}); nothing was saved: retry"
            )));
        }
        self.version.store(version, Ordering::SeqCst);
        Ok(())
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    fn load_newer(&self) -> Result<Option<State>, ControlError> {
        if self.current_version()? <= self.version() {
            return Ok(None);
        }
        let (version, state) = self.read()?;
        if version <= self.version() {
            return Ok(None);
        }
        self.version.store(version, Ordering::SeqCst);
        Ok(Some(state.unwrap_or_default()))
    }
}
