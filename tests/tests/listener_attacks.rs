//! Attacks on the listeners from an outsider who holds no cookie: floods of
//! idle connections, half-sent frames that declare 16 MiB, streams of tiny
//! frames that once made a log line each. A legitimate peer still joins,
//! the node's memory stays within its budget, and the log stays quiet.

// Helpers outside #[test] functions fail the test as loudly as an assert.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use drove_tests::{
    metric, register_names, registry_at, resident_bytes, wait_for, NodeProc, TestCluster,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Lets this test process hold thousands of sockets (the nodes raise
/// their own limit at start).
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

/// Opens up to `n` connections to `addr` that never send a byte; returns
/// those that connected.
async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        tasks.spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
                .await
                .ok()
                .and_then(Result::ok)
        });
    }
    let mut held = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(s)) = r {
            held.push(s);
        }
    }
    held
}

/// Opens `n` connections that each declare a frame of 16 MiB - 1 and send
/// up to 1 MiB of it; returns them.
async fn half_frames(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    let chunk = vec![0x5a; 64 << 10];
    for _ in 0..n {
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await
        else {
            continue;
        };
        let _ = s.write_all(&((16u64 << 20) - 1).to_be_bytes()).await;
        // The node reads none of it: writes stop once the socket buffers
        // are full.
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            for _ in 0..16 {
                s.write_all(&chunk).await?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        held.push(s);
    }
    held
}

fn log_lines(node: &NodeProc) -> usize {
    std::fs::read_to_string(node.log_path())
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Waits until a name registered on `from` is seen on `to`: the transport
/// session between them carries registry deltas.
async fn session_carries(from: &NodeProc, to: &NodeProc, name: &str, timeout: Duration) {
    register_names(&from.http_addr(), &[name.to_string()]).await;
    let to_http = to.http_addr();
    wait_for(timeout, &format!("{name} to reach {}", to.name), || {
        let to_http = to_http.clone();
        async move {
            registry_at(&to_http)
                .await
                .and_then(|r| r.contains_key(name).then_some(()))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_joins_through_a_connection_flood() {
    let _machine = drove_tests::timing_sensitive().await;
    raise_nofile();
    let mut c = TestCluster::new(3);
    c.nodes[0].start();
    c.nodes[1].start();
    let pid = c.nodes[0].pid().expect("n1 runs").as_raw();
    let n1 = &c.nodes[0];
    wait_for(Duration::from_secs(30), "n1 to see n2 up", || async move {
        (n1.status_of("n2").await.as_deref() == Some("up")).then_some(())
    })
    .await;
    let rss_before = resident_bytes(pid);
    let lines_before = log_lines(&c.nodes[0]);
    let target = c.nodes[0].listen;

    let idle = idle_connections(target, 2_000).await;
    let halves = half_frames(target, 50).await;
    // Slowloris on the admin listener: sockets that never send a request.
    let slow = idle_connections(c.nodes[0].http, 600).await;
    assert!(
        slow.len() >= 500,
        "{} slowloris sockets connected",
        slow.len()
    );
    assert!(
        idle.len() + halves.len() > 1_000,
        "the flood reached the node ({} idle, {} half frames)",
        idle.len(),
        halves.len()
    );

    // A legitimate peer joins while all of that is held open.
    let joined = Instant::now();
    c.nodes[2].start();
    let n3 = &c.nodes[2];
    wait_for(Duration::from_secs(15), "n3 to see n1 up", || async move {
        (n3.status_of("n1").await.as_deref() == Some("up")).then_some(())
    })
    .await;
    session_carries(
        &c.nodes[2],
        &c.nodes[0],
        "joined-in-a-flood",
        Duration::from_secs(15),
    )
    .await;
    let took = joined.elapsed();
    let health = Instant::now();
    let (status, _) =
        drove_admin::client::get(&c.nodes[0].http_addr(), "/healthz", Duration::from_secs(5))
            .await
            .expect("/healthz answers");
    assert_eq!(status, 200);
    assert!(
        health.elapsed() < Duration::from_secs(1),
        "/healthz took {:?}",
        health.elapsed()
    );

    let rss_after = resident_bytes(pid);
    assert!(
        rss_after < rss_before + (64 << 20),
        "n1 grew from {rss_before} to {rss_after} bytes under the flood"
    );
    let dropped = metric(
        &c.nodes[0].http_addr(),
        "drove_cluster_dropped_for_room_total",
        &[],
    )
    .await
    .unwrap_or(0);
    assert!(dropped > 0, "the gate made room for newer connections");
    let lines = log_lines(&c.nodes[0]) - lines_before;
    assert!(lines < 100, "the flood wrote {lines} log lines");
    eprintln!(
        "flood: {} idle + {} half frames held; n3 joined in {took:?}; rss {} -> {} KiB; {lines} log lines; {dropped} dropped",
        idle.len(),
        halves.len(),
        rss_before >> 10,
        rss_after >> 10
    );
    drop((idle, halves, slow));
}

/// An HTTP connection that never sends a request is closed once it has
/// had no request in flight for the idle limit (5 s), and one that
/// trickles its headers too.
#[tokio::test]
async fn idle_http_connections_are_closed() {
    let _machine = drove_tests::shared_machine().await;
    let c = TestCluster::started(1).await;
    let http = c.nodes[0].http;
    let silent = TcpStream::connect(http).await.expect("connect");
    let mut trickle = TcpStream::connect(http).await.expect("connect");
    let started = Instant::now();
    let trickling = async {
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
            .take(60)
        {
            if trickle.write_all(&[*b]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        started.elapsed()
    };
    let silent_closed = async {
        let mut s = silent;
        let mut buf = [0u8; 64];
        use tokio::io::AsyncReadExt;
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    };
    let (trickled, silent) = tokio::join!(trickling, silent_closed);
    assert!(
        silent >= Duration::from_secs(4) && silent < Duration::from_secs(12),
        "the silent connection closed after {silent:?}"
    );
    assert!(
        trickled < Duration::from_secs(12),
        "a trickled request was held for {trickled:?}"
    );
}

/// A silent connection is closed at the handshake deadline.
#[tokio::test]
async fn an_idle_connection_is_closed_at_the_deadline() {
    let _machine = drove_tests::shared_machine().await;
    let c = TestCluster::started(1).await;
    let mut s = TcpStream::connect(c.nodes[0].listen)
        .await
        .expect("connect");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        use tokio::io::AsyncReadExt;
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node closed the silent connection");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(10),
        "closed after {took:?}, not at the 5 s deadline"
    );
    let timeouts = metric(
        &c.nodes[0].http_addr(),
        "drove_cluster_handshake_timeouts_total",
        &[],
    )
    .await
    .unwrap_or(0);
    assert!(timeouts >= 1);
}

/// 100 kB of tiny well-formed frames that ractor_cluster would warn about
/// one by one: each connection is closed after a few, and the log gets a
/// handful of lines, not one per frame.
#[tokio::test]
async fn tiny_frames_do_not_amplify_into_the_log() {
    let _machine = drove_tests::shared_machine().await;
    let c = TestCluster::started(1).await;
    let before = log_lines(&c.nodes[0]);
    // A NetworkMessage holding an empty inter-node message: 10 bytes framed.
    let frame: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 2, 0x12, 0x00];
    let per_conn: Vec<u8> = frame.iter().copied().cycle().take(1_000).collect();
    for _ in 0..100 {
        if let Ok(mut s) = TcpStream::connect(c.nodes[0].listen).await {
            let _ = s.write_all(&per_conn).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines = log_lines(&c.nodes[0]) - before;
    assert!(lines < 20, "100 kB of frames wrote {lines} log lines");
    let oversized = metric(
        &c.nodes[0].http_addr(),
        "drove_cluster_oversized_total",
        &[],
    )
    .await
    .unwrap_or(0);
    assert!(
        oversized >= 1,
        "connections past the frame count were closed"
    );
}

/// A page served from another port of the same host (any local web app)
/// posts to the admin API with no-cors: its origin is not the listener's,
/// so the write is refused and nothing changes.
#[tokio::test]
async fn a_page_on_another_local_port_cannot_write() {
    use tokio::io::AsyncReadExt;
    let _machine = drove_tests::shared_machine().await;
    let c = TestCluster::started(1).await;
    let http = c.nodes[0].http;
    let evil_port = drove_tests::free_port(&http.ip().to_string());
    let body = r#"{"names":["planted-by-another-port"]}"#;
    // What a browser sends for a no-cors form post from that page.
    let request = format!(
        "POST /api/registry HTTP/1.1\r\nHost: {http}\r\nOrigin: http://{}:{evil_port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        http.ip(),
        body.len()
    );
    let mut s = TcpStream::connect(http).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "answered {answer:?}");
    let names = registry_at(&c.nodes[0].http_addr())
        .await
        .expect("registry");
    assert!(!names.contains_key("planted-by-another-port"));
}
