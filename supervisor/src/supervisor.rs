//! The supervisor's public face: errors, the [`Supervisor`] handle and the
//! cluster-wide operations on children.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use drove_registry::Registry;
use drove_replication::Replicated;
use drove_runtime::{
    ActorAddr, CallError, Handle, LocalRef, MemberStatus, Node, NodeId, SpawnError,
};

use crate::builder::{Factory, QuorumConfig, Redistribution, SupervisorBuilder};
use crate::child::{Child, TypedSpec};
use crate::local::Ledger;
use crate::placement::{Placement, Quorum};
use crate::protocol::{winner, SupMsg};
use crate::spec::{ChildRecord, ChildSpec, ChildStatus, ChildrenSchema, TypesSchema};

/// The local name of the supervisor actor on every node.
pub const SUPERVISOR_NAME: &str = "drove.supervisor";

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
    /// The child could not be started.
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

/// One row of [`Supervisor::which_children`].
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

/// Everything one node's supervisor holds.
pub(crate) struct Inner {
    pub(crate) node: Node,
    pub(crate) registry: Registry,
    pub(crate) children: Replicated<ChildrenSchema>,
    pub(crate) types: Replicated<TypesSchema>,
    pub(crate) factories: std::collections::HashMap<String, Factory>,
    pub(crate) placement: Box<dyn Placement>,
    pub(crate) ledger: Mutex<Ledger>,
    pub(crate) quorum: Option<QuorumConfig>,
    pub(crate) quorum_state: Mutex<Quorum>,
    pub(crate) redistribution: Redistribution,
    /// A redistribution is scheduled and has not started yet.
    pub(crate) rebalance_pending: AtomicBool,
    /// Held while a redistribution runs, so two never interleave.
    pub(crate) rebalancing: tokio::sync::Mutex<()>,
}

