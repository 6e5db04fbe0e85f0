//! The supervisor's routes.
//!
//! - `POST /api/children` `{"type", "name", "restart", "args", "id"?,
//!   "max_restarts"?, "within_ms"?}`: starts a child where placement puts it;
//!   422 for a type no node runs, 409 when the id runs already or the name
//!   is held by another actor, 503 when the cluster cannot take it.
//! - `GET /api/children[?scope=local]`: every child in the cluster, or only
//!   those this node runs now (its own ledger).
//! - `DELETE /api/children/{id}`: stops the child wherever it runs and
//!   forgets it (no restart, no failover); 204, 404 for an id no node has,
//!   503 when its node cannot be reached. `POST
//!   /api/children/{id}/terminate` does the same, for the dashboard (its
//!   actions are JSON POSTs).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use drove::supervisor::{ChildSpec, Restart, Supervisor, SupervisorError};
use drove::Drove;

use crate::reply::{error, error_of, JsonBody};

/// The body of `POST /api/children`.
#[derive(Debug, Deserialize)]
pub struct SpawnBody {
    /// The actor type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// A global name, or null.
    #[serde(default)]
    pub name: Option<String>,
    /// permanent, transient or temporary.
    pub restart: Restart,
    /// Start arguments.
    #[serde(default)]
    pub args: serde_json::Value,
    /// A child id (generated when absent).
    #[serde(default)]
    pub id: Option<String>,
    /// Restart intensity: at most this many restarts...
    #[serde(default)]
    pub max_restarts: Option<u32>,
    /// ...within this many milliseconds.
    #[serde(default)]
    pub within_ms: Option<u64>,
}

#[derive(Deserialize)]
struct ListQuery {
    scope: Option<String>,
}

async fn spawn(State(sup): State<Supervisor>, JsonBody(body): JsonBody<SpawnBody>) -> Response {
    let mut spec = ChildSpec::new(&body.type_name, body.args.to_string(), body.restart);
    spec.id = body.id.unwrap_or_default();
    spec.name = body.name;
    if let Some(n) = body.max_restarts {
        spec.max_restarts = n;
    }
    if let Some(ms) = body.within_ms {
        spec.within_ms = ms;
    }
    let result = match spec.name {
        Some(_) => sup.singleton_spec(spec).await,
        None => sup.start_spec(spec).await,
    };
    match result {
        Ok(addr) => (
            StatusCode::CREATED,
            Json(serde_json::json!({
                "node": addr.node.name,
                "incarnation": addr.node.incarnation.to_string(),
                "actor": addr.to_string(),
            })),
        )
            .into_response(),
        Err(e @ (SupervisorError::NoNodeForType(_) | SupervisorError::Start(_))) => {
            error_of(StatusCode::UNPROCESSABLE_ENTITY, &e)
        }
        Err(e @ (SupervisorError::AlreadyRunning { .. } | SupervisorError::NameHeld { .. })) => {
            error_of(StatusCode::CONFLICT, &e)
        }
        Err(e) => error_of(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

async fn terminate(State(sup): State<Supervisor>, Path(id): Path<String>) -> Response {
    match sup.terminate_child(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e @ SupervisorError::NoSuchChild(_)) => error_of(StatusCode::NOT_FOUND, &e),
        Err(e) => error_of(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

async fn list(State(sup): State<Supervisor>, Query(q): Query<ListQuery>) -> Response {
    match q.scope.as_deref() {
        None | Some("cluster") => Json(sup.which_children()).into_response(),
        Some("local") => Json(sup.local_children()).into_response(),
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("unknown scope {other:?}; use local or cluster"),
        ),
    }
}

/// `/api/children`.
pub(crate) fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/api/children", get(list).post(spawn))
        .route("/api/children/{id}", delete(terminate))
        .route("/api/children/{id}/terminate", post(terminate))
        .with_state(drove.supervisor().clone())
}
