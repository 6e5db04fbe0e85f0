//! [`ReplicationConfig`]: the tunables of one channel.

use std::time::Duration;

use crate::hlc::DEFAULT_MAX_OFFSET_MS;

/// Tunables.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// How often owners send their digest to every peer.
    pub anti_entropy_interval: Duration,
    /// Ops per message (delta or partition chunk).
    pub chunk: usize,
    /// Encoded bytes per message: well under the transport's 8 MiB frame
    /// limit, so a partition of large values goes as many messages.
    pub chunk_bytes: usize,
    /// How long tombstones are kept.
    pub tombstone_ttl: Duration,
    /// Added to the wall clock (to test clock skew).
    pub clock_offset_ms: i64,
    /// How far ahead of this node's wall clock a peer's stamp may be and
    /// still move this node's clock.
    pub max_clock_offset_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            anti_entropy_interval: Duration::from_secs(1),
            chunk: 2000,
            chunk_bytes: 1 << 20,
            tombstone_ttl: Duration::from_secs(60),
            clock_offset_ms: 0,
            max_clock_offset_ms: DEFAULT_MAX_OFFSET_MS,
        }
    }
}
