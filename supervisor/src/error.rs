//! [`SupervisorError`]: why a supervisor operation failed.

use drove_runtime::{CallError, NodeId, SpawnError};

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
