//! What tests of a node share, in drove's crates and in applications built
//! on it: a port free for the cluster's TCP and gossip's UDP at once, a
//! one-node config on loopback, and a bounded wait.

use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::time::Duration;

use crate::cluster::NodeConfig;

/// A port free for both TCP and UDP on `ip` (a node listens on both), or
/// `None` after 100 tries.
pub fn free_port_on(ip: IpAddr) -> Option<u16> {
    (0..100).find_map(|_| {
        let tcp = TcpListener::bind((ip, 0)).ok()?;
        let port = tcp.local_addr().ok()?.port();
        UdpSocket::bind((ip, port)).ok().map(|_| port)
    })
}

/// A port free for both TCP and UDP on 127.0.0.1.
///
/// # Panics
///
/// When no port is free after 100 tries: the test cannot run.
pub fn free_port() -> u16 {
    match free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST)) {
        Some(port) => port,
        None => panic!("no free port on 127.0.0.1"),
    }
}

/// The config of a node named `name`, alone, on a free loopback port.
pub fn one_node(name: &str) -> NodeConfig {
    let mut config = NodeConfig::new(name);
    config.listen = (Ipv4Addr::LOCALHOST, free_port()).into();
    config
}

/// Waits until `check` holds, looking every 20 ms.
///
/// # Panics
///
/// After `timeout`, naming `what`.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
