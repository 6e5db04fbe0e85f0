//! [`Discovery`]: the trait every strategy implements, and why a round
//! found nothing.

use std::net::SocketAddr;

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
