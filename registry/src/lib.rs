//! Cluster-wide actor names for drove.
//!
//! This crate is a placeholder for the global registry: a delta-state CRDT
//! map from names to location handles (`drove_runtime::ActorAddr`),
//! replicated on every node so that lookups are local reads. It is built on
//! the foundation in `drove-runtime` (membership events drop the names of
//! nodes that go down or leave; handles carry the incarnation, so names of a
//! quarantined incarnation can never come back).
//!
//! # Layout
//!
//! Nothing yet: the registry issue adds the replication core and the API.
