//! `RedisServer`: a real `redis-server` process on a free loopback port with its own temp dir,
//! no persistence, killed on drop. `restart`, `stop`/`start_again` keep the port and the dir, so
//! a proxy in front sees the same address come back; `pause`/`resume` freeze it (SIGSTOP/SIGCONT).
//!
//! The calls block the calling thread briefly (start-up waits for the server to answer, usually
//! well under a second); tests that also run a proxy in-process use a multi-thread runtime.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::ports::{free_port, loopback};
use crate::reply::{encode_command, Reply};
use crate::resp_client::RespClient;

/// How many fresh ports `start` tries when another process wins the race for one.
const PORT_ATTEMPTS: usize = 10;

/// Builds a [`RedisServer`]. `REDIS_SERVER_BIN` overrides the binary (default `redis-server`).
#[derive(Debug, Default)]
pub struct RedisServerBuilder {
    args: Vec<String>,
    password: Option<String>,
}

impl RedisServerBuilder {
    /// Adds `--name value` to the command line (any redis.conf directive).
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_owned());
        self
    }

    /// Sets `requirepass`; the readiness probe and `client()` authenticate with it.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self.config("requirepass", password)
    }

    /// Spawns the server on a free port and waits until it answers.
    pub fn start(self) -> anyhow::Result<RedisServer> {
        let dir = tempfile::Builder::new().prefix("godwit-redis-").tempdir()?;
        let mut server = RedisServer {
            port: 0,
            dir,
            args: self.args,
            password: self.password,
            child: None,
            paused: false,
        };
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(SpawnError::AddrInUse) => last = Some(anyhow!("port {} taken", server.port)),
                Err(SpawnError::Other(e)) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no port"))
            .context("no free port for redis-server"))
    }
}

/// A running (or stopped) `redis-server`; killed, and its dir removed, on drop.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    password: Option<String>,
    child: Option<Child>,
    paused: bool,
}

enum SpawnError {
    AddrInUse,
    Other(anyhow::Error),
}

impl From<anyhow::Error> for SpawnError {
    fn from(e: anyhow::Error) -> Self {
        SpawnError::Other(e)
    }
}

