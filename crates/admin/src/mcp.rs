//! MCP (Model Context Protocol) for migrations at `/api/v1/mcp/migrations`: JSON-RPC 2.0 over
//! MCP's streamable HTTP transport, hand-written (see docs/mcp.md for why not rmcp).
//!
//! `POST` takes one JSON-RPC message or a batch and answers `application/json` (the transport
//! lets a server answer a POST with plain JSON instead of an SSE stream): `initialize`
//! (returns an `Mcp-Session-Id`), `ping`, `tools/list`, `tools/call`; notifications and
//! responses get `202 Accepted`. `DELETE` ends a session. There is no server-initiated stream,
//! so `GET` is `405` as the transport allows. Sessions are not required: every request is
//! authenticated by its own bearer token, and each tool checks the role of its REST route
//! (listing needs `read`, everything else `admin`, as in the seed's access table). A refused or
//! failed tool is a tool result with `isError: true` whose text is the REST error envelope.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use godwit_control::{ControlError, Status};
use serde_json::{json, Value};

use crate::auth::Role;
use crate::error::{ok, ApiError};
use crate::extract::{Caller, JsonBody};
use crate::AdminState;

/// Protocol revisions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26", "2024-11-05"];

const INVALID_PARAMS: i64 = -32602;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_REQUEST: i64 = -32600;

fn mid_prop() -> Value {
    json!({"type": "string", "description": "migration id or uuid"})
}

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({"name": name, "description": description,
           "inputSchema": {"type": "object", "properties": properties, "required": required}})
}

/// The tools, with their JSON Schemas.
pub fn tools() -> Vec<Value> {
    let reason = json!({"type": "string"});
    vec![
        tool(
            "list_migrations",
            "List the organization's migrations (role read).",
            json!({"verbose": {"type": "boolean"},
                   "status": {"type": "string", "enum": ["pending", "ready", "testing", "running", "paused",
                       "completed", "failed", "partial_failure", "rolling_back", "rolled_back"]},
                   "limit": {"type": "integer", "minimum": 1}}),
            &[],
        ),
        tool(
            "get_migration",
            "One migration with progress (role admin).",
            json!({"migration_id": mid_prop(), "verbose": {"type": "boolean"}}),
            &["migration_id"],
        ),
        tool(
            "define_migration",
            "Create a migration (or update an existing one with the same id) and attach APIs and interlays in one call (role admin).",
            json!({"id": {"type": "string"}, "description": {"type": "string"},
                   "strategy": {"type": "object"}, "data": {}, "failure_handling": {}, "guard": {"type": "object"},
                   "apis": {"type": "array", "items": {"type": "object", "required": ["id", "bindings"],
                       "properties": {"id": {"type": "string"}, "bindings": {"type": "array", "items": {"type": "object",
                           "required": ["template"], "properties": {"template": {"type": "string"}, "fields": {}}}}}}},
                   "interlays": {"type": "array", "items": {"type": "object", "required": ["interlay_id", "endpoint"],
                       "properties": {"interlay_id": {"type": "string"}, "endpoint": {"type": "string"}}}}}),
            &["id"],
        ),
        tool(
            "run_migration",
            "Test (mode test) or execute (mode migrate) a migration (role admin).",
            json!({"migration_id": mid_prop(), "mode": {"type": "string", "enum": ["test", "migrate"]}}),
            &["migration_id", "mode"],
        ),
        tool(
            "migration_status",
            "Phase, copy progress, lag, health, traffic reports (role admin).",
            json!({"migration_id": mid_prop()}),
            &["migration_id"],
        ),
        tool(
            "set_traffic",
            "Canary / feature_flag ramp: read_percentage in [0, 1], at most 0.25 change per call (role admin).",
            json!({"migration_id": mid_prop(), "read_percentage": {"type": "number", "minimum": 0, "maximum": 1},
                   "reason": reason}),
            &["migration_id", "read_percentage"],
        ),
        tool(
            "pause_migration",
            "Pause: reads from old, writes dual, copy suspended (role admin).",
            json!({"migration_id": mid_prop(), "reason": reason}),
            &["migration_id"],
        ),
        tool(
            "resume_migration",
            "Resume a paused migration (role admin).",
            json!({"migration_id": mid_prop(), "reason": reason}),
            &["migration_id"],
        ),
        tool(
            "complete_migration",
            "Cut over: interlays serve the target, APIs run the new bindings (role admin).",
            json!({"migration_id": mid_prop(), "reason": reason, "force": {"type": "boolean"}}),
            &["migration_id"],
        ),
        tool(
            "rollback_migration",
            "Roll every member back to its source at once (role admin).",
            json!({"migration_id": mid_prop(), "reason": reason, "force": {"type": "boolean"}}),
            &["migration_id"],
        ),
    ]
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

fn tool_ok(data: Value) -> Value {
    let mut r = json!({"content": [{"type": "text", "text": data.to_string()}], "isError": false});
    if data.is_object() {
        r["structuredContent"] = data;
    }
    r
}

fn tool_err(e: ApiError) -> Value {
    let text = json!({"error": e.kind, "message": e.message}).to_string();
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// A tool's arguments, with typed accessors that fail as invalid params.
struct Args<'a>(&'a Value);

impl Args<'_> {
    fn str(&self, k: &str) -> Result<Option<String>, String> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("argument '{k}' must be a string")),
        }
    }
    fn req(&self, k: &str) -> Result<String, String> {
        self.str(k)?
            .ok_or_else(|| format!("argument '{k}' is required"))
    }
    fn bool(&self, k: &str) -> Result<bool, String> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("argument '{k}' must be a boolean")),
        }
    }
    /// The listed keys that are present, as a REST body.
    fn body(&self, keys: &[&str]) -> Value {
        let mut out = serde_json::Map::new();
        for k in keys {
            if let Some(v) = self.0.get(*k) {
                out.insert((*k).to_string(), v.clone());
            }
        }
        Value::Object(out)
    }
}

