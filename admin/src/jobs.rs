//! The durable jobs' routes.
//!
//! - `POST /api/jobs` `{"queue", "worker", "args", "in_ms"?, "at_ms"?,
//!   "priority"?, "unique"?: {"period_ms", "keys"?, "hold"?}, "max_retries"?}`:
//!   `{"id"}`, or `{"id", "duplicate": true}` for a unique hit. 400 for a
//!   bad job, 413 for args over the limit, 503 when the store is down.
//! - `GET /api/jobs/{id}`: `{"id", "queue", "worker", "state", "attempt",
//!   "errors", "node", "enqueued_at_ms", "scheduled_at_ms",
//!   "attempted_at_ms", "completed_at_ms"}` (times in Unix ms).
//! - `DELETE /api/jobs/{id}` (or `POST /api/jobs/{id}/cancel`): cancels;
//!   `{"id", "was"}` (its state before).
//! - `POST /api/jobs/{id}/retry`: a retryable, dead or cancelled job runs
//!   again; `{"id", "was"}`.
//! - `GET /api/jobs/queues`: `[{"queue", "paused": {"cluster", "nodes"},
//!   "counts": {"<state>": n}}]`.
//! - `POST /api/jobs/queues/{q}/pause` and `.../resume` `{"scope": "node"
//!   | "cluster", "wait_ms"?}`: with `wait_ms`, answers once this node's
//!   pipelines on the queue took it (504 if not in time).
//! - `GET /api/jobs/pipelines`: this node's pipelines.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use drove::jobs::job::AttemptError;
use drove::jobs::spec::SpecError;
use drove::jobs::UniqueHold;
use drove::jobs::{JobId, JobSpec, Jobs, JobsError, Scope, UniqueBy};
use drove::Drove;

use crate::reply::{error, error_of, JsonBody};

/// `unique` in `POST /api/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniqueJson {
    /// How long the uniqueness holds.
    pub period_ms: u64,
    /// Top-level keys of the args that count (all of the args if absent).
    #[serde(default)]
    pub keys: Option<Vec<String>>,
    /// `"live"` (the default: a cancelled or dead job releases the key) or
    /// `"always"` (every state holds it for the period).
    #[serde(default)]
    pub hold: UniqueHold,
}

/// The body of `POST /api/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueJson {
    /// The queue.
    pub queue: String,
    /// The worker's name.
    pub worker: String,
    /// Its args.
    #[serde(default)]
    pub args: serde_json::Value,
    /// Run after this many ms.
    #[serde(default)]
    pub in_ms: Option<u64>,
    /// Run at this Unix time in ms.
    #[serde(default)]
    pub at_ms: Option<u64>,
    /// 0 (first) to 9.
    #[serde(default)]
    pub priority: Option<u8>,
    /// Uniqueness.
    #[serde(default)]
    pub unique: Option<UniqueJson>,
    /// Retries before the dead set.
    #[serde(default)]
    pub max_retries: Option<u32>,
}

/// The answer to `POST /api/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnqueuedJson {
    /// The job's id.
    pub id: u64,
    /// Present and true for a unique hit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// A job in `GET /api/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobJson {
    /// Its id.
    pub id: u64,
    /// Its queue.
    pub queue: String,
    /// Its worker.
    pub worker: String,
    /// scheduled, available, executing, retryable, completed, dead or
    /// cancelled.
    pub state: String,
    /// Attempts so far.
    pub attempt: u32,
    /// Each failed attempt's error.
    pub errors: Vec<AttemptError>,
    /// The node that holds or last held it (`name#incarnation`).
    pub node: Option<String>,
    /// Unix ms.
    pub enqueued_at_ms: u64,
    /// Unix ms.
    pub scheduled_at_ms: u64,
    /// Unix ms.
    pub attempted_at_ms: Option<u64>,
    /// Unix ms.
    pub completed_at_ms: Option<u64>,
}

/// `paused` in `GET /api/jobs/queues`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PausedJson {
    /// Paused cluster-wide.
    pub cluster: bool,
    /// Nodes (up now) that paused it for themselves.
    pub nodes: Vec<String>,
}

/// A queue in `GET /api/jobs/queues`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueueJson {
    /// The queue.
    pub queue: String,
    /// Its pauses.
    pub paused: PausedJson,
    /// Jobs by state.
    pub counts: std::collections::BTreeMap<String, u64>,
}

