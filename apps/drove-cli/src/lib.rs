//! What drove's binaries share (the `drove` CLI here and the
//! download-manager demo): the node flags, logging, and local clusters of
//! child processes. The node itself is the `drove` library crate; its
//! admin API is `drove-admin`.
//!
//! # Layout
//!
//! - [`node_args`]: [`node_args::NodeArgs`], the flags of a node, as a
//!   [`drove::Config`].
//! - [`local_cluster`]: child node processes on 127.0.0.1.
//! - [`init_tracing`]: logs to stderr.

pub mod admin_args;
pub mod certs;
pub mod local_cluster;
pub mod node_args;

/// Logs to stderr, filtered by `RUST_LOG` (default: info, gossip's chatter
/// at warn, ractor_cluster's at error: it warns once per refused
/// connection or frame, which an outsider could turn into a flood of
/// lines; drove's gate counts those and logs them at most once per
/// interval).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ractor_cluster=error,chitchat=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
