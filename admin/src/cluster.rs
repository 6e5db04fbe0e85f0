//! `GET /api/cluster` (this node and its member table) and `GET /metrics`
//! (Prometheus text from every service).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use drove::runtime::Node;
use drove::Drove;

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
    /// `up`, `unreachable` (up in gossip, but no transport session
    /// reaches it), `down`, `leaving` or `left`.
    pub status: String,
    /// Why it is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
            .map(|m| {
                let reason = node.unreachable_reason(&m.info.id);
                MemberJson {
                    name: m.info.id.name.clone(),
                    incarnation: m.info.id.incarnation.to_string(),
                    addr: m.info.addr,
                    http: m.info.http,
                    status: if reason.is_some() {
                        "unreachable".to_string()
                    } else {
                        m.status.as_str().to_string()
                    },
                    reason,
                }
            })
            .collect(),
    }
}

/// Every service's metrics, in one Prometheus text.
pub fn metrics_text(drove: &Drove) -> String {
    let mut text = drove.node().metrics_text();
    text.push_str(&drove.registry().metrics_text());
    text.push_str(&drove.pubsub().metrics_text());
    text.push_str(&drove.cache().metrics_text());
    text.push_str(&drove.pools().metrics_text());
    if let Some(jobs) = drove.jobs() {
        text.push_str(&jobs.metrics_text());
    }
    if let Some(events) = drove.events() {
        text.push_str(&events.metrics_text());
    }
    text
}

async fn cluster(State(drove): State<Drove>) -> Json<ClusterJson> {
    Json(cluster_json(drove.node()))
}

async fn metrics(State(drove): State<Drove>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&drove),
    )
}

/// `/api/cluster` and `/metrics`.
pub(crate) fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/api/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .with_state(drove.clone())
}
