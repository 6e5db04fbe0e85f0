//! The demo as a web visitor would attack it: the admin API is not on the
//! public port, sessions cannot be forged, a damaged stored record gives an
//! error and not a crash, one client cannot open a thousand streams, and
//! the admin API refuses cross-site writes and requests without its token.

// Helpers outside #[test] functions fail the test as loudly as an assert.
#![allow(clippy::expect_used)]

use std::time::Duration;

use drove_admin::client::request;
use drove_tests::{wait_for, NodeProc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LONG: Duration = Duration::from_secs(60);
const T: Duration = Duration::from_secs(10);

fn demo(n: usize, extra: &[&str]) -> Vec<NodeProc> {
    let secret = drove_tests::secret_file().to_string_lossy().into_owned();
    let cookie = drove_tests::random_hex();
    let mut args = vec![
        "--steps",
        "3",
        "--step-ms",
        "100",
        "--file-kb",
        "3",
        "--secret-file",
        &secret,
    ];
    args.extend_from_slice(extra);
    drove_tests::download_manager_nodes(n, "w", &cookie, &args)
}

async fn call(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let r = request(addr, method, path, headers, body, T)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    (r.status, r.body)
}

/// The session cookie a fresh visitor gets from the page.
async fn visitor(app: &str) -> String {
    let r = request(app, "GET", "/", &[], "", T).await.expect("page");
    let set = r.header("set-cookie").expect("a session cookie");
    set.split(';').next().expect("cookie").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_visitor_reaches_only_the_app_and_their_own_download() {
    let _machine = drove_tests::shared_machine().await;
    let mut nodes = demo(1, &[]);
    drove_tests::start_all_and_wait(&mut nodes, LONG).await;
    let (app, admin) = (nodes[0].app_addr(), nodes[0].http_addr());

    // Every admin route answers 404 on the public port, 200 on its own.
    for path in [
        "/api/cluster",
        "/metrics",
        "/api/cache",
        "/api/registry",
        "/api/children",
        "/api/pubsub",
    ] {
        assert_eq!(
            call(&app, "GET", path, &[], "").await.0,
            404,
            "{path} on the public port"
        );
        assert_eq!(
            call(&admin, "GET", path, &[], "").await.0,
            200,
            "{path} on the admin port"
        );
    }
    let ticker = r#"{"type":"ticker","args":{"interval_ms":1}}"#;
    assert_eq!(
        call(&app, "POST", "/api/children", &[], ticker).await.0,
        404
    );
    let put = r#"{"value":{"file_url":"http://evil.example/"}}"#;
    assert_eq!(
        call(&app, "PUT", "/api/cache/dm:download:u1", &[], put)
            .await
            .0,
        404
    );

    // A user's download, then forged and tampered sessions: each is a new
    // user who sees nothing.
    let cookie = visitor(&app).await;
    let (status, body) = call(&app, "POST", "/api/downloads", &[("Cookie", &cookie)], "").await;
    assert_eq!(status, 201, "{body}");
    let d: Value = serde_json::from_str(&body).expect("json");
    let id = d["id"].as_str().expect("id").to_string();
    let value = cookie.strip_prefix("dm_session=").expect("session");
    let (user, rest) = value.split_once('.').expect("user.rest");
    let tampered = [
        format!("dm_session=u0000000000000000.{rest}"),
        format!("dm_session={user}.1.99999999999.{}", "00".repeat(32)),
        format!(
            "dm_session={}",
            value.replace(|c: char| c.is_ascii_digit(), "7")
        ),
        "dm_session=garbage".to_string(),
    ];
    for forged in &tampered {
        let r = request(
            &app,
            "GET",
            "/api/downloads/current",
            &[("Cookie", forged)],
            "",
            T,
        )
        .await
        .expect("answer");
        assert_eq!(r.status, 404, "{forged} read the download: {}", r.body);
        assert!(
            r.header("set-cookie").is_some(),
            "{forged} was not treated as a new user"
        );
    }
    let (status, _) = call(
        &app,
        "GET",
        "/api/downloads/current",
        &[("Cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(status, 200, "the real session still works");

    // A manifest stored with a huge size (through the admin API, as a
    // member could): the file request fails cleanly; the node lives on.
    wait_for(LONG, "the download to be ready", || async {
        let (_, body) = call(
            &app,
            "GET",
            "/api/downloads/current",
            &[("Cookie", &cookie)],
            "",
        )
        .await;
        (serde_json::from_str::<Value>(&body).ok()?["state"] == "ready").then_some(())
    })
    .await;
    let huge = serde_json::json!({
        "value": { "download_id": id, "chunks": 3, "size": 1u64 << 62, "sha256": "0".repeat(64), "nodes": [] }
    });
    let (status, body) = call(
        &admin,
        "PUT",
        &format!("/api/cache/dm:file:{id}"),
        &[],
        &huge.to_string(),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let (status, body) = call(
        &app,
        "GET",
        "/api/downloads/current/file",
        &[("Cookie", &cookie)],
        "",
    )
    .await;
    assert!(status >= 500, "{status} {body}");
    assert!(body.contains("size"), "{body}");
    assert!(nodes[0].is_running(), "the node died");
    assert_eq!(call(&app, "GET", "/", &[], "").await.0, 200);

    // A thousand progress streams from one client: a few are served, the
    // rest refused (429, or 503 on a connection closed for room) or left
    // waiting past the connection cap, and the node still answers others.
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (app, cookie) = (app.clone(), cookie.clone());
        readers.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(&app).await.ok()?;
            let req = format!(
                "GET /api/downloads/events HTTP/1.1\r\nHost: {app}\r\nCookie: {cookie}\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.ok()?;
            let mut head = [0u8; 12];
            let answered =
                tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head)).await;
            let code = match answered {
                Ok(Ok(_)) => head
                    .get(9..12)
                    .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u16>().ok()),
                _ => None,
            };
            Some((code, s))
        });
    }
    let mut opened = Vec::new();
    let (mut served, mut refused) = (0, 0);
    while let Some(done) = readers.join_next().await {
        if let Ok(Some((code, s))) = done {
            match code {
                Some(200) => served += 1,
                // 429 from the app; 503 from the listener, for a request
                // that arrived on a connection it had just chosen to close
                // to make room.
                Some(429) | Some(503) => refused += 1,
                _ => {}
            }
            opened.push(s);
        }
    }
    assert!(served <= 16, "{served} streams served to one client");
    assert!(served >= 1, "the client's first stream was refused");
    assert!(refused >= 400, "only {refused} of 1000 refused");
    drop(opened);
    wait_for(T, "the node to serve again", || async {
        (call(&app, "GET", "/", &[], "").await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_refuses_cross_site_writes_and_wants_its_token() {
    let _machine = drove_tests::shared_machine().await;
    let token_file = drove_tests::secret_file();
    let token = std::fs::read_to_string(&token_file)
        .expect("token")
        .trim()
        .to_string();
    let token_path = token_file.to_string_lossy().into_owned();
    let mut nodes = demo(1, &["--admin-token-file", &token_path]);
    for n in nodes.iter_mut() {
        n.start();
    }
    let admin = nodes[0].http_addr();
    let bearer = format!("Bearer {token}");
    let auth = ("Authorization", bearer.as_str());
    wait_for(LONG, "the admin API", || async {
        (request(&admin, "GET", "/api/cluster", &[auth], "", T)
            .await
            .ok()?
            .status
            == 200)
            .then_some(())
    })
    .await;
    assert_eq!(
        call(&admin, "GET", "/api/cluster", &[], "").await.0,
        401,
        "no token"
    );
    let wrong = ("Authorization", "Bearer not-the-token");
    assert_eq!(
        call(&admin, "GET", "/api/cluster", &[wrong], "").await.0,
        401
    );

    // A cross-site form post: text/plain, from another origin.
    let ticker = r#"{"type":"ticker","restart":"transient","args":{"interval_ms":1000}}"#;
    let raw = |headers: Vec<(&'static str, String)>| {
        let admin = admin.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&admin)
                .await
                .expect("connect");
            let mut req = format!(
                "POST /api/children HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
                ticker.len()
            );
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            req.push_str(ticker);
            s.write_all(req.as_bytes()).await.expect("write");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            out.split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok())
                .unwrap_or(0)
        }
    };
    let host = ("Host", admin.clone());
    let plain = ("Content-Type", "text/plain".to_string());
    let bearer = ("Authorization", format!("Bearer {token}"));
    let evil = ("Origin", "http://evil.example".to_string());
    assert_eq!(
        raw(vec![
            host.clone(),
            plain.clone(),
            bearer.clone(),
            evil.clone()
        ])
        .await,
        403
    );
    assert_eq!(
        raw(vec![host.clone(), plain.clone(), bearer.clone()]).await,
        415
    );
    // DNS rebinding: the attacker's name in Host.
    let rebound = ("Host", "evil.example:80".to_string());
    let json = ("Content-Type", "application/json".to_string());
    assert_eq!(raw(vec![rebound, json.clone(), bearer.clone()]).await, 403);
    // The same request, as the operator sends it.
    assert_eq!(raw(vec![host, json, bearer]).await, 201);
    // A body over the limit.
    let big = format!("{{\"value\":\"{}\"}}", "x".repeat(5 << 20));
    let (status, _) = call(&admin, "PUT", "/api/cache/big", &[auth], &big).await;
    assert_eq!(status, 413);
}

/// Opens a progress stream as `forwarded_for` (through the test, which
/// plays the proxy); returns the status and the open socket.
async fn stream_as(app: &str, forwarded_for: &str) -> (u16, tokio::net::TcpStream) {
    let mut s = tokio::net::TcpStream::connect(app).await.expect("connect");
    let req = format!(
        "GET /api/downloads/events HTTP/1.1\r\nHost: {app}\r\nX-Forwarded-For: {forwarded_for}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut head = [0u8; 12];
    tokio::time::timeout(T, s.read_exact(&mut head))
        .await
        .expect("an answer")
        .expect("read");
    let code = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, s)
}

/// Behind the nginx sample every visitor comes from the proxy's address:
/// with `--trusted-proxy`, one visitor's sixteen streams leave the next
/// visitor's first stream alone; without it, a visitor cannot escape its
/// limits by writing the header itself.
#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_one_visitor_cannot_use_up_everyones_limits() {
    let _machine = drove_tests::shared_machine().await;
    let mut nodes = demo(2, &["--trusted-proxy", "127.0.0.1"]);
    // The second node trusts no proxy.
    let keep = nodes[1].extra.len() - 2;
    nodes[1].extra.truncate(keep);
    drove_tests::start_all_and_wait(&mut nodes, LONG).await;
    let behind = nodes[0].app_addr();
    let mut held = Vec::new();
    for _ in 0..16 {
        let (code, s) = stream_as(&behind, "203.0.113.1").await;
        assert_eq!(code, 200);
        held.push(s);
    }
    let (code, _) = stream_as(&behind, "203.0.113.1").await;
    assert_eq!(code, 429, "the visitor's seventeenth stream");
    let (code, other) = stream_as(&behind, "203.0.113.2").await;
    assert_eq!(code, 200, "another visitor behind the same proxy");
    held.push(other);

    // Straight to a node that trusts no proxy, the header changes nothing.
    let direct = nodes[1].app_addr();
    for i in 0..16 {
        let (code, s) = stream_as(&direct, &format!("198.51.100.{i}")).await;
        assert_eq!(code, 200);
        held.push(s);
    }
    let (code, _) = stream_as(&direct, "198.51.100.99").await;
    assert_eq!(code, 429, "a forged header does not buy more streams");
    drop(held);
}

/// A client's download, as a visitor behind the trusted proxy.
async fn as_client(
    app: &str,
    cookie: &str,
    client: &str,
    method: &str,
    path: &str,
) -> (u16, Value) {
    let (status, body) = call(
        app,
        method,
        path,
        &[("Cookie", cookie), ("X-Forwarded-For", client)],
        "",
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Starts a download for a new user of `client` and waits until it is
/// ready; answers the user's cookie.
async fn ready_report(app: &str, client: &str) -> String {
    let cookie = visitor(app).await;
    let (status, body) = as_client(app, &cookie, client, "POST", "/api/downloads").await;
    assert_eq!(status, 201, "{body}");
    wait_for(T, "the report to be ready", || async {
        let (status, d) = as_client(app, &cookie, client, "GET", "/api/downloads/current").await;
        assert_eq!(status, 200, "{d}");
        assert_ne!(d["state"], "error", "{d}");
        (d["state"] == "ready").then_some(())
    })
    .await;
    cookie
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_fill_the_cache_with_unfetched_reports() {
    let _machine = drove_tests::shared_machine().await;
    let secret = drove_tests::secret_file().to_string_lossy().into_owned();
    // Files of 64 KiB in a cache of 512 KiB: about seven fit.
    let args = [
        "--steps",
        "4",
        "--step-ms",
        "20",
        "--file-kb",
        "64",
        "--secret-file",
        &secret,
        "--report-pool",
        "none",
        "--trusted-proxy",
        "127.0.0.1",
        "--client-rps",
        "1000",
        "--client-reports",
        "3",
        "--cache-max-bytes",
        "524288",
    ];
    let mut nodes = drove_tests::download_manager_nodes(2, "w", &drove_tests::random_hex(), &args);
    drove_tests::start_all_and_wait(&mut nodes, LONG).await;
    let app = nodes[0].app_addr();
    let attacker = "198.18.0.66";
    let mut minted = Vec::new();
    for _ in 0..10 {
        minted.push(ready_report(&app, attacker).await);
    }
    let live = |cookies: Vec<String>, client: &'static str| {
        let app = app.clone();
        async move {
            let mut live = 0;
            for c in &cookies {
                let (status, _) = as_client(&app, c, client, "GET", "/api/downloads/current").await;
                live += usize::from(status == 200);
            }
            live
        }
    };
    let held = live(minted.clone(), attacker).await;
    assert!(
        held <= 3,
        "one address holds {held} reports past its share of 3"
    );
    assert_eq!(
        as_client(&app, &minted[0], attacker, "GET", "/api/downloads/current")
            .await
            .0,
        404,
        "the address's oldest report made room"
    );

    // Six other visitors: each one's report is ready, none given up as
    // "cache full"; the room comes out of the heaviest address's reports.
    let mut victims = Vec::new();
    for i in 1..=6 {
        let client = format!("198.18.0.{i}");
        victims.push((ready_report(&app, &client).await, client));
    }
    for (cookie, client) in &victims {
        let (status, d) = as_client(&app, cookie, client, "GET", "/api/downloads/current").await;
        assert_eq!((status, d["state"].as_str()), (200, Some("ready")), "{d}");
    }
    let held = live(minted, attacker).await;
    assert!(
        held < 3,
        "the heaviest address kept all {held} of its reports"
    );
}
