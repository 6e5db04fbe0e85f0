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
//!   their timeout. A call to a member that is up but not linked yet (it
//!   just joined) waits for the link, up to 2 s or its timeout.
//! - **Bounds.** What waits for a peer is bounded by bytes up to the socket:
//!   a link hands ractor_cluster at most 8 MiB the peer has not
//!   acknowledged (the peer acknowledges what its inbox has handled), and
//!   holds at most 8 MiB more; past that a send returns
//!   [`SendError::Overloaded`], and a call to a peer that has acknowledged
//!   nothing for a second fails at once. Local mailboxes are unbounded, as
//!   in Erlang: a remote sender is held to its window, but an actor that
//!   handles its messages more slowly than local senders send them grows
//!   its mailbox. Pub/sub stream subscriptions are bounded (drove-pubsub).
//!   Before a connection authenticates, [`gate`] bounds how many there
//!   are, how long each has and how much each may send.
//!
//! # Layout
//!
//! Bottom up (each module uses only those above it in this list):
//!
//! - [`addr`], [`message`], [`error`]: plain data: where an actor lives,
//!   what a message is, what can go wrong.
//! - [`wire`]: the envelope format.
//! - [`lifecycle`]: why an actor stopped, lost names.
//! - [`mailbox`]: how messages reach a local actor.
//! - [`handle`]: [`Handle`], typed and serializable.
//! - `local_actors`, `calls`, `grants`, `link`, [`metrics`]: the local
//!   actor table, calls waiting for replies, the tokens that bind a batch to
//!   its session, per-peer outbound batching, counters.
//! - [`node`]: [`Node`]: spawn, cast, call, reply, members, leave.
//! - [`actor`]: [`Actor`] and its [`Context`]; the shell that runs an
//!   actor on ractor.
//! - [`echo`]: the echo service every node runs (`drove.echo`), [`echo::ping`].
//! - [`cookie`]: what a cookie must be; the keys derived from it.
//! - [`gossip`]: chitchat over sealed, checked UDP; snapshots.
//! - [`tls`]: mutual TLS material for the transport.
//! - `transport`: ractor_cluster server, session events, the inbox actor.
//! - `sessions`: the sessions the driver accepted, one per peer, and which
//!   peers have one (so a dialer stops).
//! - [`throttle`]: warnings written at most once per interval.
//! - [`reach`]: which up members no session has reached (`unreachable`).
//! - [`testing`]: what tests of a node share (a free port, a one-node
//!   config, a bounded wait), here and in applications built on drove.
//! - [`gate`]: the cluster port's accept loop and its bounds before
//!   authentication; `fd_budget`: the descriptor limit raised at start.
//! - [`cluster`]: [`NodeConfig`], [`NodeConfig::start`], and the driver task
//!   (gossip + transport + membership view).

pub mod actor;
pub mod addr;
mod calls;
pub mod cluster;
pub mod cookie;
pub mod echo;
pub mod error;
mod fd_budget;
pub mod gate;
pub mod gossip;
mod grants;
pub mod handle;
pub mod lifecycle;
mod link;
mod local_actors;
pub mod mailbox;
pub mod message;
pub mod metrics;
pub mod node;
pub mod reach;
mod sessions;
pub mod testing;
pub mod throttle;
pub mod tls;
mod transport;
pub mod wire;

pub use actor::{Actor, ActorError, Context};
pub use addr::{ActorAddr, LocalRef};
pub use cluster::NodeConfig;
pub use drove_membership::{
    validate_name, Incarnation, Member, MemberInfo, MemberStatus, MembershipEvent, NodeId,
};
pub use error::{CallError, DeliveryError, SendError, SpawnError, StartError, WireError};
pub use handle::Handle;
pub use lifecycle::{ConflictAction, ExitReason, NameConflict};
pub use message::{Message, Reply, ReplyValue};
pub use node::{BeforeInit, Node, Spawn, SpawnOptions, MAX_INTRODUCED};
