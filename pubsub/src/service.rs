//! The per-node service: the replicated table of who subscribes where,
//! what travels between nodes, the actor that receives it, and stream
//! subscriptions.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use drove_replication::Schema;
use drove_runtime::{Actor, ActorError, Context, Message};

use crate::local::SubscriberKey;
use crate::pubsub::{PubSub, Shared};

/// Which nodes have subscribers to which topics: each node owns the slots
/// of its own topics (present while it has at least one subscriber).
#[derive(Debug)]
pub struct SubscriptionsSchema;

impl Schema for SubscriptionsSchema {
    const CHANNEL: &'static str = "pubsub";
    const TAG: &'static str = "drove.pubsub.subscriptions.v1";
    type Key = Arc<str>;
    type Value = bool;
}

/// What travels between pub/sub services: one per node with subscribers
/// per broadcast, whatever the number of subscribers there.
#[derive(Serialize, Deserialize)]
pub enum PubSubMsg {
    /// Deliver an encoded message to this node's subscribers of `topic`.
    Deliver {
        /// The sending node's name, for the counters.
        from: String,
        /// The topic.
        topic: String,
        /// The message type's wire tag.
        tag: u64,
        /// The encoded message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
}

impl Message for PubSubMsg {
    const TAG: &'static str = "drove.pubsub.v1";
}

/// A stream subscription: yields the topic's messages of type `M`, in the
/// order each publisher sent them. Dropping it unsubscribes.
pub struct Subscription<M> {
    pub(crate) topic: String,
    pub(crate) key: SubscriberKey,
    pub(crate) rx: mpsc::UnboundedReceiver<M>,
    pub(crate) pubsub: Weak<Shared>,
}

impl<M> Subscription<M> {
    /// The next message; `None` once the node's pub/sub service is gone.
    pub async fn recv(&mut self) -> Option<M> {
        self.rx.recv().await
    }

    /// This subscription's key, for [`PubSub::broadcast_from`].
    pub fn key(&self) -> &SubscriberKey {
        &self.key
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl<M> futures_core::Stream for Subscription<M> {
    type Item = M;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<M>> {
        self.rx.poll_recv(cx)
    }
}

impl<M> Drop for Subscription<M> {
    fn drop(&mut self) {
        if let Some(shared) = self.pubsub.upgrade() {
            PubSub { shared }.remove(&self.topic, &self.key);
        }
    }
}

pub(crate) struct PubSubActor(pub(crate) Weak<Shared>);

impl Actor for PubSubActor {
    type Msg = PubSubMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &self,
        _: &Context<Self>,
        msg: PubSubMsg,
        _: &mut (),
    ) -> Result<(), ActorError> {
        let Some(shared) = self.0.upgrade() else {
            return Ok(());
        };
        let PubSubMsg::Deliver {
            from,
            topic,
            tag,
            payload,
        } = msg;
        PubSub { shared }.deliver_remote(&from, &topic, tag, &payload);
        Ok(())
    }
}
