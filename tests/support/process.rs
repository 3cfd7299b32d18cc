//! The real `godwit` binary as a child process: [`GodwitProcess`] runs it (found by
//! [`godwit_bin`]) on a config file with its admin listener on a free port, waits for
//! `/healthz`, and can `kill -9` it and start it again on the same config and data dir.
//! Killed on drop; its output goes to a log file shown by [`GodwitProcess::log`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::binary::godwit_bin;
use crate::ports::{free_port, loopback};

/// A running `godwit --config <file>`; killed (SIGKILL) on drop.
pub struct GodwitProcess {
    child: Option<Child>,
    config: PathBuf,
    text: String,
    log: PathBuf,
    admin: SocketAddr,
}

/// The placeholder in a config text that [`GodwitProcess::start`] replaces with the admin port.
pub const ADMIN_PORT: &str = "{admin_port}";

/// How many free ports are tried for the admin listener when another process wins the race.
const PORT_ATTEMPTS: usize = 5;

/// Why a launch failed.
enum LaunchError {
    /// The admin port was taken: try another.
    AdminPortTaken,
    Other(anyhow::Error),
}

impl GodwitProcess {
    /// Writes `config` (with [`ADMIN_PORT`] replaced by a free port) to `dir/godwit.toml`, runs
    /// the binary and waits until `/healthz` answers.
    pub fn start(dir: &Path, config: &str) -> anyhow::Result<GodwitProcess> {
        let mut p = GodwitProcess {
            child: None,
            config: dir.join("godwit.toml"),
            text: config.to_string(),
            log: dir.join("godwit.log"),
            admin: loopback(0),
        };
        p.launch_on_free_port()?;
        Ok(p)
    }

    /// Starts the binary again (after [`GodwitProcess::kill9`], or kills it first) on the same
    /// config and data dir, and the same admin port unless another process took it meanwhile.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.kill9();
        match self.launch(self.admin.port()) {
            Ok(()) => Ok(()),
            Err(LaunchError::AdminPortTaken) => self.launch_on_free_port(),
            Err(LaunchError::Other(e)) => Err(e),
        }
    }

    fn launch_on_free_port(&mut self) -> anyhow::Result<()> {
        for _ in 0..PORT_ATTEMPTS {
            match self.launch(free_port()?) {
                Ok(()) => return Ok(()),
                Err(LaunchError::AdminPortTaken) => continue,
                Err(LaunchError::Other(e)) => return Err(e),
            }
        }
        bail!(
            "no free admin port in {PORT_ATTEMPTS} attempts:\n{}",
            self.log()
        )
    }

    fn launch(&mut self, port: u16) -> Result<(), LaunchError> {
        let other = |e: anyhow::Error| LaunchError::Other(e);
        let bin = godwit_bin().map_err(other)?;
        self.admin = loopback(port);
        let text = self.text.replace(ADMIN_PORT, &port.to_string());
        std::fs::write(&self.config, text).map_err(|e| other(e.into()))?;
        let seen = self.log().len();
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
        };
        let (out, err) = (open(), open());
        let (Ok(out), Ok(err)) = (out, err) else {
            return Err(other(anyhow!("cannot open {}", self.log.display())));
        };
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))
            .map_err(other)?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(_)
                if self
                    .log()
                    .get(seen..)
                    .unwrap_or("")
                    .contains("cannot listen on admin address") =>
            {
                self.kill9();
                Err(LaunchError::AdminPortTaken)
            }
            Err(e) => Err(other(e.context(format!("godwit log:\n{}", self.log())))),
        }
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < crate::DEFAULT_TIMEOUT {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("godwit exited with {status}");
                }
            }
            if healthz(self.admin) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("godwit did not answer /healthz on {}", self.admin)
    }

    /// The admin API address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything this process and its earlier runs wrote (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9` (SIGKILL), and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for GodwitProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `GET /healthz` answered 200 (a blocking one-shot HTTP/1.0 exchange).
fn healthz(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: godwit\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}
