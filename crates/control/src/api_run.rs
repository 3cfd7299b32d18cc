//! Running templates and APIs over HTTP, and API migrations.
//!
//! `POST /templates/{t}` renders the template with the body's field values and runs the one
//! command on the template's endpoint through the data plane. `POST /apis/{a}` runs the API's
//! bindings in order (each binding maps API fields to template fields) and answers
//! `{template_id: result}`.
//!
//! While a migration holds the API (member active, status running/paused/partial_failure),
//! binding `i` of the migration is the new path of binding `i` of the API: each call asks
//! [`godwit_router::decide`] with a route compiled from the migration exactly as for an
//! interlay (template kind = command class; key = the rendered command's first key), then runs
//! the old template, the new one, or both (dual write, reply by policy; shadow read, compared).
//! Completion switches the API's bindings to the migration's; rollback restores them.

use std::collections::HashMap;

use godwit_router::{decide, Class, CommandInfo, Inputs, InterlayRoute, Mirror, ReplyPolicy, Side};
use serde_json::{json, Map, Value};

use crate::control::{org, Control};
use crate::model::{dp_key, resolve, Binding, MemberState, OrgState};
use crate::resp_json::{decode, Reply};
use crate::template::{rendered_view, Kind, TemplateDef};
use crate::ControlError;

/// What API calls under one migration did (reported by `GET /migrations/{m}/status`).
#[derive(Debug, Default, Clone)]
pub(crate) struct ApiTraffic {
    calls: u64,
    reads_old: u64,
    reads_new: u64,
    dual_writes: u64,
    dual_write_failures: u64,
    new_side_write_failures: u64,
    shadow_compared: u64,
    shadow_mismatches: u64,
    samples: Vec<Value>,
}

const MAX_SAMPLES: usize = 50;

/// One command ready to run.
#[derive(Debug, Clone)]
struct Call {
    template: String,
    endpoint: String,
    args: Vec<Vec<u8>>,
}

/// One binding of an API call: the old path, and the new one under a migration.
#[derive(Debug)]
struct Step {
    key: String,
    kind: Kind,
    old: Option<Call>,
    new: Option<Call>,
}

