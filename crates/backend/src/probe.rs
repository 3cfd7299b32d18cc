//! A one-off health probe: connect, PING, read the server version.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use godwit_resp::ReplyScanner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::{connect, ConnSpec};
use crate::{BackendError, EndpointSpec};

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `redis_version` from `INFO server`.
    pub version: String,
    /// PING round trip.
    pub ping: Duration,
    /// `cluster_state` from `CLUSTER INFO` when the server is a Redis Cluster node (`ok`,
    /// `fail`); `None` for a standalone server.
    pub cluster_state: Option<String>,
}

/// Connects to `url` (with its credentials), PINGs it and reads its version.
pub async fn probe(url: &str, timeout: Duration) -> Result<Probe, BackendError> {
    let spec = EndpointSpec::parse(url)?;
    let (init, init_count) = spec.handshake();
    let cs = ConnSpec {
        addr: spec.addr.clone(),
        init,
        init_count,
        dedicated: true,
        connect_timeout: timeout,
        label: "probe".into(),
        request_timeout: None,
    };
    let lost = |reason: String| BackendError::Lost {
        addr: spec.addr.clone(),
        reason,
    };
    let mut stream = connect(&cs).await?;
    let work = async {
        let started = Instant::now();
        stream
            .write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n")
            .await?;
        let mut buf = BytesMut::new();
        let mut scanner = ReplyScanner::new();
        let mut replies = Vec::new();
        let mut ping = Duration::ZERO;
        while replies.len() < 3 {
            match scanner
                .next(&buf)
                .map_err(|e| std::io::Error::other(e.to_string()))?
            {
                Some(n) => {
                    if replies.is_empty() {
                        ping = started.elapsed();
                    }
                    replies.push(buf.split_to(n));
                }
                None => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Err(std::io::Error::other("closed"));
                    }
                }
            }
        }
        Ok::<_, std::io::Error>((replies, ping))
    };
    let (replies, ping) = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| lost("probe timed out".into()))?
        .map_err(|e| lost(e.to_string()))?;
    if replies[0].first() != Some(&b'+') {
        return Err(lost(
            String::from_utf8_lossy(&replies[0]).trim().to_string(),
        ));
    }
    let info = String::from_utf8_lossy(&replies[1]);
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    // a standalone server answers CLUSTER INFO with an error
    let cluster_state = (replies[2].first() == Some(&b'$')).then(|| {
        String::from_utf8_lossy(&replies[2])
            .lines()
            .find_map(|l| l.strip_prefix("cluster_state:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    });
    Ok(Probe {
        version,
        ping,
        cluster_state,
    })
}
