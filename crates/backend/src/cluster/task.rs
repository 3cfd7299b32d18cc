//! The routing task of a cluster endpoint: splits requests into commands, sends each to its
//! node (batched per node), matches node replies back to commands through per-node tickets,
//! follows redirects, merges fan-out replies and answers requesters strictly in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use godwit_resp::{parse_command, Limits, ReplyScanner};
use tokio::sync::mpsc;

use super::plan::{self, Merge, Plan, CROSSSLOT};
use super::topology::{redirect, Redirect, Topology};
use super::{ClusterShared, Mode};
use crate::{ConnHandle, Reply, ReplyTx, Request};

/// Redirects followed per command (per part of a split or fan-out).
const MAX_REDIRECTS: u16 = 5;
const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const DISCARD: &[u8] = b"*1\r\n$7\r\nDISCARD\r\n";
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";

/// Starts a routing task; its handle is used like a connection's.
pub(crate) fn spawn(shared: Arc<ClusterShared>, mode: Mode) -> ConnHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = Task {
        shared,
        mode,
        rx,
        closed: false,
        topo: None,
        version: 0,
        links: Vec::new(),
        by_addr: HashMap::new(),
        queue: VecDeque::new(),
        head_seq: 0,
        owner: None,
        txn: None,
        watch: None,
    };
    tokio::spawn(task.run());
    ConnHandle { tx }
}

/// A node connection and the commands waiting for its replies.
struct Link {
    conn: ConnHandle,
    addr: String,
    tx: ReplyTx,
    rx: mpsc::UnboundedReceiver<Reply>,
    tickets: VecDeque<Ticket>,
    out: BytesMut,
    out_n: u32,
}

/// One reply due from a node: for command `seq` (part `part` of a fan-out), or to be dropped.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    seq: u64,
    part: u16,
    discard: bool,
}

/// One command of a requester, until its reply is known.
struct Pending {
    reply_to: ReplyTx,
    cmd: Bytes,
    out: Option<Bytes>,
    redirects: u16,
    fan: Option<Box<Fan>>,
    /// SCAN: (master index, number of masters) to rewrite the reply's cursor.
    scan: Option<(usize, usize)>,
}

/// A command sent as several parts (to every master, or split by slot).
struct Fan {
    merge: Merge,
    parts: Vec<Option<Bytes>>,
    /// Split parts: each part's command (resent on a redirect) and key positions (`MGET`).
    cmds: Vec<Bytes>,
    index: Vec<Vec<u32>>,
}

/// A transaction of a dedicated task.
struct Txn {
    /// The node it runs on (`None` until its first command chose one; MULTI was answered
    /// locally and is sent just before that command).
    link: Option<usize>,
    aborted: bool,
}

struct Task {
    shared: Arc<ClusterShared>,
    mode: Mode,
    rx: mpsc::UnboundedReceiver<Request>,
    closed: bool,
    topo: Option<Arc<Topology>>,
    version: u64,
    links: Vec<Link>,
    by_addr: HashMap<String, usize>,
    queue: VecDeque<Pending>,
    head_seq: u64,
    /// First requester of a dedicated task: receives push frames.
    owner: Option<ReplyTx>,
    txn: Option<Txn>,
    watch: Option<usize>,
}

enum Event {
    Request(Option<Request>),
    Reply(usize, Reply),
}

impl Task {
    async fn run(mut self) {
        loop {
            let links = &mut self.links;
            let event = tokio::select! {
                biased;
                (i, r) = poll_links(links) => Event::Reply(i, r),
                r = self.rx.recv(), if !self.closed => Event::Request(r),
            };
            match event {
                Event::Reply(i, r) => {
                    self.on_node_reply(i, r);
                    for i in 0..self.links.len() {
                        while let Ok(r) = self.links[i].rx.try_recv() {
                            self.on_node_reply(i, r);
                        }
                    }
                }
                Event::Request(Some(r)) => {
                    self.accept(r).await;
                    while let Ok(r) = self.rx.try_recv() {
                        self.accept(r).await;
                    }
                }
                Event::Request(None) => self.closed = true,
            }
            self.flush();
            self.deliver();
            if self.closed && (self.queue.is_empty() || self.mode.client_init.is_some()) {
                // a dedicated task's client is gone: drop its node connections now, so Redis
                // frees (and unblocks) them
                return;
            }
        }
    }

