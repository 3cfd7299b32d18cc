//! Interlay changes after creation: PATCH (hot route swap; restart only for a new bind
//! address or password), DELETE, start and stop.

use chrono::Utc;
use serde_json::Value;

use crate::body::{check_description, Body};
use crate::control::{org, org_mut, Control, Inner};
use crate::model::{dp_key, resolve};
use crate::ops_interlays::{check_port_free, interlay_view, read_listen, resolve_endpoint};
use crate::ControlError;

const ACTIVE: &str = "Interlay Schema already has an active migration";

impl Control {
    /// Starts a stored interlay's listener and marks it running. Caller holds the lock.
    pub(crate) async fn start_locked(
        &self,
        inner: &mut Inner,
        org_id: &str,
        id: &str,
    ) -> Result<(), ControlError> {
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let Some(il) = os.interlays.get_mut(id) else {
            return Err(ControlError::not_found("Interlay", id));
        };
        il.running = true;
        il.updated_at = Utc::now();
        let il = il.clone();
        self.start_listener(inner, &next, org_id, &il).await?;
        self.commit(inner, next).await
    }

    /// `POST /interlays/{i}/start`; 409 `Interlay already running`.
    pub async fn start_interlay(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        let mut inner = self.lock().await;
        let id = resolve(&org(&inner.state, org_id).interlays, key)
            .ok_or_else(|| ControlError::not_found("Interlay", key))?;
        if inner.listening.contains_key(&dp_key(org_id, &id)) {
            return Err(ControlError::Conflict("Interlay already running".into()));
        }
        self.start_locked(&mut inner, org_id, &id).await?;
        let os = org(&inner.state, org_id);
        Ok(interlay_view(org_id, &os, &os.interlays[&id], &inner))
    }

    /// `POST /interlays/{i}/stop`; 404 `Interlay not running`. Existing client connections
    /// finish their work; the interlay stays stopped across restarts.
    pub async fn stop_interlay(&self, org_id: &str, key: &str) -> Result<(), ControlError> {
        let mut inner = self.lock().await;
        let id = resolve(&org(&inner.state, org_id).interlays, key)
            .ok_or_else(|| ControlError::not_found("Interlay", key))?;
        let dk = dp_key(org_id, &id);
        if !inner.listening.contains_key(&dk) {
            return Err(ControlError::Missing("Interlay not running".into()));
        }
        let mut next = inner.state.clone();
        if let Some(il) = org_mut(&mut next, org_id).interlays.get_mut(&id) {
            il.running = false;
            il.updated_at = Utc::now();
        }
        self.commit(&mut inner, next).await?;
        self.dataplane.stop_interlay(&dk).await;
        inner.listening.remove(&dk);
        Ok(())
    }

    /// `PATCH /interlays/{i}`: description, endpoint, port/listen, settings.
    pub async fn patch_interlay(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "interlay")?;
        b.ignore(&["id"]);
        let endpoint = b.opt_str("endpoint")?;
        let description = b.opt_str("description")?;
        check_description(&description)?;
        let input = read_listen(&mut b, &self.cfg.interlay_host)?;
        b.finish()?;
        let mut inner = self.lock().await;
        let id = resolve(&org(&inner.state, org_id).interlays, key)
            .ok_or_else(|| ControlError::not_found("Interlay", key))?;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let held = os.migrations.values().any(|m| m.holds_interlay(&id));
        let endpoint = match endpoint {
            Some(e) => Some(resolve_endpoint(os, &e)?),
            None => None,
        };
        let Some(il) = os.interlays.get_mut(&id) else {
            return Err(ControlError::not_found("Interlay", key));
        };
        let before = il.clone();
        if let Some(e) = endpoint {
            if e != il.endpoint && held {
                return Err(ControlError::Migration(ACTIVE.into()));
            }
            il.endpoint = e;
        }
        if description.is_some() {
            il.description = description;
        }
        if let Some(l) = input.listen {
            il.listen = l;
        }
        if let Some((settings, pw)) = input.settings {
            il.settings = settings;
            il.password = pw;
        }
        il.updated_at = Utc::now();
        let il = il.clone();
        check_port_free(&next, org_id, &id, &il.listen)?;
        let dk = dp_key(org_id, &id);
        let restart = (il.listen != before.listen || il.password != before.password)
            && inner.listening.contains_key(&dk);
        if restart {
            self.dataplane.stop_interlay(&dk).await;
            inner.listening.remove(&dk);
            if let Err(e) = self.start_listener(&mut inner, &next, org_id, &il).await {
                // Put the old listener back; the patch is refused.
                let cur = inner.state.clone();
                self.start_listener(&mut inner, &cur, org_id, &before)
                    .await
                    .ok();
                return Err(e);
            }
        }
        self.commit(&mut inner, next).await?;
        let os = org(&inner.state, org_id);
        Ok(interlay_view(org_id, &os, &os.interlays[&id], &inner))
    }

    /// `DELETE /interlays/{i}`: refused while an active migration holds it.
    pub async fn delete_interlay(&self, org_id: &str, key: &str) -> Result<(), ControlError> {
        let mut inner = self.lock().await;
        let id = resolve(&org(&inner.state, org_id).interlays, key)
            .ok_or_else(|| ControlError::not_found("Interlay", key))?;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        if let Some(m) = os.migrations.values().find(|m| m.holds_interlay(&id)) {
            return Err(ControlError::Conflict(format!(
                "Interlay '{id}' is held by active migration '{}'",
                m.id
            )));
        }
        os.interlays.remove(&id);
        self.commit(&mut inner, next).await?;
        let dk = dp_key(org_id, &id);
        if inner.listening.remove(&dk).is_some() {
            self.dataplane.stop_interlay(&dk).await;
        }
        Ok(())
    }
}
