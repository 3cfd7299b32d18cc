//! Interlay operations: create (binds and starts the listener), list, get, patch, delete,
//! start, stop. Route changes are hot-swapped through the table; only a new bind address or
//! password restarts the listener.

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::body::{check_description, check_id, Body};
use crate::control::{build_table, org, org_mut, Control, Inner};
use crate::dataplane::InterlayListen;
use crate::model::{dp_key, resolve, Interlay, OrgState, State};
use crate::ControlError;

/// Validates `host:port`; ports 1–1023 are refused, 0 picks a free port.
pub fn check_listen(listen: &str) -> Result<u16, ControlError> {
    let bad = || {
        ControlError::bad(format!(
            "invalid listen address '{listen}' (expected host:port)"
        ))
    };
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    check_port(port)?;
    Ok(port)
}

fn check_port(port: u16) -> Result<(), ControlError> {
    if port != 0 && port < 1024 {
        return Err(ControlError::bad(format!(
            "Port {port} is privileged and cannot be used for an interlay"
        )));
    }
    Ok(())
}

fn port_of(listen: &str) -> u16 {
    listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0)
}

/// The public view of an interlay (no password).
pub(crate) fn interlay_view(org_id: &str, os: &OrgState, il: &Interlay, inner: &Inner) -> Value {
    let key = dp_key(org_id, &il.id);
    let port = port_of(&il.listen);
    let migration = os
        .migrations
        .values()
        .find(|m| m.holds_interlay(&il.id))
        .map(|m| {
            let member = m.interlays.iter().find(|x| x.interlay == il.id);
            json!({
                "migration_id": m.id, "uuid": m.uuid, "status": m.status,
                "endpoint": member.map(|x| x.target.clone()),
                "state": member.map(|x| x.state),
                "rules": member.and_then(|x| x.rules.clone()),
            })
        });
    json!({
        "id": il.id, "uuid": il.uuid, "endpoint": il.endpoint, "port": port, "listen": il.listen,
        "listeners": [{"id": "default", "bind_port": port, "advertise_port": port}],
        "address": inner.listening.get(&key), "running": inner.listening.contains_key(&key),
        "description": il.description, "settings": il.settings, "auth_required": il.password.is_some(),
        "tls": false, "migration": migration, "from_config": il.from_config,
        "created_at": il.created_at, "updated_at": il.updated_at,
    })
}

/// Listen address, password and other settings read from a create/patch body.
pub(crate) struct ListenInput {
    pub(crate) listen: Option<String>,
    pub(crate) settings: Option<(Value, Option<String>)>,
}

pub(crate) fn read_listen(b: &mut Body, host: &str) -> Result<ListenInput, ControlError> {
    let mut port = b.opt_u64("port", 65535)?.map(|p| p as u16);
    if let Some(ls) = b.take("listeners") {
        let Value::Array(ls) = ls else {
            return Err(ControlError::bad("listeners must be an array"));
        };
        if ls.len() > 1 {
            return Err(ControlError::bad(
                "multiple listeners are not supported yet",
            ));
        }
        if let Some(l) = ls.first() {
            let bp = l
                .get("bind_port")
                .and_then(Value::as_u64)
                .filter(|p| *p <= 65535)
                .ok_or_else(|| ControlError::bad("listeners[0].bind_port must be a port number"))?
                as u16;
            if port.is_some_and(|p| p != bp) {
                return Err(ControlError::bad(
                    "port differs from the listener's bind_port",
                ));
            }
            port = Some(bp);
        }
    }
    let listen = match (b.opt_str("listen")?, port) {
        (Some(l), _) => {
            let lp = check_listen(&l)?;
            if port.is_some_and(|p| p != lp) {
                return Err(ControlError::bad("port differs from the listen address"));
            }
            Some(l)
        }
        (None, Some(p)) => {
            check_port(p)?;
            Some(format!("{host}:{p}"))
        }
        (None, None) => None,
    };
    match b.take("tls") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(ControlError::bad(
                "tls cannot be set to true, use an object instead",
            ))
        }
        Some(_) => return Err(ControlError::bad("TLS interlays are not supported yet")),
    }
    let settings = match b.take("settings") {
        None => None,
        Some(Value::Object(mut m)) => {
            let pw = match m.remove("password") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                Some(_) => {
                    return Err(ControlError::bad(
                        "settings.password must be a non-empty string",
                    ))
                }
            };
            match m.get("max_clients") {
                None | Some(Value::Null) => {}
                Some(v) if v.as_u64().is_some_and(|n| n > 0) => {}
                Some(_) => {
                    return Err(ControlError::bad(
                        "settings.max_clients must be a positive integer",
                    ))
                }
            }
            Some((Value::Object(m), pw))
        }
        Some(_) => return Err(ControlError::bad("settings must be an object")),
    };
    if b.take("endpoint_config").is_some() {
        return Err(ControlError::bad(
            "endpoint_config is not supported; create the endpoint first",
        ));
    }
    b.ignore(&[
        "advertise_host",
        "uuid",
        "running",
        "created_at",
        "updated_at",
    ]);
    Ok(ListenInput { listen, settings })
}

