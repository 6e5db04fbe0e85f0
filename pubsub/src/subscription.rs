//! [`Subscription`]: a stream subscription to one topic, bounded.
//!
//! Each stream subscriber has a ring of `capacity` messages. A publisher
//! never waits for a subscriber: when the ring is full, the oldest message
//! is dropped, and the subscriber's next read is a [`Lagged`] notice with
//! how many it missed, then the oldest message still held. So a slow
//! subscriber costs its node at most `capacity` messages, and learns that
//! it missed some (as with tokio's broadcast channel, which this is built
//! on).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use crate::subscribers::SubscriberKey;

/// Messages a stream subscription holds by default before it drops the
/// oldest.
pub const DEFAULT_STREAM_CAPACITY: usize = 256;

/// The largest capacity a stream subscription may ask for.
pub const MAX_STREAM_CAPACITY: usize = 1 << 16;

/// A subscriber fell behind: this many messages were dropped, oldest
/// first, before the next one it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the subscriber fell behind: {0} messages were dropped")]
pub struct Lagged(pub u64);

/// What a dropped subscription calls to leave its topic.
pub(crate) type Unsubscribe = Box<dyn FnOnce(&str, &SubscriberKey) + Send + Sync>;

/// A stream subscription: yields the topic's messages of type `M`, in the
/// order each publisher sent them, or a [`Lagged`] notice where it fell
/// behind. Dropping it unsubscribes.
pub struct Subscription<M> {
    topic: String,
    key: SubscriberKey,
    rx: BroadcastStream<M>,
    lagged: Arc<AtomicU64>,
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

impl<M: Clone + Send + 'static> Subscription<M> {
    /// `lagged` counts the messages dropped, for `/metrics`.
    pub(crate) fn new(
        topic: &str,
        key: SubscriberKey,
        rx: broadcast::Receiver<M>,
        lagged: Arc<AtomicU64>,
        unsubscribe: Unsubscribe,
    ) -> Self {
        Subscription {
            topic: topic.to_string(),
            key,
            rx: BroadcastStream::new(rx),
            lagged,
            unsubscribe: Some(unsubscribe),
        }
    }

    /// The next message, or `Err(Lagged(n))` when `n` were dropped before
    /// it; `None` once the node's pub/sub service is gone.
    pub async fn recv(&mut self) -> Option<Result<M, Lagged>> {
        self.next().await
    }
}

impl<M> Subscription<M> {
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

impl<M: Clone + Send + 'static> futures_core::Stream for Subscription<M> {
    type Item = Result<M, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.rx).poll_next(cx).map(|item| {
            item.map(|r| {
                r.map_err(|BroadcastStreamRecvError::Lagged(n)| {
                    self.lagged.fetch_add(n, Ordering::Relaxed);
                    Lagged(n)
                })
            })
        })
    }
}

impl<M> Drop for Subscription<M> {
    fn drop(&mut self) {
        if let Some(unsubscribe) = self.unsubscribe.take() {
            unsubscribe(&self.topic, &self.key);
        }
    }
}
