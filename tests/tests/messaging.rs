//! Remote messaging and bad envelopes. This test process is itself a drove
//! node (one process, one node), joined to two real node processes.

use std::time::{Duration, Instant};

use drove_runtime::echo::{EchoMsg, ECHO_NAME};
use drove_runtime::wire::{self, FrameHeader};
use drove_runtime::{
    ActorAddr, CallError, DeliveryError, Handle, Incarnation, LocalRef, Message, NodeConfig,
    NodeId, Reply, SendError,
};
use drove_tests::{free_port, fresh_loopback_ip, wait_for, TestCluster};
use serde::{Deserialize, Serialize};

const T: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
struct Bogus(Reply<u64>);

impl Message for Bogus {
    const TAG: &'static str = "test.bogus.v1";
}

/// Claims echo's tag with a shape that does not decode as `EchoMsg`.
#[derive(Serialize, Deserialize)]
enum FakeEcho {
    A,
    B,
    C,
    D,
    E(Reply<u64>),
}

impl Message for FakeEcho {
    const TAG: &'static str = <EchoMsg as Message>::TAG;
}

async fn metric(http: &str, name: &str) -> u64 {
    let Ok((_, text)) = drove_admin::client::get(http, "/metrics", T).await else {
        panic!("GET /metrics failed")
    };
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_messaging_and_bad_envelopes() {
    let mut c = TestCluster::started(2).await;
    let ip = fresh_loopback_ip();
    let mut config = NodeConfig::new("tester");
    config.listen = format!("{ip}:{}", free_port(&ip)).parse().expect("addr");
    config.http = format!("{ip}:1");
    config.seeds = vec![c.nodes[0].listen.to_string()];
    config.cookie = c.cookie.clone();
    let node = config.start().await.expect("in-process node starts");

    let peers: Vec<NodeId> = wait_for(
        Duration::from_secs(30),
        "the tester to see n1 and n2",
        || async {
            let up: Vec<NodeId> = node
                .members()
                .into_iter()
                .filter(|m| {
                    m.status == drove_runtime::MemberStatus::Up && m.info.id.name != "tester"
                })
                .map(|m| m.info.id)
                .collect();
            (up.len() == 2).then_some(up)
        },
    )
    .await;
    let n1 = peers.iter().find(|p| p.name == "n1").expect("n1").clone();
    let n2 = peers.iter().find(|p| p.name == "n2").expect("n2").clone();
    // Links are up shortly after membership.
    wait_for(Duration::from_secs(10), "links", || async {
        (drove_runtime::echo::ping(&node, &n1, T).await.is_ok()
            && drove_runtime::echo::ping(&node, &n2, T).await.is_ok())
        .then_some(())
    })
    .await;

    // Round trip of a large value.
    let echo1: Handle<EchoMsg> = Handle::named(n1.clone(), ECHO_NAME);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let back = node
        .call(&echo1, |r| EchoMsg::Echo(big.clone(), r), T)
        .await
        .expect("echo");
    assert_eq!(back, big);

    // Casts then a call from one sender arrive in order: the call sees all.
    let before = drove_runtime::echo::ping(&node, &n1, T)
        .await
        .expect("ping");
    for _ in 0..1000 {
        node.cast(&echo1, EchoMsg::Count).expect("cast");
    }
    assert_eq!(
        drove_runtime::echo::ping(&node, &n1, T)
            .await
            .expect("ping"),
        before + 1000
    );
    let http1 = c.nodes[0].http_addr();
    assert!(
        metric(
            &http1,
            "drove_peer_messages_in_total{node=\"n1\",peer=\"tester\"}"
        )
        .await
            >= 1000
    );

    // A handle travels inside a message and still works.
    let bytes = wire::encode(&echo1).expect("encode handle");
    let echo1_again: Handle<EchoMsg> = wire::decode(&bytes, "handle").expect("decode handle");
    drove_runtime::echo::ping(&node, echo1_again.node(), T)
        .await
        .expect("ping via decoded handle");

    // Unknown type tag for the actor.
    let bogus: Handle<Bogus> = Handle::named(n1.clone(), ECHO_NAME);
    let err = node
        .call(&bogus, Bogus, T)
        .await
        .expect_err("wrong type must fail");
    assert!(
        matches!(err, CallError::Delivery(DeliveryError::WrongType { .. })),
        "{err:?}"
    );

    // No such actor.
    let nobody: Handle<EchoMsg> = Handle::named(n1.clone(), "nobody.here");
    let err = node
        .call(&nobody, EchoMsg::Ping, T)
        .await
        .expect_err("no actor must fail");
    assert!(
        matches!(err, CallError::Delivery(DeliveryError::NoSuchActor(_))),
        "{err:?}"
    );

    // A payload that does not decode as the actor's type.
    let fake: Handle<FakeEcho> = Handle::named(n1.clone(), ECHO_NAME);
    let err = node
        .call(&fake, FakeEcho::E, T)
        .await
        .expect_err("bad payload must fail");
    assert!(
        matches!(err, CallError::Delivery(DeliveryError::Decode(_))),
        "{err:?}"
    );

    // A handle to an incarnation that is not up fails at once.
    let stale: Handle<EchoMsg> = Handle::from_addr(ActorAddr {
        node: NodeId::new("n1", Incarnation(n1.incarnation.0 ^ 1)),
        local: LocalRef::Name(ECHO_NAME.to_string()),
    });
    let err = node
        .call(&stale, EchoMsg::Ping, T)
        .await
        .expect_err("stale must fail");
    assert!(
        matches!(err, CallError::Send(SendError::NodeUnreachable(_))),
        "{err:?}"
    );

    // Raw garbage from an authenticated peer: random bytes, a wrong
    // version, a truncated frame, a frame header that does not decode.
    let bad_before = metric(&http1, "drove_bad_batches_total").await;
    let dropped_before = metric(&http1, "drove_dropped_frames_total").await;
    node.send_raw_batch(&n1, vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .expect("raw");
    node.send_raw_batch(&n1, Vec::new()).expect("raw");
    let ours = node.batch_header_for(&n1).expect("linked to n1");
    let mut truncated = wire::begin_batch(&ours).expect("batch");
    let good_prefix = truncated.len();
    let to_nobody = FrameHeader::Send {
        to: LocalRef::Id(u64::MAX),
        tag: 0,
        call: None,
    };
    wire::push_frame::<()>(&mut truncated, &to_nobody, None).expect("frame");
    truncated.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
    node.send_raw_batch(&n1, truncated).expect("raw");
    let mut bad_header = wire::begin_batch(&ours).expect("batch");
    bad_header.extend_from_slice(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
    node.send_raw_batch(&n1, bad_header).expect("raw");
    assert!(good_prefix > 5);
    wait_for(T, "the garbage to be counted", || async {
        let bad = metric(&http1, "drove_bad_batches_total").await;
        let dropped = metric(&http1, "drove_dropped_frames_total").await;
        (bad >= bad_before + 2 && dropped >= dropped_before + 3).then_some(())
    })
    .await;
    // A peer that claims to be another: the tester's own token under n2's
    // name, announcing n2's leave; then its own name with a wrong token,
    // asking echo for a reply. Both are dropped as spoofed.
    let spoofed_before = metric(&http1, "drove_spoofed_frames_total").await;
    let mut as_n2 = ours.clone();
    as_n2.from = n2.clone();
    let mut leave = wire::begin_batch(&as_n2).expect("batch");
    wire::push_frame::<()>(&mut leave, &FrameHeader::Leaving, None).expect("frame");
    node.send_raw_batch(&n1, leave).expect("raw");
    let mut wrong_token = ours.clone();
    wrong_token.token ^= 1;
    let mut ping = wire::begin_batch(&wrong_token).expect("batch");
    let to_echo = FrameHeader::Send {
        to: LocalRef::Name(ECHO_NAME.to_string()),
        tag: wire::tag_of(<EchoMsg as Message>::TAG),
        call: None,
    };
    wire::push_frame::<()>(&mut ping, &to_echo, None).expect("frame");
    node.send_raw_batch(&n1, ping).expect("raw");
    wait_for(T, "the spoofed frames to be counted", || async {
        let spoofed = metric(&http1, "drove_spoofed_frames_total").await;
        (spoofed >= spoofed_before + 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = c.nodes[0].cluster().await.expect("n1 answers");
    let n2_status = view
        .members
        .iter()
        .find(|m| m.name == "n2")
        .map(|m| m.status.clone());
    assert_eq!(n2_status.as_deref(), Some("up"), "a spoofed leave moved n2");

    // n1 survived all of it and still answers.
    drove_runtime::echo::ping(&node, &n1, T)
        .await
        .expect("n1 still answers after garbage");
    assert!(c.nodes[0].is_running());

    // A silent node: a call returns within its timeout, never hangs.
    c.nodes[1].freeze().await;
    let echo2: Handle<EchoMsg> = Handle::named(n2.clone(), ECHO_NAME);
    let started = Instant::now();
    let err = node
        .call(&echo2, EchoMsg::Ping, Duration::from_millis(500))
        .await
        .expect_err("a frozen node cannot answer");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, CallError::Timeout(_) | CallError::NodeDown(_)),
        "{err:?}"
    );

    // A dead node: calls fail fast once it is known down.
    c.nodes[1].kill9();
    wait_for(
        Duration::from_secs(30),
        "n2 down in the tester's view",
        || async {
            (drove_runtime::echo::ping(&node, &n2, Duration::from_millis(200))
                .await
                .is_err())
            .then_some(())
        },
    )
    .await;
    let started = Instant::now();
    let err = node
        .call(&echo2, EchoMsg::Ping, T)
        .await
        .expect_err("dead node");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(
            err,
            CallError::Send(SendError::NodeUnreachable(_)) | CallError::NodeDown(_)
        ),
        "{err:?}"
    );

    node.leave().await;
}
