//! Commands about the client connection itself: answered by the proxy (AUTH, CLIENT SETNAME,
//! QUIT, RESET...), rejected (MONITOR, SYNC...), or pinned to a dedicated connection (MULTI,
//! WATCH, SELECT of another db, HELLO 3, client tracking), or turned into a tunnel (pub/sub).

use bytes::{Bytes, BytesMut};
use godwit_backend::Pool;
use godwit_resp::{encode, Command};
use godwit_router::CommandInfo;

use super::{error_reply, Action, Client, ConnState};

/// Commands a client may send before authenticating.
pub(super) fn allowed_before_auth(info: &CommandInfo) -> bool {
    matches!(info.name, "auth" | "hello" | "quit" | "reset")
}

/// Commands that restore `state` on a new dedicated connection to `pool`.
pub(super) fn restore_state(state: &ConnState, pool: &Pool) -> Vec<Vec<Bytes>> {
    let mut init = Vec::new();
    if let Some(db) = state.db.filter(|db| *db != pool.spec().db) {
        init.push(vec![
            Bytes::from_static(b"SELECT"),
            Bytes::from(db.to_string()),
        ]);
    }
    if let Some(name) = &state.name {
        init.push(vec![
            Bytes::from_static(b"CLIENT"),
            Bytes::from_static(b"SETNAME"),
            name.clone(),
        ]);
    }
    if state.resp3 {
        init.push(vec![Bytes::from_static(b"HELLO"), Bytes::from_static(b"3")]);
    }
    init
}

fn ok() -> Action {
    Action::Local(Bytes::from_static(b"+OK\r\n"))
}

fn err(msg: &str) -> Action {
    Action::Local(error_reply(msg))
}

