//! drove's replication core: one mechanism for every replicated table (the
//! registry's names, the supervisor's specs and checkpoints, pub/sub's
//! subscriptions, the cache).
//!
//! The data structure ([`Replica`]) is sans-IO and generic over key and
//! value: an owner-partitioned delta-state CRDT map whose slots carry
//! hybrid-logical-clock stamps ([`Hlc`]) and their owner's node id. The
//! logic that keeps replicas in step ([`Channel`]) is sans-IO too: deltas
//! pushed to peers at once, digests for anti-entropy, chunked partition
//! transfer, purging the partitions of nodes that go down or leave; it
//! takes inputs (a write, a message, a membership change, `tick(now)`) and
//! answers the messages to send. The service ([`Replicated`]) runs a
//! channel on a drove node and does its I/O.
//!
//! # Layout
//!
//! - [`hlc`]: hybrid logical clock.
//! - [`replica`]: the map, its ops, digests, merge, purge.
//! - [`schema`]: a channel's types and its wire messages.
//! - [`chunks`]: cutting ops into messages of bounded size.
//! - [`channel`]: the sans-IO state machine of one channel.
//! - [`writer`]: local writes, recorded for the next delta.
//! - [`observer`]: how the layers above hear of changes.
//! - [`page`]: one page of keys in name order, in bounded memory.
//! - `outbox`: messages waiting, in order, for room on a full link.
//! - [`replicated`]: the service on a drove node, and its builder.
//! - [`config`]: a channel's tunables.
//! - `ALGORITHM.md` (beside this crate): why it converges.

pub mod channel;
pub mod chunks;
pub mod config;
pub mod hlc;
pub mod observer;
mod outbox;
pub mod page;
pub mod replica;
pub mod replicated;
pub mod schema;
pub mod writer;

pub use channel::{Channel, ChannelCounters, Loss, Lost, LostHook, Outgoing};
pub use config::ReplicationConfig;
pub use hlc::{Clock, Hlc, TooFarAhead};
pub use observer::{Change, Observer};
pub use page::{KeyPage, Page};
pub use replica::{Digest, Op, PurgedSlot, Replica, SlotRef};
pub use replicated::{ReplStats, Replicated, ReplicatedBuilder};
pub use schema::{ReplMsg, Schema, SchemaOp, SchemaReplica};
pub use writer::Writer;

#[cfg(test)]
mod tests;
