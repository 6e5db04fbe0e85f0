//! drove's node runtime: gossip membership, the ractor_cluster transport,
//! and typed actors that can be reached from any node.
//!
//! # Decisions
//!
//! - **Identity.** A node is [`NodeId`] = name + [`Incarnation`], a random
//!   value drawn at every start and at every rejoin. Down is final for an
//!   incarnation; a node that learns it was declared down rejoins as a new
//!   incarnation (see drove-membership's `ALGORITHM.md`).
//! - **Membership.** chitchat (scuttlebutt gossip, phi-accrual failure
//!   detector) on UDP, on the same port as the transport's TCP. A closed
//!   transport connection is the fast crash signal; gossip silence the slow
//!   one. Membership drives the transport: the smaller node id dials when a
//!   member comes up; sessions close when it goes down.
//! - **Transport.** ractor_cluster (cookie handshake, length-prefixed
//!   frames, 16 MiB frame limit). Only one actor per node is remote-visible:
//!   the *inbox*, taking byte batches. User actors are never advertised, so
//!   ractor_cluster's proxy-per-actor-per-peer cost stays at one per peer.
//! - **Envelope.** [`wire`]: batches of frames, bincode 2 via serde, a
//!   stable 64-bit tag per message type ([`Message::TAG`]), size limits on
//!   every decode.
//! - **Actors.** [`Actor`] with a [`Context`]; [`Handle`] = (node name,
//!   incarnation, local id or local name), serializable inside messages.
//!   [`Node::cast`] and [`Node::call`] work the same for local and remote
//!   handles; a local cast goes straight into the ractor mailbox.
//! - **Calls.** A request carries a [`Reply`] token (caller node + call id).
//!   Calls fail fast when the callee's node goes down and always end by
//!   their timeout.
//!
//! # Layout
//!
//! - [`node`]: [`Node`], [`NodeConfig`]; spawn, cast, call, reply, leave.
//! - `cluster`: the driver task (gossip + transport + membership view).
//! - `gossip`: chitchat setup and snapshots.
//! - `transport`: ractor_cluster server, session events, the inbox actor.
//! - `link`: per-peer outbound batching.
//! - [`wire`]: the envelope format.
//! - [`actor`], [`handle`], [`message`]: the actor API.
//! - `local`, `calls`: the local actor table and waiting calls.
//! - [`echo`]: the echo service every node runs (`drove.echo`).
//! - [`metrics`]: counters and Prometheus rendering.
//! - [`error`]: error enums.

pub mod actor;
mod calls;
mod cluster;
pub mod echo;
pub mod error;
mod gossip;
pub mod handle;
mod link;
mod local;
pub mod message;
pub mod metrics;
pub mod node;
mod transport;
pub mod wire;

pub use actor::{Actor, ActorError, ConflictAction, Context, ExitReason, NameConflict};
pub use drove_membership::{
    Incarnation, Member, MemberInfo, MemberStatus, MembershipEvent, NodeId,
};
pub use error::{CallError, DeliveryError, SendError, SpawnError, StartError};
pub use handle::{ActorAddr, Handle, LocalRef};
pub use message::{Message, Reply, ReplyValue};
pub use node::{Node, NodeConfig};