    /// Splits a request into commands and routes each.
    async fn accept(&mut self, req: Request) {
        if self.mode.client_init.is_some() && self.owner.is_none() {
            self.owner = Some(req.reply.clone());
        }
        if self.shared.version() != self.version || self.topo.is_none() {
            if self.shared.version() == 0 {
                self.shared.refresh().await;
            }
            self.version = self.shared.version();
            self.topo = self.shared.topology();
        }
        let limits = Limits {
            max_frame_bytes: usize::MAX,
            max_inline_bytes: usize::MAX,
        };
        let mut off = 0;
        let mut seen = 0;
        while seen < req.count {
            let cmd = match parse_command(&req.data[off..], &limits) {
                Ok(Some(c)) => c,
                _ => break,
            };
            let bytes = req.data.slice(off..off + cmd.len);
            off += cmd.len;
            if cmd.argc == 0 {
                continue;
            }
            seen += 1;
            let plan = plan::plan(&bytes, &cmd);
            self.route(bytes, &cmd, plan, req.reply.clone());
        }
        for _ in seen..req.count {
            // cannot happen with the proxy's requests: they are whole, parsed commands
            self.push_local(
                &req.reply,
                Bytes::from_static(b"-ERR godwit: malformed request\r\n"),
            );
        }
    }

    fn push_local(&mut self, reply_to: &ReplyTx, out: Bytes) {
        self.queue.push_back(Pending {
            reply_to: reply_to.clone(),
            cmd: Bytes::new(),
            out: Some(out),
            redirects: 0,
            fan: None,
            scan: None,
        });
    }

    fn route(&mut self, bytes: Bytes, cmd: &godwit_resp::Command, plan: Plan, reply_to: ReplyTx) {
        let Some(topo) = self.topo.clone() else {
            let why = self
                .shared
                .last_error()
                .map_or_else(|| "no slot map".to_string(), |e| e.to_string());
            let msg = format!("-ERR godwit: backend unavailable: cluster topology: {why}\r\n");
            self.push_local(&reply_to, Bytes::from(msg));
            return;
        };
        let seq = self.head_seq + self.queue.len() as u64;
        self.queue.push_back(Pending {
            reply_to,
            cmd: bytes.clone(),
            out: None,
            redirects: 0,
            fan: None,
            scan: None,
        });
        let dedicated = self.mode.client_init.is_some();
        let txn_plan = matches!(
            plan,
            Plan::Multi | Plan::Exec | Plan::Discard | Plan::Watch(_) | Plan::Unwatch
        );
        if dedicated && (txn_plan || self.txn.is_some()) {
            if let Some(out) = self.transaction(seq, &bytes, plan, &topo) {
                self.set_out(seq, out);
            }
            return;
        }
        match plan {
            Plan::CrossSlot => self.set_out(seq, Bytes::from_static(CROSSSLOT)),
            Plan::All(merge) => {
                let n = topo.masters.len();
                if let Some(p) = self.pending(seq) {
                    p.fan = Some(Box::new(Fan {
                        merge,
                        parts: vec![None; n],
                        cmds: Vec::new(),
                        index: Vec::new(),
                    }));
                }
                for (i, addr) in topo.masters.iter().enumerate() {
                    let l = self.link(addr);
                    self.send(l, &bytes, seq, i as u16, false);
                }
            }
            Plan::Split(merge) => {
                let parts = plan::split(&bytes, cmd);
                let mut fan = Fan {
                    merge,
                    parts: vec![None; parts.len()],
                    cmds: Vec::with_capacity(parts.len()),
                    index: Vec::with_capacity(parts.len()),
                };
                for (i, (slot, part, idx)) in parts.into_iter().enumerate() {
                    let l = self.slot_link(&topo, Some(slot));
                    self.send(l, &part, seq, i as u16, false);
                    fan.cmds.push(part);
                    fan.index.push(idx);
                }
                if let Some(p) = self.pending(seq) {
                    p.fan = Some(Box::new(fan));
                }
            }
            Plan::Scan { node, cursor } => match topo.masters.get(node) {
                Some(addr) => {
                    let n = topo.masters.len();
                    if let Some(p) = self.pending(seq) {
                        p.scan = Some((node, n));
                    }
                    let l = self.link(&addr.clone());
                    let rewritten = plan::with_cursor(&bytes, cmd, cursor);
                    self.send(l, &rewritten, seq, 0, false);
                }
                None => self.set_out(seq, Bytes::from_static(b"-ERR invalid cursor\r\n")),
            },
            Plan::Slot(s) | Plan::Watch(s) => {
                let l = self.slot_link(&topo, Some(s));
                self.send(l, &bytes, seq, 0, false);
            }
            _ => {
                let l = self.slot_link(&topo, None);
                self.send(l, &bytes, seq, 0, false);
            }
        }
    }

