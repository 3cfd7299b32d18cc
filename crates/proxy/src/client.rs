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
mod keys;
mod replies;
mod source;
mod tunnel;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use godwit_resp::{encode, parse_command, split_inline, Command, Limits};
use godwit_router::{flags, lookup, Class, CommandInfo, Inputs, Mirror, ReplyPolicy};
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
}

impl Target {
    fn only(src: u8) -> Self {
        Self {
            src,
            also: None,
            mark: false,
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
    Local(BytesMut),
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

/// Keys to report to the write observer once a write completed.
enum Marks {
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
            (Action::Forward(target), None) => {
                if self.batch.count > 0 && self.batch.target != target {
                    self.flush_batch(rbuf);
                }
                self.batch.target = target;
                self.batch.len += len;
                self.batch.count += 1;
            }
            (Action::Forward(target), Some(bytes)) | (Action::Rewrite(target, bytes), _) => {
                self.flush_batch(rbuf);
                rbuf.advance(len);
                self.send(target, bytes, 1);
            }
            (Action::Exec(target, keys), own) => {
                self.flush_batch(rbuf);
                let data = match own {
                    Some(b) => {
                        rbuf.advance(len);
                        b
                    }
                    None => rbuf.split_to(len).freeze(),
                };
                self.send_remote(
                    target.src,
                    data,
                    1,
                    (!keys.is_empty()).then_some(Marks::Keys(keys)),
                );
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

    /// Sends the pending batch (the first `batch.len` bytes of `rbuf`) to its target.
    fn flush_batch(&mut self, rbuf: &mut BytesMut) {
        let b = std::mem::take(&mut self.batch);
        if b.len == 0 {
            return;
        }
        let data = rbuf.split_to(b.len).freeze();
        if b.count > 0 {
            self.send(b.target, data, b.count);
        }
    }

    /// Sends `count` requests to the target's source(s) and records the replies due.
    fn send(&mut self, target: Target, data: Bytes, count: u32) {
        let Some((secondary, kind)) = target.also else {
            let mark = target.mark.then(|| Marks::Requests(data.clone()));
            return self.send_remote(target.src, data, count, mark);
        };
        if self
            .sources
            .send(target.src as usize, data.clone(), count)
            .is_err()
        {
            return self.lost(count);
        }
        if let Err(n) = self.sources.send(secondary as usize, data.clone(), count) {
            // cannot happen for a shared source; answer as if the primary had failed
            return self.lost(n);
        }
        let copying = self.sources.copying();
        self.inflight += count as usize;
        self.expected.push_back(Expected::Pair(Box::new(Pair {
            primary: target.src,
            secondary,
            n: count,
            kind,
            reqs: data,
            off: 0,
            copying,
        })));
    }

    fn send_remote(&mut self, mut src: u8, data: Bytes, count: u32, mark: Option<Marks>) {
        if self
            .sources
            .send(src as usize, data.clone(), count)
            .is_err()
        {
            // The dedicated connection ended (its server went away). Without transaction or
            // WATCH state to lose, reopen it (db, name and protocol restored) and go on, as a
            // shared connection would; otherwise close the client like Redis would have.
            match self.repin(src) {
                Some(new) if self.sources.send(new as usize, data, count).is_ok() => src = new,
                _ => return self.lost(count),
            }
        }
        self.inflight += count as usize;
        match (self.expected.back_mut(), &mark) {
            (
                Some(Expected::Remote {
                    src: s,
                    n,
                    mark: None,
                }),
                None,
            ) if *s == src => *n += count,
            _ => self.expected.push_back(Expected::Remote {
                src,
                n: count,
                mark,
            }),
        }
    }

    /// Replaces the ended dedicated source `src` by a new one, if the client holds no state
    /// that the lost connection took with it.
    fn repin(&mut self, src: u8) -> Option<u8> {
        if !self.sources.is_pinned_to(src as usize)
            || self.state.multi_keys.is_some()
            || self.state.watching
        {
            return None;
        }
        self.sources.unpin();
        match self.pin_cmd(None) {
            Action::Forward(t) => Some(t.src),
            _ => None,
        }
    }

    /// A dedicated connection ended: report it and close, as Redis would have closed.
    fn lost(&mut self, count: u32) {
        for _ in 0..count {
            self.push_local(error_reply("ERR godwit: server connection lost"));
        }
        self.closing = true;
    }

    fn push_local(&mut self, reply: Bytes) {
        self.inflight += 1;
        self.expected
            .push_back(Expected::Local(BytesMut::from(&reply[..])));
    }

    /// Routes one multibulk request whose bytes are `buf` (offsets in `cmd` are relative to it).
    fn classify(&mut self, buf: &[u8], cmd: &Command) -> Action {
        let name = cmd.name(buf).unwrap_or_default();
        let mut info: &'static CommandInfo =
            lookup(name).unwrap_or(&godwit_router::commands::UNKNOWN);
        if info.has(flags::HAS_SUBCOMMANDS) && info.class != Class::ConnectionState {
            if let Some(sub) = cmd
                .arg(buf, 1)
                .and_then(|s| godwit_router::lookup_sub(name, s))
            {
                info = sub;
            }
        }
        self.commands[info.class as usize].increment(1);
        if !self.state.authed && !connection::allowed_before_auth(info) {
            return Action::Local(Bytes::from_static(b"-NOAUTH Authentication required.\r\n"));
        }
        if info.class == Class::ConnectionState {
            return self.connection_command(info, buf, cmd);
        }
        if info.class == Class::Write {
            if let Some(keys) = self.state.multi_keys.as_mut() {
                keys::for_each_key(buf, cmd, info, |k| keys.push(Bytes::copy_from_slice(k)));
            }
        }
        if info.has(flags::BLOCKING) {
            let mut action = self.pin_cmd(None);
            if info.class == Class::Write && self.sources.copying() {
                if let Action::Forward(t) = &mut action {
                    t.mark = true;
                }
            }
            return action;
        }
        let key = if info.first_key > 0 {
            cmd.arg(buf, info.first_key as usize)
        } else {
            None
        };
        self.route_cmd(info, key, None)
    }

    /// Routes by the migration's decision; `bytes` replaces the request's own bytes.
    #[inline]
    fn route_cmd(
        &mut self,
        info: &CommandInfo,
        key: Option<&[u8]>,
        bytes: Option<Bytes>,
    ) -> Action {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let inputs = Inputs {
            conn_id: self.id,
            key,
            identity: self.state.user.as_deref().or(self.state.name.as_deref()),
            client_ip: self.peer,
            rand: self.rng,
        };
        match self.sources.routed(&self.shared, info, &inputs) {
            Ok(r) => {
                let also = r.secondary.map(|s| {
                    let kind = match r.mirror {
                        Mirror::Shadow => PairKind::Shadow,
                        _ => PairKind::Write(r.reply),
                    };
                    (s, kind)
                });
                let mark = r.copying
                    && info.class == Class::Write
                    && also.is_none()
                    && self.state.multi_keys.is_none();
                let target = Target {
                    src: r.primary,
                    also,
                    mark,
                };
                match bytes {
                    None => Action::Forward(target),
                    Some(b) => Action::Rewrite(target, b),
                }
            }
            Err(msg) => Action::Local(error_reply(&msg)),
        }
    }

    /// Routes to the client's dedicated connection, opening it (with the client's state) if needed.
    fn pin_cmd(&mut self, bytes: Option<Bytes>) -> Action {
        let state = &self.state;
        let opened = self
            .sources
            .dedicated(&self.shared, |pool| connection::restore_state(state, pool));
        match opened {
            Ok(src) => {
                let target = Target::only(u8::try_from(src).unwrap_or(u8::MAX));
                match bytes {
                    None => Action::Forward(target),
                    Some(b) => Action::Rewrite(target, b),
                }
            }
            Err(msg) => Action::Local(error_reply(&msg)),
        }
    }
}

fn error_reply(msg: &str) -> Bytes {
    let mut b = BytesMut::new();
    encode::error(&mut b, msg);
    b.freeze()
}
