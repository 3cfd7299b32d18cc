//! One client connection: read requests, route them, forward them in batches, write the
//! replies back in request order.
//!
//! Ordering: every request appends to `expected` a `Remote` entry (n replies due from one
//! backend source), a `Pair` entry (n requests sent to two sources: dual writes and shadow
//! reads; one reply of each makes one client reply) or a `Local` entry (a reply the proxy
//! made). Entries are completed strictly from the head, and each source delivers its replies in
//! the order it received the requests, so replies reach the client in exactly the order of its
//! requests, whatever mix of sources served them (see `replies.rs`).

mod compare;
mod connection;
mod input;
mod keys;
mod replies;
mod route;
mod source;
mod tunnel;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use godwit_resp::{encode, Limits};
use godwit_router::{Class, ReplyPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{InterlayOptions, ProxyShared};
use source::Sources;

const READ_CHUNK: usize = 16 * 1024;

/// Where a forwarded request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// The authoritative source (its reply is the client's under the default policy).
    src: u8,
    /// The other side's source and why it gets the request too.
    also: Option<(u8, PairKind)>,
    /// A write while the copy runs that is not dual-written: report its keys on completion.
    mark: bool,
    /// A write the migration would dual-write but a pinned client's connection sends to one
    /// side only: queue its keys for repair from that side (`Some(true)`: the side is new).
    repair: Option<bool>,
}

impl Target {
    fn only(src: u8) -> Self {
        Self {
            src,
            also: None,
            mark: false,
            repair: None,
        }
    }
}

/// Why a request went to two sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairKind {
    /// Dual write; the policy picks the client's reply.
    Write(ReplyPolicy),
    /// Shadow read: the client gets the primary's reply; the two are compared.
    Shadow,
}

/// What the proxy does with one request.
enum Action {
    /// Forward the request's own bytes.
    Forward(Target),
    /// Forward these bytes instead (the request rewritten, e.g. HELLO without AUTH).
    Rewrite(Target, Bytes),
    /// Forward EXEC; report these keys (written by the transaction) when it completes.
    Exec(Target, Vec<Bytes>),
    /// Answer with these bytes; nothing is forwarded.
    Local(Bytes),
    /// Answer, then close the connection once every earlier reply is written (QUIT).
    LocalThenClose(Bytes),
    /// Leave request/reply mode: the connection becomes a byte tunnel (pub/sub).
    Tunnel,
}

enum Expected {
    /// `n` replies due from `src`; `mark` says which keys to report when they arrived.
    Remote {
        src: u8,
        n: u32,
        mark: Option<Marks>,
    },
    /// Requests sent to two sources.
    Pair(Box<Pair>),
    /// A reply made by the proxy.
    Local(Bytes),
}

/// `n` requests (`reqs`, from offset `off` on) sent to both `primary` and `secondary`.
struct Pair {
    primary: u8,
    secondary: u8,
    n: u32,
    kind: PairKind,
    reqs: Bytes,
    off: usize,
    copying: bool,
}

/// Keys to report once a write that went to one side only completed.
struct Marks {
    keys: MarkKeys,
    /// Report them to the copy as written (dirty).
    dirty: bool,
    /// Queue them for repair from this side (`Some(true)`: new).
    repair: Option<bool>,
}

enum MarkKeys {
    /// The write keys of every command in these request bytes.
    Requests(Bytes),
    /// These keys (a transaction's).
    Keys(Vec<Bytes>),
}

/// Requests parsed but not yet sent: the first `len` bytes of the read buffer, `count` of them,
/// all for `target`.
struct Batch {
    target: Target,
    len: usize,
    count: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            target: Target::only(0),
            len: 0,
            count: 0,
        }
    }
}

/// Per-connection state that the proxy emulates or must restore on a dedicated connection.
#[derive(Default)]
pub(crate) struct ConnState {
    pub authed: bool,
    /// Database chosen with SELECT (`None`: the endpoint's own).
    pub db: Option<i64>,
    /// Name set with CLIENT SETNAME / HELLO SETNAME.
    pub name: Option<Bytes>,
    /// HELLO 3 negotiated.
    pub resp3: bool,
    /// AUTH user, for routing by identity.
    pub user: Option<Bytes>,
    /// Inside MULTI: the keys the queued writes will touch (reported when EXEC completes).
    pub multi_keys: Option<Vec<Bytes>>,
    /// WATCH is in effect (until EXEC, DISCARD, UNWATCH or RESET).
    pub watching: bool,
}

