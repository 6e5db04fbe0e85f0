//! Cluster-wide actor names for drove, as Erlang's `:global` or Horde's
//! registry: any actor can take a name unique across the cluster and be
//! reached by it from any node.
//!
//! The table is replicated on every node through `drove-replication`, so
//! [`Registry::lookup`] is a local read, and a registration is visible on
//! the registering node as soon as `register` returns. Deltas reach the
//! other nodes at once; anti-entropy repairs the rest.
//!
//! # Rules
//!
//! - **Winner.** If two registrations of a name meet (registered
//!   concurrently, or on both sides of a partition), the earliest
//!   registration wins: the smaller hybrid-logical-clock stamp of the
//!   registering write, ties broken by node name, then incarnation. Every
//!   node computes the same winner from the same slots. The loser's node
//!   drops its registration and tells the actor through
//!   [`drove_runtime::Actor::name_conflict`] (default: stop).
//! - **Lifecycle.** A name disappears when its actor stops (a stop hook on
//!   the node, not a monitor per name), when it is unregistered, and when
//!   its node is declared down or leaves (every node purges that
//!   incarnation by itself). A node that rejoins as a new incarnation drops
//!   its names and tells their actors; its old names never come back.
//!
//! # Layout
//!
//! - [`registry`]: [`Registry`], the API.
//! - [`schema`]: the replicated value and the winner rule.
//! - [`observer`]: events and conflict detection.

pub mod observer;
pub mod registry;
pub mod schema;

pub use observer::RegistryEvent;
pub use registry::{
    Entry, EntryPage, Registry, RegistryError, Spawned, MAX_META_LEN, MAX_NAME_LEN, MAX_PAGE,
};
