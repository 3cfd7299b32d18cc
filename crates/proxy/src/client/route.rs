//! Routing one request: the command table, authentication, connection-state commands, and the
//! migration's decision resolved to this client's sources.

use bytes::Bytes;
use godwit_resp::Command;
use godwit_router::{flags, lookup, Class, CommandInfo, Inputs, Mirror};

use super::{connection, error_reply, keys, Action, Client, PairKind, Target};

impl Client {
    /// Routes one multibulk request whose bytes are `buf` (offsets in `cmd` are relative to it).
    pub(super) fn classify(&mut self, buf: &[u8], cmd: &Command) -> Action {
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
        let key = if info.first_key > 0 {
            cmd.arg(buf, info.first_key as usize)
        } else {
            None
        };
        if info.has(flags::BLOCKING) {
            let mut action = self.pin_cmd(None);
            if info.class == Class::Write {
                let repair = self.pinned_write_repair(info, key);
                if let Action::Forward(t) = &mut action {
                    t.mark = self.sources.copying();
                    t.repair = repair;
                }
            }
            return action;
        }
        self.route_cmd(info, key, None)
    }

    /// Routes by the migration's decision; `bytes` replaces the request's own bytes.
    #[inline]
    pub(super) fn route_cmd(
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
                // (another database than the endpoint's is not copied, so not repaired either)
                let repair = r.repair.filter(|_| {
                    info.class == Class::Write
                        && self.state.multi_keys.is_none()
                        && self.state.db.is_none()
                });
                let target = Target {
                    src: r.primary,
                    also,
                    mark,
                    repair,
                };
                match bytes {
                    None => Action::Forward(target),
                    Some(b) => Action::Rewrite(target, b),
                }
            }
            Err(msg) => Action::Local(error_reply(&msg)),
        }
    }

    /// For a pinned client's write: `Some(side is new)` when the migration would dual-write it.
    pub(super) fn pinned_write_repair(
        &self,
        info: &CommandInfo,
        key: Option<&[u8]>,
    ) -> Option<bool> {
        if self.state.db.is_some() {
            return None; // another database than the endpoint's is not copied
        }
        let inputs = Inputs {
            conn_id: self.id,
            key,
            identity: self.state.user.as_deref().or(self.state.name.as_deref()),
            client_ip: self.peer,
            rand: self.rng,
        };
        self.sources.pinned_repair(info, &inputs)
    }

    /// Routes to the client's dedicated connection, opening it (with the client's state) if needed.
    pub(super) fn pin_cmd(&mut self, bytes: Option<Bytes>) -> Action {
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
