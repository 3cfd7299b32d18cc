//! The backend connections one client uses ("sources"), and routing to them.
//!
//! A source is a backend connection plus this client's reply channel for it. Shared sources use
//! the endpoint pool's shared connection; at most one dedicated source is active (`pinned`).
//! The route is cached per table version, so a table swap reaches the client on its next command.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use godwit_backend::{ConnHandle, Pool, Reply, ReplyTx, Request};
use godwit_resp::ReplyScanner;
use godwit_router::{decide, CommandInfo, Id, Inputs, InterlayRoute, Mirror, ReplyPolicy, Side};
use tokio::sync::mpsc;

use crate::ProxyShared;

struct Source {
    pool: Arc<Pool>,
    /// `None` once a dedicated source is retired (RESET); its replies still drain.
    conn: Option<ConnHandle>,
    dedicated: bool,
    /// A shared source speaking RESP3.
    resp3: bool,
    /// Given up (RESET): its connection is dropped once `outstanding` reaches 0.
    retiring: bool,
    tx: ReplyTx,
    rx: mpsc::UnboundedReceiver<Reply>,
    outstanding: u32,
    /// Replies received but not yet consumed (they belong to a later entry, or are paired).
    stash: BytesMut,
    stash_n: u32,
}

struct RouteCache {
    version: u64,
    route: InterlayRoute,
    old: Arc<Pool>,
    new: Option<Arc<Pool>>,
    old_src: Option<u8>,
    new_src: Option<u8>,
}

/// Where one command goes, resolved to this client's sources.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Routed {
    /// The authoritative source.
    pub primary: u8,
    /// The other side's source, for dual writes and shadow reads.
    pub secondary: Option<u8>,
    /// Why the secondary receives it.
    pub mirror: Mirror,
    /// How the client's reply is chosen.
    pub reply: ReplyPolicy,
    /// The migration's copy is running: written keys must be reported.
    pub copying: bool,
    /// The client is pinned to one side although the migration would dual-write this command:
    /// its keys must be repaired from that side (`Some(true)`: new).
    pub repair: Option<bool>,
}

pub(crate) struct Sources {
    client_id: u64,
    interlay: Id,
    list: Vec<Source>,
    pinned: Option<usize>,
    cache: Option<RouteCache>,
    /// The client speaks RESP3: shared sources are the pools' RESP3 connections.
    resp3: bool,
}

impl Sources {
    pub(crate) fn new(client_id: u64, interlay: Id) -> Self {
        Self {
            client_id,
            interlay,
            list: Vec::with_capacity(2),
            pinned: None,
            cache: None,
            resp3: false,
        }
    }

    /// Switches the client's protocol: later commands use the shared connections speaking it.
    pub(crate) fn set_resp3(&mut self, resp3: bool) {
        if self.resp3 != resp3 {
            self.resp3 = resp3;
            if let Some(c) = self.cache.as_mut() {
                c.old_src = None;
                c.new_src = None;
            }
        }
    }

    /// True if `idx` is the client's dedicated source.
    pub(crate) fn is_pinned_to(&self, idx: usize) -> bool {
        self.pinned == Some(idx)
    }

