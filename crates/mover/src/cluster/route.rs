//! Key commands on a cluster: every key's commands go to the master owning its slot, one
//! pipeline per node, the nodes concurrently, and the replies come back in the caller's order.
//! `MOVED` refreshes the slot map and re-sends the key to the named node; `ASK` re-sends it
//! there behind `ASKING` (in the same pipeline); `TRYAGAIN`/`CLUSTERDOWN` re-send it after a
//! short pause. Past the bounds the batch fails with a retryable error, so the engine's own
//! retry budget takes over.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use redis::{Cmd, Pipeline, Value};
use tokio::task::JoinSet;

use super::slots::{key_slot, parse_redirect, Redirect};
use super::ClusterConn;
use crate::error::MoverError;
use crate::io::{self, Entry, Outcome, WriteMode};

/// `MOVED`/`ASK` rounds one batch may take.
const MAX_REDIRECTS: u32 = 5;
/// `TRYAGAIN`/`CLUSTERDOWN` pauses one batch may take (25, 50, 100, 200 ms).
const MAX_WAITS: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(25);

/// Where the commands of one item go next.
enum Route {
    /// To the slot's master in the current map.
    Slot,
    /// To this node (a `MOVED` answer).
    To(String),
    /// To this node, each command behind `ASKING`.
    Ask(String),
}

