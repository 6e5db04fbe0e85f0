//! Distributed supervision for drove.
//!
//! This crate is a placeholder for the distributed supervisor: child specs
//! (actor type name, serialized arguments, restart policy), placement over
//! the up members of `drove-runtime`'s membership view, and failover of a
//! down node's children onto survivors.
//!
//! # Layout
//!
//! Nothing yet: the supervisor issue adds placement, failover and the API.
