//! Child specs, the replicated record of each child, and the views of
//! records that the supervisor answers with.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use drove_replication::Schema;
use drove_runtime::NodeId;

/// When a child is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Restart {
    /// Always: after a crash, after a normal exit, after its node died.
    Permanent,
    /// After a crash or its node's death, not after a normal exit.
    Transient,
    /// Never.
    Temporary,
}

/// What to run and how to supervise it. Travels between nodes, so the
/// start arguments are JSON text (the type's factory decodes them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSpec {
    /// Stable across restarts and moves; generated when empty.
    pub id: String,
    /// A type some nodes declared.
    pub type_name: String,
    /// Start arguments, JSON text.
    pub args: String,
    /// Restart policy.
    pub restart: Restart,
    /// A global name taken in the registry while the child runs.
    pub name: Option<String>,
    /// At most this many restarts...
    pub max_restarts: u32,
    /// ...within this many milliseconds, then the child is given up.
    pub within_ms: u64,
}

impl ChildSpec {
    /// An untyped spec (as the admin API receives it), with default
    /// intensity (3 restarts in 5 s) and no name; `args` is JSON text.
    /// Code that knows the child's type uses [`ChildSpec::of`] instead.
    pub fn new(type_name: &str, args: String, restart: Restart) -> Self {
        Self {
            id: String::new(),
            type_name: type_name.to_string(),
            args,
            restart,
            name: None,
            max_restarts: 3,
            within_ms: 5_000,
        }
    }
}

/// A child's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildStatus {
    /// Running.
    Running,
    /// Crashed and about to run again.
    Restarting,
    /// Finished, and its policy does not restart it.
    Stopped,
    /// Crashed more often than its intensity allows.
    GivenUp,
}

/// The replicated record of one child, owned by the node that runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRecord {
    /// Its spec.
    pub spec: ChildSpec,
    /// Its state.
    pub status: ChildStatus,
    /// How many times it was started again (crashes and failovers).
    pub restarts: u32,
    /// Its actor's local id on the owner node, while running.
    pub local: Option<u64>,
    /// Its last checkpoint, JSON text.
    pub checkpoint: Option<Arc<str>>,
}

/// One row of [`Supervisor::which_children`](crate::Supervisor::which_children).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildInfo {
    /// The child's id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its global name.
    pub name: Option<String>,
    /// The node that runs (or last ran) it.
    pub node: String,
    /// Restarts so far.
    pub restarts: u32,
    /// Its state.
    pub status: ChildStatus,
    /// Its last checkpoint, JSON.
    pub checkpoint: Option<serde_json::Value>,
}

/// Counts by status, cluster-wide.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCounts {
    /// Running.
    pub running: usize,
    /// Restarting.
    pub restarting: usize,
    /// Stopped (finished).
    pub stopped: usize,
    /// Given up.
    pub given_up: usize,
}

impl ChildInfo {
    /// The row of `rec`, owned by `node`.
    pub(crate) fn of(node: &NodeId, rec: &ChildRecord) -> ChildInfo {
        ChildInfo {
            id: rec.spec.id.clone(),
            type_name: rec.spec.type_name.clone(),
            name: rec.spec.name.clone(),
            node: node.name.clone(),
            restarts: rec.restarts,
            status: rec.status,
            checkpoint: rec
                .checkpoint
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok()),
        }
    }
}

/// What a type's factory gets to build a child, undecoded.
#[derive(Clone, Debug)]
pub(crate) struct StartInfo {
    /// The child's id.
    pub(crate) id: String,
    /// Start arguments, JSON text.
    pub(crate) args: String,
    /// The last checkpoint, JSON text, if any.
    pub(crate) checkpoint: Option<String>,
    /// How many times it was started before.
    pub(crate) restarts: u32,
}

/// The channel of child records: key = child id.
#[derive(Debug)]
pub struct ChildrenSchema;

impl Schema for ChildrenSchema {
    const CHANNEL: &'static str = "supervisor.children";
    const TAG: &'static str = "drove.supervisor.children.v1";
    type Key = Arc<str>;
    type Value = ChildRecord;
}

/// The channel of declared types: key = type name, one slot per node.
#[derive(Debug)]
pub struct TypesSchema;

impl Schema for TypesSchema {
    const CHANNEL: &'static str = "supervisor.types";
    const TAG: &'static str = "drove.supervisor.types.v1";
    type Key = Arc<str>;
    type Value = bool;
}
