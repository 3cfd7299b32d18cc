//! The request side of a client: parse what was read, route each request, batch consecutive
//! requests for the same target, and record the replies due (in `expected`).

use bytes::{Buf, Bytes, BytesMut};
use godwit_resp::{encode, parse_command, split_inline};

use super::{error_reply, Action, Client, Expected, MarkKeys, Marks, Pair, Target};

impl Client {
    /// Parses and routes every complete request in the read buffer (up to the pipeline limit).
    pub(super) fn process_input(&mut self, max: usize) {
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
    pub(super) fn inline_request(&mut self, rbuf: &mut BytesMut, len: usize) {
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
    pub(super) fn apply(
        &mut self,
        rbuf: &mut BytesMut,
        action: Action,
        len: usize,
        own: Option<Bytes>,
    ) {
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
                    (!keys.is_empty()).then_some(Marks {
                        keys: MarkKeys::Keys(keys),
                        dirty: target.mark,
                        repair: target.repair,
                    }),
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

    pub(super) fn local_after_batch(&mut self, rbuf: &mut BytesMut, len: usize, reply: Bytes) {
        self.flush_batch(rbuf);
        rbuf.advance(len);
        self.push_local(reply);
    }

    /// Sends the pending batch (the first `batch.len` bytes of `rbuf`) to its target.
    pub(super) fn flush_batch(&mut self, rbuf: &mut BytesMut) {
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
    pub(super) fn send(&mut self, target: Target, data: Bytes, count: u32) {
        let Some((secondary, kind)) = target.also else {
            let mark = (target.mark || target.repair.is_some()).then(|| Marks {
                keys: MarkKeys::Requests(data.clone()),
                dirty: target.mark,
                repair: target.repair,
            });
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

    pub(super) fn send_remote(
        &mut self,
        mut src: u8,
        data: Bytes,
        count: u32,
        mark: Option<Marks>,
    ) {
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
    pub(super) fn repin(&mut self, src: u8) -> Option<u8> {
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
    pub(super) fn lost(&mut self, count: u32) {
        for _ in 0..count {
            self.push_local(error_reply("ERR godwit: server connection lost"));
        }
        self.closing = true;
    }

    pub(super) fn push_local(&mut self, reply: Bytes) {
        self.inflight += 1;
        self.expected.push_back(Expected::Local(reply));
    }
}
