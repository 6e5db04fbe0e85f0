//! `GET /healthz` and `GET /readyz`, for process supervisors and
//! Kubernetes probes. They need no token (a probe cannot read a Secret into
//! a header) and say nothing but this node's state.
//!
//! - `/healthz` (liveness): 200 while the node's HTTP side answers; a
//!   wedged process stops answering and is restarted.
//! - `/readyz` (readiness): 200 while this node is up in its own view and
//!   not shutting down; 503 otherwise (before it is up, and during a
//!   SIGTERM handoff, so traffic goes elsewhere while it leaves).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use drove::runtime::MemberStatus;
use drove::Drove;

/// The body of both probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthJson {
    /// This node's name.
    pub node: String,
    /// `up`, `starting` or `stopping`.
    pub state: String,
    /// The members this node sees up, itself included.
    pub members_up: usize,
}

fn health(drove: &Drove) -> (bool, HealthJson) {
    let node = drove.node();
    let id = node.id();
    let members = node.members();
    let me_up = members
        .iter()
        .any(|m| m.info.id == id && m.status == MemberStatus::Up);
    let state = match (drove.is_stopping(), me_up) {
        (true, _) => "stopping",
        (false, true) => "up",
        (false, false) => "starting",
    };
    let body = HealthJson {
        node: id.name.clone(),
        state: state.to_string(),
        members_up: members
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .count(),
    };
    (state == "up", body)
}

async fn healthz(State(drove): State<Drove>) -> Json<HealthJson> {
    Json(health(&drove).1)
}

async fn readyz(State(drove): State<Drove>) -> (StatusCode, Json<HealthJson>) {
    let (ready, body) = health(&drove);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// `/healthz` and `/readyz`.
pub fn routes(drove: &Drove) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(drove.clone())
}