    /// Routes a command of a dedicated task; `Some` is a local answer.
    fn transaction(
        &mut self,
        seq: u64,
        bytes: &[u8],
        plan: Plan,
        topo: &Topology,
    ) -> Option<Bytes> {
        let ok = || Bytes::from_static(b"+OK\r\n");
        let slot = match plan {
            Plan::Slot(s) | Plan::Watch(s) => Some(s),
            _ => None,
        };
        if let Some(txn) = &self.txn {
            let link = txn.link;
            match plan {
                Plan::Multi => {}
                Plan::Exec | Plan::Discard => {
                    let aborted = txn.aborted;
                    self.txn = None;
                    self.watch = None;
                    let exec = plan == Plan::Exec;
                    return match (link, aborted) {
                        (None, true) if exec => Some(Bytes::from_static(EXECABORT)),
                        (None, _) if exec => Some(Bytes::from_static(b"*0\r\n")),
                        (None, _) => Some(ok()),
                        (Some(l), true) if exec => {
                            self.send(l, DISCARD, seq, 0, true);
                            Some(Bytes::from_static(EXECABORT))
                        }
                        (Some(l), _) => {
                            self.send(l, bytes, seq, 0, false);
                            None
                        }
                    };
                }
                Plan::CrossSlot => {
                    self.abort_txn();
                    return Some(Bytes::from_static(CROSSSLOT));
                }
                _ => {}
            }
            let want = match (slot, link) {
                (Some(s), _) => self.slot_link(topo, Some(s)),
                (None, Some(l)) => l,
                (None, None) => self.slot_link(topo, None),
            };
            match link {
                None => {
                    if let Some(t) = self.txn.as_mut() {
                        t.link = Some(want);
                    }
                    self.send(want, MULTI, seq, 0, true);
                }
                Some(l) if l != want => {
                    self.abort_txn();
                    return Some(Bytes::from_static(CROSSSLOT));
                }
                Some(_) => {}
            }
            self.send(want, bytes, seq, 0, false);
            return None;
        }
        match plan {
            Plan::Multi => {
                self.txn = Some(Txn {
                    link: self.watch,
                    aborted: false,
                });
                match self.watch {
                    Some(l) => {
                        self.send(l, bytes, seq, 0, false);
                        None
                    }
                    None => Some(ok()),
                }
            }
            Plan::Unwatch => match self.watch.take() {
                Some(l) => {
                    self.send(l, bytes, seq, 0, false);
                    None
                }
                None => Some(ok()),
            },
            Plan::Watch(s) => {
                let l = self.slot_link(topo, Some(s));
                if self.watch.is_some_and(|w| w != l) {
                    return Some(Bytes::from_static(CROSSSLOT));
                }
                self.watch = Some(l);
                self.send(l, bytes, seq, 0, false);
                None
            }
            Plan::CrossSlot => Some(Bytes::from_static(CROSSSLOT)),
            _ => {
                // everything else runs on the node of its slot (or where WATCH runs)
                let l = match (slot, self.watch) {
                    (None, Some(w)) => w,
                    _ => self.slot_link(topo, slot),
                };
                self.send(l, bytes, seq, 0, false);
                None
            }
        }
    }

