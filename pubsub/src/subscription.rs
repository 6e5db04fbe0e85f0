//! [`Subscription`]: a stream subscription to one topic.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::subscribers::SubscriberKey;

/// What a dropped subscription calls to leave its topic.
pub(crate) type Unsubscribe = Box<dyn FnOnce(&str, &SubscriberKey) + Send + Sync>;

/// A stream subscription: yields the topic's messages of type `M`, in the
/// order each publisher sent them. Dropping it unsubscribes.
pub struct Subscription<M> {
    topic: String,
    key: SubscriberKey,
    rx: mpsc::UnboundedReceiver<M>,
    unsubscribe: Option<Unsubscribe>,
}

impl<M> std::fmt::Debug for Subscription<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("key", &self.key)
            .finish()
    }
}

impl<M> Subscription<M> {
    pub(crate) fn new(
        topic: &str,
        key: SubscriberKey,
        rx: mpsc::UnboundedReceiver<M>,
        unsubscribe: Unsubscribe,
    ) -> Self {
        Subscription {
            topic: topic.to_string(),
            key,
            rx,
            unsubscribe: Some(unsubscribe),
        }
    }

    /// The next message; `None` once the node's pub/sub service is gone.
    pub async fn recv(&mut self) -> Option<M> {
        self.rx.recv().await
    }

    /// This subscription's key, for
    /// [`PubSub::broadcast_from`](crate::PubSub::broadcast_from).
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

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<M>> {
        self.rx.poll_recv(cx)
    }
}

impl<M> Drop for Subscription<M> {
    fn drop(&mut self) {
        if let Some(unsubscribe) = self.unsubscribe.take() {
            unsubscribe(&self.topic, &self.key);
        }
    }
}