fn wrong_args(name: &str) -> Action {
    err(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

impl Client {
    pub(super) fn connection_command(
        &mut self,
        info: &'static CommandInfo,
        buf: &[u8],
        cmd: &Command,
    ) -> Action {
        let arg = |i: usize| cmd.arg(buf, i).unwrap_or_default();
        match info.name {
            "auth" => match cmd.argc {
                2 => self.auth(b"default", arg(1)),
                3 => self.auth(arg(1), arg(2)),
                _ => wrong_args("auth"),
            },
            "hello" => self.hello(buf, cmd),
            "select" => self.select(info, buf, cmd),
            "multi" => {
                // queued writes report their keys when EXEC completes (see `classify`)
                self.state.multi_keys = Some(Vec::new());
                self.pin_cmd(None)
            }
            "watch" => {
                self.state.watching = true;
                self.pin_cmd(None)
            }
            "unwatch" => {
                self.state.watching = false;
                self.route_cmd(info, None, None)
            }
            "exec" => {
                self.state.watching = false;
                let keys = self.state.multi_keys.take().unwrap_or_default();
                let action = self.route_cmd(info, None, None);
                // the transaction ran on one side: its keys go to the copy (while it runs) and,
                // when the migration dual-writes, to the repair queue of the other side
                let copying = self.sources.copying();
                let repair = godwit_router::lookup(b"set")
                    .and_then(|set| self.pinned_write_repair(set, keys.first().map(|k| &k[..])));
                match action {
                    Action::Forward(mut t) if !keys.is_empty() && (copying || repair.is_some()) => {
                        t.mark = copying;
                        t.repair = repair;
                        Action::Exec(t, keys)
                    }
                    other => other,
                }
            }
            "discard" => {
                self.state.multi_keys = None;
                self.state.watching = false;
                self.route_cmd(info, None, None)
            }
            "quit" => Action::LocalThenClose(Bytes::from_static(b"+OK\r\n")),
            "reset" => {
                self.sources.unpin();
                self.sources.set_resp3(false);
                self.state = ConnState {
                    authed: self.opts.password.is_none(),
                    ..Default::default()
                };
                Action::Local(Bytes::from_static(b"+RESET\r\n"))
            }
            "client" => self.client_command(info, buf, cmd),
            "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe"
            | "sunsubscribe" => Action::Tunnel,
            "monitor" | "sync" | "psync" | "replconf" => err(&format!(
                "ERR {} is not supported through the godwit proxy",
                info.name.to_ascii_uppercase()
            )),
            // exec, discard, unwatch, ping, echo, readonly, readwrite, asking: to the client's
            // connection (dedicated if it has one); Redis gives its own answer
            _ => self.route_cmd(info, None, None),
        }
    }

    fn auth(&mut self, user: &[u8], pass: &[u8]) -> Action {
        if let Some(expected) = &self.opts.password {
            let user_ok = user == b"default";
            if !(constant_time_eq(pass, expected.as_bytes()) && user_ok) {
                return err("WRONGPASS invalid username-password pair or user is disabled.");
            }
        }
        // without an interlay password every AUTH succeeds: the interlay is open anyway, and
        // clients configured with their old Redis password keep working
        self.state.authed = true;
        self.state.user = Some(Bytes::copy_from_slice(user));
        ok()
    }

    fn select(&mut self, info: &'static CommandInfo, buf: &[u8], cmd: &Command) -> Action {
        let db = cmd
            .arg(buf, 1)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|s| s.parse::<i64>().ok());
        let (Some(db), 2) = (db, cmd.argc) else {
            return self.route_cmd(info, None, None); // Redis reports the error
        };
        if self.sources.is_pinned() {
            self.state.db = Some(db);
            return self.pin_cmd(None);
        }
        match self.sources.serving_pool(&self.shared) {
            Ok(pool) if pool.spec().db == db => {
                self.state.db = None;
                ok()
            }
            // a cluster has database 0 only; Redis Cluster's own answer
            Ok(pool) if pool.is_cluster() => err("ERR SELECT is not allowed in cluster mode"),
            Ok(_) => {
                // open the dedicated connection first, then SELECT on it with Redis's own reply
                let action = self.pin_cmd(None);
                self.state.db = Some(db);
                action
            }
            Err(msg) => err(&msg),
        }
    }

    fn client_command(&mut self, info: &'static CommandInfo, buf: &[u8], cmd: &Command) -> Action {
        let sub = cmd.arg(buf, 1).unwrap_or_default().to_ascii_lowercase();
        match sub.as_slice() {
            b"setname" => {
                if cmd.argc != 3 {
                    return wrong_args("client|setname");
                }
                let name = cmd.arg(buf, 2).unwrap_or_default();
                if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                    return err("ERR Client names cannot contain spaces, newlines or special characters.");
                }
                self.state.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
                if self.sources.is_pinned() {
                    return self.pin_cmd(None);
                }
                ok()
            }
            b"getname" => {
                let mut out = BytesMut::new();
                match &self.state.name {
                    Some(n) => encode::bulk(&mut out, n),
                    None => encode::null(&mut out, self.state.resp3),
                }
                Action::Local(out.freeze())
            }
            // library name/version: cosmetic, and not worth a dedicated connection
            b"setinfo" if cmd.argc == 4 => ok(),
            b"kill" => err("ERR CLIENT KILL is not supported through the godwit proxy (connections are shared)"),
            b"reply" => err("ERR CLIENT REPLY is not supported through the godwit proxy"),
            b"list" | b"help" | b"pause" | b"unpause" | b"unblock" | b"" => self.route_cmd(info, None, None),
            // id, info, tracking, caching, no-evict, no-touch, getredir, trackinginfo:
            // about this very connection, so it gets its own
            _ => self.pin_cmd(None),
        }
    }

    fn hello(&mut self, buf: &[u8], cmd: &Command) -> Action {
        let mut proto = None;
        let mut i = 1;
        if cmd.argc > 1 {
            match std::str::from_utf8(cmd.arg(buf, 1).unwrap_or_default())
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(v @ (2 | 3)) => proto = Some(v),
                Some(_) => return err("NOPROTO sorry, this protocol version is not supported."),
                None => return err("ERR Protocol version is not an integer or out of range"),
            }
            i = 2;
        }
        let mut auth = None;
        let mut setname = None;
        while i < cmd.argc {
            let opt = cmd.arg(buf, i).unwrap_or_default().to_ascii_lowercase();
            let more = cmd.argc - i - 1;
            match opt.as_slice() {
                b"auth" if more >= 2 => {
                    auth = Some((
                        cmd.arg(buf, i + 1).unwrap_or_default(),
                        cmd.arg(buf, i + 2).unwrap_or_default(),
                    ));
                    i += 3;
                }
                b"setname" if more >= 1 => {
                    setname = Some(cmd.arg(buf, i + 1).unwrap_or_default());
                    i += 2;
                }
                _ => {
                    return err(&format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(&opt)
                    ));
                }
            }
        }
        if let Some((u, p)) = auth {
            if let Action::Local(reply) = self.auth(u, p) {
                if reply.first() == Some(&b'-') {
                    return Action::Local(reply);
                }
            }
        } else if !self.state.authed {
            return err(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        if let Some(n) = setname {
            self.state.name = (!n.is_empty()).then(|| Bytes::copy_from_slice(n));
        }
        // forward HELLO without AUTH; SETNAME only to a dedicated connection
        let mut args: Vec<&[u8]> = vec![b"HELLO"];
        let proto_s = proto.map(|p| p.to_string());
        if let Some(p) = &proto_s {
            args.push(p.as_bytes());
        }
        let pinned = self.sources.is_pinned();
        if pinned {
            if let Some(n) = setname {
                args.push(b"SETNAME");
                args.push(n);
            }
        }
        let mut out = BytesMut::new();
        encode::command(&mut out, &args);
        let bytes = out.freeze();
        if let Some(p) = proto {
            self.state.resp3 = p == 3;
        }
        if pinned {
            // the client's own connection switches protocol with this HELLO
            self.pin_cmd(Some(bytes))
        } else {
            // shared connections exist per protocol: from now on this client uses the ones
            // speaking its protocol, starting with this HELLO (whose reply is then in it)
            self.sources.set_resp3(self.state.resp3);
            self.route_cmd(&godwit_router::commands::UNKNOWN, None, Some(bytes))
        }
    }
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}
