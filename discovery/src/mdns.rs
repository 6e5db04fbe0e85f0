//! LAN discovery with libp2p's mDNS behaviour. Each node answers mDNS
//! queries with one address, `/ip4/<listen ip>/udp/<listen port>` (its
//! gossip socket), and every answer heard on the LAN that has exactly that
//! shape is a candidate. Other libp2p programs on the LAN answer too; their
//! addresses have other shapes (`/tcp/...`, `/udp/.../quic-v1`) and are
//! skipped, and whatever is at an address that does have the shape still
//! has to pass the cookie's seal to gossip with us.
//!
//! The behaviour is driven here without a libp2p swarm: drove only needs
//! discovery, not libp2p's transports. The multicast goes out on every
//! interface the process sees, which is why mDNS is opt-in.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use libp2p::core::transport::ListenerId;
use libp2p::mdns;
use libp2p::multiaddr::{Multiaddr, Protocol};
use libp2p::swarm::behaviour::{FromSwarm, NewListenAddr};
use libp2p::swarm::{NetworkBehaviour, ToSwarm};
use libp2p::PeerId;
use tokio::sync::watch;

use drove_runtime::MAX_INTRODUCED;

use crate::strategy::{Discovery, DiscoveryError};

/// The address a node announces for `listen`.
pub fn announced(listen: SocketAddr) -> Multiaddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) => Protocol::Ip4(v4),
        IpAddr::V6(v6) => Protocol::Ip6(v6),
    };
    Multiaddr::empty()
        .with(ip)
        .with(Protocol::Udp(listen.port()))
}

/// The cluster address in an announced multiaddr, if it has drove's shape:
/// an IP, a UDP port, and at most the peer id mDNS appends.
pub fn cluster_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut parts = addr.iter();
    let ip = match parts.next()? {
        Protocol::Ip4(v4) => IpAddr::V4(v4),
        Protocol::Ip6(v6) => IpAddr::V6(v6),
        _ => return None,
    };
    let Protocol::Udp(port) = parts.next()? else {
        return None;
    };
    match (parts.next(), parts.next()) {
        (None, None) | (Some(Protocol::P2p(_)), None) => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// mDNS discovery, running in a background task from [`Mdns::start`]
/// until dropped.
#[derive(Debug)]
pub struct Mdns {
    found: watch::Receiver<BTreeSet<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Mdns {
    /// Announces `listen` on the LAN and listens for others; queries go out
    /// every `every`.
    pub fn start(listen: SocketAddr, every: Duration) -> Result<Self, DiscoveryError> {
        let config = mdns::Config {
            ttl: (every * 6).max(Duration::from_secs(30)),
            query_interval: every,
            enable_ipv6: listen.is_ipv6(),
        };
        let mut behaviour =
            mdns::tokio::Behaviour::new(config, PeerId::random()).map_err(DiscoveryError::Mdns)?;
        let me = announced(listen);
        behaviour.on_swarm_event(FromSwarm::NewListenAddr(NewListenAddr {
            listener_id: ListenerId::next(),
            addr: &me,
        }));
        let (tx, found) = watch::channel(BTreeSet::new());
        let task = tokio::spawn(async move {
            let mut known: BTreeSet<(PeerId, SocketAddr)> = BTreeSet::new();
            loop {
                let event = std::future::poll_fn(|cx| behaviour.poll(cx)).await;
                let ToSwarm::GenerateEvent(event) = event else {
                    continue;
                };
                match event {
                    mdns::Event::Discovered(list) => {
                        for (peer, addr) in list {
                            match cluster_addr(&addr) {
                                Some(a) if a != listen && known.len() < MAX_INTRODUCED => {
                                    known.insert((peer, a));
                                }
                                _ => {}
                            }
                        }
                    }
                    mdns::Event::Expired(list) => {
                        for (peer, addr) in list {
                            if let Some(a) = cluster_addr(&addr) {
                                known.remove(&(peer, a));
                            }
                        }
                    }
                }
                let addrs = known.iter().map(|(_, a)| *a).collect();
                if tx.send(addrs).is_err() {
                    return;
                }
            }
        });
        Ok(Mdns { found, task })
    }
}

impl Drop for Mdns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl Discovery for Mdns {
    async fn discover(&mut self) -> Result<Vec<SocketAddr>, DiscoveryError> {
        self.found
            .changed()
            .await
            .map_err(|_| DiscoveryError::Stopped)?;
        Ok(self.found.borrow_and_update().iter().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_drove_shaped_addresses_are_taken() {
        let listen: SocketAddr = "198.18.1.4:4370".parse().unwrap();
        let me = announced(listen);
        assert_eq!(me.to_string(), "/ip4/198.18.1.4/udp/4370");
        assert_eq!(cluster_addr(&me), Some(listen));
        let with_peer = me.clone().with(Protocol::P2p(PeerId::random()));
        assert_eq!(cluster_addr(&with_peer), Some(listen));
        for other in [
            "/ip4/198.18.1.4/tcp/4370",
            "/ip4/198.18.1.4/udp/4370/quic-v1",
            "/dns4/example.com/udp/4370",
            "/ip4/198.18.1.4",
        ] {
            let addr: Multiaddr = other.parse().unwrap();
            assert_eq!(cluster_addr(&addr), None, "{other}");
        }
        let v6: SocketAddr = "[fd00::1]:4370".parse().unwrap();
        assert_eq!(cluster_addr(&announced(v6)), Some(v6));
    }
}
