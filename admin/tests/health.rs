//! `/healthz` and `/readyz` through the admin router: open without the
//! token, still behind the Host check, and readiness failing as soon as a
//! shutdown begins.

#![allow(clippy::unwrap_used)]

use axum::http::StatusCode;
use serde_json::Value;

use drove::{Config, Drove, Shutdown};
use drove_admin::Guard;

mod common;

use common::{free_port, send, TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn probes_need_no_token_and_readiness_ends_with_shutdown() {
    let mut config = Config::new("probed");
    config.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.cookie = Some(format!("{:032x}", rand::random::<u128>()));
    config.jobs.store = drove::jobs::StoreUrl::Sqlite(":memory:".into());
    let drove = Drove::builder(config).start().await.unwrap();
    let guard = Guard {
        token: Some(TOKEN.into()),
        hosts: Vec::new(),
    };
    let router = drove_admin::router(&drove, guard).await;

    let (status, body) = send(&router, "GET", "/healthz", false, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&router, "GET", "/readyz", false, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["node"], "probed");
    assert_eq!(ready["state"], "up");
    assert_eq!(ready["members_up"], 1);
    // The data routes still want the token.
    let (status, _) = send(&router, "GET", "/api/cluster", false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    drove.shutdown(Shutdown::Leave).await;
    let (status, body) = send(&router, "GET", "/readyz", false, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let stopping: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stopping["state"], "stopping");
    let (status, _) = send(&router, "GET", "/healthz", false, None).await;
    assert_eq!(status, StatusCode::OK, "a stopping node is still alive");
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_keep_the_host_check() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let mut config = Config::new("probed2");
    config.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.cookie = Some(format!("{:032x}", rand::random::<u128>()));
    config.jobs.store = drove::jobs::StoreUrl::Sqlite(":memory:".into());
    let drove = Drove::builder(config).start().await.unwrap();
    let router = drove_admin::router(&drove, Guard::default()).await;
    let req = Request::get("/readyz")
        .header("host", "attacker.example")
        .body(Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    drove.shutdown(Shutdown::Leave).await;
}