impl RedisServer {
    /// A builder for a server with extra config.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// Starts a plain server (no password, no persistence) on a free port.
    pub fn start() -> anyhow::Result<RedisServer> {
        RedisServer::builder().start()
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// `redis://127.0.0.1:port` (with `:password@` when one is set).
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The server's working dir (kept across restarts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process is running (paused counts as running).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the process (SIGKILL) and waits for it; the port and dir stay reserved for
    /// [`RedisServer::start_again`]. Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Starts the server again on the same port and dir, waiting until it answers. Retries for a
    /// few seconds if the port is busy.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("redis-server on {} is already running", self.port);
        }
        let deadline = Instant::now() + crate::DEFAULT_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(SpawnError::AddrInUse) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(SpawnError::AddrInUse) => bail!("port {} stayed busy", self.port),
                Err(SpawnError::Other(e)) => return Err(e),
            }
        }
    }

    /// `stop` then `start_again`.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.start_again()
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal("STOP")?;
        self.paused = true;
        Ok(())
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal("CONT")?;
        self.paused = false;
        Ok(())
    }

    /// A `redis` crate client for this server.
    pub fn redis_client(&self) -> anyhow::Result<redis::Client> {
        Ok(redis::Client::open(self.url())?)
    }

    /// A multiplexed async connection straight to the server (not through a proxy).
    pub async fn client(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let conn = self
            .redis_client()?
            .get_multiplexed_async_connection()
            .await?;
        Ok(conn)
    }

    /// A raw RESP connection straight to the server, authenticated if a password is set.
    pub async fn raw(&self) -> anyhow::Result<RespClient> {
        let mut c = RespClient::connect(self.addr()).await?;
        if let Some(p) = &self.password {
            c.ok(&["AUTH", p.as_str()]).await?;
        }
        Ok(c)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("redis-server is not running"))?;
        let status = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .context("run kill")?;
        if !status.success() {
            bail!("kill -{sig} {pid} failed: {status}");
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), SpawnError> {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let log_offset = std::fs::metadata(self.log_path())
            .map(|m| m.len())
            .unwrap_or(0);
        let mut child = Command::new(&bin)
            .current_dir(self.dir.path())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {bin} (run scripts/install-deps.sh)"))?;
        let deadline = Instant::now() + crate::DEFAULT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().map_err(anyhow::Error::from)? {
                let log = self.log();
                let log = log.get(log_offset as usize..).unwrap_or(&log);
                if log.contains("Address already in use") {
                    return Err(SpawnError::AddrInUse);
                }
                return Err(
                    anyhow!("redis-server exited ({status}) on {}:\n{log}", self.port).into(),
                );
            }
            // Ours only if the server answering reports our pid: another process may have taken
            // the port between free_port() and the spawn.
            if let Ok(pid) = probe_pid(self.addr(), self.password.as_deref()) {
                if pid == child.id() {
                    self.child = Some(child);
                    self.paused = false;
                    return Ok(());
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(SpawnError::AddrInUse);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(anyhow!(
                    "redis-server on {} did not answer:\n{}",
                    self.port,
                    self.log()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.paused {
            let _ = self.signal("CONT");
        }
        self.stop();
    }
}

/// Connects, authenticates if asked, and returns the `process_id` from `INFO server`.
fn probe_pid(addr: SocketAddr, password: Option<&str>) -> anyhow::Result<u32> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::new();
    if let Some(p) = password {
        req.extend(encode_command(&["AUTH", p]));
    }
    req.extend(encode_command(&["INFO", "server"]));
    s.write_all(&req)?;
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    let want = if password.is_some() { 2 } else { 1 };
    while replies.len() < want {
        match Reply::parse(&buf)? {
            Some((r, used)) => {
                buf.drain(..used);
                replies.push(r);
            }
            None => {
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    bail!("closed");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    let info = replies
        .last()
        .and_then(Reply::as_str)
        .ok_or_else(|| anyhow!("not ready"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| anyhow!("no process_id in INFO"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starts_restarts_pauses_and_cleans_up() {
        let mut server = RedisServer::start().unwrap();
        let port = server.port();
        let dir = server.dir().to_path_buf();
        let mut c = server.raw().await.unwrap();
        c.ok(&["SET", "k", "v"]).await.unwrap();
        assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("v"));

        server.restart().unwrap();
        assert_eq!(server.port(), port);
        assert_eq!(server.dir(), dir);
        let mut c = server.raw().await.unwrap();
        assert_eq!(
            c.cmd(&["GET", "k"]).await.unwrap(),
            Reply::Nil,
            "no persistence"
        );

        server.pause().unwrap();
        c.send(&["PING"]).await.unwrap();
        assert_eq!(
            c.try_read_reply(Duration::from_millis(300)).await.unwrap(),
            None
        );
        server.resume().unwrap();
        assert_eq!(c.read_reply().await.unwrap(), Reply::simple("PONG"));

        let mut conn = server.client().await.unwrap();
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        assert_eq!(pong, "PONG");

        server.stop();
        assert!(RespClient::connect(server.addr()).await.is_err());
        server.start_again().unwrap();
        server.raw().await.unwrap();

        drop(server);
        assert!(!dir.exists());
        assert!(std::net::TcpStream::connect(loopback(port)).is_err());
    }

    #[test]
    fn a_taken_port_is_reported_for_retry() {
        let mut server = RedisServer::start().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        server.stop();
        server.port = taken.local_addr().unwrap().port();
        assert!(matches!(server.spawn(), Err(SpawnError::AddrInUse)));
        assert!(!server.is_running());
    }

    #[tokio::test]
    async fn password_and_parallel_servers() {
        let a = RedisServer::builder().password("s3cret").start().unwrap();
        let b = RedisServer::start().unwrap();
        assert_ne!(a.port(), b.port());
        let mut raw = RespClient::connect(a.addr()).await.unwrap();
        let r = raw.cmd(&["GET", "x"]).await.unwrap();
        assert!(r.error_text().unwrap().starts_with("NOAUTH"), "{r:?}");
        let mut authed = a.raw().await.unwrap();
        assert_eq!(authed.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
        let mut conn = a.client().await.unwrap();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
