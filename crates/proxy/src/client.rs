//! One client connection: read requests, route them, forward them in batches, write the
//! replies back in request order.
//!
//! Ordering: every request appends to `expected` either a `Remote` entry (n replies due from
//! one backend source) or a `Local` entry (a reply the proxy made). Only the source at the head
//! of `expected` is read from, and each source delivers in order, so replies reach the client in
//! exactly the order of its requests, whatever mix of sources served them.

mod connection;
mod source;
mod tunnel;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use godwit_resp::{encode, parse_command, split_inline, Command, Limits};
use godwit_router::{flags, lookup, Class, CommandInfo, Inputs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{InterlayOptions, ProxyShared};
use source::Sources;

const READ_CHUNK: usize = 16 * 1024;

/// What the proxy does with one request.
enum Action {
    /// Forward the request's own bytes to this source.
    Forward(u8),
    /// Forward these bytes instead (the request rewritten, e.g. HELLO without AUTH).
    Rewrite(u8, Bytes),
    /// Answer with these bytes; nothing is forwarded.
    Local(Bytes),
    /// Answer, then close the connection once every earlier reply is written (QUIT).
    LocalThenClose(Bytes),
    /// Leave request/reply mode: the connection becomes a byte tunnel (pub/sub).
    Tunnel,
}

enum Expected {
    Remote { src: u8, n: u32 },
    Local(BytesMut),
}

/// Requests parsed but not yet sent: the first `len` bytes of the read buffer, `count` of them,
/// all for source `src`.
#[derive(Default)]
struct Batch {
    src: u8,
    len: usize,
    count: u32,
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
        }
    }

    /// Serves the client until it disconnects or must be closed.
    pub(crate) async fn run(mut self) {
        let max = self.shared.limits.max_pipeline.max(1);
        loop {
            self.flush_locals();
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
            let head = match self.expected.front() {
                Some(Expected::Remote { src, .. }) => Some(*src as usize),
                _ => None,
            };
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
                    // take every reply already waiting for the head, then write them at once
                    while let Some(Expected::Remote { src, .. }) = self.expected.front() {
                        let src = *src as usize;
                        match self.sources.try_recv(src) {
                            Some(r) => self.on_reply(src, r),
                            None => break,
                        }
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

    fn on_reply(&mut self, src: usize, r: godwit_backend::Reply) {
        self.wbuf.extend_from_slice(&r.data);
        if r.count == 0 {
            return;
        }
        self.sources.settled(src, r.count);
        self.inflight -= r.count as usize;
        if let Some(Expected::Remote { n, .. }) = self.expected.front_mut() {
            *n -= r.count;
            if *n == 0 {
                self.expected.pop_front();
            }
        }
    }

    fn flush_locals(&mut self) {
        while let Some(Expected::Local(_)) = self.expected.front() {
            if let Some(Expected::Local(b)) = self.expected.pop_front() {
                self.inflight -= 1;
                self.wbuf.extend_from_slice(&b);
            }
        }
    }

    /// Parses and routes every complete request in the read buffer (up to the pipeline limit).
    fn process_input(&mut self, max: usize) {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        self.blocked = false;
        while !self.closing && !self.tunnel {
            if self.inflight + self.batch.count as usize >= max {
                self.blocked = true;
                break;
            }
            let parsed = parse_command(&rbuf[self.batch.len..], &self.limits);
            let cmd = match parsed {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    metrics::counter!(godwit_telemetry::PROTOCOL_ERRORS_TOTAL).increment(1);
                    self.flush_batch(&mut rbuf);
                    self.push_local(error_reply(&format!("ERR {e}")));
                    self.closing = true;
                    rbuf.clear();
                    break;
                }
            };
            if cmd.argc == 0 {
                // Redis ignores empty requests silently; so do we (forwarded inside a batch or dropped)
                if self.batch.len == 0 {
                    rbuf.advance(cmd.len);
                } else {
                    self.batch.len += cmd.len;
                }
                continue;
            }
            if cmd.inline {
                self.flush_batch(&mut rbuf);
                self.inline_request(&mut rbuf, cmd.len);
                continue;
            }
            let action = self.classify(&rbuf[self.batch.len..], &cmd);
            self.apply(&mut rbuf, action, cmd.len, None);
        }
        self.flush_batch(&mut rbuf);
        self.rbuf = rbuf;
    }

    /// An inline request: split it, re-encode it as a multibulk, route that.
    fn inline_request(&mut self, rbuf: &mut BytesMut, len: usize) {
        let line = &rbuf[..len];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match split_inline(line) {
            Err(e) => {
                self.push_local(error_reply(&format!("ERR {e}")));
                self.closing = true;
                rbuf.clear();
            }
            Ok(args) => {
                let mut enc = BytesMut::new();
                encode::command(&mut enc, &args);
                let enc = enc.freeze();
                match parse_command(&enc, &self.limits) {
                    Ok(Some(cmd)) if cmd.argc > 0 => {
                        let action = self.classify(&enc, &cmd);
                        self.apply(rbuf, action, len, Some(enc.clone()));
                    }
                    _ => rbuf.advance(len),
                }
            }
        }
    }

    /// Carries out `action` for the request occupying `len` bytes after the current batch.
    /// `own` holds the bytes to forward when they are not the read buffer's (inline requests).
    fn apply(&mut self, rbuf: &mut BytesMut, action: Action, len: usize, own: Option<Bytes>) {
        match (action, own) {
            (Action::Forward(src), None) => {
                if self.batch.count > 0 && self.batch.src != src {
                    self.flush_batch(rbuf);
                }
                self.batch.src = src;
                self.batch.len += len;
                self.batch.count += 1;
            }
            (Action::Forward(src), Some(bytes)) | (Action::Rewrite(src, bytes), _) => {
                self.flush_batch(rbuf);
                rbuf.advance(len);
                self.send(src, bytes, 1);
            }
            (Action::Local(reply), _) => self.local_after_batch(rbuf, len, reply),
            (Action::LocalThenClose(reply), _) => {
                self.local_after_batch(rbuf, len, reply);
                self.closing = true;
            }
            (Action::Tunnel, _) => {
                self.flush_batch(rbuf);
                self.tunnel = true;
            }
        }
    }

    fn local_after_batch(&mut self, rbuf: &mut BytesMut, len: usize, reply: Bytes) {
        self.flush_batch(rbuf);
        rbuf.advance(len);
        self.push_local(reply);
    }

    /// Sends the pending batch (the first `batch.len` bytes of `rbuf`) to its source.
    fn flush_batch(&mut self, rbuf: &mut BytesMut) {
        let b = std::mem::take(&mut self.batch);
        if b.len == 0 {
            return;
        }
        let data = rbuf.split_to(b.len).freeze();
        if b.count > 0 {
            self.send(b.src, data, b.count);
        }
    }

    fn send(&mut self, src: u8, data: Bytes, count: u32) {
        if let Err(count) = self.sources.send(src as usize, data, count) {
            // a dedicated connection ended: report it and close, as Redis would have closed
            for _ in 0..count {
                self.push_local(error_reply("ERR godwit: server connection lost"));
            }
            self.closing = true;
            return;
        }
        self.inflight += count as usize;
        match self.expected.back_mut() {
            Some(Expected::Remote { src: s, n }) if *s == src => *n += count,
            _ => self.expected.push_back(Expected::Remote { src, n: count }),
        }
    }

    fn push_local(&mut self, reply: Bytes) {
        self.inflight += 1;
        self.expected
            .push_back(Expected::Local(BytesMut::from(&reply[..])));
    }

    /// Routes one multibulk request whose bytes are `buf` (offsets in `cmd` are relative to it).
    fn classify(&mut self, buf: &[u8], cmd: &Command) -> Action {
        let name = cmd.name(buf).unwrap_or_default();
        let info: &'static CommandInfo = lookup(name).unwrap_or(&godwit_router::commands::UNKNOWN);
        self.commands[info.class as usize].increment(1);
        if !self.state.authed && !connection::allowed_before_auth(info) {
            return Action::Local(Bytes::from_static(b"-NOAUTH Authentication required.\r\n"));
        }
        match info.class {
            Class::ConnectionState => self.connection_command(info, buf, cmd),
            _ if info.has(flags::BLOCKING) => self.to_dedicated(None),
            _ => {
                let key = if info.first_key > 0 {
                    cmd.arg(buf, info.first_key as usize)
                } else {
                    None
                };
                self.to_routed(info, key, None)
            }
        }
    }

    /// Routes to the decided side's connection; `bytes` replaces the request's own bytes.
    #[inline]
    fn to_routed(
        &mut self,
        info: &CommandInfo,
        key: Option<&[u8]>,
        bytes: Option<Bytes>,
    ) -> Action {
        let inputs = Inputs {
            conn_id: self.id,
            key,
            identity: self.state.user.as_deref(),
            now_ms: 0,
        };
        match self.sources.routed(&self.shared, info, &inputs) {
            Ok(src) => to_source(src, bytes),
            Err(msg) => Action::Local(error_reply(&msg)),
        }
    }

    /// Routes to the client's dedicated connection, opening it (with the client's state) if needed.
    fn to_dedicated(&mut self, bytes: Option<Bytes>) -> Action {
        let state = &self.state;
        let opened = self
            .sources
            .dedicated(&self.shared, |pool| connection::restore_state(state, pool));
        match opened {
            Ok(src) => to_source(src, bytes),
            Err(msg) => Action::Local(error_reply(&msg)),
        }
    }
}

fn to_source(src: usize, bytes: Option<Bytes>) -> Action {
    let src = u8::try_from(src).unwrap_or(u8::MAX);
    match bytes {
        None => Action::Forward(src),
        Some(b) => Action::Rewrite(src, b),
    }
}

fn error_reply(msg: &str) -> Bytes {
    let mut b = BytesMut::new();
    encode::error(&mut b, msg);
    b.freeze()
}
