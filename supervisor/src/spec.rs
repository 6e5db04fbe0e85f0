//! Child types and specs: the [`Child`] trait binds a child type's name,
//! start arguments, messages and checkpoint; [`TypedSpec`] is a spec for
//! one such type, built by [`ChildSpec::of`]. On the wire a spec stays
//! untyped ([`ChildSpec`]: type name and JSON text), so nodes of other
//! builds and `POST /api/children` keep working; the typed side encodes
//! and decodes at the edges. Also the replicated record of each child, and
//! the views of records that the supervisor answers with.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use drove_replication::Schema;
use drove_runtime::{Actor, NodeId};

use crate::error::SupervisorError;

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

/// An actor the supervisor can place, restart and move between nodes.
///
/// The actor value itself is the factory: the builder keeps the one given
/// to [`SupervisorBuilder::child`](crate::SupervisorBuilder::child) and
/// clones it for every start, so it can hold handles to services (a cache,
/// pub/sub) that every instance uses.
pub trait Child: Actor + Clone {
    /// The type name every node declares this type under. Stable across
    /// releases: records in the replicated table name their type by it.
    const TYPE: &'static str;
    /// What a start carries (encoded as JSON in the replicated spec).
    type Start: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What the child saves with [`checkpoint`](crate::checkpoint) and gets
    /// back on a restart.
    type Checkpoint: Serialize + DeserializeOwned + Send + 'static;

    /// The actor's init arguments for one start: the spec's arguments and
    /// the last checkpoint (`None` on a first start).
    fn init_args(&self, start: Started<Self>) -> Self::Args;
}

/// One start of a child of type `C`, decoded.
#[derive(Debug)]
pub struct Started<C: Child> {
    /// The child's id, stable across restarts and moves.
    pub id: String,
    /// How many times it was started before.
    pub restarts: u32,
    /// Its start arguments.
    pub args: C::Start,
    /// Its last checkpoint.
    pub checkpoint: Option<C::Checkpoint>,
}

impl<C: Child> Started<C> {
    /// Decodes the untyped start of a child.
    pub(crate) fn decode(info: StartInfo) -> Result<Self, SupervisorError> {
        let args = serde_json::from_str(&info.args).map_err(|source| SupervisorError::Args {
            type_name: C::TYPE,
            source,
        })?;
        let checkpoint = info
            .checkpoint
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|source| SupervisorError::BadCheckpoint {
                id: info.id.clone(),
                source,
            })?;
        Ok(Started {
            id: info.id,
            restarts: info.restarts,
            args,
            checkpoint,
        })
    }
}

/// A spec for a child of type `C`: what
/// [`Supervisor::start_child`](crate::Supervisor::start_child) takes. Built by [`ChildSpec::of`];
/// permanent, with 3 restarts in 5 s, unless told otherwise.
#[derive(Debug)]
pub struct TypedSpec<C: Child> {
    args: C::Start,
    id: String,
    name: Option<String>,
    restart: Restart,
    max_restarts: u32,
    within: Duration,
    child: PhantomData<fn() -> C>,
}

impl ChildSpec {
    /// A spec for a child of type `C` started with `args`.
    pub fn of<C: Child>(args: C::Start) -> TypedSpec<C> {
        TypedSpec {
            args,
            id: String::new(),
            name: None,
            restart: Restart::Permanent,
            max_restarts: 3,
            within: Duration::from_secs(5),
            child: PhantomData,
        }
    }
}

impl<C: Child> TypedSpec<C> {
    /// A stable id (generated at start when not given).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// A global name the child holds in the registry while it runs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Restarted always: after a crash, a normal exit, or its node's death.
    pub fn permanent(self) -> Self {
        self.restart(Restart::Permanent)
    }

    /// Restarted after a crash or its node's death, not after a normal exit.
    pub fn transient(self) -> Self {
        self.restart(Restart::Transient)
    }

    /// Never restarted.
    pub fn temporary(self) -> Self {
        self.restart(Restart::Temporary)
    }

    /// The restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// At most `max_restarts` restarts `within` this long, then the child
    /// is given up.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// The untyped spec that is replicated.
    pub(crate) fn into_spec(self) -> Result<ChildSpec, SupervisorError> {
        let args = serde_json::to_string(&self.args).map_err(|source| SupervisorError::Args {
            type_name: C::TYPE,
            source,
        })?;
        Ok(ChildSpec {
            id: self.id,
            type_name: C::TYPE.to_string(),
            args,
            restart: self.restart,
            name: self.name,
            max_restarts: self.max_restarts,
            within_ms: u64::try_from(self.within.as_millis()).unwrap_or(u64::MAX),
        })
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