/// The body of pause and resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseJson {
    /// "node" or "cluster".
    pub scope: String,
    /// Wait this long for this node's pipelines to take it.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// A pipeline in `GET /api/jobs/pipelines`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PipelineJson {
    /// Its name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// Jobs in flight at most.
    pub max_demand: u32,
    /// Jobs per batch.
    pub batch_size: u32,
    /// Jobs in flight now.
    pub busy: usize,
    /// What it is doing.
    pub status: String,
}

/// A request refused before it reached the jobs: status and reason.
type Refused = (StatusCode, String);

fn refuse((status, reason): Refused) -> Response {
    error(status, reason)
}

fn jobs_of(drove: &Drove) -> Result<&Jobs, Refused> {
    drove.jobs().ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "this node runs no jobs (it is a pool's runner)".to_string(),
        )
    })
}

fn failed(e: JobsError) -> Response {
    let status = match &e {
        JobsError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        JobsError::Spec(SpecError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        JobsError::Spec(_) | JobsError::Pipeline { .. } | JobsError::Cron(_) => {
            StatusCode::BAD_REQUEST
        }
        JobsError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
    };
    error_of(status, &e)
}

fn spec_of(body: EnqueueJson) -> Result<JobSpec, Refused> {
    if body.in_ms.is_some() && body.at_ms.is_some() {
        return Err((
            StatusCode::BAD_REQUEST,
            "give in_ms or at_ms, not both".to_string(),
        ));
    }
    let mut spec = JobSpec::raw(body.queue, body.worker, body.args);
    if let Some(ms) = body.in_ms {
        spec = spec.run_in(Duration::from_millis(ms));
    }
    if let Some(ms) = body.at_ms {
        spec = spec.run_at_ms(ms);
    }
    if let Some(p) = body.priority {
        spec = spec.priority(p);
    }
    if let Some(u) = body.unique {
        spec = spec.unique(UniqueBy {
            period: Duration::from_millis(u.period_ms),
            keys: u.keys,
            hold: u.hold,
        });
    }
    if let Some(n) = body.max_retries {
        spec = spec.max_retries(n);
    }
    Ok(spec)
}

async fn enqueue(State(drove): State<Drove>, JsonBody(body): JsonBody<EnqueueJson>) -> Response {
    let jobs = match jobs_of(&drove) {
        Ok(jobs) => jobs,
        Err(r) => return refuse(r),
    };
    let spec = match spec_of(body) {
        Ok(spec) => spec,
        Err(r) => return refuse(r),
    };
    match jobs.insert(spec).await {
        Ok(e) => Json(EnqueuedJson {
            id: e.id.0,
            duplicate: e.duplicate,
        })
        .into_response(),
        Err(e) => failed(e),
    }
}

fn job_id(raw: &str) -> Result<JobId, Refused> {
    raw.parse::<u64>()
        .map(JobId)
        .map_err(|_| (StatusCode::BAD_REQUEST, format!("{raw:?} is not a job id")))
}

async fn show(State(drove): State<Drove>, Path(id): Path<String>) -> Response {
    let (jobs, id) = match (jobs_of(&drove), job_id(&id)) {
        (Ok(jobs), Ok(id)) => (jobs, id),
        (Err(r), _) | (_, Err(r)) => return refuse(r),
    };
    match jobs.get(id).await {
        Ok(Some(j)) => Json(JobJson {
            id: j.id.0,
            queue: j.queue,
            worker: j.worker,
            state: j.state.to_string(),
            attempt: j.attempt,
            errors: j.errors,
            node: j.node,
            enqueued_at_ms: j.enqueued_at_ms,
            scheduled_at_ms: j.scheduled_at_ms,
            attempted_at_ms: j.attempted_at_ms,
            completed_at_ms: j.completed_at_ms,
        })
        .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(e) => failed(e),
    }
}

async fn cancel(State(drove): State<Drove>, Path(id): Path<String>) -> Response {
    let (jobs, id) = match (jobs_of(&drove), job_id(&id)) {
        (Ok(jobs), Ok(id)) => (jobs, id),
        (Err(r), _) | (_, Err(r)) => return refuse(r),
    };
    match jobs.cancel(id).await {
        Ok(Some(was)) => Json(serde_json::json!({"id": id.0, "was": was})).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(e) => failed(e),
    }
}

async fn retry(State(drove): State<Drove>, Path(id): Path<String>) -> Response {
    let (jobs, id) = match (jobs_of(&drove), job_id(&id)) {
        (Ok(jobs), Ok(id)) => (jobs, id),
        (Err(r), _) | (_, Err(r)) => return refuse(r),
    };
    match jobs.retry(id).await {
        Ok(Some(was)) => Json(serde_json::json!({"id": id.0, "was": was})).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(e) => failed(e),
    }
}

/// `GET /api/jobs/queues` as data: nodes that are not up are left out of
/// the node pauses (a node pause ends with the node).
pub async fn queues_json(drove: &Drove, jobs: &Jobs) -> Result<Vec<QueueJson>, JobsError> {
    let up: Vec<String> = drove
        .node()
        .up_members()
        .into_iter()
        .map(|id| id.name)
        .collect();
    Ok(jobs
        .queues()
        .await?
        .into_iter()
        .map(|q| QueueJson {
            queue: q.queue,
            paused: PausedJson {
                cluster: q.paused,
                nodes: q
                    .paused_nodes
                    .into_iter()
                    .filter(|n| up.contains(n))
                    .collect(),
            },
            counts: q
                .counts
                .into_iter()
                .map(|(state, n)| (state.to_string(), n))
                .collect(),
        })
        .collect())
}

async fn queues(State(drove): State<Drove>) -> Response {
    let jobs = match jobs_of(&drove) {
        Ok(jobs) => jobs,
        Err(r) => return refuse(r),
    };
    match queues_json(&drove, jobs).await {
        Ok(queues) => Json(queues).into_response(),
        Err(e) => failed(e),
    }
}

async fn pause_or_resume(drove: Drove, queue: String, body: PauseJson, pause: bool) -> Response {
    let jobs = match jobs_of(&drove) {
        Ok(jobs) => jobs,
        Err(r) => return refuse(r),
    };
    let scope = match body.scope.as_str() {
        "node" => Scope::Node,
        "cluster" => Scope::Cluster,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("scope {other:?}: expected \"node\" or \"cluster\""),
            )
        }
    };
    let wait = body.wait_ms.map(|ms| Duration::from_millis(ms.min(60_000)));
    let result = if pause {
        jobs.pause(&queue, scope, wait).await
    } else {
        jobs.resume(&queue, scope, wait).await
    };
    match result {
        Ok(()) => Json(serde_json::json!({"queue": queue, "paused": pause, "scope": body.scope}))
            .into_response(),
        Err(e) => failed(e),
    }
}

