//! [`SupervisorError`]: why a supervisor operation failed.

use drove_runtime::{ActorAddr, CallError, NodeId, SpawnError};

/// Why a supervisor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// No up member declared this type.
    #[error("no up node runs actor type {0:?}")]
    NoNodeForType(String),
    /// A child with this id is already supervised.
    #[error("child {id} already runs on {node}")]
    AlreadyRunning {
        /// The child.
        id: String,
        /// Where.
        node: NodeId,
    },
    /// No such child.
    #[error("no child {0}")]
    NoSuchChild(String),
    /// The child's global name is held by another actor: a start of the
    /// same name won elsewhere (the owner can be asked who it is).
    #[error("cannot start child: name {name:?} is held by {owner}")]
    NameHeld {
        /// The name.
        name: String,
        /// Its holder.
        owner: ActorAddr,
    },
    /// The child could not be started (the reason may come from another
    /// node, so it is text).
    #[error("cannot start child: {0}")]
    Start(String),
    /// A remote supervisor could not be reached.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The supervisor's own actor could not be spawned.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The quorum strategy is on and this side has no majority.
    #[error("this side of the cluster has no quorum")]
    NoQuorum,
    /// Checkpoint from an actor that is not a supervised child.
    #[error("not a supervised child")]
    NotAChild,
    /// A checkpoint that does not serialize.
    #[error("checkpoint does not serialize")]
    Checkpoint(#[source] serde_json::Error),
    /// A checkpoint over [`MAX_CHECKPOINT_BYTES`](crate::MAX_CHECKPOINT_BYTES):
    /// every node holds a copy of every child's checkpoint. The previous
    /// checkpoint stays.
    #[error("checkpoint of {len} bytes of JSON is over the {max}-byte limit")]
    CheckpointTooLarge {
        /// The checkpoint's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A stored checkpoint that does not decode as the child's type.
    #[error("checkpoint of child {id} does not decode")]
    BadCheckpoint {
        /// The child.
        id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Start arguments that do not encode or decode as the type's.
    #[error("bad start arguments for type {type_name:?}")]
    Args {
        /// The child type.
        type_name: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A singleton spec without a name.
    #[error("a singleton needs a name")]
    NoName,
    /// Two child types declared under one name.
    #[error("two child types declared as {0:?}")]
    DuplicateType(&'static str),
}

/// Why a node did not start a child, as it answers another node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum StartRefused {
    /// The child's global name is held by another actor.
    #[error("name {name:?} is held by {owner}")]
    NameHeld {
        /// The name.
        name: String,
        /// Its holder.
        owner: ActorAddr,
    },
    /// Anything else, as text.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for StartRefused {
    fn from(reason: String) -> Self {
        StartRefused::Failed(reason)
    }
}

impl From<StartRefused> for SupervisorError {
    fn from(refused: StartRefused) -> Self {
        match refused {
            StartRefused::NameHeld { name, owner } => SupervisorError::NameHeld { name, owner },
            StartRefused::Failed(reason) => SupervisorError::Start(reason),
        }
    }
}
