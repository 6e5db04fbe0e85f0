//! How drove nodes find each other besides `--seeds`.
//!
//! A strategy only *adds seeds*: it finds cluster addresses and hands them
//! to [`Node::introduce`](drove_runtime::Node::introduce), which offers
//! each unknown one a gossip exchange. Membership and authentication are
//! unchanged, so a node found by any strategy still joins only if it holds
//! the cluster's cookie (and certificate, with TLS).
//!
//! - [`spec`]: [`DiscoverySpec`], the `--discovery` value
//!   (`static`, `mdns`, `dns:NAME[:PORT]`, `dns:_service._proto.NAME`).
//! - [`Discovery`]: the trait every strategy implements.
//! - [`seeds`]: the static strategy, `--seeds` resolved again each round.
//! - [`dns`]: polling A/AAAA or SRV records (libcluster's DNSPoll, and
//!   what a Kubernetes headless service offers).
//! - [`mdns`]: LAN discovery with libp2p's mDNS behaviour (libcluster's
//!   Gossip strategy). Opt-in: it multicasts on every interface the
//!   process sees.
//! - [`task`]: the loop that runs a strategy beside a node.

pub mod dns;
pub mod mdns;
pub mod seeds;
pub mod spec;
pub mod task;

use std::net::SocketAddr;

pub use spec::{DiscoverySpec, SpecError};
pub use task::{spawn, DiscoveryTask};

/// Why a round of discovery found nothing. The loop logs it and goes on.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The DNS query failed (no such name, no server, timeout).
    #[error("DNS lookup of {name}: {reason}")]
    Dns {
        /// The name looked up.
        name: String,
        /// What the resolver said.
        reason: String,
    },
    /// The system's resolver configuration could not be read.
    #[error("reading the resolver configuration: {0}")]
    ResolverConfig(String),
    /// The mDNS sockets could not be opened.
    #[error("mDNS: {0}")]
    Mdns(#[source] std::io::Error),
    /// The strategy stopped (its background task ended).
    #[error("the discovery strategy stopped")]
    Stopped,
}

/// A way to find cluster addresses. Each call waits for the strategy's next
/// answer: every address it sees now (not only new ones), so a node that
/// rejoined as a new incarnation is introduced again.
#[async_trait::async_trait]
pub trait Discovery: Send {
    /// The next answer. The strategy paces itself (a DNS poll waits its
    /// interval; mDNS waits for the network).
    async fn discover(&mut self) -> Result<Vec<SocketAddr>, DiscoveryError>;
}
