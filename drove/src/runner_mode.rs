//! How a process booted by a runner pool (`DROVE_PARENT_FILE` set) becomes a
//! runner: the node's name, address, seed and cookie come from its parent;
//! it serves no HTTP and declares no child types.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use drove_pool::ParentInfo;

use crate::config::Config;

/// A runner's gossip interval, at most.
const RUNNER_GOSSIP_MS: u64 = 40;

/// The variable a runner on another host sets to an address of its own
/// (it listens on its parent's host otherwise).
pub(crate) const RUNNER_HOST_VAR: &str = "DROVE_RUNNER_HOST";

/// The host a runner listens on: [`RUNNER_HOST_VAR`] if it holds an IP
/// address, else its parent's host.
pub(crate) fn runner_host(info: &ParentInfo) -> IpAddr {
    std::env::var(RUNNER_HOST_VAR)
        .ok()
        .and_then(|h| h.trim().parse().ok())
        .unwrap_or(info.listen_host)
}

/// `config` turned into a runner's: the parent's name for it, a free port
/// on `host`, the parent as its only seed, the parent's cookie.
pub(crate) fn runner_config(config: &Config, info: &ParentInfo, host: IpAddr, port: u16) -> Config {
    Config {
        name: info.name.clone(),
        listen: SocketAddr::new(host, port),
        seeds: vec![info.addr.to_string()],
        cookie: Some(info.cookie.clone()),
        cookie_file: None,
        advertise_http: None,
        // A runner initiates gossip rounds often, so it and its parent
        // see each other within a few tens of milliseconds of its start
        // (each round it starts carries state both ways).
        gossip_ms: config.gossip_ms.min(RUNNER_GOSSIP_MS),
        pools: config.pools.clone(),
        ..config.clone()
    }
}

/// A port free for both TCP and UDP on `host` (the cluster port is both).
/// Another process may take it before the node binds it; the caller
/// retries with a new one.
pub(crate) fn free_port(host: IpAddr) -> std::io::Result<u16> {
    let mut last = None;
    for _ in 0..20 {
        let tcp = TcpListener::bind((host, 0))?;
        let port = tcp.local_addr()?.port();
        match UdpSocket::bind((host, port)) {
            Ok(_) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}
