//! Gossip attacks from a plain UDP socket: an outsider without the cookie
//! sends the datagrams that once changed membership, leaked state, killed
//! gossip or inflated to hundreds of MB; an insider's malformed and replayed
//! datagrams are refused too. Nothing may change.

// Helpers outside #[test] functions fail the test as loudly as an assert.
#![allow(clippy::expect_used)]

use std::time::Duration;

use drove_tests::forge::{self, ForgedId, Op};
use drove_tests::{metric, NodeProc, TestCluster};
use tokio::net::UdpSocket;

/// Every node's view of who is up, with incarnations.
async fn views(c: &TestCluster) -> Vec<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for n in &c.nodes {
        let view = n.cluster().await.expect("member answers");
        let mut members: Vec<(String, String, String)> = view
            .members
            .into_iter()
            .map(|m| (m.name, m.incarnation, m.status))
            .collect();
        members.sort();
        out.push(members);
    }
    out
}

fn id_of(node: &NodeProc, incarnation: &str) -> ForgedId {
    ForgedId {
        name: node.name.clone(),
        generation: u64::from_str_radix(incarnation, 16).expect("hex incarnation"),
        addr: node.listen,
    }
}

async fn incarnation(c: &TestCluster, name: &str) -> String {
    let view = c.nodes[0].cluster().await.expect("n1 answers");
    view.members
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.incarnation)
        .expect("member listed")
}

/// The datagrams of every attack, unsealed.
async fn attacks(c: &TestCluster) -> Vec<(&'static str, Vec<u8>)> {
    let n1 = id_of(&c.nodes[0], &incarnation(c, "n1").await);
    let n2_inc = incarnation(c, "n2").await;
    let ghost = ForgedId {
        name: "ghost".into(),
        generation: 7,
        addr: "127.0.0.1:9".parse().expect("addr"),
    };
    let fake_n2 = ForgedId {
        generation: 42,
        ..id_of(&c.nodes[1], &n2_inc)
    };
    let member_keys = |id: &ForgedId| {
        vec![
            Op::Node(id.clone()),
            Op::Kv("addr".into(), id.addr.to_string(), 1),
            Op::Kv("http".into(), "127.0.0.1:9".into(), 2),
            Op::Kv("status".into(), "up".into(), 3),
        ]
    };
    let far = 1_000_000_000;
    vec![
        ("empty-digest SynAck", forge::syn_ack(&forge::delta(&[]))),
        (
            "forged member",
            forge::ack(&forge::delta(&member_keys(&ghost))),
        ),
        (
            "forged down declaration",
            forge::ack(&forge::delta(&[
                Op::Node(n1.clone()),
                Op::Kv(
                    format!("down:n2#{n2_inc}"),
                    forge::now_ms().to_string(),
                    far,
                ),
            ])),
        ),
        (
            "forged member with a live node's name",
            forge::ack(&forge::delta(&member_keys(&fake_n2))),
        ),
        (
            "status rewritten to leaving",
            forge::ack(&forge::delta(&[
                Op::Node(n1.clone()),
                Op::Kv("status".into(), "leaving".into(), far + 1),
            ])),
        ),
        (
            "max version below a key (panicked gossip)",
            forge::syn_ack(&forge::delta(&[
                Op::Node(n1),
                Op::Kv("k".into(), "v".into(), far + 10),
                Op::SetMaxVersion(1),
            ])),
        ),
        ("inflation bomb", forge::inflation_bomb()),
    ]
}

async fn send_to_all(socket: &UdpSocket, c: &TestCluster, datagram: &[u8]) {
    for n in &c.nodes {
        socket.send_to(datagram, n.listen).await.expect("send");
    }
}

async fn total(c: &TestCluster, name: &str) -> u64 {
    let mut sum = 0;
    for n in &c.nodes {
        sum += metric(&n.http_addr(), name, &[]).await.expect("metrics");
    }
    sum
}

