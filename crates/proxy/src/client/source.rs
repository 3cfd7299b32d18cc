//! The backend connections one client uses ("sources"), and routing to them.
//!
//! A source is a backend connection plus this client's reply channel for it. Shared sources use
//! the endpoint pool's shared connection; at most one dedicated source is active (`pinned`).
//! The route is cached per table version, so a table swap reaches the client on its next command.

use std::sync::Arc;

use bytes::Bytes;
use godwit_backend::{ConnHandle, Pool, Reply, ReplyTx, Request};
use godwit_router::{decide, CommandInfo, Id, Inputs, InterlayRoute, Side};
use tokio::sync::mpsc;

use crate::ProxyShared;

struct Source {
    pool: Arc<Pool>,
    /// `None` once a dedicated source is retired (RESET); its replies still drain.
    conn: Option<ConnHandle>,
    dedicated: bool,
    /// Given up (RESET): its connection is dropped once `outstanding` reaches 0.
    retiring: bool,
    tx: ReplyTx,
    rx: mpsc::UnboundedReceiver<Reply>,
    outstanding: u32,
}

struct RouteCache {
    version: u64,
    route: InterlayRoute,
    old: Arc<Pool>,
    new: Option<Arc<Pool>>,
}

pub(crate) struct Sources {
    client_id: u64,
    interlay: Id,
    list: Vec<Source>,
    pinned: Option<usize>,
    cache: Option<RouteCache>,
}

impl Sources {
    pub(crate) fn new(client_id: u64, interlay: Id) -> Self {
        Self {
            client_id,
            interlay,
            list: Vec::with_capacity(2),
            pinned: None,
            cache: None,
        }
    }

    /// True if the client has its own connection.
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }

    /// The source serving a command of class `info` (the dedicated one if the client has it).
    #[inline]
    pub(crate) fn routed(
        &mut self,
        shared: &ProxyShared,
        info: &CommandInfo,
        inputs: &Inputs<'_>,
    ) -> Result<usize, String> {
        if let Some(p) = self.pinned {
            return Ok(p);
        }
        let pool = self.decide_pool(shared, info, inputs)?;
        if let Some(i) = self
            .list
            .iter()
            .position(|s| !s.dedicated && Arc::ptr_eq(&s.pool, &pool))
        {
            return Ok(i);
        }
        let conn = pool.shared(self.client_id).clone();
        Ok(self.add(pool, conn, false))
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
        let table = shared.table.load();
        if self.cache.as_ref().map(|c| c.version) != Some(table.routing.version) {
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
            });
        }
        let Some(c) = self.cache.as_ref() else {
            return Err("ERR godwit: no route".into());
        };
        let d = decide(&c.route, info, inputs);
        Ok(match (d.serve, &c.new) {
            (Side::New, Some(new)) => new.clone(),
            _ => c.old.clone(),
        })
    }

    fn add(&mut self, pool: Arc<Pool>, conn: ConnHandle, dedicated: bool) -> usize {
        let (tx, rx) = mpsc::unbounded_channel();
        self.list.push(Source {
            pool,
            conn: Some(conn),
            dedicated,
            retiring: false,
            tx,
            rx,
            outstanding: 0,
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
