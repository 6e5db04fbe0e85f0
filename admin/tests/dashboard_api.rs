//! The dashboard's routes on an in-process node, through the admin router
//! and its guard: the page without a token, its data only with one,
//! hostile views refused, long lists paged on the server, the actions'
//! POST routes, and the cap on open streams.

// The helpers below are test code outside `#[test]` functions, where
// clippy.toml's allowance does not reach.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use drove::runtime::echo::Echo;
use drove::{Config, Drove, Pool};
use drove_admin::Guard;

mod common;

use common::{free_port, send, TOKEN};

async fn node() -> (Drove, Router) {
    let mut config = Config::new("solo");
    config.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.cookie = Some(format!("{:032x}", rand::random::<u128>()));
    config.jobs.store = drove::jobs::StoreUrl::Sqlite(":memory:".into());
    let drove = Drove::builder(config)
        .pool(Pool::builder("local").max(2))
        .start()
        .await
        .unwrap();
    let guard = Guard {
        token: Some(TOKEN.into()),
        hosts: Vec::new(),
    };
    let router = drove_admin::router(&drove, guard).await;
    (drove, router)
}

async fn frame(router: &Router, query: &str) -> Value {
    let (status, body) = send(
        router,
        "GET",
        &format!("/api/dashboard/frame?{query}"),
        true,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_is_public_and_its_data_is_not() {
    let (drove, router) = node().await;
    let (status, page) = send(&router, "GET", "/", false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/dashboard/app.js"), "{page}");
    let (status, script) = send(&router, "GET", "/dashboard/app.js", false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("textContent"));

    let (status, _) = send(&router, "GET", "/api/dashboard/frame", false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&router, "GET", "/api/dashboard/stream", false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another site's page may not load it either.
    let cross = Request::builder()
        .uri("/")
        .header("host", "127.0.0.1:8370")
        .header("origin", "http://evil.example")
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(cross).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let plain = Request::builder()
        .uri("/")
        .header("host", "127.0.0.1:8370")
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(plain).await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    let f = frame(&router, "").await;
    assert_eq!(f["summary"]["node"], "solo");
    assert_eq!(f["summary"]["members"][0]["status"], "up");
    assert_eq!(f["summary"]["pools"][0]["name"], "local");
    assert!(f["summary"]["queues"].is_array(), "{f}");
    drove.shutdown(drove::Shutdown::Leave).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_views_are_refused_with_the_reason() {
    let (drove, router) = node().await;
    for (query, why) in [
        ("panel=secrets", "unknown panel"),
        ("panel=jobs&state=sleeping", "unknown job state"),
        ("bogus=1", "unknown field"),
        ("offset=-1", "offset"),
        (&format!("q={}", "x".repeat(300)), "longer than"),
    ] {
        for route in ["frame", "stream"] {
            let (status, body) = send(
                &router,
                "GET",
                &format!("/api/dashboard/{route}?{query}"),
                true,
                None,
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{route}?{query}: {body}");
            assert!(body.contains(why), "{route}?{query}: {body}");
        }
    }
    drove.shutdown(drove::Shutdown::Leave).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_lists_come_a_page_at_a_time() {
    let (drove, router) = node().await;
    let holder = drove.node().spawn(Echo, ()).await.unwrap();
    for i in 0..120 {
        drove
            .registry()
            .register(&format!("user.{i:04}"), &holder)
            .unwrap();
        drove.cache().put(&format!("key.{i:04}"), &i, None).unwrap();
    }
    drove.registry().register("other", &holder).unwrap();

    for (panel, rows, name) in [("registry", "entries", "name"), ("cache", "keys", "key")] {
        let search = if panel == "registry" { "user." } else { "key." };
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let cursor = after
                .as_ref()
                .map(|a| format!("&after={a}"))
                .unwrap_or_default();
            let f = frame(&router, &format!("panel={panel}&q={search}{cursor}")).await;
            let p = &f["panel"];
            assert_eq!(p["matched"], 120, "{panel}: {p}");
            let page: Vec<String> = p[rows]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[name].as_str().unwrap().to_string())
                .collect();
            assert!(page.len() <= 50);
            seen.extend(page.iter().cloned());
            if p["more"] != true {
                break;
            }
            after = page.last().cloned();
        }
        let want: Vec<String> = (0..120)
            .map(|i| {
                format!(
                    "{}{i:04}",
                    if panel == "registry" { "user." } else { "key." }
                )
            })
            .collect();
        assert_eq!(seen, want, "{panel} pages");
    }
    drove.shutdown(drove::Shutdown::Leave).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_are_json_posts() {
    let (drove, router) = node().await;
    let child = json!({"type": "ticker", "restart": "permanent", "id": "t1", "args": {}});
    let (status, body) = send(&router, "POST", "/api/children", true, Some(child)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = send(
        &router,
        "POST",
        "/api/children/t1/terminate",
        true,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(
        &router,
        "POST",
        "/api/children/t1/terminate",
        true,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let bounds = json!({"min": 1, "max": 3});
    let (status, body) = send(
        &router,
        "POST",
        "/api/pools/local/bounds",
        true,
        Some(bounds),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        frame(&router, "panel=pools").await["summary"]["pools"][0]["max"],
        3
    );
    let (status, _) = send(
        &router,
        "POST",
        "/api/pools/nope/bounds",
        true,
        Some(json!({"min": 0, "max": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let job = json!({"queue": "later", "worker": "drove.noop", "in_ms": 600_000});
    let (status, body) = send(&router, "POST", "/api/jobs", true, Some(job)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_u64()
        .unwrap();
    let listed = frame(&router, "panel=jobs&queue=later&state=scheduled").await;
    assert_eq!(listed["panel"]["jobs"][0]["id"], id, "{listed}");
    let (status, body) = send(
        &router,
        "POST",
        &format!("/api/jobs/{id}/cancel"),
        true,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cancelled = frame(&router, "panel=jobs&queue=later&state=cancelled").await;
    assert_eq!(cancelled["panel"]["jobs"][0]["id"], id, "{cancelled}");

    // A form post from another site cannot act.
    let form = Request::builder()
        .method("POST")
        .uri("/api/children/t1/terminate")
        .header("host", "127.0.0.1:8370")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(
        router.clone().oneshot(form).await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    drove.shutdown(drove::Shutdown::Leave).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_capped_and_free_their_place() {
    let (drove, router) = node().await;
    let open = |router: Router| async move {
        let req = Request::builder()
            .uri("/api/dashboard/stream?panel=cluster")
            .header("host", "127.0.0.1:8370")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        router.oneshot(req).await.unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..drove_dashboard::hub::MAX_WATCHERS {
        let resp = open(router.clone()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        held.push(resp);
    }
    assert_eq!(
        open(router.clone()).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A stream sends frames: the first one comes at once.
    let first = held.pop().unwrap();
    let mut body = first.into_body().into_data_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(5), futures_next(&mut body))
        .await
        .unwrap();
    assert!(chunk.starts_with("data: {"), "{chunk}");
    drop(body);
    held.clear();
    // Each stream's feeder notices its reader is gone and frees its place.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while open(router.clone()).await.status() != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the places were not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drove.shutdown(drove::Shutdown::Leave).await;
}

/// The next chunk of a body stream, as text.
async fn futures_next(body: &mut axum::body::BodyDataStream) -> String {
    use tokio_stream::StreamExt;
    match body.next().await {
        Some(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        other => panic!("no frame: {other:?}"),
    }
}
