//! The durable events' routes.
//!
//! - `POST /api/events` `{"type", "payload", "delay_ms"?, "at_ms"?,
//!   "direct"?}`: `{"id"}`. 400 for a bad type or body, 413 for a payload
//!   over the limit, 422 for a direct event no handler here takes, 503
//!   when the store is down.
//! - `GET /api/events/{id}`: `{"id", "type", "payload", "state",
//!   "signalled_by", "signalled_at_ms", "due_ms", "handlers": [{"handler",
//!   "job", "state", "attempts", "node", "errors", "attempted_at_ms",
//!   "completed_at_ms"}]}` (times in Unix ms); 404 if not stored.
//! - `GET /api/events/handled?scope=local`: what the built-in
//!   `drove.record` handler recorded on this node: `[{"id", "type",
//!   "node", "attempt", "handled_at_ms", "payload"}]`.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use drove::events::{EventId, Events, EventsError, When};
use drove::jobs::JobsError;
use drove::Drove;

use crate::reply::{error, error_of, JsonBody};

/// The body of `POST /api/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalJson {
    /// The event's type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Handle after this many ms.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Handle at this Unix time in ms.
    #[serde(default)]
    pub at_ms: Option<u64>,
    /// Handle at once on this node, bypassing the store.
    #[serde(default)]
    pub direct: bool,
}

/// The answer to `POST /api/events`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignalledJson {
    /// The event's id.
    pub id: u64,
}

/// The query of `GET /api/events/handled`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandledQuery {
    scope: String,
}

type Refused = (StatusCode, String);

fn events_of(drove: &Drove) -> Result<&Events, Refused> {
    drove.events().ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "this node has no events (it is a pool's runner)".to_string(),
        )
    })
}

fn failed(e: EventsError) -> Response {
    let status = match &e {
        EventsError::Type(_) | EventsError::Encode(_) => StatusCode::BAD_REQUEST,
        EventsError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        EventsError::NoHandler(_) => StatusCode::UNPROCESSABLE_ENTITY,
        EventsError::Jobs(JobsError::Store(_)) => StatusCode::SERVICE_UNAVAILABLE,
        EventsError::Jobs(_) => StatusCode::BAD_REQUEST,
        EventsError::Corrupt(..) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_of(status, &e)
}

fn when_of(body: &SignalJson) -> Result<When, Refused> {
    let given = [body.delay_ms.is_some(), body.at_ms.is_some(), body.direct];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err((
            StatusCode::BAD_REQUEST,
            "give at most one of delay_ms, at_ms and direct".to_string(),
        ));
    }
    Ok(match (body.delay_ms, body.at_ms) {
        (Some(ms), _) => When::After(Duration::from_millis(ms)),
        (_, Some(ms)) => When::AtMs(ms),
        _ if body.direct => When::Direct,
        _ => When::Now,
    })
}

async fn signal(State(drove): State<Drove>, JsonBody(body): JsonBody<SignalJson>) -> Response {
    let checked = events_of(&drove).and_then(|events| Ok((events, when_of(&body)?)));
    let (events, when) = match checked {
        Ok(ok) => ok,
        Err((status, reason)) => return error(status, reason),
    };
    match events.signal_value(&body.kind, body.payload, when).await {
        Ok(id) => (StatusCode::CREATED, Json(SignalledJson { id: id.0 })).into_response(),
        Err(e) => failed(e),
    }
}

async fn show(State(drove): State<Drove>, Path(raw): Path<String>) -> Response {
    let events = match events_of(&drove) {
        Ok(events) => events,
        Err((status, reason)) => return error(status, reason),
    };
    let Ok(id) = raw.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{raw:?} is not an event id"),
        );
    };
    match events.get(EventId(id)).await {
        Ok(Some(info)) => Json(info).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no stored event {id}")),
        Err(e) => failed(e),
    }
}

async fn handled(State(drove): State<Drove>, Query(query): Query<HandledQuery>) -> Response {
    if query.scope != "local" {
        return error(
            StatusCode::BAD_REQUEST,
            "scope must be local: each node keeps its own ledger",
        );
    }
    let events = match events_of(&drove) {
        Ok(events) => events,
        Err((status, reason)) => return error(status, reason),
    };
    match events.ledger() {
        Some(ledger) => Json(ledger.entries()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "this node has no drove.record handler (built-ins are off)",
        ),
    }
}

/// `/api/events`.
pub fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/api/events", post(signal))
        .route("/api/events/handled", get(handled))
        .route("/api/events/{id}", get(show))
        .with_state(drove.clone())
}
