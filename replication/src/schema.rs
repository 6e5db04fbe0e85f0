//! What one replicated channel is made of: its [`Schema`] (name, wire tag,
//! key and value types) and the [`ReplMsg`]s its nodes exchange.

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use drove_runtime::{Message, NodeId};

use crate::replica::{Digest, Op, Replica};

/// The types of one replicated channel.
pub trait Schema: Send + Sync + 'static {
    /// The channel's name; the service is the local actor
    /// `drove.repl.<CHANNEL>` on every node.
    const CHANNEL: &'static str;
    /// The wire tag of this channel's messages.
    const TAG: &'static str;
    /// Keys.
    type Key: Clone + Eq + Hash + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Values.
    type Value: Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// How many bytes a live slot counts for in the replica's total
    /// ([`Replica::bytes`]); 0 unless a channel caps its size.
    fn weight(_key: &Self::Key, _value: &Self::Value) -> usize {
        0
    }
}

/// The ops of one channel.
pub type SchemaOp<S> = Op<<S as Schema>::Key, <S as Schema>::Value>;

/// The replica of one channel.
pub type SchemaReplica<S> = Replica<<S as Schema>::Key, <S as Schema>::Value>;

/// Messages between the services of one channel.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub enum ReplMsg<S: Schema> {
    /// Writes by `owner`, in order.
    Delta {
        /// The writer.
        owner: NodeId,
        /// Its ops.
        ops: Vec<SchemaOp<S>>,
    },
    /// `owner`'s digest of its own partition.
    Digest {
        /// The owner.
        owner: NodeId,
        /// Its digest.
        digest: Digest,
    },
    /// Please stream your partition to `requester`.
    SyncRequest {
        /// Who asks.
        requester: NodeId,
    },
    /// One chunk of `owner`'s partition; `first` starts a replacement and
    /// `last` ends it.
    Sync {
        /// The owner.
        owner: NodeId,
        /// Live slots as Put ops.
        ops: Vec<SchemaOp<S>>,
        /// The first chunk.
        first: bool,
        /// The last chunk.
        last: bool,
    },
}

impl<S: Schema> Clone for ReplMsg<S> {
    fn clone(&self) -> Self {
        match self {
            ReplMsg::Delta { owner, ops } => ReplMsg::Delta {
                owner: owner.clone(),
                ops: ops.clone(),
            },
            ReplMsg::Digest { owner, digest } => ReplMsg::Digest {
                owner: owner.clone(),
                digest: *digest,
            },
            ReplMsg::SyncRequest { requester } => ReplMsg::SyncRequest {
                requester: requester.clone(),
            },
            ReplMsg::Sync {
                owner,
                ops,
                first,
                last,
            } => ReplMsg::Sync {
                owner: owner.clone(),
                ops: ops.clone(),
                first: *first,
                last: *last,
            },
        }
    }
}

impl<S: Schema> std::fmt::Debug for ReplMsg<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplMsg::Delta { owner, ops } => write!(f, "Delta({owner}, {} ops)", ops.len()),
            ReplMsg::Digest { owner, digest } => write!(f, "Digest({owner}, {digest:?})"),
            ReplMsg::SyncRequest { requester } => write!(f, "SyncRequest({requester})"),
            ReplMsg::Sync {
                owner,
                ops,
                first,
                last,
            } => write!(
                f,
                "Sync({owner}, {} ops, first {first}, last {last})",
                ops.len()
            ),
        }
    }
}

impl<S: Schema> Message for ReplMsg<S> {
    const TAG: &'static str = S::TAG;

    /// Every replication message speaks for its owner (or requester): a
    /// peer cannot write into another node's partition.
    fn claimed_sender(&self) -> Option<&NodeId> {
        Some(match self {
            ReplMsg::Delta { owner, .. }
            | ReplMsg::Digest { owner, .. }
            | ReplMsg::Sync { owner, .. } => owner,
            ReplMsg::SyncRequest { requester } => requester,
        })
    }
}
