//! The loop beside a node: one task asks the strategy for its answers, the
//! other introduces the latest answer to the node at each answer and every
//! interval (so a node that rejoined, or an introduction lost with its
//! datagram, is tried again).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use drove_runtime::Node;

use crate::dns::DnsPoll;
use crate::mdns::Mdns;
use crate::seeds::Seeds;
use crate::spec::DiscoverySpec;
use crate::strategy::{Discovery, DiscoveryError};

/// The running loop; dropping it stops discovery.
#[derive(Debug)]
pub struct DiscoveryTask {
    finder: JoinHandle<()>,
    introducer: JoinHandle<()>,
}

impl DiscoveryTask {
    /// Stops discovery (a leaving node looks for no one).
    pub fn stop(&self) {
        self.finder.abort();
        self.introducer.abort();
    }
}

impl Drop for DiscoveryTask {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds the strategy `spec` names for a node listening on `listen` with
/// `seeds`, polling every `every`.
pub fn strategy(
    spec: &DiscoverySpec,
    listen: SocketAddr,
    seeds: &[String],
    every: Duration,
) -> Result<Box<dyn Discovery>, DiscoveryError> {
    Ok(match spec {
        DiscoverySpec::Static => Box::new(Seeds::new(seeds.to_vec(), every)),
        DiscoverySpec::Mdns => Box::new(Mdns::start(listen, every)?),
        DiscoverySpec::DnsA { name, port } => Box::new(DnsPoll::addresses(
            name,
            port.unwrap_or(listen.port()),
            every,
        )?),
        DiscoverySpec::DnsSrv { name } => Box::new(DnsPoll::services(name, every)?),
    })
}

/// Runs `strategy` beside `node` until the returned task is dropped or
/// the node stops.
pub fn spawn(node: &Node, mut strategy: Box<dyn Discovery>, every: Duration) -> DiscoveryTask {
    let (tx, mut rx) = watch::channel(Vec::<SocketAddr>::new());
    let finder = tokio::spawn(async move {
        loop {
            match strategy.discover().await {
                Ok(found) => {
                    tracing::debug!(count = found.len(), "discovery answered");
                    if tx.send(found).is_err() {
                        return;
                    }
                }
                Err(DiscoveryError::Stopped) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "discovery round failed");
                    tokio::time::sleep(every).await;
                }
            }
        }
    });
    let node = node.clone();
    let introducer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            let found = rx.borrow_and_update().clone();
            if !node.introduce(found) {
                return;
            }
        }
    });
    DiscoveryTask { finder, introducer }
}
