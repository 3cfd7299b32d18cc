//! `RespClient`: a raw RESP client over a tokio `TcpStream`. It writes exactly the bytes a test
//! gives it and reads exactly the replies the test asks for, so tests can pipeline, send
//! malformed or inline frames, and see every reply byte the proxy produced.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::reply::{encode_command, Reply};

/// A raw connection. Every read fails after `timeout` (default [`crate::DEFAULT_TIMEOUT`]).
pub struct RespClient {
    stream: TcpStream,
    buf: BytesMut,
    timeout: Duration,
}

impl RespClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RespClient> {
        let stream = tokio::time::timeout(crate::DEFAULT_TIMEOUT, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connect to {addr} timed out"))?
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(RespClient {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            timeout: crate::DEFAULT_TIMEOUT,
        })
    }

    /// Sets how long a read waits before failing.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Local address of the connection (to find it in `CLIENT LIST`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Writes `bytes` as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await.context("write")?;
        Ok(())
    }

    /// Writes one command as a RESP array of bulk strings, without reading.
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<()> {
        self.send_raw(&encode_command(args)).await
    }

    /// Sends one command and reads its reply.
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Reply> {
        self.send(args).await?;
        self.read_reply().await
    }

    /// Sends one command and fails unless the reply is `+OK`.
    pub async fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<()> {
        match self.cmd(args).await? {
            r if r.is_ok() => Ok(()),
            r => bail!("expected +OK, got {r:?}"),
        }
    }

    /// Reads one reply, failing after the timeout or on EOF.
    pub async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let timeout = self.timeout;
        match self.try_read_reply(timeout).await? {
            Some(r) => Ok(r),
            None => bail!(
                "no reply within {timeout:?} (buffered: {} bytes)",
                self.buf.len()
            ),
        }
    }

    /// Reads exactly `n` replies.
    pub async fn read_replies(&mut self, n: usize) -> anyhow::Result<Vec<Reply>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(
                self.read_reply()
                    .await
                    .with_context(|| format!("reply {i} of {n}"))?,
            );
        }
        Ok(out)
    }

    /// Reads one reply if one arrives within `wait`; `Ok(None)` if none did (the bytes read so
    /// far stay buffered). Fails on EOF or bad RESP.
    pub async fn try_read_reply(&mut self, wait: Duration) -> anyhow::Result<Option<Reply>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((reply, used)) = Reply::parse(&self.buf)? {
                self.buf.advance(used);
                return Ok(Some(reply));
            }
            self.buf.reserve(64 * 1024);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            match read.await {
                Err(_elapsed) => return Ok(None),
                Ok(Ok(0)) => bail!(
                    "connection closed by peer (buffered: {:?})",
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e).context("read"),
            }
        }
    }

    /// Waits up to `wait` for the peer to close the connection; fails if it stays open or sends
    /// a complete reply first. A reset counts as closed.
    pub async fn expect_closed(&mut self, wait: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((reply, _)) = Reply::parse(&self.buf)? {
                bail!("expected close, got reply {reply:?}");
            }
            self.buf.reserve(4096);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            match read.await {
                Err(_elapsed) => bail!("connection still open after {wait:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Closes the write half (the peer sees EOF after what was sent).
    pub async fn shutdown_write(&mut self) -> anyhow::Result<()> {
        self.stream.shutdown().await.context("shutdown")
    }

    /// Bytes received but not yet parsed into replies.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}
