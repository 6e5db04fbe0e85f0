//! The cache's routes.
//!
//! - `GET /api/cache`: the live keys on this node.
//! - `GET /api/cache/{key}`: `{"key", "value", "expires_at_ms", "written_by"}`,
//!   404 when absent or expired.
//! - `PUT /api/cache/{key}` `{"value": <json>, "ttl_ms": N?, "only_if_absent": bool?}`:
//!   204, or 409 when `only_if_absent` and the key has a live value, or
//!   507 when the write would take the cache past its byte cap here.
//! - `DELETE /api/cache/{key}`: 204, or 404 when there was nothing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use std::time::Duration;

use drove::cache::{Cache, CacheError};
use drove::Drove;

use crate::reply::{error, error_of};

/// The body of `PUT /api/cache/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    /// The value.
    pub value: serde_json::Value,
    /// Time to live in milliseconds.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
    /// `put_new`: write only if the key has no live value.
    #[serde(default)]
    pub only_if_absent: bool,
}

/// The answer of `GET /api/cache/{key}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EntryJson {
    /// The key.
    pub key: String,
    /// The value.
    pub value: serde_json::Value,
    /// Its deadline, cluster time in ms since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// The node whose write this is.
    pub written_by: String,
}

async fn keys(State(cache): State<Cache>) -> Json<Vec<String>> {
    Json(cache.keys())
}

async fn get_entry(State(cache): State<Cache>, Path(key): Path<String>) -> Response {
    let Some(entry) = cache.entry(&key) else {
        return error(StatusCode::NOT_FOUND, format!("no live entry {key:?}"));
    };
    let value = serde_json::from_str(&entry.json).unwrap_or(serde_json::Value::Null);
    Json(EntryJson {
        key,
        value,
        expires_at_ms: entry.expires_at_ms,
        written_by: entry.written_by,
    })
    .into_response()
}

async fn put_entry(State(cache): State<Cache>, Path(key): Path<String>, body: Bytes) -> Response {
    let body: PutBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad body: {e}")),
    };
    let ttl = body.ttl_ms.map(Duration::from_millis);
    let result = if body.only_if_absent {
        cache.put_new(&key, &body.value, ttl)
    } else {
        cache.put(&key, &body.value, ttl).map(|()| true)
    };
    match result {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::CONFLICT, format!("{key:?} already has a value")),
        Err(e @ CacheError::Full { .. }) => error_of(StatusCode::INSUFFICIENT_STORAGE, &e),
        Err(e) => error_of(StatusCode::BAD_REQUEST, &e),
    }
}

async fn delete_entry(State(cache): State<Cache>, Path(key): Path<String>) -> Response {
    match cache.delete(&key) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no live entry {key:?}")),
        Err(e) => error_of(StatusCode::BAD_REQUEST, &e),
    }
}

/// `/api/cache`.
pub(crate) fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/api/cache", get(keys))
        .route(
            "/api/cache/{key}",
            get(get_entry).put(put_entry).delete(delete_entry),
        )
        .with_state(drove.cache().clone())
}
