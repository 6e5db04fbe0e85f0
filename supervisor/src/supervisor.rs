//! [`Supervisor`]: the supervisor's public face on one node, and the
//! cluster-wide operations on children.

use std::sync::Arc;
use std::time::Duration;

use drove_runtime::{ActorAddr, Handle, Node, NodeId};

use crate::candidates::Placer;
use crate::error::SupervisorError;
use crate::local_children::LocalChildren;
use crate::moves::Moves;
use crate::protocol::{SupMsg, SUPERVISOR_NAME};
use crate::records::Records;
use crate::spec::{Child, TypedSpec};
use crate::spec::{ChildCounts, ChildInfo, ChildSpec, ChildStatus};

/// The supervisor on one node. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    node: Node,
    local_children: LocalChildren,
    records: Records,
    placer: Arc<Placer>,
    moves: Moves,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("node", &self.node.id())
            .field("types", &self.local_children.type_names())
            .finish()
    }
}

impl Supervisor {
    pub(crate) fn new(
        node: &Node,
        local_children: LocalChildren,
        records: Records,
        placer: Arc<Placer>,
        moves: Moves,
    ) -> Self {
        Supervisor {
            node: node.clone(),
            local_children,
            records,
            placer,
            moves,
        }
    }

    /// The node the supervisor runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    fn me(&self) -> NodeId {
        self.node.id()
    }

    /// Whether this node may run children: always, unless the quorum
    /// strategy is on and this side of the cluster has no majority.
    pub fn has_quorum(&self) -> bool {
        self.placer.has_quorum()
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
        if let Some((node, record)) = self.records.winner(&spec.id) {
            if matches!(
                record.status,
                ChildStatus::Running | ChildStatus::Restarting
            ) {
                return Err(SupervisorError::AlreadyRunning { id: spec.id, node });
            }
        }
        self.placer.await_declarations().await;
        let target = self
            .placer
            .place(&spec.id, &spec.type_name)
            .ok_or_else(|| SupervisorError::NoNodeForType(spec.type_name.clone()))?;
        let addr = if target == self.me() {
            self.local_children.start_local(spec, None, 0).await
        } else {
            let remote: Handle<SupMsg> = Handle::named(target, SUPERVISOR_NAME);
            self.node
                .call(&remote, |r| SupMsg::Start(spec, r), Duration::from_secs(10))
                .await?
        };
        addr.map_err(SupervisorError::from)
    }

    /// [`singleton`](Self::singleton) from an untyped spec that has a name.
    pub async fn singleton_spec(&self, mut spec: ChildSpec) -> Result<ActorAddr, SupervisorError> {
        let name = spec.name.clone().ok_or(SupervisorError::NoName)?;
        spec.id = format!("singleton:{name}");
        match self.start_spec(spec).await {
            Err(SupervisorError::AlreadyRunning { id, .. }) => self
                .records
                .winner_addr(&id)
                .ok_or(SupervisorError::NoSuchChild(id)),
            other => other,
        }
    }

    /// Stops a child wherever it runs and forgets it.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let (owner, _) = self
            .records
            .winner(id)
            .ok_or_else(|| SupervisorError::NoSuchChild(id.to_string()))?;
        if owner == self.me() {
            return self.local_children.terminate_local(id);
        }
        let remote: Handle<SupMsg> = Handle::named(owner, SUPERVISOR_NAME);
        self.node
            .call(
                &remote,
                |r| SupMsg::Terminate(id.to_string(), r),
                Duration::from_secs(10),
            )
            .await?
            .map_err(SupervisorError::Start)
    }

    /// The child types this node can run, sorted.
    pub fn local_types(&self) -> Vec<String> {
        self.local_children
            .type_names()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Every supervised child in the cluster, by id.
    pub fn which_children(&self) -> Vec<ChildInfo> {
        self.records.all()
    }

    /// The children this node runs now, from its own ledger (not from the
    /// replicated table): the ground truth for duplicate checks.
    pub fn local_children(&self) -> Vec<ChildInfo> {
        self.local_children.local_children()
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

    /// Before a graceful leave: stops each child here and hands it, with its
    /// last checkpoint, to the node placement picks among the others.
    /// Returns how many were handed over.
    pub async fn handoff(&self) -> usize {
        self.moves.handoff().await
    }
}