impl ClusterConn {
    /// Sends `per_item` commands for every item (`build(pipe, item, j)` adds command `j` of
    /// `item`) to the master of `slots[item]`; returns the replies flat, in item order. Error
    /// replies other than redirects are returned as values.
    pub(super) async fn run<F>(
        &mut self,
        slots: &[u16],
        per_item: usize,
        build: F,
    ) -> Result<Vec<Value>, MoverError>
    where
        F: Fn(&mut Pipeline, usize, usize),
    {
        let mut out = vec![Value::Nil; slots.len() * per_item];
        let mut pending: Vec<(usize, Route)> = (0..slots.len()).map(|i| (i, Route::Slot)).collect();
        let (mut redirects, mut waits) = (0, 0);
        while !pending.is_empty() {
            // item index and whether it was sent behind ASKING, per node
            type Group = (Pipeline, Vec<(usize, bool)>, usize);
            let mut groups: BTreeMap<String, Group> = BTreeMap::new();
            for (i, route) in pending.drain(..) {
                let (addr, asking) = match route {
                    Route::Slot => (self.map.master_of(slots[i]).to_string(), false),
                    Route::To(a) => (a, false),
                    Route::Ask(a) => (a, true),
                };
                let g = groups
                    .entry(addr)
                    .or_insert_with(|| (redis::pipe(), Vec::new(), 0));
                for j in 0..per_item {
                    if asking {
                        g.0.cmd("ASKING");
                    }
                    build(&mut g.0, i, j);
                }
                g.2 += per_item * (1 + usize::from(asking));
                g.1.push((i, asking));
            }
            let mut set = JoinSet::new();
            for (addr, (pipe, items, count)) in groups {
                let mut c = self.node(&addr).await?;
                set.spawn(async move {
                    let replies = c.send_packed_commands(&pipe, 0, count).await;
                    (addr, items, count, replies)
                });
            }
            let (mut moved, mut asked, mut wait) = (false, false, false);
            while let Some(joined) = set.join_next().await {
                let (addr, items, count, replies) =
                    joined.map_err(|_| self.protocol("node task failed"))?;
                let replies = replies.map_err(|e| MoverError::from_redis(self.side, e))?;
                if replies.len() != count {
                    return Err(
                        self.protocol(&format!("{} replies for {count} commands", replies.len()))
                    );
                }
                let mut it = replies.into_iter();
                for (i, asking) in items {
                    let mut next = None;
                    for j in 0..per_item {
                        if asking {
                            it.next(); // the +OK of ASKING
                        }
                        let v = it.next().unwrap_or(Value::Nil);
                        if let Value::ServerError(err) = &v {
                            let details = err.details().unwrap_or_default();
                            match parse_redirect(err.code(), details, &addr) {
                                Some(Redirect::Moved(to)) => {
                                    moved = true;
                                    next = Some(Route::To(to));
                                }
                                Some(Redirect::Ask(to)) => {
                                    asked = true;
                                    next = Some(Route::Ask(to));
                                }
                                Some(Redirect::Wait) => {
                                    wait = true;
                                    next = next.or(Some(Route::Slot));
                                }
                                None => {}
                            }
                        }
                        out[i * per_item + j] = v;
                    }
                    if let Some(r) = next {
                        pending.push((i, r));
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            if moved || asked {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(self.unreachable("too many MOVED/ASK redirects"));
                }
            }
            if moved {
                self.refresh().await?;
            }
            if wait {
                waits += 1;
                if waits > MAX_WAITS {
                    return Err(self.unreachable("cluster busy (TRYAGAIN/CLUSTERDOWN)"));
                }
                tokio::time::sleep(FIRST_WAIT * 2u32.pow(waits - 1)).await;
            }
        }
        Ok(out)
    }

    fn protocol(&self, message: &str) -> MoverError {
        MoverError::Protocol {
            side: self.side,
            message: message.to_string(),
        }
    }

    fn unreachable(&self, message: &str) -> MoverError {
        MoverError::Unreachable {
            side: self.side,
            message: message.to_string(),
        }
    }

    /// The first error reply of a read as an error (a read must not turn into "missing").
    fn refuse_errors(&self, replies: &[Value]) -> Result<(), MoverError> {
        match replies.iter().find(|v| matches!(v, Value::ServerError(_))) {
            Some(Value::ServerError(e)) => Err(MoverError::Refused {
                side: self.side,
                message: format!("{} {}", e.code(), e.details().unwrap_or_default()),
            }),
            _ => Ok(()),
        }
    }

    /// `PTTL` + `DUMP` of every key, pipelined on its master (a Lua call could not span slots).
    pub(crate) async fn read(&mut self, keys: &[Bytes]) -> Result<Vec<Entry>, MoverError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let slots: Vec<u16> = keys.iter().map(|k| key_slot(k)).collect();
        let now = io::now_ms();
        let replies = self
            .run(&slots, 2, |pipe, i, j| {
                pipe.cmd(if j == 0 { "PTTL" } else { "DUMP" })
                    .arg(&keys[i][..]);
            })
            .await?;
        self.refuse_errors(&replies)?;
        let mut it = replies.into_iter();
        Ok(keys
            .iter()
            .map(|k| io::entry(k, it.next(), it.next(), now))
            .collect())
    }

    /// The cluster form of [`io::write`]: the same commands and outcomes, routed per key.
    pub(crate) async fn write(
        &mut self,
        entries: &[Entry],
        mode: WriteMode,
    ) -> Result<Vec<Outcome>, MoverError> {
        let mut out = vec![Outcome::Skipped; entries.len()];
        let sent: Vec<usize> = (0..entries.len())
            .filter(|&i| io::writes(&entries[i], mode))
            .collect();
        if sent.is_empty() {
            return Ok(out);
        }
        let slots: Vec<u16> = sent.iter().map(|&i| key_slot(&entries[i].key)).collect();
        let replies = self
            .run(&slots, 1, |pipe, k, _| {
                io::push_write(pipe, &entries[sent[k]], mode)
            })
            .await?;
        let mut busy = Vec::new();
        for (&i, reply) in sent.iter().zip(replies) {
            let (outcome, merge) = io::write_outcome(reply, &entries[i], mode);
            out[i] = outcome;
            if merge {
                busy.push(i);
            }
        }
        if !busy.is_empty() {
            let slots: Vec<u16> = busy.iter().map(|&i| key_slot(&entries[i].key)).collect();
            let replies = self
                .run(&slots, 1, |pipe, k, _| {
                    pipe.add_command(io::merge_cmd(&entries[busy[k]]));
                })
                .await?;
            for (&i, reply) in busy.iter().zip(replies) {
                out[i] = io::merge_outcome(reply, &entries[i]);
            }
        }
        Ok(out)
    }

    /// Whether each key exists.
    pub(crate) async fn exists(&mut self, keys: &[Bytes]) -> Result<Vec<bool>, MoverError> {
        let slots: Vec<u16> = keys.iter().map(|k| key_slot(k)).collect();
        let replies = self
            .run(&slots, 1, |pipe, i, _| {
                pipe.cmd("EXISTS").arg(&keys[i][..]);
            })
            .await?;
        self.refuse_errors(&replies)?;
        Ok(replies
            .iter()
            .map(|v| matches!(v, Value::Int(n) if *n > 0))
            .collect())
    }

    /// Runs `cmd`, a command on `key`, on the key's master.
    pub(crate) async fn query_key(&mut self, key: &[u8], cmd: &Cmd) -> Result<Value, MoverError> {
        let replies = self
            .run(&[key_slot(key)], 1, |pipe, _, _| {
                pipe.add_command(cmd.clone());
            })
            .await?;
        self.refuse_errors(&replies)?;
        Ok(replies.into_iter().next().unwrap_or(Value::Nil))
    }
}