    fn abort_txn(&mut self) {
        if let Some(t) = self.txn.as_mut() {
            t.aborted = true;
        }
    }

    fn pending(&mut self, seq: u64) -> Option<&mut Pending> {
        let i = seq.checked_sub(self.head_seq)?;
        self.queue.get_mut(i as usize)
    }

    fn set_out(&mut self, seq: u64, out: Bytes) {
        if let Some(p) = self.pending(seq) {
            p.out = Some(out);
        }
    }

    /// The link of the master serving `slot` (any master for `None` or an unserved slot).
    fn slot_link(&mut self, topo: &Topology, slot: Option<u16>) -> usize {
        let i = slot.and_then(|s| topo.master(s)).unwrap_or(0);
        let addr = topo
            .masters
            .get(i)
            .cloned()
            .unwrap_or_else(|| self.shared.spec.addr.clone());
        self.link(&addr)
    }

    /// The link to `addr`, opened on first use.
    fn link(&mut self, addr: &str) -> usize {
        if let Some(&i) = self.by_addr.get(addr) {
            return i;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.links.push(Link {
            conn: self.shared.connect_node(addr, &self.mode),
            addr: addr.to_string(),
            tx,
            rx,
            tickets: VecDeque::new(),
            out: BytesMut::new(),
            out_n: 0,
        });
        let i = self.links.len() - 1;
        self.by_addr.insert(addr.to_string(), i);
        i
    }

    /// Queues `bytes` (one command) on link `l`; its reply answers `seq` (unless `discard`).
    fn send(&mut self, l: usize, bytes: &[u8], seq: u64, part: u16, discard: bool) {
        let link = &mut self.links[l];
        link.out.extend_from_slice(bytes);
        link.out_n += 1;
        link.tickets.push_back(Ticket { seq, part, discard });
    }

    /// Sends every link's queued commands as one request per link.
    fn flush(&mut self) {
        for l in 0..self.links.len() {
            if self.links[l].out_n == 0 {
                continue;
            }
            let link = &mut self.links[l];
            let req = Request {
                data: link.out.split().freeze(),
                count: std::mem::take(&mut link.out_n),
                reply: link.tx.clone(),
            };
            if let Err(req) = link.conn.send(req) {
                // a dedicated node connection ended: reopen it (the client's state is restored
                // by its init commands) and try once more
                link.conn = self.shared.connect_node(&link.addr.clone(), &self.mode);
                if let Err(req) = link.conn.send(req) {
                    let err = Bytes::from_static(
                        b"-ERR godwit: backend unavailable: node connection closed\r\n",
                    );
                    let mut all = BytesMut::new();
                    for _ in 0..req.count {
                        all.extend_from_slice(&err);
                    }
                    let _ = req.reply.send(Reply {
                        data: all.freeze(),
                        count: req.count,
                    });
                }
            }
        }
    }

    /// Takes the replies of one node message.
    fn on_node_reply(&mut self, l: usize, r: Reply) {
        if r.count == 0 {
            if let Some(o) = &self.owner {
                let _ = o.send(r);
            }
            return;
        }
        let mut off = 0;
        for _ in 0..r.count {
            let n = match ReplyScanner::new().next(&r.data[off..]) {
                Ok(Some(n)) => n,
                _ => break, // cannot happen: connections deliver whole replies
            };
            let one = r.data.slice(off..off + n);
            off += n;
            let Some(t) = self.links[l].tickets.pop_front() else {
                continue;
            };
            if !t.discard {
                self.answer(t, one);
            }
        }
    }

    /// One node reply for command `t.seq`: follow a redirect, or record it.
    fn answer(&mut self, t: Ticket, reply: Bytes) {
        let trouble = reply.starts_with(b"-ERR godwit: backend unavailable")
            || reply.starts_with(b"-CLUSTERDOWN");
        if trouble {
            self.shared.refresh_soon();
        }
        let Some(p) = self.pending(t.seq) else {
            return;
        };
        if let Some((node, masters)) = p.scan {
            p.out = Some(plan::rewrite_scan_reply(&reply, |c| {
                plan::join_cursor(node, c, masters)
            }));
            return;
        }
        let budget = MAX_REDIRECTS * p.fan.as_ref().map_or(1, |f| f.parts.len() as u16);
        let resend = match &p.fan {
            // a split part follows redirects like a whole command; a per-master one does not
            Some(f) => f.cmds.get(t.part as usize).cloned(),
            None => Some(p.cmd.clone()),
        };
        let redirected = (p.redirects < budget)
            .then(|| redirect(&reply))
            .flatten()
            .zip(resend);
        if let Some((r, cmd)) = redirected {
            p.redirects += 1;
            match r {
                Redirect::Moved(_, addr) => {
                    self.shared.refresh_soon();
                    let l = self.link(&addr);
                    self.send(l, &cmd, t.seq, t.part, false);
                }
                Redirect::Ask(_, addr) => {
                    let l = self.link(&addr);
                    self.send(l, ASKING, t.seq, 0, true);
                    self.send(l, &cmd, t.seq, t.part, false);
                }
            }
            return;
        }
        let Some(fan) = p.fan.as_mut() else {
            p.out = Some(reply);
            return;
        };
        if let Some(part) = fan.parts.get_mut(t.part as usize) {
            *part = Some(reply);
        }
        if fan.parts.iter().all(Option::is_some) {
            let parts: Vec<Bytes> = fan.parts.iter().flatten().cloned().collect();
            p.out = Some(match fan.merge {
                Merge::Values => plan::merge_values(&parts, &fan.index),
                m => plan::merge(m, &parts),
            });
        }
    }

    /// Answers every finished command at the head, grouped per requester.
    fn deliver(&mut self) {
        let mut group: Option<(ReplyTx, BytesMut, u32)> = None;
        while self.queue.front().is_some_and(|p| p.out.is_some()) {
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            self.head_seq += 1;
            let out = p.out.unwrap_or_default();
            match group.as_mut() {
                Some((tx, buf, n)) if tx.same_channel(&p.reply_to) => {
                    buf.extend_from_slice(&out);
                    *n += 1;
                }
                _ => {
                    if let Some((tx, buf, n)) = group.take() {
                        let _ = tx.send(Reply {
                            data: buf.freeze(),
                            count: n,
                        });
                    }
                    group = Some((p.reply_to, BytesMut::from(&out[..]), 1));
                }
            }
        }
        if let Some((tx, buf, n)) = group {
            let _ = tx.send(Reply {
                data: buf.freeze(),
                count: n,
            });
        }
    }
}

/// The next message of any node link (never ready when there are none).
async fn poll_links(links: &mut [Link]) -> (usize, Reply) {
    std::future::poll_fn(|cx| {
        for (i, l) in links.iter_mut().enumerate() {
            if let std::task::Poll::Ready(Some(r)) = l.rx.poll_recv(cx) {
                return std::task::Poll::Ready((i, r));
            }
        }
        std::task::Poll::Pending
    })
    .await
}
