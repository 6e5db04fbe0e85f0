//! DNS polling: the A/AAAA records of a name (each an address with the
//! cluster port), or its SRV records (targets with their own ports). This
//! is what a Kubernetes headless service publishes for its pods. The
//! resolver is the system's (`/etc/resolv.conf`); its cache is cleared
//! before each poll so a removed record is noticed at the next one.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use drove_runtime::MAX_INTRODUCED;

use crate::strategy::{Discovery, DiscoveryError};

/// What is polled.
#[derive(Debug, Clone)]
enum Query {
    /// A/AAAA records, with this port.
    Addresses { name: String, port: u16 },
    /// SRV records.
    Services { name: String },
}

/// A DNS poll.
pub struct DnsPoll {
    resolver: TokioResolver,
    query: Query,
    every: Duration,
    first: bool,
}

impl std::fmt::Debug for DnsPoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsPoll")
            .field("query", &self.query)
            .field("every", &self.every)
            .finish()
    }
}

impl DnsPoll {
    fn new(query: Query, every: Duration) -> Result<Self, DiscoveryError> {
        let resolver = TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .map_err(|e| DiscoveryError::ResolverConfig(e.to_string()))?;
        Ok(DnsPoll {
            resolver,
            query,
            every,
            first: true,
        })
    }

    /// Polls the A/AAAA records of `name` every `every`; each address is a
    /// node listening on `port`.
    pub fn addresses(name: &str, port: u16, every: Duration) -> Result<Self, DiscoveryError> {
        let name = name.to_string();
        Self::new(Query::Addresses { name, port }, every)
    }

    /// Polls the SRV records of `name` every `every`.
    pub fn services(name: &str, every: Duration) -> Result<Self, DiscoveryError> {
        let name = name.to_string();
        Self::new(Query::Services { name }, every)
    }

    async fn ips(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, DiscoveryError> {
        let found = self
            .resolver
            .lookup_ip(name)
            .await
            .map_err(|e| DiscoveryError::Dns {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        Ok(found.iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }

    async fn services_of(&self, name: &str) -> Result<Vec<SocketAddr>, DiscoveryError> {
        let found = self
            .resolver
            .srv_lookup(name)
            .await
            .map_err(|e| DiscoveryError::Dns {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        let targets: Vec<(String, u16)> = found
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) if srv.port != 0 => Some((srv.target.to_string(), srv.port)),
                _ => None,
            })
            .take(MAX_INTRODUCED)
            .collect();
        let mut addrs = Vec::new();
        for (target, port) in targets {
            // One target that does not resolve leaves the others usable.
            match self.ips(&target, port).await {
                Ok(found) => addrs.extend(found),
                Err(e) => tracing::debug!(error = %e, "SRV target does not resolve"),
            }
        }
        Ok(addrs)
    }
}

#[async_trait]
impl Discovery for DnsPoll {
    async fn discover(&mut self) -> Result<Vec<SocketAddr>, DiscoveryError> {
        if !std::mem::take(&mut self.first) {
            tokio::time::sleep(self.every).await;
        }
        self.resolver.clear_cache();
        let mut found = match &self.query {
            Query::Addresses { name, port } => self.ips(name, *port).await?,
            Query::Services { name } => self.services_of(name).await?,
        };
        found.truncate(MAX_INTRODUCED);
        Ok(found)
    }
}
