//! How the layers above hear of changes: an [`Observer`] sees every
//! [`Change`] with the replica as it is after it, under the channel's lock;
//! [`ReplicatedBuilder::subscribe`](crate::ReplicatedBuilder::subscribe)
//! turns a picking function into a queue of the layer's own events.

use tokio::sync::mpsc;

use drove_runtime::NodeId;

use crate::replica::{Op, PurgedSlot};
use crate::schema::{Schema, SchemaReplica};

/// What changed in the replica, for the layer above.
#[derive(Debug)]
pub enum Change<'a, K, V> {
    /// An op was applied (from this node or a peer).
    Applied {
        /// Its writer.
        owner: &'a NodeId,
        /// The op.
        op: &'a Op<K, V>,
    },
    /// Every slot of `owner` went: here they are, tombstones included.
    Purged {
        /// The owner whose slots went.
        owner: &'a NodeId,
        /// Its slots as they were.
        slots: &'a [PurgedSlot<K, V>],
        /// `true` when the owner is gone (down, left, or this node's old
        /// incarnation); `false` when its partition is being replaced by a
        /// resync and its slots come right back.
        departed: bool,
    },
}

// By hand: derived impls would ask `K: Copy, V: Copy`.
impl<K, V> Clone for Change<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Change<'_, K, V> {}

/// Told about every change, with the replica as it is after it. Called with
/// the channel locked: do not call back into the service.
pub trait Observer<S: Schema>: Send + Sync + 'static {
    /// One change.
    fn changed(
        &self,
        replica: &SchemaReplica<S>,
        me: &NodeId,
        change: Change<'_, S::Key, S::Value>,
    );
}

/// A picking function and the queue its events go to: what
/// [`subscribe`](crate::ReplicatedBuilder::subscribe) installs. The queue is
/// unbounded because its events (a dead node's children, its cache
/// entries) must not be dropped; each event is one small item per change.
pub(crate) struct Picker<T, F> {
    pick: F,
    queue: mpsc::UnboundedSender<T>,
}

impl<T, F> Picker<T, F> {
    pub(crate) fn new(pick: F, queue: mpsc::UnboundedSender<T>) -> Self {
        Picker { pick, queue }
    }
}

impl<S, T, F> Observer<S> for Picker<T, F>
where
    S: Schema,
    T: Send + 'static,
    F: Fn(&SchemaReplica<S>, &NodeId, Change<'_, S::Key, S::Value>) -> Option<T>
        + Send
        + Sync
        + 'static,
{
    fn changed(
        &self,
        replica: &SchemaReplica<S>,
        me: &NodeId,
        change: Change<'_, S::Key, S::Value>,
    ) {
        if let Some(event) = (self.pick)(replica, me, change) {
            // A dropped receiver means the layer stopped listening.
            let _ = self.queue.send(event);
        }
    }
}