fn bindings_of(api_body: &Value) -> Vec<Binding> {
    api_body
        .get("bindings")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|b| {
                    let t = b
                        .get("template")
                        .or_else(|| b.get("template_id"))
                        .and_then(Value::as_str)?;
                    Some(Binding {
                        template: t.to_string(),
                        fields: b.get("fields").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn lookup_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, seg| match cur {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

/// The template's field values for one binding: mapped fields (`{template_field: "api.path"}`
/// or `[[template_field, api_field]]`), then same-named API fields.
fn map_fields(def: &TemplateDef, mapping: &Value, body: &Value) -> Value {
    let is_field = |n: &str| def.fields.iter().any(|f| f.name == n);
    let mut pairs: Vec<(String, String)> = Vec::new();
    match mapping {
        Value::Object(m) => {
            for (t, a) in m {
                if let Some(a) = a.as_str() {
                    pairs.push((t.clone(), a.to_string()));
                }
            }
        }
        Value::Array(items) => {
            for p in items {
                if let Some([a, b]) = p.as_array().map(Vec::as_slice) {
                    let (Some(a), Some(b)) = (a.as_str(), b.as_str()) else {
                        continue;
                    };
                    // HEAD's order is [template_field, api_field]; the docs' is the reverse
                    if !is_field(a) && is_field(b) {
                        pairs.push((b.to_string(), a.to_string()));
                    } else {
                        pairs.push((a.to_string(), b.to_string()));
                    }
                }
            }
        }
        _ => {}
    }
    let mut out = Map::new();
    for f in &def.fields {
        let mapped = pairs.iter().find(|(t, _)| *t == f.name).map(|(_, a)| a);
        let v = match mapped {
            Some(path) => lookup_path(body, path),
            None => body.get(&f.name),
        };
        if let Some(v) = v {
            out.insert(f.name.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn template_call(
    org_id: &str,
    os: &OrgState,
    key: &str,
    values: &Value,
    mapping: Option<&Value>,
) -> Result<(Call, Kind), ControlError> {
    let id = resolve(&os.templates, key).ok_or_else(|| ControlError::not_found("Template", key))?;
    let t = &os.templates[&id];
    let def = TemplateDef::parse(&t.body)
        .map_err(|e| ControlError::bad(format!("template '{id}' is not runnable: {e}")))?;
    let args = match mapping {
        Some(m) => def.render(&map_fields(&def, m, values)),
        None => def.render(values),
    }
    .map_err(|e| match mapping {
        Some(_) => ControlError::bad(format!("template '{id}': {e}")),
        None => e,
    })?;
    Ok((
        Call {
            template: id,
            endpoint: dp_key(org_id, &t.endpoint),
            args,
        },
        def.kind,
    ))
}

fn random_u64() -> u64 {
    uuid::Uuid::new_v4().as_u128() as u64
}

fn command_info(kind: Kind) -> CommandInfo {
    CommandInfo {
        name: "template",
        arity: 0,
        class: match kind {
            Kind::Read => Class::Read,
            Kind::Write => Class::Write,
        },
        flags: 0,
        first_key: 0,
        last_key: 0,
        step: 0,
    }
}

type Outcome = Result<Reply, ControlError>;

fn failed(o: &Outcome) -> bool {
    !matches!(o, Ok(Reply::Value(_)))
}

fn short(v: &Outcome) -> Value {
    let s = match v {
        Ok(Reply::Value(v)) => v.to_string(),
        Ok(Reply::Error(e)) => format!("error: {e}"),
        Err(e) => format!("unavailable: {e}"),
    };
    json!(s.chars().take(200).collect::<String>())
}

impl Control {
    async fn exec(&self, call: &Call) -> Outcome {
        match self
            .dataplane
            .execute(&call.endpoint, call.args.clone())
            .await
        {
            Ok(Some(raw)) => decode(&raw).map_err(|e| {
                ControlError::Backend(format!("invalid reply from '{}': {e}", call.endpoint))
            }),
            Ok(None) => Err(ControlError::Unavailable(
                "running templates needs the proxy's data plane".into(),
            )),
            Err(e) => Err(ControlError::Backend(format!(
                "endpoint '{}': {e}",
                call.endpoint
            ))),
        }
    }

    /// `POST /templates/{t}/render`: the command and arguments, not run.
    pub async fn render_template(
        &self,
        org_id: &str,
        key: &str,
        values: &Value,
    ) -> Result<Value, ControlError> {
        let inner = self.lock().await;
        let os = org(&inner.state, org_id);
        let (call, kind) = template_call(org_id, &os, key, values, None)?;
        let mut v = rendered_view(&call.args);
        v["template"] = json!(call.template);
        v["endpoint"] = json!(os.templates[&call.template].endpoint);
        v["kind"] = json!(if kind == Kind::Read { "read" } else { "write" });
        Ok(v)
    }

    /// `POST /templates/{t}`: renders and runs the template; the Redis reply as JSON.
    pub async fn run_template(
        &self,
        org_id: &str,
        key: &str,
        values: &Value,
    ) -> Result<Value, ControlError> {
        let call = {
            let inner = self.lock().await;
            template_call(org_id, &org(&inner.state, org_id), key, values, None)?.0
        };
        match self.exec(&call).await? {
            Reply::Value(v) => Ok(v),
            Reply::Error(e) => Err(ControlError::Redis(e)),
        }
    }

    /// `POST /apis/{a}`: runs the bindings in order; `{template_id: result}`. `identity` is
    /// the caller (the client identity of `feature_flag` stickiness).
    pub async fn run_api(
        &self,
        org_id: &str,
        key: &str,
        body: &Value,
        identity: &str,
    ) -> Result<Value, ControlError> {
        if !body.is_object() && !body.is_null() {
            return Err(ControlError::bad(
                "the body must be a JSON object of API field values",
            ));
        }
        let (steps, route, mig) = {
            let inner = self.lock().await;
            let os = org(&inner.state, org_id);
            let id = resolve(&os.apis, key).ok_or_else(|| ControlError::not_found("API", key))?;
            let old = bindings_of(&os.apis[&id].body);
            let held = os.migrations.values().find_map(|m| {
                let member = m
                    .apis
                    .iter()
                    .find(|a| a.api == id && a.state == MemberState::Active)?;
                m.status.routes_traffic().then_some((m, member))
            });
            let new: &[Binding] = held.map(|(_, a)| a.bindings.as_slice()).unwrap_or(&[]);
            let mut steps = Vec::new();
            for i in 0..old.len().max(new.len()) {
                let o = old
                    .get(i)
                    .map(|b| template_call(org_id, &os, &b.template, body, Some(&b.fields)))
                    .transpose()?;
                let n = new
                    .get(i)
                    .map(|b| template_call(org_id, &os, &b.template, body, Some(&b.fields)))
                    .transpose()?;
                let (key, kind) = match (&o, &n) {
                    (Some((c, k)), _) | (None, Some((c, k))) => (c.template.clone(), *k),
                    (None, None) => continue,
                };
                steps.push(Step {
                    key,
                    kind,
                    old: o.map(|x| x.0),
                    new: n.map(|x| x.0),
                });
            }
            let route = held.map(|(m, _)| InterlayRoute {
                endpoint: "api".into(),
                migration: Some(crate::compile::migration_route(
                    m,
                    dp_key(org_id, &m.id),
                    String::new(),
                    &self.instance(),
                )),
            });
            (steps, route, held.map(|(m, _)| dp_key(org_id, &m.id)))
        };
        let conn_id = random_u64();
        let mut out = Map::new();
        let mut stats = ApiTraffic::default();
        let result = async {
            for step in &steps {
                let v = match &route {
                    None => self.exec_one(step.old.as_ref().or(step.new.as_ref())).await,
                    Some(route) => {
                        self.exec_routed(route, step, conn_id, identity, &mut stats)
                            .await
                    }
                };
                match v {
                    Ok(Reply::Value(v)) => {
                        out.insert(step.key.clone(), v);
                    }
                    Ok(Reply::Error(e)) => {
                        return Err(ControlError::Redis(format!("template '{}': {e}", step.key)))
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        .await;
        if let Some(mig) = mig {
            stats.calls = 1;
            self.record_api_traffic(&mig, stats);
        }
        result.map(|()| Value::Object(out))
    }

    async fn exec_one(&self, call: Option<&Call>) -> Outcome {
        match call {
            Some(c) => self.exec(c).await,
            None => Ok(Reply::Value(Value::Null)),
        }
    }

    async fn exec_routed(
        &self,
        route: &InterlayRoute,
        step: &Step,
        conn_id: u64,
        identity: &str,
        stats: &mut ApiTraffic,
    ) -> Outcome {
        let (old, new) = match (&step.old, &step.new) {
            (Some(o), Some(n)) => (o, n),
            // an unpaired binding runs on the side it names
            (o, n) => return self.exec_one(o.as_ref().or(n.as_ref())).await,
        };
        let key = TemplateDef::first_key(&old.args);
        let inputs = Inputs {
            conn_id,
            key,
            identity: Some(identity.as_bytes()),
            client_ip: None,
            rand: random_u64() as u32,
        };
        let d = decide(route, &command_info(step.kind), &inputs);
        let (serve, other) = match d.serve {
            Side::Old => (old, new),
            Side::New => (new, old),
        };
        if step.kind == Kind::Read {
            match d.serve {
                Side::Old => stats.reads_old += 1,
                Side::New => stats.reads_new += 1,
            }
        }
        if d.mirror == Mirror::None {
            return self.exec(serve).await;
        }
        let (rs, ro) = tokio::join!(self.exec(serve), self.exec(other));
        if d.mirror == Mirror::Shadow {
            if let (Ok(a), Ok(b)) = (&rs, &ro) {
                stats.shadow_compared += 1;
                if a != b {
                    stats.shadow_mismatches += 1;
                    let (o, n) = if d.serve == Side::Old {
                        (&rs, &ro)
                    } else {
                        (&ro, &rs)
                    };
                    stats.samples.push(json!({"template": step.key, "old": short(o), "new": short(n),
                        "key": key.map(|k| String::from_utf8_lossy(k).chars().take(200).collect::<String>())}));
                }
            }
            return rs;
        }
        stats.dual_writes += 1;
        let new_failed = if d.serve == Side::New {
            failed(&rs)
        } else {
            failed(&ro)
        };
        if failed(&rs) != failed(&ro) {
            stats.dual_write_failures += 1;
        }
        if new_failed {
            stats.new_side_write_failures += 1;
        }
        match d.reply {
            ReplyPolicy::Serve => rs,
            ReplyPolicy::EitherSucceeds if failed(&rs) && !failed(&ro) => ro,
            ReplyPolicy::EitherSucceeds => rs,
            ReplyPolicy::BothSucceed if failed(&ro) => ro,
            ReplyPolicy::BothSucceed => rs,
        }
    }

    fn record_api_traffic(&self, mig: &str, s: ApiTraffic) {
        let mut all = self.api_traffic.lock().unwrap_or_else(|p| p.into_inner());
        let t = all.entry(mig.to_string()).or_default();
        t.calls += s.calls;
        t.reads_old += s.reads_old;
        t.reads_new += s.reads_new;
        t.dual_writes += s.dual_writes;
        t.dual_write_failures += s.dual_write_failures;
        t.new_side_write_failures += s.new_side_write_failures;
        t.shadow_compared += s.shadow_compared;
        t.shadow_mismatches += s.shadow_mismatches;
        for x in s.samples {
            if t.samples.len() >= MAX_SAMPLES {
                t.samples.remove(0);
            }
            t.samples.push(x);
        }
    }

    /// What API calls did under migration `mig` (data-plane key), as JSON; `None` if none ran.
    pub(crate) fn api_traffic_report(&self, mig: &str) -> Option<Value> {
        let all = self.api_traffic.lock().unwrap_or_else(|p| p.into_inner());
        let t = all.get(mig)?;
        Some(json!({
            "calls": t.calls, "reads_old": t.reads_old, "reads_new": t.reads_new,
            "dual_writes": t.dual_writes, "dual_write_failures": t.dual_write_failures,
            "new_side_write_failures": t.new_side_write_failures,
            "shadow_compared": t.shadow_compared, "shadow_mismatches": t.shadow_mismatches,
            "shadow_samples": t.samples,
        }))
    }
}

/// Per-migration API traffic counters, owned by [`Control`].
pub(crate) type ApiTrafficMap = std::sync::Mutex<HashMap<String, ApiTraffic>>;

/// Completion: every completed API member's API now runs the migration's bindings; the
/// previous bindings are kept on the member for a rollback.
pub(crate) fn switch_bindings(os: &mut OrgState, mid: &str) {
    let Some(m) = os.migrations.get(mid) else {
        return;
    };
    let switch: Vec<(String, Vec<Binding>)> = m
        .apis
        .iter()
        .filter(|a| a.state == MemberState::Completed)
        .map(|a| (a.api.clone(), a.bindings.clone()))
        .collect();
    let mut saved = Vec::new();
    for (api, bindings) in switch {
        if let Some(a) = os.apis.get_mut(&api) {
            let before = a.body.get("bindings").cloned().unwrap_or(json!([]));
            a.body["bindings"] = json!(bindings
                .iter()
                .map(|b| json!({"template": b.template, "fields": b.fields}))
                .collect::<Vec<_>>());
            a.updated_at = chrono::Utc::now();
            saved.push((api, before));
        }
    }
    if let Some(m) = os.migrations.get_mut(mid) {
        for (api, before) in saved {
            if let Some(member) = m.apis.iter_mut().find(|a| a.api == api) {
                member.original_bindings = Some(before);
            }
        }
    }
}

/// Rollback after completion: APIs switched by [`switch_bindings`] get their bindings back.
pub(crate) fn restore_bindings(os: &mut OrgState, mid: &str) {
    let Some(m) = os.migrations.get_mut(mid) else {
        return;
    };
    let restore: Vec<(String, Value)> = m
        .apis
        .iter_mut()
        .filter(|a| a.state == MemberState::Completed)
        .filter_map(|a| Some((a.api.clone(), a.original_bindings.take()?)))
        .collect();
    for (api, bindings) in restore {
        if let Some(a) = os.apis.get_mut(&api) {
            a.body["bindings"] = bindings;
            a.updated_at = chrono::Utc::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_mappings() {
        let def =
            TemplateDef::parse(&json!({"command": "GET", "args": ["u:{{id}}:{{n}}"]})).unwrap();
        let body = json!({"user": {"id": "42"}, "n": "1", "other": "x"});
        // object form: template field → API path; unmapped fields by name
        let v = map_fields(&def, &json!({"id": "user.id"}), &body);
        assert_eq!(v, json!({"id": "42", "n": "1"}));
        // array form, HEAD order and the docs' reversed order
        let v = map_fields(&def, &json!([["id", "user.id"]]), &body);
        assert_eq!(v["id"], "42");
        let v = map_fields(&def, &json!([["other", "id"]]), &body);
        assert_eq!(v["id"], "x");
        assert_eq!(
            lookup_path(&json!({"a": [1, {"b": 2}]}), "a.1.b"),
            Some(&json!(2))
        );
    }
}
