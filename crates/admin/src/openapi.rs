//! The OpenAPI 3 document of the admin API, built from [`crate::routes::ROUTES`] (the same
//! table a test checks against the live router), with the main request schemas.

use serde_json::{json, Map, Value};

use crate::routes::ROUTES;

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "description": "id or uuid", "schema": {"type": "string"}}))
        .collect()
}

fn request_schema(method: &str, path: &str) -> Option<Value> {
    if !matches!(method, "POST" | "PATCH") || path.ends_with("/login") || path.ends_with("/refresh")
    {
        return None;
    }
    let schema = match (method, path) {
        ("POST", "/api/v1/migrations") => json!({"$ref": "#/components/schemas/MigrationCreate"}),
        ("PATCH", p) if p.ends_with("/traffic") => {
            json!({"type": "object", "required": ["read_percentage"],
            "properties": {"read_percentage": {"type": "number", "minimum": 0, "maximum": 1}, "reason": {"type": "string"}}})
        }
        ("POST", p) if p.ends_with("/interlay/{interlay}") => {
            json!({"type": "object", "required": ["endpoint"],
            "properties": {"endpoint": {"type": "string"}, "id": {"type": "string"}, "migration_strategy": {"$ref": "#/components/schemas/Strategy"},
                           "migration_data": {}, "migration_rules": {"type": "object"}, "testing_validation": {"type": "object"}}})
        }
        ("POST", p) if p.ends_with("/rollback") => {
            json!({"type": "object", "properties": {"reason": {"type": "string"},
                "force": {"type": "boolean", "description": "also from ready, testing and rolling_back; while rolling_back, restarts (with overwrite_on_reverse) or cancels (without) the copy back"},
                "preserve_config": {"type": "boolean"},
                "overwrite_on_reverse": {"type": "boolean", "default": false,
                    "description": "copy each executed interlay's data back from the new side (new's values win, keys only on old kept); the migration stays rolling_back, reads from old and writes to both sides new-authoritative, until the copy is done (rolled_back) or fails (failed)"}}})
        }
        ("POST", p) if p.ends_with("/api/{api}") => {
            json!({"type": "object", "required": ["bindings"],
            "properties": {"id": {"type": "string"}, "bindings": {"type": "array", "items": {"type": "object",
                "required": ["template"], "properties": {"template": {"type": "string"}, "fields": {"type": "object"}}}}}})
        }
        _ => json!({"type": "object"}),
    };
    Some(json!({"required": false, "content": {"application/json": {"schema": schema}}}))
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, role, summary) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "operationId": format!("{}{}", method.to_lowercase(), path.replace(['/', '{', '}', '.'], "_")),
            "parameters": path_params(path),
            "responses": {
                "200": {"description": "Success envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Success"}}}},
                "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"},
                "409": {"$ref": "#/components/responses/Error"},
            },
        });
        if matches!(*path, "/healthz" | "/readyz" | "/metrics") {
            // probes answer plain objects (or Prometheus text), not the API envelope
            let body = if *path == "/metrics" {
                json!({"text/plain": {"schema": {"type": "string"}}})
            } else {
                json!({"application/json": {"schema": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}}})
            };
            op["responses"] = json!({"200": {"description": summary, "content": body}, "503": {"description": "Not ready"}});
        }
        match role {
            Some(r) => {
                op["security"] = json!([{"bearer": []}]);
                op["x-required-role"] = json!(r);
            }
            None => op["security"] = json!([]),
        }
        if let Some(body) = request_schema(method, path) {
            op["requestBody"] = body;
        }
        if path.ends_with("/rollback") {
            op["responses"]["200"]["content"]["application/json"]["schema"] = json!({"allOf": [
                {"$ref": "#/components/schemas/Success"},
                {"properties": {"data": {"$ref": "#/components/schemas/RollbackResult"}}}]});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "godwit admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Eden-compatible migration API of the godwit Redis migration proxy."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or API token"}},
            "responses": {"Error": {"description": "Error envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Success": {"type": "object", "properties": {"status": {"type": "string", "enum": ["success"]}, "data": {}}},
                "Error": {"type": "object", "required": ["error", "message"], "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "MigrationCreate": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string"}, "description": {"type": "string"},
                    "strategy": {"$ref": "#/components/schemas/Strategy"},
                    "data": {"description": "\"none\" | {type: snapshot|scan, replace: none|replace|merge}"},
                    "failure_handling": {"description": "rollback_all | allow_partial | {type: retry_then_all, retry_count}"},
                    "guard": {"type": "object"}, "tests": {"type": "array"}}},
                "RollbackResult": {"type": "object", "required": ["migration_id", "status"], "properties": {
                    "migration_id": {"type": "string"}, "interlay_id": {"type": "string"},
                    "status": {"type": "string", "description": "rolled_back, or rolling_back while the copy back runs"},
                    "rolled_back_at": {"type": "string", "format": "date-time"}, "reason": {"type": "string", "nullable": true},
                    "warning": {"type": "string", "nullable": true},
                    "reverse_copy": {"$ref": "#/components/schemas/ReverseCopy"}}},
                "ReverseCopy": {"type": "object", "description": "the copy back of a rollback with overwrite_on_reverse (also in GET /migrations/{m} and /status)", "properties": {
                    "state": {"type": "string", "enum": ["running", "done", "failed", "cancelled"]},
                    "interlays": {"type": "object", "additionalProperties": {"type": "string", "enum": ["running", "done", "failed", "cancelled"]}},
                    "progress": {"type": "object", "description": "phase, keys_scanned, keys_total_estimate, keys_copied, dirty_backlog, lag_ms, rate_keys_per_s, eta_s, …"},
                    "started_at": {"type": "string", "format": "date-time"}, "finished_at": {"type": "string", "format": "date-time"},
                    "error": {"type": "string"}}},
                "Strategy": {"type": "object", "required": ["type"], "properties": {
                    "type": {"type": "string", "enum": godwit_control::strategy::KNOWN_STRATEGIES}}},
            },
        },
    })
}
