//! The reply side of a client: take replies from sources, complete `expected` entries strictly
//! from the head, write the client's replies in request order.
//!
//! Replies for the head entry are written straight through. Replies that arrive for a later
//! entry, or that must be paired (dual writes, shadow reads), wait in their source's stash.

use bytes::Bytes;
use godwit_backend::Reply;
use godwit_resp::parse_command;
use godwit_router::{lookup, Class, ReplyPolicy};

use super::{compare, keys, Client, Expected, MarkKeys, Marks, Pair, PairKind};

impl Client {
    /// The source whose reply the head entry waits for, if it waits for one.
    pub(super) fn waiting_on(&self) -> Option<usize> {
        match self.expected.front()? {
            Expected::Remote { src, .. } => Some(*src as usize),
            Expected::Pair(p) if self.sources.stash_n(p.primary as usize) == 0 => {
                Some(p.primary as usize)
            }
            Expected::Pair(p) => Some(p.secondary as usize),
            Expected::Local(_) => None,
        }
    }

    /// Takes one message of replies from source `src`.
    pub(super) fn on_reply(&mut self, src: usize, r: Reply) {
        if r.count == 0 {
            // RESP3 push frames: not replies to anything, written as they come
            self.wbuf.extend_from_slice(&r.data);
            return;
        }
        self.sources.settled(src, r.count);
        if let Some(Expected::Remote {
            src: s,
            n,
            mark: None,
        }) = self.expected.front_mut()
        {
            if *s as usize == src && r.count <= *n && self.sources.stash_n(src) == 0 {
                // the common case: replies for the head, written straight through
                self.wbuf.extend_from_slice(&r.data);
                *n -= r.count;
                self.inflight -= r.count as usize;
                if *n == 0 {
                    self.expected.pop_front();
                }
                return;
            }
        }
        self.sources.stash_push(src, &r.data, r.count);
    }

    /// Completes every head entry whose replies are all here.
    pub(super) fn drain(&mut self) {
        loop {
            let Some(head) = self.expected.front_mut() else {
                return;
            };
            match head {
                Expected::Local(b) => {
                    self.wbuf.extend_from_slice(b);
                    self.inflight -= 1;
                    self.expected.pop_front();
                }
                Expected::Remote { src, n, .. } => {
                    let src = *src as usize;
                    let have = self.sources.stash_n(src);
                    if have == 0 {
                        return;
                    }
                    let k = have.min(*n);
                    *n -= k;
                    let done = *n == 0;
                    self.inflight -= k as usize;
                    let data = self.sources.stash_take(src, k);
                    self.wbuf.extend_from_slice(&data);
                    if done {
                        if let Some(Expected::Remote { mark: Some(m), .. }) =
                            self.expected.pop_front()
                        {
                            self.report_marks(m);
                        }
                    }
                }
                Expected::Pair(_) => {
                    let Some(Expected::Pair(mut p)) = self.expected.pop_front() else {
                        return;
                    };
                    while p.n > 0
                        && self.sources.stash_n(p.primary as usize) > 0
                        && self.sources.stash_n(p.secondary as usize) > 0
                    {
                        let a = self.sources.stash_take(p.primary as usize, 1);
                        let b = self.sources.stash_take(p.secondary as usize, 1);
                        self.resolve(&mut p, a, b);
                    }
                    if p.n > 0 {
                        self.expected.push_front(Expected::Pair(p));
                        return;
                    }
                }
            }
        }
    }

