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

async fn cluster(State(node): State<Node>) -> Json<ClusterJson> {
    Json(cluster_json(&node))
}

async fn metrics(State(node): State<Node>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics_text(),
    )
}

/// The admin routes, bound to `node`.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/api/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .with_state(node)
}

/// Serves the admin routes on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, node: Node) -> std::io::Result<()> {
    axum::serve(listener, router(node)).await
}
