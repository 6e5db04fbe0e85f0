//! The `drove` node as a library: what `drove node` runs, for applications
//! that run the same node with their own actor types and routes (the
//! download-manager demo does).
//!
//! # Layout
//!
//! - [`server`]: [`server::NodeArgs`] (the node flags) and
//!   [`server::Server`] (node, registry, supervisor, pub/sub, cache; admin
//!   routes; serving until SIGTERM or SIGINT).
//! - [`local_cluster`]: child node processes on 127.0.0.1.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod local_cluster;
pub mod server;
