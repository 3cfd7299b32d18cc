//! The standalone hot path of a copy over a raw RESP connection: the batched Lua read (one
//! `EVAL` of PTTL + DUMP per batch) and the pipelined `RESTORE` write, built and parsed by hand.
//! The generic client allocates per reply value and per argument; on a machine where the mover
//! shares the cores with both Redis servers that CPU is taken from them, so the copy's scan
//! pass and re-copies use this path (merges and everything else keep the generic client).
//!
//! Contract: the same commands and outcomes as `io::read` / `io::write` (non-merge modes). A
//! broken or silent connection is `Unreachable` (retryable: the worker reconnects); a reply of
//! the wrong shape is `Protocol`.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use godwit_resp::ReplyScanner;
use redis::{ConnectionAddr, ConnectionInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{MoverError, Side};
use crate::io::{now_ms, Entry, Outcome, WriteMode, READ};

/// A raw connection to a standalone Redis (TCP, the URL's credentials and database).
pub(crate) struct RawConn {
    stream: TcpStream,
    buf: BytesMut,
    side: Side,
    timeout: Duration,
}

impl RawConn {
    /// Connects and authenticates; `None` for addresses this path does not handle (TLS, unix
    /// sockets), which keep the generic client.
    pub(crate) async fn connect(
        info: &ConnectionInfo,
        side: Side,
        timeout: Duration,
    ) -> Result<Option<RawConn>, MoverError> {
        let ConnectionAddr::Tcp(host, port) = &info.addr else {
            return Ok(None);
        };
        let unreachable = |message: String| MoverError::Unreachable { side, message };
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), *port)))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| unreachable(e.to_string()))?;
        let mut c = RawConn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            side,
            timeout,
        };
        let r = &info.redis;
        let mut init = BytesMut::new();
        let mut n = 0usize;
        match (&r.username, &r.password) {
            (Some(u), Some(p)) => {
                command(&mut init, &[b"AUTH", u.as_bytes(), p.as_bytes()]);
                n += 1;
            }
            (None, Some(p)) => {
                command(&mut init, &[b"AUTH", p.as_bytes()]);
                n += 1;
            }
            _ => {}
        }
        if r.db != 0 {
            command(&mut init, &[b"SELECT", r.db.to_string().as_bytes()]);
            n += 1;
        }
        if n > 0 {
            let replies = c.roundtrip(&init, n).await?;
            if let Some(e) = replies.iter().find(|r| r.first() == Some(&b'-')) {
                return Err(MoverError::Refused {
                    side,
                    message: String::from_utf8_lossy(&e[1..]).trim_end().to_string(),
                });
            }
        }
        Ok(Some(c))
    }

    /// Writes `req` and reads `n` whole replies.
    async fn roundtrip(&mut self, req: &[u8], n: usize) -> Result<Vec<BytesMut>, MoverError> {
        let side = self.side;
        let unreachable = |message: String| MoverError::Unreachable { side, message };
        let work = async {
            self.stream
                .write_all(req)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let mut out = Vec::with_capacity(n);
            let mut scanner = ReplyScanner::new();
            while out.len() < n {
                match scanner.next(&self.buf) {
                    Ok(Some(len)) => out.push(self.buf.split_to(len)),
                    Ok(None) => {
                        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                            self.buf.reserve(64 * 1024);
                        }
                        let read = self
                            .stream
                            .read_buf(&mut self.buf)
                            .await
                            .map_err(|e| unreachable(e.to_string()))?;
                        if read == 0 {
                            return Err(unreachable("connection closed".into()));
                        }
                    }
                    Err(e) => {
                        return Err(MoverError::Protocol {
                            side,
                            message: e.to_string(),
                        })
                    }
                }
            }
            Ok(out)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| unreachable("no reply in time".into()))?
    }

    /// PTTL + DUMP of `keys` in one Lua call (as `io::read`).
    pub(crate) async fn read(&mut self, keys: &[bytes::Bytes]) -> Result<Vec<Entry>, MoverError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut req = BytesMut::with_capacity(64 + READ.len() + keys.len() * 32);
        req.put_slice(format!("*{}\r\n", keys.len() + 3).as_bytes());
        bulk(&mut req, b"EVAL");
        bulk(&mut req, READ.as_bytes());
        bulk(&mut req, keys.len().to_string().as_bytes());
        for k in keys {
            bulk(&mut req, k);
        }
        let now = now_ms();
        let mut reply = self.roundtrip(&req, 1).await?.pop().unwrap_or_default();
        let side = self.side;
        let bad = |message: String| MoverError::Protocol { side, message };
        if reply.first() == Some(&b'-') {
            return Err(MoverError::Refused {
                side,
                message: String::from_utf8_lossy(&reply[1..]).trim_end().to_string(),
            });
        }
        let n = header(&mut reply, b'*').ok_or_else(|| bad("read: not an array".into()))?;
        if n != keys.len() as i64 * 2 {
            return Err(bad(format!("{n} values for {} keys", keys.len())));
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let pttl = header(&mut reply, b':').ok_or_else(|| bad("read: PTTL".into()))?;
            let payload = match reply.first() {
                Some(b'$') => {
                    let len = header(&mut reply, b'$').ok_or_else(|| bad("read: DUMP".into()))?;
                    if len < 0 {
                        None
                    } else {
                        let len = len as usize;
                        if reply.len() < len + 2 {
                            return Err(bad("read: short DUMP".into()));
                        }
                        let p = reply[..len].to_vec();
                        reply.advance(len + 2);
                        Some(p)
                    }
                }
                // a missing key's DUMP: nil in RESP2 Lua replies is `$-1`, `_` in RESP3
                Some(b'_') => {
                    reply.advance(3);
                    None
                }
                _ => return Err(bad("read: DUMP".into())),
            };
            out.push(Entry {
                key: key.clone(),
                expire_at: if pttl >= 0 { now + pttl as u64 } else { 0 },
                payload: payload.filter(|_| pttl != -2),
            });
        }
        Ok(out)
    }

    /// Writes `entries` in one pipeline (as `io::write`; not for `Merge`).
    pub(crate) async fn write(
        &mut self,
        entries: &[Entry],
        mode: WriteMode,
    ) -> Result<Vec<Outcome>, MoverError> {
        let mut req = BytesMut::with_capacity(entries.len() * 64);
        let mut sent = Vec::with_capacity(entries.len());
        let mut ms = itoa_buf();
        for (i, e) in entries.iter().enumerate() {
            match &e.payload {
                None if mode == WriteMode::Authoritative => {
                    command(&mut req, &[b"DEL", &e.key]);
                    sent.push(i);
                }
                None => {}
                Some(p) => {
                    let replace = matches!(mode, WriteMode::Authoritative | WriteMode::Replace);
                    let abs = e.expire_at > 0;
                    let argc = 4 + usize::from(abs) + usize::from(replace);
                    req.put_slice(format!("*{argc}\r\n").as_bytes());
                    bulk(&mut req, b"RESTORE");
                    bulk(&mut req, &e.key);
                    bulk(&mut req, fmt_u64(&mut ms, e.expire_at));
                    bulk(&mut req, p);
                    if abs {
                        bulk(&mut req, b"ABSTTL");
                    }
                    if replace {
                        bulk(&mut req, b"REPLACE");
                    }
                    sent.push(i);
                }
            }
        }
        let mut out = vec![Outcome::Skipped; entries.len()];
        if sent.is_empty() {
            return Ok(out);
        }
        let replies = self.roundtrip(&req, sent.len()).await?;
        for (i, r) in sent.into_iter().zip(replies) {
            let e = &entries[i];
            out[i] = match (r.first(), &e.payload) {
                (Some(b':'), None) => Outcome::Deleted,
                (Some(b'+'), Some(p)) => Outcome::Copied(p.len() as u64),
                (Some(b'-'), _) if r.starts_with(b"-BUSYKEY") => Outcome::Skipped,
                (Some(b'-'), _) => {
                    Outcome::Failed(String::from_utf8_lossy(&r[1..]).trim_end().to_string())
                }
                _ => Outcome::Failed(format!(
                    "unexpected reply {}",
                    String::from_utf8_lossy(&r).trim_end()
                )),
            };
        }
        Ok(out)
    }
}

/// Consumes a `<kind><integer>\r\n` line from the front of `buf`.
fn header(buf: &mut BytesMut, kind: u8) -> Option<i64> {
    if buf.first() != Some(&kind) {
        return None;
    }
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let n = std::str::from_utf8(&buf[1..end]).ok()?.parse().ok()?;
    buf.advance(end + 2);
    Some(n)
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    out.put_u8(b'$');
    out.put_slice(data.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        bulk(out, a);
    }
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `n` in decimal, written into `buf`.
fn fmt_u64(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_headers() {
        let mut b = itoa_buf();
        assert_eq!(fmt_u64(&mut b, 0), b"0");
        assert_eq!(fmt_u64(&mut b, 1_700_000_000_123), b"1700000000123");
        let mut r = BytesMut::from(&b"*4\r\n:-2\r\n$-1\r\n"[..]);
        assert_eq!(header(&mut r, b'*'), Some(4));
        assert_eq!(header(&mut r, b'$'), None);
        assert_eq!(header(&mut r, b':'), Some(-2));
        assert_eq!(header(&mut r, b'$'), Some(-1));
        let mut c = BytesMut::new();
        command(&mut c, &[b"DEL", b"k"]);
        assert_eq!(&c[..], b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n");
    }
}
