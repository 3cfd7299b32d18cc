//! One connection task: writes requests in arrival order, reads replies in the same order, and
//! sends each requester its replies (several per message when a read holds several).
//!
//! Contract: every [`Request`] accepted by [`ConnHandle::send`] gets exactly `count` replies on
//! its `reply` channel — the server's, or `-ERR godwit: ...` ones if the connection fails.
//! Requests sent while the endpoint is down are answered with errors at once (no unbounded
//! queueing); a shared connection reconnects on the next request after a short back-off, a
//! dedicated one ends (its client must then be closed, as Redis would close it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use godwit_resp::{encode, ReplyScanner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::BackendError;

/// Replies for one requester: `count` complete replies back to back in `data`. `count == 0`
/// means out-of-band push frames (RESP3 `>`) on a dedicated connection.
#[derive(Debug)]
pub struct Reply {
    /// Raw reply bytes, forwarded to the client unchanged.
    pub data: Bytes,
    /// Number of replies in `data`.
    pub count: u32,
}

/// Where a requester receives its replies. Unbounded on purpose: a requester bounds its own
/// in-flight requests, so a slow client never stalls a connection shared with others.
pub type ReplyTx = mpsc::UnboundedSender<Reply>;

/// Bytes to write and the number of replies they produce.
#[derive(Debug)]
pub struct Request {
    /// One or more complete commands.
    pub data: Bytes,
    /// How many replies `data` produces.
    pub count: u32,
    /// Where the replies go.
    pub reply: ReplyTx,
}

/// Sending side of a connection task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub(crate) tx: mpsc::UnboundedSender<Request>,
}

impl ConnHandle {
    /// Queues a request. Fails (returning it) only if the task has ended, which happens to a
    /// dedicated connection after its server connection broke.
    #[inline]
    pub fn send(&self, req: Request) -> Result<(), Request> {
        self.tx.send(req).map_err(|e| e.0)
    }

    /// True once the task has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// How a connection task connects and behaves.
#[derive(Debug)]
pub(crate) struct ConnSpec {
    pub addr: String,
    /// Commands sent right after connecting; their replies are checked and dropped.
    pub init: Bytes,
    pub init_count: u32,
    /// Dedicated: one client owns it; it does not reconnect, and forwards push frames.
    pub dedicated: bool,
    pub connect_timeout: Duration,
    /// Endpoint id, the `endpoint` label of this connection's metrics.
    pub label: Arc<str>,
    /// Shared connections fail their pending requests and reconnect when the oldest has waited
    /// this long for its reply.
    pub request_timeout: Option<Duration>,
}

const READ_CHUNK: usize = 64 * 1024;
const WBUF_HIGH: usize = 4 * 1024 * 1024;
const BACKOFF: Duration = Duration::from_millis(100);

/// Starts a connection task; it connects lazily, on the first request.
pub(crate) fn spawn(spec: Arc<ConnSpec>) -> ConnHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(spec, rx));
    ConnHandle { tx }
}

async fn run(spec: Arc<ConnSpec>, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut down_until: Option<(Instant, BackendError)> = None;
    while let Some(first) = rx.recv().await {
        if let Some((until, err)) = &down_until {
            if Instant::now() < *until {
                fail(first, err);
                continue;
            }
        }
        let err = match connect(&spec).await {
            Ok(stream) => match serve(stream, first, &mut rx, &spec).await {
                None => return, // every handle dropped and all work done
                Some(e) => e,
            },
            Err(e) => {
                fail(first, &e);
                e
            }
        };
        tracing::warn!(addr = %spec.addr, error = %err, "backend connection failed");
        metrics::counter!(godwit_telemetry::BACKEND_ERRORS_TOTAL, "endpoint" => spec.label.to_string()).increment(1);
        if spec.dedicated {
            rx.close();
            while let Ok(r) = rx.try_recv() {
                fail(r, &err);
            }
            return;
        }
        down_until = Some((Instant::now() + BACKOFF, err));
    }
}

