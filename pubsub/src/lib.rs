//! Cluster pub/sub for drove, as Phoenix.PubSub.
//!
//! Actors (or async streams) subscribe to topics; a broadcast reaches every
//! subscriber in the cluster, with one message per node that has
//! subscribers to the topic and none to the others.
//!
//! # How it works
//!
//! - **Who subscribes where** is replicated through `drove-replication`:
//!   each node owns a slot per topic it has subscribers to (present while
//!   it has at least one), so every node knows which nodes to send a topic
//!   to, a node that goes down is forgotten with its slots, and a node that
//!   joins receives the table.
//! - **Delivery.** A broadcast encodes the message once and sends one
//!   [`PubSubMsg`] to the `drove.pubsub` service of each other node with
//!   subscribers; that service decodes it once per message type and hands a
//!   copy to each local subscriber. Local subscribers get a clone directly.
//! - **Order.** Messages from one publisher to one subscriber arrive in the
//!   order they were sent: one link per pair of nodes, one service actor
//!   per node.
//! - **Typed messages.** Any [`Message`](drove_runtime::Message) + `Clone`;
//!   a subscriber only receives messages of the type it subscribed with.
//! - **Window.** A subscription is known to the other nodes once its delta
//!   arrives (one link hop, usually well under a millisecond on a LAN); a
//!   broadcast from another node just before that does not reach it, as
//!   with Phoenix.PubSub over `pg`.
//! - **Bounds.** A stream subscription holds at most its capacity of
//!   unread messages ([`DEFAULT_STREAM_CAPACITY`], or set with
//!   [`PubSub::subscribe_stream_with`]); past it the oldest is dropped and
//!   the subscriber reads a [`Lagged`] notice. An actor subscriber gets
//!   casts, into its mailbox: unbounded, as every local mailbox (see the
//!   runtime's docs). Between nodes, a link to a peer that is not reading
//!   fills up and the broadcast counts that node as `failed`.
//!
//! # Layout
//!
//! - [`pubsub`]: [`PubSub`]: subscribe, broadcast and friends, and the
//!   actor that receives other nodes' messages.
//! - [`subscription`]: [`Subscription`], a stream subscription.
//! - [`schema`]: the replicated table of who subscribes where.
//! - [`message`]: [`PubSubMsg`], what travels between nodes.
//! - `subscribers`: this node's subscribers, grouped by topic and message
//!   type.
//! - `metrics`: counters for `/metrics`.
//! - `json`: [`JsonMessage`], JSON documents as messages.

mod json;
pub mod message;
mod metrics;
pub mod pubsub;
pub mod schema;
mod subscribers;
pub mod subscription;

pub use json::JsonMessage;
pub use message::PubSubMsg;
pub use pubsub::{PubSub, PubSubError, Published, MAX_TOPIC_LEN, PUBSUB_NAME};
pub use schema::SubscriptionsSchema;
pub use subscribers::SubscriberKey;
pub use subscription::{Lagged, Subscription, DEFAULT_STREAM_CAPACITY, MAX_STREAM_CAPACITY};
