//! How drove nodes find each other besides `--seeds`.
//!
//! A strategy only *adds seeds*: it finds cluster addresses and hands them
//! to [`Node::introduce`](drove_runtime::Node::introduce), which offers
//! each unknown one a gossip exchange. Membership and authentication are
//! unchanged, so a node found by any strategy still joins only if it holds
//! the cluster's cookie (and certificate, with TLS).
//!
//! - [`spec`]: [`DiscoverySpec`], the `--discovery` value
//!   (`static`, `mdns`, `dns:NAME[:PORT]`, `dns:_service._proto.NAME`).
//! - [`strategy`]: [`Discovery`], the trait every strategy implements,
//!   and [`DiscoveryError`].
//! - [`seeds`]: the static strategy, `--seeds` resolved again each round.
//! - [`dns`]: polling A/AAAA or SRV records (libcluster's DNSPoll, and
//!   what a Kubernetes headless service offers).
//! - [`mdns`]: LAN discovery with libp2p's mDNS behaviour (libcluster's
//!   Gossip strategy). Opt-in: it multicasts on every interface the
//!   process sees.
//! - [`task`]: the loop that runs a strategy beside a node.

pub mod dns;
pub mod mdns;
pub mod seeds;
pub mod spec;
pub mod strategy;
pub mod task;

pub use spec::{DiscoverySpec, SpecError};
pub use strategy::{Discovery, DiscoveryError};
pub use task::{spawn, DiscoveryTask};