/// Answers every reply of `req` with an error.
fn fail(req: Request, err: &BackendError) {
    fail_n(&req.reply, req.count, err);
}

fn fail_n(tx: &ReplyTx, count: u32, err: &BackendError) {
    if count == 0 {
        return;
    }
    let mut one = BytesMut::new();
    encode::error(&mut one, &format!("ERR godwit: backend unavailable: {err}"));
    let mut all = BytesMut::with_capacity(one.len() * count as usize);
    for _ in 0..count {
        all.extend_from_slice(&one);
    }
    let _ = tx.send(Reply {
        data: all.freeze(),
        count,
    });
}

pub(crate) async fn connect(spec: &ConnSpec) -> Result<TcpStream, BackendError> {
    let cerr = |reason: String| BackendError::Connect {
        addr: spec.addr.clone(),
        reason,
    };
    let mut stream = tokio::time::timeout(spec.connect_timeout, TcpStream::connect(&spec.addr))
        .await
        .map_err(|_| cerr("timed out".into()))?
        .map_err(|e| cerr(e.to_string()))?;
    stream.set_nodelay(true).map_err(|e| cerr(e.to_string()))?;
    if spec.init_count > 0 {
        let lost = |reason: String| BackendError::Lost {
            addr: spec.addr.clone(),
            reason,
        };
        stream
            .write_all(&spec.init)
            .await
            .map_err(|e| lost(e.to_string()))?;
        let mut buf = BytesMut::with_capacity(1024);
        let mut scanner = ReplyScanner::new();
        let mut seen = 0;
        let read = async {
            while seen < spec.init_count {
                match scanner.next(&buf).map_err(|e| lost(e.to_string()))? {
                    Some(n) => {
                        let reply = buf.split_to(n);
                        if reply.first() == Some(&b'-') {
                            let text = String::from_utf8_lossy(&reply[1..]).trim_end().to_string();
                            return Err(BackendError::Handshake {
                                addr: spec.addr.clone(),
                                reply: text,
                            });
                        }
                        seen += 1;
                    }
                    None => {
                        if stream
                            .read_buf(&mut buf)
                            .await
                            .map_err(|e| lost(e.to_string()))?
                            == 0
                        {
                            return Err(lost("closed during handshake".into()));
                        }
                    }
                }
            }
            Ok(())
        };
        tokio::time::timeout(spec.connect_timeout, read)
            .await
            .map_err(|_| cerr("handshake timed out".into()))??;
    }
    Ok(stream)
}

struct Pending {
    reply: ReplyTx,
    remaining: u32,
    sent: Instant,
}

