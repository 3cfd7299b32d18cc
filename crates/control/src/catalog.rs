//! Templates and APIs: validated storage (create, list, get, delete). Running them
//! (`POST /templates/{t}`, `POST /apis/{a}`) is `api_run`; definitions are `template`.

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::body::{check_description, check_id, Body};
use crate::control::{org, org_mut, Control};
use crate::members::API_ACTIVE;
use crate::model::{resolve, Api, Template};
use crate::ControlError;

fn template_view(t: &Template) -> Value {
    let mut v = t.body.clone();
    v["id"] = json!(t.id);
    v["uuid"] = json!(t.uuid);
    v["endpoint"] = json!(t.endpoint);
    v["created_at"] = json!(t.created_at);
    v["updated_at"] = json!(t.updated_at);
    v
}

fn api_view(a: &Api) -> Value {
    let mut v = a.body.clone();
    v["id"] = json!(a.id);
    v["uuid"] = json!(a.uuid);
    v["created_at"] = json!(a.created_at);
    v["updated_at"] = json!(a.updated_at);
    v
}

impl Control {
    /// `POST /templates`: `{id, endpoint, kind?, command?, args?, fields?, description?}`.
    pub async fn create_template(&self, org_id: &str, body: &Value) -> Result<(), ControlError> {
        let mut b = Body::new(body, "template")?;
        let id = b.req_str("id")?;
        check_id("template", &id)?;
        let ep = b.req_str("endpoint")?;
        if let Some(k) = b.opt_str("kind")? {
            if !["read", "write", "transaction"].contains(&k.to_ascii_lowercase().as_str()) {
                return Err(ControlError::bad("kind must be read, write or transaction"));
            }
        }
        if b.has("command") {
            b.req_str("command")?;
        }
        check_description(&b.opt_str("description")?)?;
        crate::template::TemplateDef::parse(body)?;
        let mut inner = self.lock().await;
        let os = org(&inner.state, org_id);
        if os.templates.contains_key(&id) {
            return Err(ControlError::Conflict(format!(
                "Template with id '{id}' already exists"
            )));
        }
        let ep =
            resolve(&os.endpoints, &ep).ok_or_else(|| ControlError::not_found("Endpoint", &ep))?;
        let now = Utc::now();
        let mut stored = body.clone();
        stored["endpoint"] = json!(ep);
        let t = Template {
            id: id.clone(),
            uuid: Uuid::new_v4(),
            endpoint: ep,
            body: stored,
            created_at: now,
            updated_at: now,
        };
        let mut next = inner.state.clone();
        org_mut(&mut next, org_id).templates.insert(id, t);
        self.commit(&mut inner, next).await
    }

    /// `GET /templates`.
    pub async fn list_templates(&self, org_id: &str) -> Vec<Value> {
        let inner = self.lock().await;
        org(&inner.state, org_id)
            .templates
            .values()
            .map(|t| json!({"id": t.id, "uuid": t.uuid}))
            .collect()
    }

    /// `GET /templates/{t}`.
    pub async fn get_template(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        let id =
            resolve(&os.templates, key).ok_or_else(|| ControlError::not_found("Template", key))?;
        Ok(template_view(&os.templates[&id]))
    }

    /// `DELETE /templates/{t}`.
    pub async fn delete_template(&self, org_id: &str, key: &str) -> Result<(), ControlError> {
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id =
            resolve(&os.templates, key).ok_or_else(|| ControlError::not_found("Template", key))?;
        os.templates.remove(&id);
        self.commit(&mut inner, next).await
    }

    /// `POST /apis`: `{id, description?, fields?, bindings?:[{template|template_id, fields}]}`.
    pub async fn create_api(&self, org_id: &str, body: &Value) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "api")?;
        let id = b.req_str("id")?;
        check_id("api", &id)?;
        check_description(&b.opt_str("description")?)?;
        let bindings = match b.take("bindings") {
            None => vec![],
            Some(Value::Array(a)) => a,
            Some(_) => return Err(ControlError::bad("bindings must be an array")),
        };
        let mut inner = self.lock().await;
        let os = org(&inner.state, org_id);
        if os.apis.contains_key(&id) {
            return Err(ControlError::Conflict(format!(
                "API with id '{id}' already exists"
            )));
        }
        for bd in &bindings {
            let t = bd
                .get("template")
                .or_else(|| bd.get("template_id"))
                .and_then(Value::as_str)
                .ok_or_else(|| ControlError::bad("each binding needs a template"))?;
            if resolve(&os.templates, t).is_none() {
                return Err(ControlError::bad(format!("Template '{t}' not found")));
            }
        }
        let now = Utc::now();
        let a = Api {
            id: id.clone(),
            uuid: Uuid::new_v4(),
            body: body.clone(),
            created_at: now,
            updated_at: now,
        };
        let out = json!({"id": a.id, "uuid": a.uuid});
        let mut next = inner.state.clone();
        org_mut(&mut next, org_id).apis.insert(id, a);
        self.commit(&mut inner, next).await?;
        Ok(out)
    }

    /// `GET /apis`.
    pub async fn list_apis(&self, org_id: &str) -> Vec<Value> {
        let inner = self.lock().await;
        org(&inner.state, org_id)
            .apis
            .values()
            .map(api_view)
            .collect()
    }

    /// `GET /apis/{a}`, with `migration` naming the active migration holding it.
    pub async fn get_api(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        let id = resolve(&os.apis, key).ok_or_else(|| ControlError::not_found("API", key))?;
        let mut v = api_view(&os.apis[&id]);
        v["migration"] = os
            .migrations
            .values()
            .find(|m| m.holds_api(&id))
            .map(|m| json!({"migration_id": m.id, "uuid": m.uuid, "status": m.status}))
            .unwrap_or(Value::Null);
        Ok(v)
    }

    /// `DELETE /apis/{a}`: refused while an active migration holds it.
    pub async fn delete_api(&self, org_id: &str, key: &str) -> Result<(), ControlError> {
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id = resolve(&os.apis, key).ok_or_else(|| ControlError::not_found("API", key))?;
        if os.migrations.values().any(|m| m.holds_api(&id)) {
            return Err(ControlError::Migration(API_ACTIVE.into()));
        }
        os.apis.remove(&id);
        self.commit(&mut inner, next).await
    }
}
