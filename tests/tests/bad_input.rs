//! Garbage on the cluster port (TCP transport and UDP gossip): refused with
//! a log line, and the node keeps serving.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use drove_tests::{wait_for, TestCluster};

fn send_tcp(addr: std::net::SocketAddr, bytes: &[u8]) {
    if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(bytes);
        let _ = s.flush();
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_cluster_port_is_refused() {
    let mut c = TestCluster::started(2).await;
    let target = c.nodes[0].listen;
    let random: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    send_tcp(target, &random);
    // A length prefix far above the 16 MiB frame limit.
    send_tcp(target, &u64::MAX.to_be_bytes());
    send_tcp(target, &(1u64 << 40).to_be_bytes());
    // A truncated frame: the length promises more than is sent.
    let mut truncated = 100u64.to_be_bytes().to_vec();
    truncated.extend_from_slice(&[1, 2, 3]);
    send_tcp(target, &truncated);
    // A well-framed message that is not protobuf.
    let mut framed = 64u64.to_be_bytes().to_vec();
    framed.extend((0..64).map(|_| rand::random::<u8>()));
    send_tcp(target, &framed);
    // And UDP garbage at the gossip socket.
    let udp = UdpSocket::bind((target.ip(), 0)).expect("udp socket");
    for _ in 0..50 {
        let _ = udp.send_to(&random[..1024], target);
    }

    // Still serving, still clustered, and a new node can still join.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(c.nodes[0].is_running(), "n1 died on garbage");
    c.wait_converged(Duration::from_secs(10)).await;
    let mut extra = drove_tests::NodeProc::new("n3", vec![target.to_string()], &c.cookie);
    extra.start();
    c.nodes.push(extra);
    c.wait_converged(Duration::from_secs(30)).await;

    let log = c.nodes[0].log_path().to_path_buf();
    wait_for(
        Duration::from_secs(10),
        "a log line about the refused connection",
        || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(&log).ok()?;
                text.contains("closed before authentication").then_some(())
            }
        },
    )
    .await;
}