    /// One request of a pair: pick the client's reply, count failures and mismatches, report
    /// written keys.
    fn resolve(&mut self, p: &mut Pair, a: Bytes, b: Bytes) {
        p.n -= 1;
        self.inflight -= 1;
        // the request these replies answer (empty requests in the batch have no reply)
        let mut cmd = None;
        while let Ok(Some(c)) = parse_command(&p.reqs[p.off..], &self.limits) {
            let start = p.off;
            p.off += c.len;
            if c.argc > 0 {
                cmd = Some((start, c));
                break;
            }
        }
        let failed = |r: &Bytes| matches!(r.first(), Some(b'-' | b'!'));
        let migration = self.sources.migration_id().cloned();
        let req = cmd.map(|(start, c)| (&p.reqs[start..start + c.len], c));
        let info = req.and_then(|(buf, c)| lookup(c.name(buf)?));
        let first_key = req.and_then(|(buf, c)| {
            let i = info?.first_key;
            if i > 0 {
                c.arg(buf, i as usize)
            } else {
                None
            }
        });
        match p.kind {
            PairKind::Write(policy) => {
                let (fa, fb) = (failed(&a), failed(&b));
                let reply = match policy {
                    ReplyPolicy::Serve => &a,
                    ReplyPolicy::EitherSucceeds if fa && !fb => &b,
                    ReplyPolicy::BothSucceed if !fa && fb => &b,
                    _ => &a,
                };
                self.wbuf.extend_from_slice(reply);
                if fa != fb {
                    // one side has the write and the other has not: count it, queue the key
                    self.secondary_failures.increment(1);
                }
                // which reply came from which side: the pair's other side is new unless the
                // primary is
                let new_auth = self.sources.is_new(p.primary);
                let (new_refused, old_refused) = if new_auth { (fa, fb) } else { (fb, fa) };
                let nondet = req.is_some_and(|(buf, c)| keys::nondeterministic(buf, &c, info));
                if let Some(m) = &migration {
                    let reports = &self.shared.reports;
                    if reports.dual_write(m, fa != fb, new_refused && !old_refused, nondet) {
                        // every key the write touched (MSET, DEL a b, ...)
                        if let (Some((buf, c)), Some(info)) = (req, info) {
                            keys::for_each_key(buf, &c, info, |k| reports.repair(m, new_auth, k));
                        }
                    }
                }
                // the copy re-reads a written key from its source side: not when that side
                // refused the write, nor for a write whose result each side picks itself when
                // the source is not authoritative — either would overwrite the authoritative
                // value with a stale one (the repair queues fix those keys instead)
                let from_new = self.sources.copy_from_new();
                let source_failed = if from_new { new_refused } else { old_refused };
                let source_authoritative = new_auth == from_new;
                if p.copying && !source_failed && (source_authoritative || !nondet) {
                    if let (Some(m), Some((buf, c)), Some(info)) = (&migration, req, info) {
                        let reports = &self.shared.reports;
                        keys::for_each_key(buf, &c, info, |k| reports.key_written(m, k));
                    }
                }
            }
            PairKind::Shadow => {
                self.wbuf.extend_from_slice(&a);
                let name = info.map(|i| i.name).unwrap_or("");
                // while the copy runs, a key new does not have yet is not a mismatch
                let not_copied_yet = p.copying && compare::is_null(&b);
                let same = not_copied_yet || compare::equal(compare::mode(name), &a, &b);
                self.shadow_compared.increment(1);
                if !same {
                    self.shadow_mismatches.increment(1);
                }
                if let Some(m) = &migration {
                    let mismatch = (!same).then(|| crate::observe::Mismatch {
                        command: name,
                        key: first_key.unwrap_or_default(),
                        old: &a[..],
                        new: &b[..],
                    });
                    self.shared.reports.compared(m, mismatch);
                }
            }
        }
    }

    /// Reports the keys a completed one-sided write touched: to the copy (dirty) and/or to the
    /// repair queue.
    fn report_marks(&mut self, marks: Marks) {
        let Some(m) = self.sources.migration_id().cloned() else {
            return;
        };
        let reports = &self.shared.reports;
        let mut report = |k: &[u8]| {
            if marks.dirty {
                reports.key_written(&m, k);
            }
            if let Some(new_auth) = marks.repair {
                reports.repair(&m, new_auth, k);
            }
        };
        match &marks.keys {
            MarkKeys::Keys(keys) => keys.iter().for_each(|k| report(k)),
            MarkKeys::Requests(reqs) => {
                let mut off = 0;
                while let Ok(Some(c)) = parse_command(&reqs[off..], &self.limits) {
                    let buf = &reqs[off..off + c.len];
                    off += c.len;
                    if let Some(info) = c
                        .name(buf)
                        .and_then(lookup)
                        .filter(|i| i.class == Class::Write)
                    {
                        keys::for_each_key(buf, &c, info, &mut report);
                    }
                }
            }
        }
    }
}
