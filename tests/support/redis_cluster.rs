//! `RedisCluster`: a real Redis Cluster of N masters (no replicas) for e2e tests. Every node is
//! a [`RedisServer`] with `cluster-enabled yes` on a free port (and a free cluster-bus port), in
//! its own temp dir, without persistence; `redis-cli --cluster create` assigns the 16384 slots,
//! and `start` returns once every node reports `cluster_state:ok` and all nodes agree on a slot
//! map covering every slot. The nodes are killed and their dirs removed on drop.
//!
//! Like `RedisServer`, start-up blocks the calling thread (redis-cli takes ~3 s to join the
//! nodes). [`RedisCluster::client`] gives a small slot-aware client ([`ClusterClient`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::cluster_client::{key_slot, ClusterClient, SlotRange};
use crate::ports::free_port;
use crate::redis_server::RedisServer;
use crate::reply::{encode_command, Reply};

/// How long `start` waits for `redis-cli --cluster create` and for the cluster to agree.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh cluster-bus ports tried per node when another process takes one.
const BUS_ATTEMPTS: usize = 5;

/// A running Redis Cluster; every node is killed, and its dir removed, on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    slots: Vec<SlotRange>,
}

impl RedisCluster {
    /// Starts `masters` cluster nodes (at least 1; 3 is the usual minimum of a real cluster),
    /// creates the cluster with redis-cli and waits until every node is `ok` and agrees on the
    /// slot map.
    pub fn start(masters: usize) -> anyhow::Result<RedisCluster> {
        anyhow::ensure!(masters >= 1, "a cluster needs at least one master");
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            nodes.push(start_node()?);
        }
        let mut cluster = RedisCluster {
            nodes,
            slots: Vec::new(),
        };
        cluster.create()?;
        cluster.slots = cluster.wait_ready()?;
        Ok(cluster)
    }

    /// The nodes' client ports, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// `redis://127.0.0.1:<first port>`: a seed URL for cluster-aware clients.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// `redis://127.0.0.1:<port>` of every node, in start order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes themselves (to pause, stop or read the log of one).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The slot map agreed at start-up: `(first slot, last slot, port)` of every range.
    pub fn slot_ranges(&self) -> &[SlotRange] {
        &self.slots
    }

    /// The port of the master owning `key`'s slot (per the start-up slot map).
    pub fn port_for_key(&self, key: &[u8]) -> u16 {
        let slot = key_slot(key);
        self.slots
            .iter()
            .find(|r| r.0 <= slot && slot <= r.1)
            .map(|r| r.2)
            .unwrap_or_else(|| panic!("slot {slot} is not covered by {:?}", self.slots))
    }

    /// A multiplexed connection straight to the master owning `key`.
    pub async fn client_for(
        &self,
        key: &[u8],
    ) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let url = format!("redis://127.0.0.1:{}", self.port_for_key(key));
        Ok(redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?)
    }

    /// A slot-aware client over one connection per master (see [`ClusterClient`]).
    pub async fn client(&self) -> anyhow::Result<ClusterClient> {
        ClusterClient::connect(&self.ports(), self.slots.clone()).await
    }

    /// Every node's log (for failure messages).
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.port(), n.log()))
            .collect()
    }

    fn create(&self) -> anyhow::Result<()> {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for p in self.ports() {
            cmd.arg(format!("127.0.0.1:{p}"));
        }
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .context("spawn redis-cli (run scripts/install-deps.sh)")?;
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "redis-cli --cluster create on {:?} did not finish in {CLUSTER_TIMEOUT:?}",
                    self.ports()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create on {:?} failed ({}):\n{}{}",
                self.ports(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Waits until every node says `cluster_state:ok` and reports the same slot map covering
    /// all 16384 slots; returns that map.
    fn wait_ready(&self) -> anyhow::Result<Vec<SlotRange>> {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let last = match self.agreed_slots() {
                Ok(map) => return Ok(map),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                bail!(
                    "cluster on {:?} not ready after {CLUSTER_TIMEOUT:?}: {last}\n{}",
                    self.ports(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn agreed_slots(&self) -> anyhow::Result<Vec<SlotRange>> {
        let mut agreed: Option<Vec<SlotRange>> = None;
        for n in &self.nodes {
            let info = command(n.addr(), &["CLUSTER", "INFO"])?;
            let info = info.as_str().unwrap_or_default();
            if !info.contains("cluster_state:ok") {
                bail!("node {} not ok yet", n.port());
            }
            let map = parse_slots(&command(n.addr(), &["CLUSTER", "SLOTS"])?)?;
            let covered: u32 = map.iter().map(|r| u32::from(r.1 - r.0) + 1).sum();
            if covered != 16384 {
                bail!("node {} covers {covered} slots", n.port());
            }
            match &agreed {
                Some(a) if *a != map => bail!("node {} disagrees: {map:?} vs {a:?}", n.port()),
                _ => agreed = Some(map),
            }
        }
        agreed.ok_or_else(|| anyhow!("no nodes"))
    }
}

/// One cluster node on a free port with a free bus port.
fn start_node() -> anyhow::Result<RedisServer> {
    let mut last = None;
    for _ in 0..BUS_ATTEMPTS {
        let bus = free_port()?;
        match RedisServer::builder()
            .config("cluster-enabled", "yes")
            .config("cluster-config-file", "nodes.conf")
            .config("cluster-port", &bus.to_string())
            .start()
        {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow!("no attempt"))
        .context("start a cluster node"))
}

/// `CLUSTER SLOTS` as sorted `(first, last, master port)` ranges.
fn parse_slots(reply: &Reply) -> anyhow::Result<Vec<SlotRange>> {
    let mut out = Vec::new();
    for r in reply
        .as_array()
        .ok_or_else(|| anyhow!("CLUSTER SLOTS: {reply:?}"))?
    {
        let r = r.as_array().unwrap_or_default();
        let (Some(first), Some(last), Some(master)) = (
            r.first().and_then(Reply::as_int),
            r.get(1).and_then(Reply::as_int),
            r.get(2).and_then(Reply::as_array),
        ) else {
            bail!("bad CLUSTER SLOTS entry {r:?}");
        };
        let port = master.get(1).and_then(Reply::as_int).unwrap_or_default();
        out.push((first as u16, last as u16, port as u16));
    }
    out.sort_unstable();
    Ok(out)
}

/// One command over a fresh blocking connection.
fn command(addr: SocketAddr, args: &[&str]) -> anyhow::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(&encode_command(args))?;
    let mut buf = Vec::new();
    loop {
        if let Some((r, _)) = Reply::parse(&buf)? {
            return Ok(r);
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("{addr} closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::loopback;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_masters_route_keys_and_clean_up() {
        let cluster = RedisCluster::start(3).unwrap();
        let ports = cluster.ports();
        assert_eq!(ports.len(), 3);
        assert_eq!(cluster.slot_ranges().len(), 3);
        let dirs: Vec<_> = cluster
            .nodes()
            .iter()
            .map(|n| n.dir().to_path_buf())
            .collect();
        let mut c = cluster.client().await.unwrap();
        for i in 0..100 {
            let k = format!("k{i}");
            c.query::<()>(k.as_bytes(), redis::cmd("SET").arg(&k).arg(i))
                .await
                .unwrap();
        }
        let v: i64 = c.query(b"k7", redis::cmd("GET").arg("k7")).await.unwrap();
        assert_eq!(v, 7);
        assert_eq!(c.dbsize().await.unwrap(), 100);
        assert_eq!(c.all_keys().await.unwrap().len(), 100);
        // "foo" lives in slot 12182, on the third master of a 3-node create
        let mut direct = cluster.client_for(b"foo").await.unwrap();
        let () = redis::cmd("SET")
            .arg("foo")
            .arg("bar")
            .query_async(&mut direct)
            .await
            .unwrap();
        assert_eq!(cluster.port_for_key(b"foo"), ports[2]);
        assert_eq!(c.dump_pttl(b"foo").await.unwrap().1, -1);
        drop(cluster);
        assert!(dirs.iter().all(|d| !d.exists()));
        assert!(ports
            .iter()
            .all(|p| TcpStream::connect(loopback(*p)).is_err()));
    }
}
