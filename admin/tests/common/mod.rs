//! What the admin router's tests share: a free port (the runtime's) and one request
//! through the router with the test token.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

/// The bearer token the tests' guards want.
pub(crate) const TOKEN: &str = "t0ken-for-the-admin-tests";

pub(crate) use drove::runtime::testing::free_port;

/// Sends one request (with the token if `token`) and returns the status
/// and body.
pub(crate) async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    token: bool,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8370");
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
