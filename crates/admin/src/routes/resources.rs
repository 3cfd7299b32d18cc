//! Endpoints, interlays, templates and APIs. Reads need `read`, changes need `admin`.
//! Routes that take no body still read it as JSON, so a malformed one is a 400 everywhere.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::auth::Role;
use crate::error::{ok, ok_status, ApiError};
use crate::extract::{Caller, JsonBody};
use crate::AdminState;

type R = Result<Response, ApiError>;

/// `GET /instances`: the fleet sharing this instance's store (this instance alone without one).
pub async fn instances(State(s): State<AdminState>, c: Caller) -> R {
    c.require(Role::Read)?;
    Ok(ok(s.control.instances_view().await?))
}
/// `GET /endpoints`.
pub async fn list_endpoints(State(s): State<AdminState>, c: Caller) -> R {
    Ok(ok(json!(
        s.control.list_endpoints(c.require(Role::Read)?).await
    )))
}
/// `POST /endpoints`.
pub async fn create_endpoint(State(s): State<AdminState>, c: Caller, JsonBody(b): JsonBody) -> R {
    Ok(ok(s
        .control
        .create_endpoint(c.require(Role::Admin)?, &b)
        .await?))
}
/// `GET /endpoints/{ep}`.
pub async fn get_endpoint(State(s): State<AdminState>, c: Caller, Path(id): Path<String>) -> R {
    Ok(ok(s
        .control
        .get_endpoint(c.require(Role::Read)?, &id)
        .await?))
}
/// `PATCH /endpoints/{ep}`.
pub async fn patch_endpoint(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .patch_endpoint(c.require(Role::Admin)?, &id, &b)
        .await?))
}
/// `DELETE /endpoints/{ep}`.
pub async fn delete_endpoint(State(s): State<AdminState>, c: Caller, Path(id): Path<String>) -> R {
    s.control
        .delete_endpoint(c.require(Role::Admin)?, &id)
        .await?;
    Ok(ok(json!("Endpoint deleted successfully")))
}
/// `POST /endpoints/{ep}/test`.
pub async fn test_endpoint(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(_b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .test_endpoint(c.require(Role::Admin)?, &id)
        .await?))
}

/// `GET /interlays`.
pub async fn list_interlays(State(s): State<AdminState>, c: Caller) -> R {
    Ok(ok(json!(
        s.control.list_interlays(c.require(Role::Read)?).await
    )))
}
/// `POST /interlays`: 201 when created, 200 when it existed.
pub async fn create_interlay(State(s): State<AdminState>, c: Caller, JsonBody(b): JsonBody) -> R {
    let (v, created) = s
        .control
        .create_interlay(c.require(Role::Admin)?, &b)
        .await?;
    Ok(ok_status(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        v,
    ))
}
/// `GET /interlays/{i}`.
pub async fn get_interlay(State(s): State<AdminState>, c: Caller, Path(id): Path<String>) -> R {
    Ok(ok(s
        .control
        .get_interlay(c.require(Role::Read)?, &id)
        .await?))
}
/// `PATCH /interlays/{i}`.
pub async fn patch_interlay(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .patch_interlay(c.require(Role::Admin)?, &id, &b)
        .await?))
}
/// `DELETE /interlays/{i}`.
pub async fn delete_interlay(State(s): State<AdminState>, c: Caller, Path(id): Path<String>) -> R {
    s.control
        .delete_interlay(c.require(Role::Admin)?, &id)
        .await?;
    Ok(ok(json!("Interlay deleted successfully")))
}
/// `POST /interlays/{i}/start`.
pub async fn start_interlay(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(_b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .start_interlay(c.require(Role::Admin)?, &id)
        .await?))
}
/// `POST /interlays/{i}/stop`.
pub async fn stop_interlay(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(_b): JsonBody,
) -> R {
    s.control
        .stop_interlay(c.require(Role::Admin)?, &id)
        .await?;
    Ok(ok(json!("Interlay stopped successfully")))
}

/// `GET /templates`.
pub async fn list_templates(State(s): State<AdminState>, c: Caller) -> R {
    Ok(ok(json!(
        s.control.list_templates(c.require(Role::Read)?).await
    )))
}
/// `POST /templates`.
pub async fn create_template(State(s): State<AdminState>, c: Caller, JsonBody(b): JsonBody) -> R {
    s.control
        .create_template(c.require(Role::Admin)?, &b)
        .await?;
    Ok(ok(json!("Template created successfully")))
}
/// `GET /templates/{t}`.
pub async fn get_template(State(s): State<AdminState>, c: Caller, Path(id): Path<String>) -> R {
    Ok(ok(s
        .control
        .get_template(c.require(Role::Read)?, &id)
        .await?))
}
/// `DELETE /templates/{t}`.
pub async fn delete_template(State(s): State<AdminState>, c: Caller, Path(id): Path<String>) -> R {
    s.control
        .delete_template(c.require(Role::Admin)?, &id)
        .await?;
    Ok(ok(json!("Template deleted successfully")))
}

/// `GET /apis`.
pub async fn list_apis(State(s): State<AdminState>, c: Caller) -> R {
    Ok(ok(json!(s.control.list_apis(c.require(Role::Read)?).await)))
}
/// `POST /apis`.
pub async fn create_api(State(s): State<AdminState>, c: Caller, JsonBody(b): JsonBody) -> R {
    Ok(ok(s
        .control
        .create_api(c.require(Role::Admin)?, &b)
        .await?))
}
/// `GET /apis/{a}`.
pub async fn get_api(State(s): State<AdminState>, c: Caller, Path(id): Path<String>) -> R {
    Ok(ok(s.control.get_api(c.require(Role::Read)?, &id).await?))
}
/// `POST /templates/{t}`: run with a JSON object of field values (role `write`).
pub async fn run_template(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .run_template(c.require(Role::Write)?, &id, &b)
        .await?))
}
/// `POST /templates/{t}/render`: the command and arguments, not run (role `read`).
pub async fn render_template(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .render_template(c.require(Role::Read)?, &id, &b)
        .await?))
}
/// `POST /apis/{a}`: run the bindings in order → `{template_id: result}` (role `write`).
pub async fn run_api(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    let org = c.require(Role::Write)?;
    Ok(ok(s.control.run_api(org, &id, &b, &c.0.subject).await?))
}
/// `DELETE /apis/{a}`.
pub async fn delete_api(State(s): State<AdminState>, c: Caller, Path(id): Path<String>) -> R {
    s.control.delete_api(c.require(Role::Admin)?, &id).await?;
    Ok(ok(json!("API deleted successfully")))
}