#[tokio::test(flavor = "multi_thread")]
async fn outsider_gossip_changes_nothing() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(3).await;
    let before = views(&c).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let attacks = attacks(&c).await;
    for (what, datagram) in &attacks {
        send_to_all(&socket, &c, datagram).await;
        // Sealed with a wrong cookie: still an outsider.
        let wrong = forge::sealed("not the cookie", forge::now_ms(), datagram);
        send_to_all(&socket, &c, &wrong).await;
        eprintln!("sent: {what}");
    }
    // The empty-digest SynAck used to be answered with every node's state.
    let mut buf = vec![0u8; 65_536];
    let answer = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await;
    assert!(answer.is_err(), "a node answered an outsider: {answer:?}");
    // Many gossip rounds for anything that got in to spread.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.wait_converged(Duration::from_secs(10)).await;
    assert_eq!(views(&c).await, before, "membership changed");
    for n in &mut c.nodes {
        assert!(n.is_running(), "{} died", n.name);
    }
    let refused = total(&c, "drove_gossip_unauthenticated_total").await;
    let sent = (attacks.len() * 2 * c.nodes.len()) as u64;
    assert!(refused >= sent, "{refused} refused of {sent} sent");
    assert_eq!(total(&c, "drove_gossip_malformed_total").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn insider_malformed_and_replayed_gossip_is_refused() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(3).await;
    let before = views(&c).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let attacks = attacks(&c).await;
    let hostile: Vec<&Vec<u8>> = attacks
        .iter()
        .filter(|(what, _)| what.contains("max version") || what.contains("bomb"))
        .map(|(_, d)| d)
        .collect();
    for datagram in &hostile {
        let sealed = forge::sealed(&c.cookie, forge::now_ms(), datagram);
        send_to_all(&socket, &c, &sealed).await;
    }
    // A forged member sealed 40 s ago is past the window; one sent twice is
    // a replay the second time.
    let ghost = ForgedId {
        name: "ghost".into(),
        generation: 7,
        addr: "127.0.0.1:9".parse().expect("addr"),
    };
    let stale = forge::ack(&forge::delta(&[
        Op::Node(ghost),
        Op::Kv("addr".into(), "127.0.0.1:9".into(), 1),
    ]));
    let stale = forge::sealed(&c.cookie, forge::now_ms() - 40_000, &stale);
    send_to_all(&socket, &c, &stale).await;
    let empty = forge::sealed(&c.cookie, forge::now_ms(), &forge::ack(&forge::delta(&[])));
    send_to_all(&socket, &c, &empty).await;
    send_to_all(&socket, &c, &empty).await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    c.wait_converged(Duration::from_secs(10)).await;
    assert_eq!(views(&c).await, before, "membership changed");
    for n in &mut c.nodes {
        assert!(n.is_running(), "{} died", n.name);
    }
    let nodes = c.nodes.len() as u64;
    let malformed = total(&c, "drove_gossip_malformed_total").await;
    assert_eq!(malformed, hostile.len() as u64 * nodes);
    let replayed = total(&c, "drove_gossip_replayed_total").await;
    assert_eq!(replayed, 2 * nodes, "the stale one and the second copy");
    // Gossip still runs on every node.
    let accepted = total(&c, "drove_gossip_accepted_total").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(total(&c, "drove_gossip_accepted_total").await > accepted);
}

/// The highest resident memory the process ever had (`VmHWM`).
fn peak_resident_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb << 10)
}

/// The node's UDP sockets on loopback other than `public`, as a local
/// user finds them: its descriptors' inodes matched in /proc/net/udp.
fn private_udp_ports(pid: i32, public: u16) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/udp").expect("udp table");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode = cols.get(9)?;
            let (ip, port) = cols.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let loopback = u32::from_str_radix(ip, 16).ok()?.to_ne_bytes()[0] == 127;
            (inodes.iter().any(|i| i == inode) && loopback && port != public).then_some(port)
        })
        .collect()
}

/// A local user with no privileges finds the gossip codec's loopback
/// sockets and sends them inflation bombs: the kernel drops them (each
/// private socket takes datagrams only from its own peer socket), so the
/// node's memory stays put and its peers never see it down.
#[tokio::test(flavor = "multi_thread")]
async fn bombs_on_the_private_codec_sockets_are_dropped() {
    let _machine = drove_tests::shared_machine().await;
    let c = TestCluster::started(2).await;
    let n1 = &c.nodes[0];
    let pid = n1.pid().expect("n1 runs").as_raw();
    let ports = private_udp_ports(pid, n1.listen.port());
    assert!(ports.len() >= 3, "codec, capture and injector: {ports:?}");
    let peak_before = peak_resident_bytes(pid);
    let bomb = forge::inflation_bomb();
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for _ in 0..50 {
        for port in &ports {
            let _ = socket.send_to(&bomb, ("127.0.0.1", *port)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Inflated buffers are freed at once: the peak tells what they took.
    let peak_after = peak_resident_bytes(pid);
    assert!(
        peak_after < peak_before + (32 << 20),
        "n1's peak grew from {peak_before} to {peak_after} bytes"
    );
    let up = c.nodes[1].status_of("n1").await;
    assert_eq!(up.as_deref(), Some("up"), "n2 sees n1 {up:?}");
    for n in &c.nodes {
        assert!(n.cluster().await.is_some(), "{} answers", n.name);
    }
}