    /// True if the client has its own connection.
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }

    /// Where a command goes: the decided side's source and, for dual writes and shadow reads,
    /// the other side's (the dedicated source alone if the client has one).
    #[inline]
    pub(crate) fn routed(
        &mut self,
        shared: &ProxyShared,
        info: &CommandInfo,
        inputs: &Inputs<'_>,
    ) -> Result<Routed, String> {
        self.refresh(shared)?;
        let Some(c) = self.cache.as_ref() else {
            return Err("ERR godwit: no route".into());
        };
        let copying = c.route.migration.as_ref().is_some_and(|m| m.copying);
        if let Some(p) = self.pinned {
            let repair = self.pinned_repair(info, inputs);
            return Ok(Routed {
                primary: p as u8,
                secondary: None,
                mirror: Mirror::None,
                reply: ReplyPolicy::Serve,
                copying,
                repair,
            });
        }
        let d = decide(&c.route, info, inputs);
        let has_new = c.new.is_some();
        let primary = self.side_src(d.serve)?;
        let secondary = match d.mirror {
            Mirror::None => None,
            _ if !has_new => None,
            _ => Some(self.side_src(d.serve.other())?),
        };
        Ok(Routed {
            primary,
            secondary,
            mirror: d.mirror,
            reply: d.reply,
            copying,
            repair: None,
        })
    }

    /// For a pinned client: whether the migration would dual-write `info` (then the write,
    /// sent to the pinned side only, must be repaired from it), and whether that side is new.
    /// Call after the route is fresh (`routed`, `serving_pool`).
    pub(crate) fn pinned_repair(&self, info: &CommandInfo, inputs: &Inputs<'_>) -> Option<bool> {
        let p = self.pinned?;
        let c = self.cache.as_ref()?;
        let new = c.new.as_ref()?;
        (decide(&c.route, info, inputs).mirror == Mirror::Write)
            .then(|| Arc::ptr_eq(&self.list[p].pool, new))
    }

    /// The cached route's migration is copying data (written keys must be reported).
    pub(crate) fn copying(&self) -> bool {
        self.cache
            .as_ref()
            .and_then(|c| c.route.migration.as_ref())
            .is_some_and(|m| m.copying)
    }

    /// The cached route's copy reads the new side (a rollback's copy back).
    pub(crate) fn copy_from_new(&self) -> bool {
        self.cache
            .as_ref()
            .and_then(|c| c.route.migration.as_ref())
            .is_some_and(|m| m.copy_from_new)
    }

    /// Replies waiting in source `idx`'s stash.
    #[inline]
    pub(crate) fn stash_n(&self, idx: usize) -> u32 {
        self.list[idx].stash_n
    }

    /// Keeps `count` replies of source `idx` for later.
    pub(crate) fn stash_push(&mut self, idx: usize, data: &[u8], count: u32) {
        let s = &mut self.list[idx];
        s.stash.extend_from_slice(data);
        s.stash_n += count;
    }

    /// Takes the first `k` stashed replies of source `idx` (k <= stash_n).
    pub(crate) fn stash_take(&mut self, idx: usize, k: u32) -> Bytes {
        let s = &mut self.list[idx];
        if k >= s.stash_n {
            s.stash_n = 0;
            return s.stash.split().freeze();
        }
        let mut len = 0;
        for _ in 0..k {
            match ReplyScanner::new().next(&s.stash[len..]) {
                Ok(Some(n)) => len += n,
                _ => break, // cannot happen: the stash holds whole replies only
            }
        }
        s.stash_n -= k;
        s.stash.split_to(len).freeze()
    }

    /// The migration holding this interlay now, if any (from the cached route).
    pub(crate) fn migration_id(&self) -> Option<&Id> {
        self.cache.as_ref()?.route.migration.as_ref().map(|m| &m.id)
    }

    /// Whether source `src` is the migration's new side (guards count its failures).
    pub(crate) fn is_new(&self, src: u8) -> bool {
        self.cache.as_ref().is_some_and(|c| c.new_src == Some(src))
    }

    /// The shared source of `side`, created on first use and cached with the route.
    #[inline]
    fn side_src(&mut self, side: Side) -> Result<u8, String> {
        let Some(c) = self.cache.as_mut() else {
            return Err("ERR godwit: no route".into());
        };
        let (slot, pool) = match (side, &c.new) {
            (Side::New, Some(new)) => (&mut c.new_src, new.clone()),
            _ => (&mut c.old_src, c.old.clone()),
        };
        if let Some(i) = *slot {
            return Ok(i);
        }
        let i = match self
            .list
            .iter()
            .position(|s| !s.dedicated && s.resp3 == self.resp3 && Arc::ptr_eq(&s.pool, &pool))
        {
            Some(i) => i,
            None => {
                let conn = pool.shared_for(self.client_id, self.resp3).clone();
                self.add(pool, conn, false)
            }
        };
        let i = u8::try_from(i).map_err(|_| "ERR godwit: too many backend sources".to_string())?;
        if let Some(c) = self.cache.as_mut() {
            match side {
                Side::New if c.new.is_some() => c.new_src = Some(i),
                _ => c.old_src = Some(i),
            }
        }
        Ok(i)
    }

    /// The client's dedicated source, opened with `init` (commands restoring the client's
    /// state) if it has none yet.
    pub(crate) fn dedicated(
        &mut self,
        shared: &ProxyShared,
        init: impl FnOnce(&Pool) -> Vec<Vec<Bytes>>,
    ) -> Result<usize, String> {
        if let Some(p) = self.pinned {
            return Ok(p);
        }
        let pool = self.serving_pool(shared)?;
        let conn = pool.dedicated(&init(&pool));
        // reuse a retired dedicated slot that has nothing left to deliver
        let idx = match self
            .list
            .iter()
            .position(|s| s.dedicated && s.conn.is_none() && s.outstanding == 0)
        {
            Some(i) => {
                self.list[i].pool = pool;
                self.list[i].conn = Some(conn);
                self.list[i].retiring = false;
                i
            }
            None => self.add(pool, conn, true),
        };
        self.pinned = Some(idx);
        Ok(idx)
    }

    /// Gives up the dedicated connection (RESET); it closes once its replies are delivered.
    pub(crate) fn unpin(&mut self) {
        if let Some(p) = self.pinned.take() {
            let s = &mut self.list[p];
            s.retiring = true;
            if s.outstanding == 0 {
                s.conn = None;
            }
        }
    }

    /// The pool serving this interlay's connection-level traffic now.
    pub(crate) fn serving_pool(&mut self, shared: &ProxyShared) -> Result<Arc<Pool>, String> {
        self.decide_pool(
            shared,
            &godwit_router::commands::UNKNOWN,
            &Inputs::default(),
        )
    }

    fn decide_pool(
        &mut self,
        shared: &ProxyShared,
        info: &CommandInfo,
        inputs: &Inputs<'_>,
    ) -> Result<Arc<Pool>, String> {
        self.refresh(shared)?;
        let Some(c) = self.cache.as_ref() else {
            return Err("ERR godwit: no route".into());
        };
        let d = decide(&c.route, info, inputs);
        Ok(match (d.serve, &c.new) {
            (Side::New, Some(new)) => new.clone(),
            _ => c.old.clone(),
        })
    }

    /// Re-reads the route if the table changed since it was cached (one `load()`).
    #[inline]
    fn refresh(&mut self, shared: &ProxyShared) -> Result<(), String> {
        let table = shared.table.load();
        if self.cache.as_ref().map(|c| c.version) == Some(table.routing.version) {
            return Ok(());
        }
        let route = table
            .routing
            .interlay(&self.interlay)
            .ok_or_else(|| format!("ERR godwit: interlay '{}' has no route", self.interlay))?;
        let pool = |id: &Id| {
            table
                .pools
                .get(id)
                .cloned()
                .ok_or_else(|| format!("ERR godwit: endpoint '{id}' is not configured"))
        };
        let old = pool(&route.endpoint)?;
        let new = match &route.migration {
            Some(m) => Some(pool(&m.target)?),
            None => None,
        };
        self.cache = Some(RouteCache {
            version: table.routing.version,
            route: route.clone(),
            old,
            new,
            old_src: None,
            new_src: None,
        });
        Ok(())
    }

    fn add(&mut self, pool: Arc<Pool>, conn: ConnHandle, dedicated: bool) -> usize {
        let (tx, rx) = mpsc::unbounded_channel();
        self.list.push(Source {
            pool,
            conn: Some(conn),
            dedicated,
            resp3: self.resp3,
            retiring: false,
            tx,
            rx,
            outstanding: 0,
            stash: BytesMut::new(),
            stash_n: 0,
        });
        self.list.len() - 1
    }

    /// Sends `count` requests to source `idx`. On failure (the connection task ended) returns the
    /// count so the caller can answer with errors.
    #[inline]
    pub(crate) fn send(&mut self, idx: usize, data: Bytes, count: u32) -> Result<(), u32> {
        let s = &mut self.list[idx];
        let Some(conn) = &s.conn else {
            return Err(count);
        };
        match conn.send(Request {
            data,
            count,
            reply: s.tx.clone(),
        }) {
            Ok(()) => {
                s.outstanding += count;
                Ok(())
            }
            Err(_) => Err(count),
        }
    }

    /// Records that `count` replies of source `idx` were delivered.
    #[inline]
    pub(crate) fn settled(&mut self, idx: usize, count: u32) {
        let s = &mut self.list[idx];
        s.outstanding -= count;
        if s.retiring && s.outstanding == 0 {
            s.conn = None;
        }
    }

    /// Waits for the next reply of source `idx` (the head of the client's queue).
    pub(crate) async fn recv(&mut self, idx: Option<usize>) -> Option<Reply> {
        match idx {
            Some(i) => self.list[i].rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// A reply of source `idx` that has already arrived, if any.
    #[inline]
    pub(crate) fn try_recv(&mut self, idx: usize) -> Option<Reply> {
        self.list[idx].rx.try_recv().ok()
    }
}