/// What a tool call ends with: a result, a refusal of the call itself (invalid params), or a
/// failed operation (a tool error).
enum Outcome {
    Ok(Value),
    Params(String),
    Failed(ApiError),
}

impl From<ApiError> for Outcome {
    fn from(e: ApiError) -> Self {
        Outcome::Failed(e)
    }
}

impl From<ControlError> for Outcome {
    fn from(e: ControlError) -> Self {
        Outcome::Failed(e.into())
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Outcome::from(e),
        }
    };
}

macro_rules! arg {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(m) => return Outcome::Params(m),
        }
    };
}

async fn call_tool(s: &AdminState, c: &Caller, name: &str, raw: &Value) -> Outcome {
    let a = Args(raw);
    let ctl = &s.control;
    match name {
        "list_migrations" => {
            let org = tri!(c.require(Role::Read));
            let status = match arg!(a.str("status")) {
                Some(v) => match Status::parse(&v) {
                    Some(st) => Some(st),
                    None => return Outcome::Params(format!("unknown status '{v}'")),
                },
                None => None,
            };
            let mut list = ctl
                .list_migrations(org, arg!(a.bool("verbose")), status)
                .await;
            if let Some(n) = raw.get("limit").and_then(Value::as_u64) {
                list.truncate(n as usize);
            }
            Outcome::Ok(json!({"migrations": list}))
        }
        "get_migration" => {
            let org = tri!(c.require(Role::Admin));
            let id = arg!(a.req("migration_id"));
            Outcome::Ok(tri!(
                ctl.get_migration(org, &id, arg!(a.bool("verbose"))).await
            ))
        }
        "define_migration" => define(s, c, &a).await,
        "run_migration" => {
            let org = tri!(c.require(Role::Admin));
            let id = arg!(a.req("migration_id"));
            match arg!(a.req("mode")).as_str() {
                "test" => Outcome::Ok(tri!(ctl.test_migration(org, &id).await)),
                "migrate" => {
                    let msg = tri!(ctl.migrate(org, &id).await);
                    Outcome::Ok(json!({"migration_id": id, "message": msg}))
                }
                other => Outcome::Params(format!("mode must be test or migrate, not '{other}'")),
            }
        }
        "migration_status" => {
            let org = tri!(c.require(Role::Admin));
            let id = arg!(a.req("migration_id"));
            Outcome::Ok(tri!(ctl.status_view(org, &id).await))
        }
        "set_traffic" => {
            let org = tri!(c.require(Role::Admin));
            let id = arg!(a.req("migration_id"));
            let body = a.body(&["read_percentage", "reason"]);
            Outcome::Ok(tri!(ctl.traffic(org, &id, &body).await))
        }
        "pause_migration" | "resume_migration" | "complete_migration" | "rollback_migration" => {
            let org = tri!(c.require(Role::Admin));
            let id = arg!(a.req("migration_id"));
            let v = match name {
                "pause_migration" => ctl.pause(org, &id, &a.body(&["reason"])).await,
                "resume_migration" => ctl.resume(org, &id, &a.body(&["reason"])).await,
                "complete_migration" => ctl.complete(org, &id, &a.body(&["reason", "force"])).await,
                _ => ctl.rollback(org, &id, &a.body(&["reason", "force"])).await,
            };
            Outcome::Ok(tri!(v))
        }
        other => Outcome::Params(format!("Unknown tool: {other}")),
    }
}

