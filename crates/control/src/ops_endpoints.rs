//! Endpoint operations: create (URL or Eden's `write_conn` form), list, get, patch, delete,
//! test. URLs are validated here and their passwords never leave in a view.

use chrono::Utc;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::body::{check_description, check_id, Body};
use crate::control::{org, org_mut, Control};
use crate::endpoint_url::{redact, url_from_conn};
use crate::model::{dp_key, resolve, Endpoint};
use crate::ControlError;

/// The public view of an endpoint (no secrets).
pub fn endpoint_view(ep: &Endpoint) -> Value {
    json!({
        "id": ep.id, "uuid": ep.uuid, "kind": "redis", "url": redact(&ep.url),
        "cluster": ep.cluster, "pool": {"max_connections": ep.max_connections},
        "description": ep.description, "from_config": ep.from_config,
        "created_at": ep.created_at, "updated_at": ep.updated_at,
    })
}

/// Fields an endpoint body may set (create and patch).
struct EndpointInput {
    url: Option<String>,
    cluster: Option<bool>,
    max_connections: Option<u32>,
    description: Option<String>,
}

fn read_input(b: &mut Body) -> Result<EndpointInput, ControlError> {
    if let Some(kind) = b.opt_str("kind")? {
        if !kind.eq_ignore_ascii_case("redis") {
            return Err(ControlError::bad(format!(
                "unsupported endpoint kind '{kind}'"
            )));
        }
    }
    let mut url = b.opt_str("url")?;
    if let Some(u) = b.opt_str("uri")? {
        url.get_or_insert(u);
    }
    let mut conns: Vec<Value> = Vec::new();
    if let Some(cfg) = b.take("config") {
        let Value::Object(mut cfg) = cfg else {
            return Err(ControlError::bad("config must be an object"));
        };
        for k in ["write_conn", "read_conn", "admin_conn", "system_conn"] {
            if let Some(c) = cfg.remove(k).filter(|v| !v.is_null()) {
                conns.push(c);
            }
        }
        if let Some(url_v) = cfg.remove("url").and_then(|v| v.as_str().map(String::from)) {
            url.get_or_insert(url_v);
        }
        cfg.retain(|k, _| !matches!(k.as_str(), "connection_pool" | "multi_key_execution"));
        if let Some(k) = cfg.keys().next() {
            return Err(ControlError::bad(format!(
                "unknown field `{k}` in endpoint config"
            )));
        }
    }
    for k in ["write_conn", "read_conn"] {
        if let Some(c) = b.take(k) {
            conns.push(c);
        }
    }
    if url.is_none() {
        if let Some(c) = conns.first() {
            url = Some(url_from_conn(c)?);
        }
    }
    if let Some(u) = &url {
        crate::endpoint_url::check_url(u)?;
    }
    let cluster = b.opt_bool("cluster")?;
    let max_connections =
        match b.take("pool") {
            None => None,
            Some(Value::Object(mut p)) => {
                let m = p.remove("max_connections");
                if let Some(k) = p.keys().next() {
                    return Err(ControlError::bad(format!("unknown field `{k}` in pool")));
                }
                match m {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().filter(|n| (1..=1024).contains(n)).ok_or_else(
                        || ControlError::bad("max_connections must be between 1 and 1024"),
                    )? as u32),
                }
            }
            Some(_) => return Err(ControlError::bad("pool must be an object")),
        };
    let description = b.opt_str("description")?;
    check_description(&description)?;
    b.ignore(&["routing", "uuid", "created_at", "updated_at", "from_config"]);
    Ok(EndpointInput {
        url,
        cluster,
        max_connections,
        description,
    })
}

