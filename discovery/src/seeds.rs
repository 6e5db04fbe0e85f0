//! The static strategy: the `--seeds` list, host names resolved again
//! every round (gossip itself re-resolves them only once a minute).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::strategy::{Discovery, DiscoveryError};

/// `--seeds`, as a strategy.
#[derive(Debug)]
pub struct Seeds {
    seeds: Vec<String>,
    every: Duration,
    first: bool,
}

impl Seeds {
    /// A strategy that answers with `seeds` (`host:port` each) every
    /// `every`, the first time at once.
    pub fn new(seeds: Vec<String>, every: Duration) -> Self {
        Seeds {
            seeds,
            every,
            first: true,
        }
    }
}

#[async_trait]
impl Discovery for Seeds {
    async fn discover(&mut self) -> Result<Vec<SocketAddr>, DiscoveryError> {
        if !std::mem::take(&mut self.first) {
            tokio::time::sleep(self.every).await;
        }
        let mut found = Vec::new();
        for seed in &self.seeds {
            match tokio::net::lookup_host(seed.as_str()).await {
                Ok(addrs) => found.extend(addrs),
                Err(e) => tracing::debug!(%seed, error = %e, "seed does not resolve"),
            }
        }
        Ok(found)
    }
}