/// 409 if another interlay (any organization) binds the same non-zero port.
pub(crate) fn check_port_free(
    state: &State,
    org_id: &str,
    id: &str,
    listen: &str,
) -> Result<(), ControlError> {
    let port = port_of(listen);
    if port == 0 {
        return Ok(());
    }
    for (o, os) in &state.orgs {
        for il in os.interlays.values() {
            if (o != org_id || il.id != id) && port_of(&il.listen) == port {
                let who = if o == org_id {
                    format!("interlay '{}'", il.id)
                } else {
                    "another interlay".into()
                };
                return Err(ControlError::Conflict(format!(
                    "Port {port} is already in use by {who}"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn resolve_endpoint(os: &OrgState, key: &str) -> Result<String, ControlError> {
    resolve(&os.endpoints, key).ok_or_else(|| ControlError::not_found("Endpoint", key))
}

impl Control {
    /// Publishes the table of a state that is not yet saved (a listener is about to start).
    pub(crate) fn publish_state(&self, inner: &mut Inner, state: &State) {
        inner.table_version += 1;
        self.dataplane
            .publish(build_table(state, inner.table_version, &self.instance()));
    }

    /// Starts a listener for a staged state; on failure republishes the current state.
    pub(crate) async fn start_listener(
        &self,
        inner: &mut Inner,
        staged: &State,
        org_id: &str,
        il: &Interlay,
    ) -> Result<(), ControlError> {
        self.publish_state(inner, staged);
        let key = dp_key(org_id, &il.id);
        let spec = InterlayListen::of(key.clone(), il);
        match self.dataplane.start_interlay(self.local_listen(spec)).await {
            Ok(addr) => {
                inner.listening.insert(key, addr);
                Ok(())
            }
            Err(e) => {
                self.publish(inner);
                Err(ControlError::Conflict(format!(
                    "could not start interlay '{}': {e}",
                    il.id
                )))
            }
        }
    }

    /// `POST /interlays`: creates and starts; re-posting an existing id returns it (started).
    /// The bool is true when it was created.
    pub async fn create_interlay(
        &self,
        org_id: &str,
        body: &Value,
    ) -> Result<(Value, bool), ControlError> {
        let mut b = Body::new(body, "interlay")?;
        let id = b.req_str("id")?;
        check_id("interlay", &id)?;
        let endpoint = b.req_str("endpoint")?;
        let description = b.opt_str("description")?;
        check_description(&description)?;
        let input = read_listen(&mut b, &self.cfg.interlay_host)?;
        b.finish()?;
        let mut inner = self.lock().await;
        if org(&inner.state, org_id).interlays.contains_key(&id) {
            if !inner.listening.contains_key(&dp_key(org_id, &id)) {
                self.start_locked(&mut inner, org_id, &id).await?;
            }
            let os = org(&inner.state, org_id);
            return Ok((
                interlay_view(org_id, &os, &os.interlays[&id], &inner),
                false,
            ));
        }
        let listen = input
            .listen
            .ok_or_else(|| ControlError::bad("either `port` or `listeners` must be provided"))?;
        let endpoint = resolve_endpoint(&org(&inner.state, org_id), &endpoint)?;
        check_port_free(&inner.state, org_id, &id, &listen)?;
        let (settings, password) = input.settings.unwrap_or((json!({}), None));
        let now = Utc::now();
        let il = Interlay {
            id: id.clone(),
            uuid: Uuid::new_v4(),
            endpoint,
            listen,
            password,
            description,
            settings,
            running: true,
            from_config: false,
            created_at: now,
            updated_at: now,
        };
        let mut next = inner.state.clone();
        org_mut(&mut next, org_id)
            .interlays
            .insert(id.clone(), il.clone());
        self.start_listener(&mut inner, &next, org_id, &il).await?;
        self.commit(&mut inner, next).await?;
        let os = org(&inner.state, org_id);
        Ok((interlay_view(org_id, &os, &il, &inner), true))
    }

    /// `GET /interlays`.
    pub async fn list_interlays(&self, org_id: &str) -> Vec<Value> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        os.interlays
            .values()
            .map(|il| interlay_view(org_id, &os, il, &inner))
            .collect()
    }

    /// `GET /interlays/{i}` (id or uuid).
    pub async fn get_interlay(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        let id =
            resolve(&os.interlays, key).ok_or_else(|| ControlError::not_found("Interlay", key))?;
        Ok(interlay_view(org_id, &os, &os.interlays[&id], &inner))
    }
}
