//! Location handles: where an actor lives, as data that can cross the wire.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use drove_membership::NodeId;

use crate::addr::{ActorAddr, LocalRef};
use crate::mailbox::ShellMsg;

/// A typed location handle for an actor taking messages of type `M`.
///
/// It serializes as its [`ActorAddr`], so it can travel inside messages.
/// A handle minted on this node also carries the local actor reference, so
/// a local cast goes straight into the mailbox without a table lookup.
pub struct Handle<M> {
    addr: ActorAddr,
    local: Option<ractor::ActorRef<ShellMsg<M>>>,
    _msg: PhantomData<fn(M)>,
}

impl<M> Handle<M> {
    /// A handle to an actor at `addr`, assumed to take `M`. A wrong
    /// assumption is caught at delivery, by the message type's tag.
    pub fn from_addr(addr: ActorAddr) -> Self {
        Self {
            addr,
            local: None,
            _msg: PhantomData,
        }
    }

    /// A handle to the actor spawned under `name` on `node`.
    pub fn named(node: NodeId, name: impl Into<String>) -> Self {
        Self::from_addr(ActorAddr {
            node,
            local: LocalRef::Name(name.into()),
        })
    }

    pub(crate) fn local(addr: ActorAddr, actor: ractor::ActorRef<ShellMsg<M>>) -> Self {
        Self {
            addr,
            local: Some(actor),
            _msg: PhantomData,
        }
    }

    /// The local actor behind a handle minted on this node.
    pub(crate) fn local_actor(&self) -> Option<&ractor::ActorRef<ShellMsg<M>>> {
        self.local.as_ref()
    }

    /// Where the actor lives.
    pub fn addr(&self) -> &ActorAddr {
        &self.addr
    }

    /// The node the actor runs on.
    pub fn node(&self) -> &NodeId {
        &self.addr.node
    }
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            local: self.local.clone(),
            _msg: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Handle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.addr)
    }
}

impl<M> fmt::Display for Handle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr.fmt(f)
    }
}

impl<M> PartialEq for Handle<M> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl<M> Eq for Handle<M> {}

impl<M> Hash for Handle<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr.hash(state)
    }
}

impl<M> Serialize for Handle<M> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.addr.serialize(s)
    }
}

impl<'de, M> Deserialize<'de> for Handle<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ActorAddr::deserialize(d).map(Handle::from_addr)
    }
}