/// The supervisor on one node. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("node", &self.inner.node.id())
            .field("types", &self.inner.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A supervisor that does not keep it alive (held by its children).
#[derive(Clone)]
pub(crate) struct WeakSupervisor(Weak<Inner>);

impl WeakSupervisor {
    /// The supervisor, while it exists.
    pub(crate) fn upgrade(&self) -> Option<Supervisor> {
        self.0.upgrade().map(|inner| Supervisor { inner })
    }
}

impl Supervisor {
    /// A builder for the supervisor on `node`, using `registry` for the
    /// children's global names.
    pub fn builder(node: &Node, registry: &Registry) -> SupervisorBuilder {
        SupervisorBuilder::new(node, registry)
    }

    /// The node the supervisor runs on.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    pub(crate) fn downgrade(&self) -> WeakSupervisor {
        WeakSupervisor(Arc::downgrade(&self.inner))
    }

    pub(crate) fn me(&self) -> NodeId {
        self.inner.node.id()
    }

    /// Whether this node may run children: always, unless the quorum
    /// strategy is on and this side of the cluster has no majority.
    pub fn has_quorum(&self) -> bool {
        if self.inner.quorum.is_none() {
            return true;
        }
        let up = self
            .inner
            .node
            .members()
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .count();
        let mut q = self
            .inner
            .quorum_state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        q.observe(up);
        q.has_quorum(up)
    }

    /// Starts a child of type `C` wherever placement puts it and returns
    /// its handle. With a [`name`](TypedSpec::name), the child holds that
    /// global name while it runs.
    pub async fn start_child<C: Child>(
        &self,
        spec: TypedSpec<C>,
    ) -> Result<Handle<C::Msg>, SupervisorError> {
        let addr = self.start_spec(spec.into_spec()?).await?;
        Ok(Handle::from_addr(addr))
    }

    /// Starts the singleton of type `C` named by the spec's
    /// [`name`](TypedSpec::name) (a child with id `singleton:<name>`), or
    /// returns the one already running.
    pub async fn singleton<C: Child>(
        &self,
        spec: TypedSpec<C>,
    ) -> Result<Handle<C::Msg>, SupervisorError> {
        let addr = self.singleton_spec(spec.into_spec()?).await?;
        Ok(Handle::from_addr(addr))
    }

    /// [`start_child`](Self::start_child) from an untyped spec (as the
    /// admin API receives it); answers the child's address.
    pub async fn start_spec(&self, mut spec: ChildSpec) -> Result<ActorAddr, SupervisorError> {
        if !self.has_quorum() {
            return Err(SupervisorError::NoQuorum);
        }
        if spec.id.is_empty() {
            spec.id = format!("{:016x}", rand::random::<u64>());
        }
        if let Some((node, record, _)) = self
            .inner
            .children
            .read(|r, _| winner(r, &spec.id).map(|(n, rec, l)| (n.clone(), rec.clone(), l)))
        {
            if matches!(
                record.status,
                ChildStatus::Running | ChildStatus::Restarting
            ) {
                return Err(SupervisorError::AlreadyRunning { id: spec.id, node });
            }
        }
        let candidates = self.candidates(&spec.type_name);
        let target = self
            .inner
            .placement
            .place(&spec.id, &candidates)
            .cloned()
            .ok_or_else(|| SupervisorError::NoNodeForType(spec.type_name.clone()))?;
        let addr = if target == self.me() {
            self.start_local(spec, None, 0).await
        } else {
            let remote: Handle<SupMsg> = Handle::named(target, SUPERVISOR_NAME);
            self.inner
                .node
                .call(&remote, |r| SupMsg::Start(spec, r), Duration::from_secs(10))
                .await?
        };
        addr.map_err(SupervisorError::Start)
    }

    /// [`singleton`](Self::singleton) from an untyped spec that has a name.
    pub async fn singleton_spec(&self, mut spec: ChildSpec) -> Result<ActorAddr, SupervisorError> {
        let name = spec.name.clone().ok_or(SupervisorError::NoName)?;
        spec.id = format!("singleton:{name}");
        match self.start_spec(spec).await {
            Err(SupervisorError::AlreadyRunning { id, .. }) => self
                .inner
                .children
                .read(|r, _| {
                    winner(r, &id).and_then(|(node, rec, _)| {
                        rec.local.map(|local| ActorAddr {
                            node: node.clone(),
                            local: LocalRef::Id(local),
                        })
                    })
                })
                .ok_or(SupervisorError::NoSuchChild(id)),
            other => other,
        }
    }

    /// Stops a child wherever it runs and forgets it.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let owner = self
            .inner
            .children
            .read(|r, _| winner(r, id).map(|(o, _, _)| o.clone()))
            .ok_or_else(|| SupervisorError::NoSuchChild(id.to_string()))?;
        if owner == self.me() {
            return self.terminate_local(id);
        }
        let remote: Handle<SupMsg> = Handle::named(owner, SUPERVISOR_NAME);
        self.inner
            .node
            .call(
                &remote,
                |r| SupMsg::Terminate(id.to_string(), r),
                Duration::from_secs(10),
            )
            .await?
            .map_err(SupervisorError::Start)
    }

    /// Every supervised child in the cluster, by id.
    pub fn which_children(&self) -> Vec<ChildInfo> {
        let mut out: Vec<ChildInfo> = self.inner.children.read(|r, _| {
            r.keys()
                .filter_map(|k| winner(r, k).map(|(node, rec, _)| info(node, rec)))
                .collect()
        });
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The children this node runs now, from its own ledger (not from the
    /// replicated table): the ground truth for duplicate checks.
    pub fn local_children(&self) -> Vec<ChildInfo> {
        // Only actors that are alive right now: a stop that the ledger has
        // not processed yet must not show up as a running copy.
        let running: Vec<String> = self
            .ledger()
            .by_id
            .iter()
            .filter(|(_, c)| self.inner.node.local_id(&LocalRef::Id(c.local)).is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let me = self.me();
        let mut out: Vec<ChildInfo> = running
            .into_iter()
            .filter_map(|id| self.my_record(&id).map(|rec| info(&me, &rec)))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Children by status, cluster-wide.
    pub fn count_children(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        for c in self.which_children() {
            match c.status {
                ChildStatus::Running => counts.running += 1,
                ChildStatus::Restarting => counts.restarting += 1,
                ChildStatus::Stopped => counts.stopped += 1,
                ChildStatus::GivenUp => counts.given_up += 1,
            }
        }
        counts
    }
}

fn info(node: &NodeId, rec: &ChildRecord) -> ChildInfo {
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
