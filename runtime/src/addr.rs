//! Where an actor lives, as plain data: [`ActorAddr`] = node + [`LocalRef`].

use std::fmt;

use serde::{Deserialize, Serialize};

use drove_membership::NodeId;

/// An actor on its node: by the id it got at spawn, or by a local name
/// (as Erlang's `{Name, Node}`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LocalRef {
    /// The id assigned at spawn; never reused within an incarnation.
    Id(u64),
    /// A name given with `Node::spawn_named`.
    Name(String),
}

impl fmt::Display for LocalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalRef::Id(id) => write!(f, "<{id}>"),
            LocalRef::Name(name) => write!(f, "{name}"),
        }
    }
}

/// An untyped location handle: (node name, incarnation, local id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorAddr {
    /// The node (name and incarnation) the actor runs on.
    pub node: NodeId,
    /// The actor on that node.
    pub local: LocalRef,
}

impl fmt::Display for ActorAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.local)
    }
}