impl Control {
    /// `POST /endpoints`.
    pub async fn create_endpoint(&self, org_id: &str, body: &Value) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "endpoint")?;
        let id = match b.opt_str("id")? {
            Some(id) => id,
            None => b.req_str("endpoint")?,
        };
        b.ignore(&["endpoint"]);
        check_id("endpoint", &id)?;
        let input = read_input(&mut b)?;
        b.finish()?;
        let url = input
            .url
            .ok_or_else(|| ControlError::bad("Connection URL is required"))?;
        let mut inner = self.lock().await;
        if org(&inner.state, org_id).endpoints.contains_key(&id) {
            return Err(ControlError::Conflict(format!(
                "Endpoint with id '{id}' already exists"
            )));
        }
        self.dataplane
            .upsert_endpoint(&dp_key(org_id, &id), &url, input.cluster.unwrap_or(false))
            .map_err(|e| ControlError::bad(format!("invalid endpoint url: {e}")))?;
        let now = Utc::now();
        let ep = Endpoint {
            id: id.clone(),
            uuid: Uuid::new_v4(),
            url,
            cluster: input.cluster.unwrap_or(false),
            max_connections: input.max_connections.unwrap_or(32),
            description: input.description,
            from_config: false,
            created_at: now,
            updated_at: now,
        };
        let view = endpoint_view(&ep);
        let mut next = inner.state.clone();
        org_mut(&mut next, org_id).endpoints.insert(id, ep);
        self.commit(&mut inner, next).await?;
        Ok(view)
    }

    /// `GET /endpoints`.
    pub async fn list_endpoints(&self, org_id: &str) -> Vec<Value> {
        let inner = self.lock().await;
        org(&inner.state, org_id)
            .endpoints
            .values()
            .map(endpoint_view)
            .collect()
    }

    /// `GET /endpoints/{ep}` (id or uuid).
    pub async fn get_endpoint(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        let id =
            resolve(&os.endpoints, key).ok_or_else(|| ControlError::not_found("Endpoint", key))?;
        Ok(endpoint_view(&os.endpoints[&id]))
    }

    /// `PATCH /endpoints/{ep}`: url, cluster, pool, description.
    pub async fn patch_endpoint(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
    ) -> Result<Value, ControlError> {
        let mut b = Body::new(body, "endpoint")?;
        b.ignore(&["id", "endpoint"]);
        let input = read_input(&mut b)?;
        b.finish()?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id =
            resolve(&os.endpoints, key).ok_or_else(|| ControlError::not_found("Endpoint", key))?;
        let Some(ep) = os.endpoints.get_mut(&id) else {
            return Err(ControlError::not_found("Endpoint", key));
        };
        if input.url.is_some() || input.cluster.is_some() {
            let url = input.url.unwrap_or_else(|| ep.url.clone());
            let cluster = input.cluster.unwrap_or(ep.cluster);
            self.dataplane
                .upsert_endpoint(&dp_key(org_id, &id), &url, cluster)
                .map_err(|e| ControlError::bad(format!("invalid endpoint url: {e}")))?;
            ep.url = url;
            ep.cluster = cluster;
        }
        if let Some(m) = input.max_connections {
            ep.max_connections = m;
        }
        if input.description.is_some() {
            ep.description = input.description;
        }
        ep.updated_at = Utc::now();
        let view = endpoint_view(ep);
        self.commit(&mut inner, next).await?;
        Ok(view)
    }

    /// `DELETE /endpoints/{ep}`: refused while an interlay or an active migration names it.
    pub async fn delete_endpoint(&self, org_id: &str, key: &str) -> Result<(), ControlError> {
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let id =
            resolve(&os.endpoints, key).ok_or_else(|| ControlError::not_found("Endpoint", key))?;
        if let Some(il) = os.interlays.values().find(|i| i.endpoint == id) {
            return Err(ControlError::Conflict(format!(
                "Endpoint '{id}' is in use by interlay '{}'",
                il.id
            )));
        }
        if let Some(m) = os.migrations.values().find(|m| {
            m.status.is_active() && m.interlays.iter().any(|x| x.target == id || x.source == id)
        }) {
            return Err(ControlError::Conflict(format!(
                "Endpoint '{id}' is in use by migration '{}'",
                m.id
            )));
        }
        if let Some(t) = os.templates.values().find(|t| t.endpoint == id) {
            return Err(ControlError::Conflict(format!(
                "Endpoint '{id}' is in use by template '{}'",
                t.id
            )));
        }
        os.endpoints.remove(&id);
        self.commit(&mut inner, next).await?;
        self.dataplane.remove_endpoint(&dp_key(org_id, &id));
        Ok(())
    }

    /// `POST /endpoints/{ep}/test`: PING and version through the data plane.
    pub async fn test_endpoint(&self, org_id: &str, key: &str) -> Result<Value, ControlError> {
        let url = {
            let inner = self.lock().await;
            let os = org(&inner.state, org_id);
            let id = resolve(&os.endpoints, key)
                .ok_or_else(|| ControlError::not_found("Endpoint", key))?;
            os.endpoints[&id].url.clone()
        };
        let mut out = Map::new();
        match self.probe(&url).await {
            Ok(p) => {
                out.insert("connected".into(), json!(true));
                out.insert("latency_ms".into(), json!(p.ping_us as f64 / 1000.0));
                out.insert("version".into(), json!(p.version));
            }
            Err(e) => {
                out.insert("connected".into(), json!(false));
                out.insert("error".into(), json!(e));
            }
        }
        Ok(Value::Object(out))
    }

    /// Probes a URL with a 5 s budget.
    pub(crate) async fn probe(&self, url: &str) -> Result<crate::EndpointProbe, String> {
        match tokio::time::timeout(std::time::Duration::from_secs(5), self.dataplane.probe(url))
            .await
        {
            Ok(r) => r,
            Err(_) => Err("timed out after 5s".into()),
        }
    }
}
