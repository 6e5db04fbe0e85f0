//! The registry's routes.
//!
//! - `GET /api/registry[?prefix=P]`: `[{"name", "node", "incarnation", "meta"}]`.
//! - `POST /api/registry` `{"names": [..], "meta": <json>}`: spawns one echo
//!   actor on this node and registers every name to it (many names, one
//!   actor); answers which names it took and which were taken.
//! - `DELETE /api/registry` `{"names": [..]}`: drops the names this node holds.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use drove::registry::{Registry, RegistryError};
use drove::runtime::echo::Echo;
use drove::Drove;

use crate::reply::{error, error_of, JsonBody};

/// One row of `GET /api/registry`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryJson {
    /// The name.
    pub name: String,
    /// The holder's node name.
    pub node: String,
    /// The holder's node incarnation.
    pub incarnation: String,
    /// Metadata, or null.
    pub meta: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ListQuery {
    prefix: Option<String>,
}

/// The body of `POST /api/registry`.
#[derive(Debug, Deserialize)]
pub struct RegisterBody {
    /// Names to register to one new echo actor.
    pub names: Vec<String>,
    /// Metadata for each.
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
}

/// One name `POST /api/registry` could not take.
#[derive(Debug, Serialize, Deserialize)]
pub struct TakenJson {
    /// The name.
    pub name: String,
    /// Why: who holds it, or what was wrong.
    pub error: String,
}

/// The answer of `POST /api/registry`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RegisterAnswer {
    /// The names registered.
    pub registered: Vec<String>,
    /// The names refused.
    pub refused: Vec<TakenJson>,
}

/// The body of `DELETE /api/registry`.
#[derive(Debug, Deserialize)]
pub struct UnregisterBody {
    /// Names to drop.
    pub names: Vec<String>,
}

async fn list(
    State(registry): State<Registry>,
    Query(q): Query<ListQuery>,
) -> Json<Vec<EntryJson>> {
    let prefix = q.prefix.unwrap_or_default();
    let rows = registry
        .select_prefix(&prefix)
        .into_iter()
        .map(|e| EntryJson {
            name: e.name,
            node: e.addr.node.name.clone(),
            incarnation: e.addr.node.incarnation.to_string(),
            meta: e.meta.and_then(|m| serde_json::from_str(&m).ok()),
        })
        .collect();
    Json(rows)
}

async fn register(
    State(registry): State<Registry>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Response {
    if body.names.is_empty() {
        return error(StatusCode::BAD_REQUEST, "names must not be empty");
    }
    let holder = match registry.node().spawn(Echo, ()).await {
        Ok(h) => h,
        Err(e) => return error_of(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let mut answer = RegisterAnswer {
        registered: Vec::new(),
        refused: Vec::new(),
    };
    for name in body.names {
        let result = registry
            .register(&name, &holder)
            .and_then(|()| match &body.meta {
                Some(meta) => registry.put_meta(&name, meta),
                None => Ok(()),
            });
        match result {
            Ok(()) => answer.registered.push(name),
            Err(e) => answer.refused.push(TakenJson {
                name,
                error: e.to_string(),
            }),
        }
    }
    if answer.registered.is_empty() {
        registry.node().stop_local(&holder);
        return (StatusCode::CONFLICT, Json(answer)).into_response();
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn unregister(
    State(registry): State<Registry>,
    JsonBody(body): JsonBody<UnregisterBody>,
) -> Response {
    let mut dropped = 0usize;
    let mut refused = Vec::new();
    for name in body.names {
        match registry.unregister(&name) {
            Ok(()) => dropped += 1,
            Err(
                e @ (RegistryError::NotOwner { .. }
                | RegistryError::NotRegistered(_)
                | RegistryError::InvalidName),
            ) => refused.push(TakenJson {
                name,
                error: e.to_string(),
            }),
            Err(e) => return error_of(StatusCode::INTERNAL_SERVER_ERROR, &e),
        }
    }
    Json(serde_json::json!({ "unregistered": dropped, "refused": refused })).into_response()
}

/// `/api/registry`.
pub(crate) fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/api/registry", get(list).post(register).delete(unregister))
        .with_state(drove.registry().clone())
}