async fn pause(
    State(drove): State<Drove>,
    Path(queue): Path<String>,
    JsonBody(body): JsonBody<PauseJson>,
) -> Response {
    pause_or_resume(drove, queue, body, true).await
}

async fn resume(
    State(drove): State<Drove>,
    Path(queue): Path<String>,
    JsonBody(body): JsonBody<PauseJson>,
) -> Response {
    pause_or_resume(drove, queue, body, false).await
}

async fn pipelines(State(drove): State<Drove>) -> Response {
    let jobs = match jobs_of(&drove) {
        Ok(jobs) => jobs,
        Err(r) => return refuse(r),
    };
    let list: Vec<PipelineJson> = jobs
        .pipelines()
        .into_iter()
        .map(|p| PipelineJson {
            name: p.config.name,
            queue: p.config.queue,
            max_demand: p.config.max_demand,
            batch_size: p.config.batch_size,
            busy: p.busy,
            status: format!("{:?}", p.status).to_lowercase(),
        })
        .collect();
    Json(list).into_response()
}

/// `/api/jobs`.
pub fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/api/jobs", post(enqueue))
        .route("/api/jobs/queues", get(queues))
        .route("/api/jobs/pipelines", get(pipelines))
        .route("/api/jobs/queues/{queue}/pause", post(pause))
        .route("/api/jobs/queues/{queue}/resume", post(resume))
        .route("/api/jobs/{id}", get(show).delete(cancel))
        .route("/api/jobs/{id}/retry", post(retry))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .with_state(drove.clone())
}
