//! drove's replication core: one mechanism for every replicated table (the
//! registry's names, the supervisor's specs and checkpoints, the cache).
//!
//! The data structure ([`Replica`]) is sans-IO and generic over key and
//! value: an owner-partitioned delta-state CRDT map whose slots carry
//! hybrid-logical-clock stamps ([`Hlc`]) and their owner's node id. The
//! service ([`Replicated`]) ships it: deltas pushed to peers at once,
//! digests for anti-entropy, chunked partition transfer, and purging of
//! the partitions of nodes that go down or leave.
//!
//! # Layout
//!
//! - [`hlc`]: hybrid logical clock.
//! - [`replica`]: the map, its ops, digests, merge, purge.
//! - [`service`]: the per-channel service on a drove node.
//! - [`writer`]: local writes, recorded for the next delta.
//! - `ALGORITHM.md` (beside this crate): why it converges.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod hlc;
pub mod replica;
pub mod service;
pub mod writer;

pub use hlc::{Clock, Hlc};
pub use replica::{Digest, Op, Replica, SlotRef};
pub use service::{
    Change, Observer, ReplMetrics, ReplMsg, Replicated, ReplicationConfig, Schema, SchemaOp,
    SchemaReplica,
};
pub use writer::Writer;

#[cfg(test)]
mod tests;