/// Serves one live connection. Returns `None` when all handles are gone and all work is done,
/// or the error that ended the connection (all pending requests have been failed with it).
async fn serve(
    stream: TcpStream,
    first: Request,
    rx: &mut mpsc::UnboundedReceiver<Request>,
    spec: &ConnSpec,
) -> Option<BackendError> {
    let (mut rd, wr) = stream.into_split();
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(64);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut scanner = ReplyScanner::new();
    let mut owner: Option<ReplyTx> = spec.dedicated.then(|| first.reply.clone());
    let latency = metrics::histogram!(godwit_telemetry::BACKEND_LATENCY_SECONDS, "endpoint" => spec.label.to_string());
    let mut closed = false;
    let lost = |reason: String| BackendError::Lost {
        addr: spec.addr.clone(),
        reason,
    };
    // shared connections only: a dedicated one may carry a blocking command of any length
    let timeout = spec.request_timeout.filter(|_| !spec.dedicated);
    let period = timeout.map_or(Duration::from_secs(3600), |t| {
        (t / 4).max(Duration::from_millis(50))
    });
    let mut watchdog = tokio::time::interval(period);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    enqueue(first, &mut pending, &mut wbuf);

    let err = loop {
        // take everything already queued, then write as much as the socket takes now
        while !closed && wbuf.len() < WBUF_HIGH {
            match rx.try_recv() {
                Ok(r) => enqueue(r, &mut pending, &mut wbuf),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
            }
        }
        while !wbuf.is_empty() {
            match wr.try_write(&wbuf) {
                Ok(n) => {
                    let _ = wbuf.split_to(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break, // the read side reports the broken connection
            }
        }
        if closed && ((pending.is_empty() && wbuf.is_empty()) || spec.dedicated) {
            // a dedicated connection's owner is gone: close now, so Redis frees (and
            // unblocks) that client instead of serving a departed one
            return None;
        }
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            res = rd.read_buf(&mut rbuf) => match res {
                Ok(0) => break lost("server closed the connection".into()),
                Ok(_) => {
                    if let Err(e) = dispatch(&mut rbuf, &mut scanner, &mut pending, &mut owner, &latency) {
                        break lost(e);
                    }
                }
                Err(e) => break lost(e.to_string()),
            },
            res = wr.writable(), if !wbuf.is_empty() => {
                if let Err(e) = res { break lost(e.to_string()); }
            },
            req = rx.recv(), if !closed && wbuf.len() < WBUF_HIGH => match req {
                Some(r) => enqueue(r, &mut pending, &mut wbuf),
                None => closed = true,
            },
            _ = watchdog.tick(), if timeout.is_some() && !pending.is_empty() => {
                // a server that stops answering (SIGSTOP, network partition) must not hang
                // every client sharing this connection: fail what is pending and reconnect
                let limit = timeout.unwrap_or_default();
                if pending.front().is_some_and(|p| p.sent.elapsed() > limit) {
                    break lost(format!("no reply within {} ms", limit.as_millis()));
                }
            },
        }
    };
    for p in pending.drain(..) {
        fail_n(&p.reply, p.remaining, &err);
    }
    Some(err)
}

#[inline]
fn enqueue(req: Request, pending: &mut VecDeque<Pending>, wbuf: &mut BytesMut) {
    wbuf.extend_from_slice(&req.data);
    if req.count > 0 {
        pending.push_back(Pending {
            reply: req.reply,
            remaining: req.count,
            sent: Instant::now(),
        });
    }
}

/// Hands every complete reply in `rbuf` to its requester, several per message where possible.
fn dispatch(
    rbuf: &mut BytesMut,
    scanner: &mut ReplyScanner,
    pending: &mut VecDeque<Pending>,
    owner: &mut Option<ReplyTx>,
    latency: &metrics::Histogram,
) -> Result<(), String> {
    let mut off = 0usize;
    let mut group = 0u32;
    loop {
        let n = match scanner.next(&rbuf[off..]) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        if rbuf[off] == b'>' {
            // RESP3 push frame: not a reply to any request
            let Some(o) = owner.as_ref() else {
                return Err("push frame on a shared connection".into());
            };
            if group > 0 {
                let head = pending.front().ok_or("reply without request")?;
                let _ = head.reply.send(Reply {
                    data: rbuf.split_to(off).freeze(),
                    count: group,
                });
                off = 0;
                group = 0;
            }
            let _ = o.send(Reply {
                data: rbuf.split_to(n).freeze(),
                count: 0,
            });
            continue;
        }
        let head = pending.front_mut().ok_or("reply without request")?;
        off += n;
        group += 1;
        head.remaining -= 1;
        if head.remaining == 0 {
            let head = pending.pop_front().ok_or("reply without request")?;
            latency.record(head.sent.elapsed());
            let _ = head.reply.send(Reply {
                data: rbuf.split_to(off).freeze(),
                count: group,
            });
            off = 0;
            group = 0;
        }
    }
    if group > 0 {
        let head = pending.front().ok_or("reply without request")?;
        let _ = head.reply.send(Reply {
            data: rbuf.split_to(off).freeze(),
            count: group,
        });
    }
    if owner.as_ref().is_some_and(|o| o.is_closed()) {
        *owner = None;
    }
    Ok(())
}
