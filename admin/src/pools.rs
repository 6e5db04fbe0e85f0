//! The runner pools' routes.
//!
//! - `GET /api/pools`: `[{"name", "min", "max", "max_concurrency",
//!   "runners": [{"name", "pid", "busy", "state", "age_ms"}], "booting",
//!   "waiting"}]`.
//! - `PUT /api/pools/{pool}` (or `POST /api/pools/{pool}/bounds`)
//!   `{"min", "max"}`: new bounds at run time.
//! - `POST /api/pools/{pool}/call` `{"fn", "args", "timeout_ms"?}`:
//!   `{"result", "runner"}`. Errors: 404 unknown pool or function, 400 bad
//!   arguments, 413 arguments too large, 504 timeout, 503 no capacity
//!   within boot_timeout, 502 the runner died.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use drove::pool::{PoolError, Pools, RemoteError, Snapshot};
use drove::Drove;

use crate::reply::{error, error_of, JsonBody};

/// The longest timeout a call through the API may ask for.
const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// One runner in `GET /api/pools`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunnerJson {
    /// Its node name.
    pub name: String,
    /// Its OS pid for process runners, else null.
    pub pid: Option<u32>,
    /// Slots in use.
    pub busy: usize,
    /// booting, ready or draining.
    pub state: String,
    /// Milliseconds since it started booting.
    pub age_ms: u64,
}

/// One pool in `GET /api/pools`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PoolJson {
    /// The pool.
    pub name: String,
    /// Runners kept at all times.
    pub min: usize,
    /// Runners at most.
    pub max: usize,
    /// Slots per runner.
    pub max_concurrency: usize,
    /// The runners.
    pub runners: Vec<RunnerJson>,
    /// Runners booting.
    pub booting: usize,
    /// Callers waiting for a slot.
    pub waiting: usize,
}

fn pool_json(name: String, s: Snapshot) -> PoolJson {
    PoolJson {
        name,
        min: s.min,
        max: s.max,
        max_concurrency: s.max_concurrency,
        runners: s
            .runners
            .into_iter()
            .map(|r| RunnerJson {
                name: r.name,
                pid: r.pid,
                busy: r.busy,
                state: r.state.to_string(),
                age_ms: r.age.as_millis() as u64,
            })
            .collect(),
        booting: s.booting,
        waiting: s.waiting,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoundsBody {
    min: usize,
    max: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    #[serde(rename = "fn")]
    function: String,
    #[serde(default)]
    args: serde_json::Value,
    timeout_ms: Option<u64>,
}

async fn list(State(pools): State<Pools>) -> Json<Vec<PoolJson>> {
    Json(
        pools
            .all()
            .into_iter()
            .map(|p| pool_json(p.name(), p.snapshot()))
            .collect(),
    )
}

async fn bounds(
    State(pools): State<Pools>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<BoundsBody>,
) -> Response {
    let Some(pool) = pools.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no pool named {name:?}"));
    };
    match pool.set_bounds(body.min, body.max).await {
        Ok(()) => Json(pool_json(pool.name(), pool.snapshot())).into_response(),
        Err(e) => error_of(StatusCode::BAD_REQUEST, &e),
    }
}

async fn call(
    State(pools): State<Pools>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<CallBody>,
) -> Response {
    let Some(pool) = pools.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no pool named {name:?}"));
    };
    let timeout_ms = body.timeout_ms.unwrap_or(pool.config().timeout_ms);
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("timeout_ms must be between 1 and {MAX_TIMEOUT_MS}"),
        );
    }
    let timeout = Duration::from_millis(timeout_ms);
    match pool.call_json(&body.function, body.args, timeout).await {
        Ok(ran) => {
            Json(serde_json::json!({ "result": ran.value, "runner": ran.runner })).into_response()
        }
        Err(e) => error_of(status_of(&e), &e),
    }
}

/// The HTTP status for a failed call.
pub fn status_of(e: &PoolError) -> StatusCode {
    match e {
        PoolError::UnknownPool(_) | PoolError::UnknownFunction(_) => StatusCode::NOT_FOUND,
        PoolError::BadArgs(_) => StatusCode::BAD_REQUEST,
        PoolError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        PoolError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        PoolError::NoCapacity { .. }
        | PoolError::BootFailed { .. }
        | PoolError::Overloaded(_)
        | PoolError::Stopped(_) => StatusCode::SERVICE_UNAVAILABLE,
        PoolError::RunnerDied { .. } => StatusCode::BAD_GATEWAY,
        PoolError::Remote { error, .. } => match error {
            RemoteError::UnknownFunction(_) => StatusCode::NOT_FOUND,
            RemoteError::BadArgs(_) => StatusCode::BAD_REQUEST,
            RemoteError::BuildMismatch { .. } => StatusCode::CONFLICT,
            RemoteError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            RemoteError::ShuttingDown | RemoteError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            RemoteError::Failed(_)
            | RemoteError::BadOutput(_)
            | RemoteError::Panicked
            | RemoteError::Cancelled => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// `/api/pools`.
pub(crate) fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/api/pools", get(list))
        .route("/api/pools/{pool}", put(bounds))
        .route("/api/pools/{pool}/bounds", post(bounds))
        .route("/api/pools/{pool}/call", post(call))
        .with_state(drove.pools().clone())
}
