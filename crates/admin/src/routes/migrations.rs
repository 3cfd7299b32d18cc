//! The migration API of the seed plus Eden's lifecycle routes (SPEC §2). Listing needs `read`;
//! every other migration operation needs `admin` (the seed's access table).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use godwit_control::Status;
use serde_json::json;

use crate::auth::Role;
use crate::error::{ok, ApiError};
use crate::extract::{verbose, Caller, JsonBody};
use crate::AdminState;

type R = Result<Response, ApiError>;
type Q = Query<HashMap<String, String>>;

/// `GET /migrations` (`X-Eden-Verbose`, `?status=`).
pub async fn list(State(s): State<AdminState>, c: Caller, h: HeaderMap, Query(q): Q) -> R {
    let org = c.require(Role::Read)?;
    let status = match q.get("status") {
        Some(v) => {
            Some(Status::parse(v).ok_or_else(|| ApiError::bad(format!("unknown status '{v}'")))?)
        }
        None => None,
    };
    Ok(ok(json!(
        s.control.list_migrations(org, verbose(&h), status).await
    )))
}
/// `POST /migrations`.
pub async fn create(State(s): State<AdminState>, c: Caller, JsonBody(b): JsonBody) -> R {
    Ok(ok(s
        .control
        .create_migration(c.require(Role::Admin)?, &b)
        .await?))
}
/// `GET /migrations/{m}` (`X-Eden-Verbose`).
pub async fn get(State(s): State<AdminState>, c: Caller, h: HeaderMap, Path(m): Path<String>) -> R {
    Ok(ok(s
        .control
        .get_migration(c.require(Role::Admin)?, &m, verbose(&h))
        .await?))
}
/// `PATCH /migrations/{m}`.
pub async fn patch(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .patch_migration(c.require(Role::Admin)?, &m, &b)
        .await?))
}
/// `DELETE /migrations/{m}` (`?force=true`).
pub async fn delete(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    Query(q): Q,
) -> R {
    let force = q
        .get("force")
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    s.control
        .delete_migration(c.require(Role::Admin)?, &m, force)
        .await?;
    Ok(ok(json!("success")))
}
/// `POST /migrations/{m}/api/{a}`.
pub async fn add_api(
    State(s): State<AdminState>,
    c: Caller,
    Path((m, a)): Path<(String, String)>,
    JsonBody(b): JsonBody,
) -> R {
    s.control
        .add_api(c.require(Role::Admin)?, &m, &a, &b)
        .await?;
    Ok(ok(json!("added Api to migration")))
}
/// `POST /migrations/{m}/interlay/{i}`.
pub async fn add_interlay(
    State(s): State<AdminState>,
    c: Caller,
    Path((m, i)): Path<(String, String)>,
    JsonBody(b): JsonBody,
) -> R {
    s.control
        .add_interlay(c.require(Role::Admin)?, &m, &i, &b)
        .await?;
    Ok(ok(json!("added Interlay to migration")))
}
/// `POST /migrations/{m}/interlay/{i}/rollback`.
pub async fn rollback_interlay(
    State(s): State<AdminState>,
    c: Caller,
    Path((m, i)): Path<(String, String)>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .rollback_interlay(c.require(Role::Admin)?, &m, &i, &b)
        .await?))
}
/// `POST /migrations/{m}/test`.
pub async fn test(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(_b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .test_migration(c.require(Role::Admin)?, &m)
        .await?))
}
/// `POST /migrations/{m}/migrate`.
pub async fn migrate(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(_b): JsonBody,
) -> R {
    Ok(ok(json!(
        s.control.migrate(c.require(Role::Admin)?, &m).await?
    )))
}
/// `PATCH /migrations/{m}/traffic`.
pub async fn traffic(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .traffic(c.require(Role::Admin)?, &m, &b)
        .await?))
}
/// `POST /migrations/{m}/pause`.
pub async fn pause(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s.control.pause(c.require(Role::Admin)?, &m, &b).await?))
}
/// `POST /migrations/{m}/resume`.
pub async fn resume(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .resume(c.require(Role::Admin)?, &m, &b)
        .await?))
}
/// `POST /migrations/{m}/complete`.
pub async fn complete(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .complete(c.require(Role::Admin)?, &m, &b)
        .await?))
}
/// `POST /migrations/{m}/rollback`.
pub async fn rollback(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .rollback(c.require(Role::Admin)?, &m, &b)
        .await?))
}
/// `PATCH /migrations/{m}/toggle`.
pub async fn toggle(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    let mut v = s.control.toggle(c.require(Role::Admin)?, &m, &b).await?;
    v["updated_by"] = json!(c.0.subject);
    Ok(ok(v))
}
/// `POST /migrations/{m}/refresh`.
pub async fn refresh(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(_b): JsonBody,
) -> R {
    Ok(ok(s.control.refresh(c.require(Role::Admin)?, &m).await?))
}
/// `GET /migrations/{m}/status`.
pub async fn status(State(s): State<AdminState>, c: Caller, Path(m): Path<String>) -> R {
    Ok(ok(s
        .control
        .status_view(c.require(Role::Admin)?, &m)
        .await?))
}
/// `POST /migrations/{m}/verify`.
pub async fn verify(
    State(s): State<AdminState>,
    c: Caller,
    Path(m): Path<String>,
    JsonBody(b): JsonBody,
) -> R {
    Ok(ok(s
        .control
        .verify(c.require(Role::Admin)?, &m, &b)
        .await?))
}
