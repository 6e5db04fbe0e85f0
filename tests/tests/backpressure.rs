//! Back-pressure reaches the socket: a sender's memory stays bounded while
//! its peer does not read. This test process is itself a drove node (the
//! sender), joined to one real node process (the receiver), so the RSS
//! measured is the sender's own.

use std::time::{Duration, Instant};

use drove_runtime::echo::{EchoMsg, ECHO_NAME};
use drove_runtime::{
    CallError, Handle, MemberStatus, Message, Node, NodeConfig, NodeId, SendError,
};
use drove_tests::{free_port, fresh_loopback_ip, wait_for, TestCluster};
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(5);

/// How far above its idle RSS the sender may grow while its peer is
/// stopped: the link holds at most 8 MiB unacknowledged and 8 MiB queued
/// (before the window, a stopped peer grew it by 63 MiB in 5 s).
const RSS_CAP: u64 = 40 << 20;

/// How long the sender casts flat out at a stopped peer.
const FLOOD: Duration = Duration::from_secs(20);

/// What the sender floods with: 64 KiB a cast, so the link fills in a few
/// hundred casts however slow the build (a debug build casts tiny messages
/// too slowly to fill it before the peer is declared down). Nobody on the
/// receiver takes it; it is dropped there when the receiver reads again.
#[derive(serde::Serialize, serde::Deserialize)]
struct Blob(#[serde(with = "serde_bytes")] Vec<u8>);

impl Message for Blob {
    const TAG: &'static str = "test.blob.v1";
}

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The receiver's current incarnation, once it is up in the sender's view.
async fn up_peer(node: &Node, name: &str) -> NodeId {
    wait_for(Duration::from_secs(60), "the receiver to be up", || async {
        node.members()
            .into_iter()
            .find(|m| m.status == MemberStatus::Up && m.info.id.name == name)
            .map(|m| m.info.id)
    })
    .await
}

/// Casts `n` counts to `echo`, waiting out `Overloaded`, and checks that
/// every one arrived.
async fn cast_all(node: &Node, echo: &Handle<EchoMsg>, n: u64) {
    let before = match drove_runtime::echo::ping(node, echo.node(), T).await {
        Ok(count) => count,
        Err(e) => panic!("ping before: {e}"),
    };
    let mut refused = 0u64;
    let mut sent = 0u64;
    while sent < n {
        match node.cast(echo, EchoMsg::Count) {
            Ok(()) => sent += 1,
            Err(SendError::Overloaded(_)) => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("cast to a healthy peer: {e}"),
        }
        if sent.is_multiple_of(4096) {
            tokio::task::yield_now().await;
        }
    }
    let after = match drove_runtime::echo::ping(node, echo.node(), Duration::from_secs(30)).await {
        Ok(count) => count,
        Err(e) => panic!("ping after: {e}"),
    };
    assert_eq!(
        after,
        before + n,
        "every cast arrived ({refused} refusals waited out)"
    );
    eprintln!("{n} casts, {refused} refusals waited out");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_peer_bounds_its_senders_memory_and_recovers() {
    let c = TestCluster::started(1).await;
    let ip = fresh_loopback_ip();
    let mut config = NodeConfig::new("sender");
    config.listen = format!("{ip}:{}", free_port(&ip)).parse().expect("addr");
    config.http = format!("{ip}:1");
    config.seeds = vec![c.nodes[0].listen.to_string()];
    config.cookie = c.cookie.clone();
    let node = config.start().await.expect("in-process node starts");
    let n1 = up_peer(&node, "n1").await;
    wait_for(Duration::from_secs(10), "the link", || async {
        drove_runtime::echo::ping(&node, &n1, T).await.ok()
    })
    .await;
    let echo: Handle<EchoMsg> = Handle::named(n1.clone(), ECHO_NAME);

    let t0 = Instant::now();
    // Healthy: far more than a window's worth goes through, none lost.
    cast_all(&node, &echo, 2_000_000).await;
    let idle = rss();
    eprintln!("healthy phase {:?}", t0.elapsed());

    c.nodes[0].freeze().await;
    let started = Instant::now();
    let (mut sent, mut refused, mut unreachable) = (0u64, 0u64, 0u64);
    let mut peak = idle;
    let mut call_checked = false;
    let mut last_sample = Instant::now();
    let sink: Handle<Blob> = Handle::named(n1.clone(), "test.nobody");
    let blob = vec![7u8; 64 << 10];
    while started.elapsed() < FLOOD {
        match node.cast(&sink, Blob(blob.clone())) {
            Ok(()) => sent += 1,
            Err(SendError::Overloaded(_)) => refused += 1,
            Err(SendError::NodeUnreachable(_)) => {
                // Declared down by the failure detector: nothing to queue.
                unreachable += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("unexpected cast error: {e}"),
        }
        if refused > 0 && !call_checked {
            // A call to a peer whose link is full fails at once.
            let t = Instant::now();
            let result = drove_runtime::echo::ping(&node, &n1, T).await;
            assert!(
                matches!(
                    result,
                    Err(CallError::Send(
                        SendError::Overloaded(_) | SendError::NodeUnreachable(_)
                    ))
                ),
                "{result:?}"
            );
            assert!(
                t.elapsed() < Duration::from_millis(100),
                "{:?}",
                t.elapsed()
            );
            call_checked = true;
        }
        if (sent + refused) % 64 == 0 {
            tokio::task::yield_now().await;
        }
        if last_sample.elapsed() > Duration::from_millis(50) {
            peak = peak.max(rss());
            last_sample = Instant::now();
        }
    }
    peak = peak.max(rss());
    eprintln!(
        "stopped 20 s: {sent} casts of 64 KiB queued, {refused} refused, {unreachable} unreachable; \
         RSS idle {} MiB, peak {} MiB",
        idle >> 20,
        peak >> 20
    );
    assert!(refused > 0, "a full link refuses casts");
    assert!(call_checked);
    assert!(
        peak < idle + RSS_CAP,
        "the sender grew {} MiB while its peer was stopped",
        (peak - idle) >> 20
    );

    c.nodes[0].signal(Signal::SIGCONT);
    // The receiver wakes (perhaps as a new incarnation, if it was declared
    // down meanwhile) and takes traffic again.
    let n1 = wait_for(
        Duration::from_secs(60),
        "the receiver to answer again",
        || async {
            let id = up_peer(&node, "n1").await;
            drove_runtime::echo::ping(&node, &id, T)
                .await
                .ok()
                .map(|_| id)
        },
    )
    .await;
    eprintln!("woke {:?}", t0.elapsed());
    let echo: Handle<EchoMsg> = Handle::named(n1, ECHO_NAME);
    cast_all(&node, &echo, 200_000).await;
}