/// `define_migration`: create (or, when the id exists, PATCH the given fields), then attach
/// every API and interlay. Idempotent by id.
async fn define(s: &AdminState, c: &Caller, a: &Args<'_>) -> Outcome {
    let org = tri!(c.require(Role::Admin));
    let ctl = &s.control;
    let id = arg!(a.req("id"));
    let fields = [
        "description",
        "strategy",
        "data",
        "failure_handling",
        "guard",
    ];
    let mut create = a.body(&fields);
    create["id"] = json!(id);
    let created = match ctl.create_migration(org, &create).await {
        Ok(_) => true,
        Err(ControlError::Conflict(_)) => {
            let patch = a.body(&fields);
            if patch.as_object().is_some_and(|m| !m.is_empty()) {
                tri!(ctl.patch_migration(org, &id, &patch).await);
            }
            false
        }
        Err(e) => return e.into(),
    };
    let list = |k: &str| -> Result<Vec<Value>, String> {
        match a.0.get(k) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(v)) => Ok(v.clone()),
            Some(_) => Err(format!("argument '{k}' must be an array")),
        }
    };
    for api in arg!(list("apis")) {
        let Some(api_id) = api.get("id").and_then(Value::as_str) else {
            return Outcome::Params("each api needs an id".into());
        };
        let body =
            json!({"id": api_id, "bindings": api.get("bindings").cloned().unwrap_or(Value::Null)});
        tri!(ctl.add_api(org, &id, api_id, &body).await);
    }
    for il in arg!(list("interlays")) {
        let Some(mut body) = il.as_object().cloned() else {
            return Outcome::Params("each interlay must be an object".into());
        };
        let key = body
            .remove("interlay_id")
            .or_else(|| body.remove("interlay"));
        let Some(Value::String(key)) = key else {
            return Outcome::Params("each interlay needs an interlay_id".into());
        };
        tri!(ctl.add_interlay(org, &id, &key, &Value::Object(body)).await);
    }
    let mut view = tri!(ctl.get_migration(org, &id, false).await);
    view["created"] = json!(created);
    Outcome::Ok(view)
}

fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .filter(|v| PROTOCOL_VERSIONS.contains(v))
        .unwrap_or(PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "godwit-migrations", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Define, test, run, ramp, complete and roll back godwit Redis migrations. Tools mirror the REST API under /api/v1/migrations and need the same roles.",
    })
}