pub(crate) struct Client {
    id: u64,
    sock: TcpStream,
    opts: Arc<InterlayOptions>,
    shared: Arc<ProxyShared>,
    limits: Limits,
    rbuf: BytesMut,
    wbuf: BytesMut,
    expected: VecDeque<Expected>,
    inflight: usize,
    batch: Batch,
    sources: Sources,
    state: ConnState,
    /// Stop reading; close once `expected` is empty.
    closing: bool,
    /// Become a tunnel once `expected` is empty.
    tunnel: bool,
    /// Parsing stopped at the pipeline limit with input left in the buffer.
    blocked: bool,
    /// `godwit_commands_total` for this interlay, by class (read, write, admin, connection).
    commands: [metrics::Counter; 4],
    /// The client's address (geographic routing).
    peer: Option<std::net::IpAddr>,
    /// xorshift state for `sticky: none`.
    rng: u32,
    secondary_failures: metrics::Counter,
    shadow_compared: metrics::Counter,
    shadow_mismatches: metrics::Counter,
}

impl Client {
    pub(crate) fn new(
        id: u64,
        sock: TcpStream,
        opts: Arc<InterlayOptions>,
        shared: Arc<ProxyShared>,
    ) -> Self {
        let limits = Limits {
            max_frame_bytes: shared.limits.max_frame_bytes,
            max_inline_bytes: 64 * 1024,
        };
        let opts_id = opts.id.clone();
        let peer = sock.peer_addr().ok().map(|a| a.ip());
        let state = ConnState {
            authed: opts.password.is_none(),
            ..Default::default()
        };
        Self {
            id,
            sock,
            sources: Sources::new(id, opts.id.clone()),
            opts,
            shared,
            limits,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            expected: VecDeque::with_capacity(16),
            inflight: 0,
            batch: Batch::default(),
            state,
            closing: false,
            tunnel: false,
            blocked: false,
            commands: [Class::Read, Class::Write, Class::Admin, Class::ConnectionState].map(|c| {
                metrics::counter!(godwit_telemetry::COMMANDS_TOTAL, "interlay" => opts_id.to_string(), "class" => c.label())
            }),
            peer,
            rng: (id as u32) | 1,
            secondary_failures: metrics::counter!(godwit_telemetry::DUAL_WRITE_FAILURES_TOTAL, "interlay" => opts_id.to_string()),
            shadow_compared: metrics::counter!(godwit_telemetry::SHADOW_COMPARED_TOTAL, "interlay" => opts_id.to_string()),
            shadow_mismatches: metrics::counter!(godwit_telemetry::SHADOW_MISMATCHES_TOTAL, "interlay" => opts_id.to_string()),
        }
    }

    /// Serves the client until it disconnects or must be closed.
    pub(crate) async fn run(mut self) {
        let max = self.shared.limits.max_pipeline.max(1);
        loop {
            self.drain();
            if !self.wbuf.is_empty() {
                if self.sock.write_all(&self.wbuf).await.is_err() {
                    return;
                }
                self.wbuf.clear();
                if self.wbuf.capacity() > 4 * 1024 * 1024 {
                    self.wbuf = BytesMut::with_capacity(READ_CHUNK);
                }
            }
            if self.expected.is_empty() {
                if self.tunnel {
                    return tunnel::run(self).await;
                }
                if self.closing {
                    return;
                }
            }
            let readable = !self.closing && !self.tunnel;
            if readable && self.blocked && self.inflight < max {
                // input left over from when the pipeline limit stopped parsing
                self.process_input(max);
                continue;
            }
            let head = self.waiting_on();
            let can_read = readable && self.inflight < max;
            if head.is_none() && !can_read {
                return; // nothing left to wait for
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 2 {
                self.rbuf.reserve(READ_CHUNK);
            }
            let sock = &mut self.sock;
            let rbuf = &mut self.rbuf;
            let sources = &mut self.sources;
            tokio::select! {
                biased;
                reply = sources.recv(head), if head.is_some() => {
                    let src = head.unwrap_or_default();
                    match reply {
                        Some(r) => self.on_reply(src, r),
                        None => return, // cannot happen: sources keep their own sender
                    }
                    // take every reply already waiting from that source, then write at once
                    while let Some(r) = self.sources.try_recv(src) {
                        self.on_reply(src, r);
                    }
                }
                res = sock.read_buf(rbuf), if can_read => match res {
                    Ok(0) | Err(_) => {
                        // Like Redis, a client that closed is freed at once if it may be blocked
                        // (its dedicated connection closes, so Redis unblocks it and pops
                        // nothing for it); replies to shared work are still delivered, for
                        // clients that only half-closed.
                        if self.sources.is_pinned() {
                            return;
                        }
                        self.closing = true;
                    }
                    Ok(_) => self.process_input(max),
                },
            }
        }
    }
}

fn error_reply(msg: &str) -> Bytes {
    let mut b = BytesMut::new();
    encode::error(&mut b, msg);
    b.freeze()
}
