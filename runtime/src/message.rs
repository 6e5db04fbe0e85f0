//! Message types that can cross the wire, and reply tokens for calls.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use drove_membership::NodeId;

/// A message type an actor takes. Every such type can cross the wire: it is
/// serde-serializable and names itself by a stable tag.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// enum CounterMsg {
///     Add(u64),
///     Get(drove_runtime::Reply<u64>),
/// }
///
/// impl drove_runtime::Message for CounterMsg {
///     const TAG: &'static str = "example.counter.v1";
/// }
/// ```
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// The type's wire name. Keep it stable across releases; change it when
    /// the encoding changes incompatibly (e.g. a `.v2` suffix).
    const TAG: &'static str;

    /// The node this message says it speaks for, if it says so (a
    /// replication delta names its owner). A message from another node that
    /// claims someone else is not delivered.
    fn claimed_sender(&self) -> Option<&NodeId> {
        None
    }
}

/// A value a call can return: anything serde can carry.
pub trait ReplyValue: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> ReplyValue for T {}

/// The token a caller puts inside its request; the callee answers through
/// it exactly once with `ctx.reply(token, value)` (or `Node::reply`).
///
/// It is plain data (the caller's node and call id), so the callee may pass
/// it on to another actor, even on another node, to answer in its stead.
#[derive(Serialize, Deserialize)]
pub struct Reply<R> {
    pub(crate) origin: NodeId,
    pub(crate) call: u64,
    #[serde(skip)]
    _value: PhantomData<fn(R)>,
}

impl<R> Reply<R> {
    pub(crate) fn new(origin: NodeId, call: u64) -> Self {
        Self {
            origin,
            call,
            _value: PhantomData,
        }
    }

    /// The calling node.
    pub fn origin(&self) -> &NodeId {
        &self.origin
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({}#{})", self.origin, self.call)
    }
}
