//! The pub/sub routes: publish JSON, follow a topic as server-sent
//! events, list who subscribes to what.
//!
//! - `GET /api/pubsub`: `[{"topic", "nodes": [..]}]`.
//! - `POST /api/pubsub/{topic}` with any JSON body: broadcasts it as a
//!   [`JsonMessage`]; answers `{"nodes", "local", "failed"}` (202).
//!   `?node=NAME` sends it to that node's subscribers only
//!   (`direct_broadcast`), `?local=true` to this node's only.
//! - `GET /api/pubsub/{topic}/events`: a `text/event-stream` of the
//!   topic's [`JsonMessage`]s, one `data:` line each. A client that
//!   falls more than 256 messages behind gets an `event: lagged` whose
//!   data is how many it missed.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use drove::pubsub::{JsonMessage, Lagged, PubSub};
use drove::runtime::MemberStatus;
use drove::Drove;

use crate::reply::{error, error_of};

/// One row of `GET /api/pubsub`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TopicJson {
    /// The topic.
    pub topic: String,
    /// Names of the nodes with subscribers.
    pub nodes: Vec<String>,
}

async fn list(State(pubsub): State<PubSub>) -> Json<Vec<TopicJson>> {
    Json(
        pubsub
            .topics()
            .into_iter()
            .map(|(topic, nodes)| TopicJson {
                topic,
                nodes: nodes.into_iter().map(|n| n.name).collect(),
            })
            .collect(),
    )
}

/// Where `POST /api/pubsub/{topic}` delivers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishQuery {
    /// Only to the subscribers of this node (by name): `direct_broadcast`.
    pub node: Option<String>,
    /// Only to this node's own subscribers: `local_broadcast`.
    #[serde(default)]
    pub local: bool,
}

async fn publish(
    State(pubsub): State<PubSub>,
    Path(topic): Path<String>,
    query: Result<Query<PublishQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let msg = JsonMessage(value.to_string());
    let result = match (&query.node, query.local) {
        (Some(_), true) => return error(StatusCode::BAD_REQUEST, "give node or local, not both"),
        (Some(name), false) => {
            let member = pubsub
                .node()
                .members()
                .into_iter()
                .find(|m| m.info.id.name == *name && m.status == MemberStatus::Up);
            match member {
                Some(m) => pubsub.direct_broadcast(&m.info.id, &topic, &msg),
                None => return error(StatusCode::NOT_FOUND, format!("no up member {name:?}")),
            }
        }
        (None, true) => pubsub.local_broadcast(&topic, &msg),
        (None, false) => pubsub.broadcast(&topic, &msg),
    };
    match result {
        Ok(published) => (StatusCode::ACCEPTED, Json(published)).into_response(),
        Err(e) => error_of(StatusCode::BAD_REQUEST, &e),
    }
}

async fn events(State(pubsub): State<PubSub>, Path(topic): Path<String>) -> Response {
    match pubsub.subscribe_stream::<JsonMessage>(&topic) {
        Ok(sub) => {
            // A visitor that reads too slowly gets a `lagged` event with
            // the number of messages it missed, not a growing buffer.
            let stream = sub.map(|m| {
                Ok::<Event, Infallible>(match m {
                    Ok(m) => Event::default().data(m.0),
                    Err(Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                })
            });
            Sse::new(stream)
                // A comment every few seconds: proxies keep the stream open,
                // and a closed client is noticed (and unsubscribed) soon.
                .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
                .into_response()
        }
        Err(e) => error_of(StatusCode::BAD_REQUEST, &e),
    }
}

/// `/api/pubsub`.
pub(crate) fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/api/pubsub", get(list))
        .route("/api/pubsub/{topic}", post(publish))
        .route("/api/pubsub/{topic}/events", get(events))
        .with_state(drove.pubsub().clone())
}