/// Answers one message; `None` for notifications and responses.
async fn handle(s: &AdminState, c: &Caller, msg: &Value) -> Option<Value> {
    let Some(obj) = msg.as_object() else {
        return Some(rpc_error(
            &Value::Null,
            INVALID_REQUEST,
            "not a JSON-RPC message",
        ));
    };
    let id = obj.get("id").cloned();
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        // a response from the client, or junk
        return match (&id, obj.contains_key("result") || obj.contains_key("error")) {
            (_, true) => None,
            (id, false) => Some(rpc_error(
                id.as_ref().unwrap_or(&Value::Null),
                INVALID_REQUEST,
                "missing method",
            )),
        };
    };
    let id = id?; // a notification: nothing to answer
    let params = obj.get("params").cloned().unwrap_or(json!({}));
    Some(match method {
        "initialize" => rpc_result(&id, initialize(&params)),
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => rpc_result(&id, json!({"tools": tools()})),
        "tools/call" => {
            let Some(name) = params.get("name").and_then(Value::as_str) else {
                return Some(rpc_error(&id, INVALID_PARAMS, "tools/call needs a name"));
            };
            let args = params.get("arguments").cloned().unwrap_or(json!({}));
            if !args.is_object() {
                return Some(rpc_error(
                    &id,
                    INVALID_PARAMS,
                    "arguments must be an object",
                ));
            }
            match call_tool(s, c, name, &args).await {
                Outcome::Ok(v) => rpc_result(&id, tool_ok(v)),
                Outcome::Failed(e) => rpc_result(&id, tool_err(e)),
                Outcome::Params(m) => rpc_error(&id, INVALID_PARAMS, m),
            }
        }
        other => rpc_error(&id, METHOD_NOT_FOUND, format!("Method not found: {other}")),
    })
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// `POST /api/v1/mcp/migrations`.
pub async fn post(State(s): State<AdminState>, c: Caller, JsonBody(b): JsonBody) -> Response {
    let is_init = |m: &Value| m.get("method").and_then(Value::as_str) == Some("initialize");
    let (reply, init) = match &b {
        Value::Array(batch) if !batch.is_empty() => {
            let mut out = Vec::new();
            for m in batch {
                if let Some(r) = handle(&s, &c, m).await {
                    out.push(r);
                }
            }
            (
                (!out.is_empty()).then_some(Value::Array(out)),
                batch.iter().any(is_init),
            )
        }
        Value::Object(_) => (handle(&s, &c, &b).await, is_init(&b)),
        _ => {
            return ApiError::bad("expected a JSON-RPC 2.0 message or batch").into_response();
        }
    };
    let Some(reply) = reply else {
        return StatusCode::ACCEPTED.into_response();
    };
    let mut resp = json_response(StatusCode::OK, reply);
    if init {
        let sid = uuid::Uuid::new_v4().to_string();
        if let Ok(v) = HeaderValue::from_str(&sid) {
            resp.headers_mut().insert("mcp-session-id", v);
        }
    }
    resp
}

/// `DELETE /api/v1/mcp/migrations`: ends a session (nothing is kept per session).
pub async fn delete(c: Caller) -> Result<Response, ApiError> {
    c.require(Role::Read)?;
    Ok(ok(json!("session closed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_list_is_complete() {
        let names: Vec<String> = tools()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        for n in [
            "list_migrations",
            "get_migration",
            "define_migration",
            "run_migration",
            "set_traffic",
            "migration_status",
            "rollback_migration",
        ] {
            assert!(names.iter().any(|x| x == n), "{n}");
        }
        for t in tools() {
            assert_eq!(t["inputSchema"]["type"], "object");
        }
        assert_eq!(
            initialize(&json!({"protocolVersion": "2025-03-26"}))["protocolVersion"],
            "2025-03-26"
        );
        assert_eq!(
            initialize(&json!({"protocolVersion": "1999-01-01"}))["protocolVersion"],
            PROTOCOL_VERSIONS[0]
        );
    }
}
