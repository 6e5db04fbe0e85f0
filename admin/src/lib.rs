//! drove's admin HTTP API, and a small client for it.
//!
//! - `GET /api/cluster`: this node and its member table, as JSON.
//! - `GET /metrics`: Prometheus text.
//!
//! Applications that serve their own pages on the same listener merge
//! [`router`] into theirs.
//!
//! # Layout
//!
//! - this file: the routes and their JSON types.
//! - [`client`]: a dependency-free HTTP/1.1 GET for the CLI and tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod client;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use drove_runtime::Node;

/// One row of `/api/cluster`'s member table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberJson {
    /// Node name.
    pub name: String,
    /// Incarnation, 16 hex digits.
    pub incarnation: String,
    /// Its `--listen` address.
    pub addr: String,
    /// Its `--http` address.
    pub http: String,
    /// `up`, `down`, `leaving` or `left`.
    pub status: String,
}

/// The body of `GET /api/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterJson {
    /// This node's name.
    pub node: String,
    /// This node's incarnation.
    pub incarnation: String,
    /// Every known member, this node first.
    pub members: Vec<MemberJson>,
}

/// The cluster view of `node` as JSON.
pub fn cluster_json(node: &Node) -> ClusterJson {
    let id = node.id();
    ClusterJson {
        node: id.name.clone(),
        incarnation: id.incarnation.to_string(),
        members: node
            .members()
            .into_iter()
            .map(|m| MemberJson {
                name: m.info.id.name.clone(),
                incarnation: m.info.id.incarnation.to_string(),
                addr: m.info.addr,
                http: m.info.http,
                status: m.status.as_str().to_string(),
            })
            .collect(),
    }
}

/// More Prometheus text to append to `/metrics` (from layers above the
/// runtime, such as the registry).
pub type ExtraMetrics = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    node: Node,
    extra: Vec<ExtraMetrics>,
}

async fn cluster(State(state): State<AdminState>) -> Json<ClusterJson> {
    Json(cluster_json(&state.node))
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut text = state.node.metrics_text();
    for extra in &state.extra {
        text.push_str(&extra());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The admin routes, bound to `node`, with `extra` metrics appended to
/// `/metrics`.
pub fn router(node: Node, extra: Vec<ExtraMetrics>) -> Router {
    Router::new()
        .route("/api/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .with_state(AdminState { node, extra })
}
