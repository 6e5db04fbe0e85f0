//! [`ReplicationConfig`]: the tunables of one channel.

use std::time::Duration;

/// Tunables.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// How often owners send their digest to every peer.
    pub anti_entropy_interval: Duration,
    /// Ops per partition chunk.
    pub chunk: usize,
    /// How long tombstones are kept.
    pub tombstone_ttl: Duration,
    /// Added to the wall clock (to test clock skew).
    pub clock_offset_ms: i64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            anti_entropy_interval: Duration::from_secs(1),
            chunk: 2000,
            tombstone_ttl: Duration::from_secs(60),
            clock_offset_ms: 0,
        }
    }
}
