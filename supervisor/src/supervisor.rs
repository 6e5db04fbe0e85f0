//! The distributed supervisor.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use drove_registry::{Registry, RegistryError};
use drove_replication::{Change, Observer, Op, Replicated, ReplicationConfig, SchemaReplica};
use drove_runtime::{
    Actor, ActorAddr, ActorError, CallError, Context, ExitReason, Handle, LocalRef, MemberStatus,
    Message, Node, NodeId, Reply, SpawnError,
};

use crate::placement::{Placement, Quorum, Uniform};
use crate::spec::{
    ChildRecord, ChildSpec, ChildStatus, ChildrenSchema, Restart, StartInfo, TypesSchema,
};

/// How long every failover waits first (see `failover`).
const FAILOVER_SETTLE: Duration = Duration::from_millis(300);

/// How much longer a node that finds itself alone, or that just woke from a
/// freeze, waits before failing children over (see `failover`).
const ALONE_SETTLE: Duration = Duration::from_secs(2);

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
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds and spawns one child of a declared type; returns its local id.
type Factory =
    Arc<dyn Fn(Node, StartInfo, Arc<ChildExt>) -> BoxFuture<Result<u64, String>> + Send + Sync>;

/// Attached to every supervised child's context, so it can checkpoint.
pub struct ChildExt {
    id: String,
    supervisor: Weak<Inner>,
}

/// Saves a supervised child's state: replicated at once, and handed to the
/// child when it starts again (after a crash, on another node after a
/// failover, or after a handoff).
pub fn checkpoint<A: Actor, T: Serialize>(
    ctx: &Context<A>,
    state: &T,
) -> Result<(), SupervisorError> {
    let ext = ctx
        .extension::<ChildExt>()
        .ok_or(SupervisorError::NotAChild)?;
    let inner = ext.supervisor.upgrade().ok_or(SupervisorError::NotAChild)?;
    let text =
        serde_json::to_string(state).map_err(|e| SupervisorError::Checkpoint(e.to_string()))?;
    let sup = Supervisor { inner };
    sup.update_record(&ext.id, |r| r.checkpoint = Some(Arc::from(text.as_str())));
    Ok(())
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

#[derive(Default)]
struct Ledger {
    by_id: HashMap<String, LocalChild>,
    by_local: HashMap<u64, String>,
    restart_times: HashMap<String, VecDeque<Instant>>,
}

struct LocalChild {
    local: u64,
    terminating: bool,
}

enum Work {
    Stopped(u64, ExitReason),
    Failover(Vec<ChildRecord>),
    Rejoined,
    Duplicate(String),
}

struct Inner {
    node: Node,
    registry: Registry,
    children: Replicated<ChildrenSchema>,
    types: Replicated<TypesSchema>,
    factories: HashMap<String, Factory>,
    placement: Box<dyn Placement>,
    ledger: Mutex<Ledger>,
    quorum: Option<QuorumConfig>,
    quorum_state: Mutex<Quorum>,
}

/// The quorum strategy's settings.
#[derive(Clone, Copy, Debug)]
pub struct QuorumConfig {
    /// The cluster size majorities are counted against; `None` for the
    /// largest membership seen.
    pub size: Option<usize>,
    /// How long after a node is declared down the majority waits before
    /// starting its children elsewhere, so the minority has stopped them.
    pub fencing_margin: Duration,
}

/// The supervisor on one node. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// Declares the actor types this node can run, then starts the supervisor.
pub struct SupervisorBuilder {
    node: Node,
    registry: Registry,
    factories: HashMap<String, Factory>,
    placement: Box<dyn Placement>,
    quorum: Option<QuorumConfig>,
}

impl SupervisorBuilder {
    /// Declares that this node runs children of type `type_name`, built by
    /// `make` from the spec's arguments and the last checkpoint.
    pub fn actor<A, F>(mut self, type_name: &str, make: F) -> Self
    where
        A: Actor,
        F: Fn(&StartInfo) -> Result<(A, A::Args), String> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let factory: Factory = Arc::new(move |node: Node, info: StartInfo, ext: Arc<ChildExt>| {
            let make = make.clone();
            Box::pin(async move {
                let (actor, args) = make(&info)?;
                let handle = node
                    .spawn_with_extension(actor, args, ext)
                    .await
                    .map_err(|e| e.to_string())?;
                match handle.addr().local {
                    LocalRef::Id(id) => Ok(id),
                    LocalRef::Name(_) => Err("spawned actor has no id".to_string()),
                }
            }) as BoxFuture<Result<u64, String>>
        });
        self.factories.insert(type_name.to_string(), factory);
        self
    }

    /// Replaces the default placement (rendezvous hashing).
    pub fn placement(mut self, placement: impl Placement) -> Self {
        self.placement = Box::new(placement);
        self
    }

    /// The quorum strategy: a side of the cluster without a strict majority
    /// starts nothing and stops what it runs, and the majority waits
    /// `fencing_margin` after a node is declared down before starting its
    /// children, so a singleton never runs on both sides.
    pub fn quorum(mut self, config: QuorumConfig) -> Self {
        self.quorum = Some(config);
        self
    }

    /// Starts the supervisor and advertises the declared types.
    pub async fn start(self) -> Result<Supervisor, SupervisorError> {
        let (work_tx, work_rx) = mpsc::unbounded_channel();
        let children = Replicated::start(
            &self.node,
            ReplicationConfig::default(),
            Box::new(ChildObserver {
                work: work_tx.clone(),
            }),
        )
        .await?;
        let types = Replicated::start(
            &self.node,
            ReplicationConfig::default(),
            Box::new(NoObserver),
        )
        .await?;
        let types_to_declare: Vec<Arc<str>> = self
            .factories
            .keys()
            .map(|k| Arc::from(k.as_str()))
            .collect();
        let inner = Arc::new(Inner {
            node: self.node.clone(),
            registry: self.registry,
            children,
            types,
            factories: self.factories,
            placement: self.placement,
            ledger: Mutex::new(Ledger::default()),
            quorum: self.quorum,
            quorum_state: Mutex::new(Quorum::new(self.quorum.and_then(|q| q.size))),
        });
        let sup = Supervisor { inner };
        sup.declare_types(&types_to_declare);
        let stopped = work_tx.clone();
        self.node.on_actor_stopped(Box::new(move |id, reason| {
            let _ = stopped.send(Work::Stopped(id, reason.clone()));
        }));
        self.node
            .spawn_named(
                SUPERVISOR_NAME,
                SupervisorActor(Arc::downgrade(&sup.inner)),
                (),
            )
            .await?;
        tokio::spawn(sup.clone().work(work_rx));
        tokio::spawn(sup.clone().redeclare_on_rejoin(types_to_declare));
        if sup.inner.quorum.is_some() {
            tokio::spawn(sup.clone().watch_quorum());
        }
        Ok(sup)
    }
}

struct NoObserver;

impl Observer<TypesSchema> for NoObserver {
    fn changed(&self, _: &SchemaReplica<TypesSchema>, _: &NodeId, _: Change<'_, Arc<str>, bool>) {}
}

/// The winning record of a child: the earliest slot, then by owner.
fn winner<'a>(
    r: &'a SchemaReplica<ChildrenSchema>,
    id: &str,
) -> Option<(&'a NodeId, &'a ChildRecord, drove_replication::Hlc)> {
    r.slots(id)
        .filter_map(|s| s.value.map(|v| (s.owner, v, s.lineage)))
        .min_by(|a, b| (a.2, a.0).cmp(&(b.2, b.0)))
}

struct ChildObserver {
    work: mpsc::UnboundedSender<Work>,
}

impl Observer<ChildrenSchema> for ChildObserver {
    fn changed(
        &self,
        replica: &SchemaReplica<ChildrenSchema>,
        me: &NodeId,
        change: Change<'_, Arc<str>, ChildRecord>,
    ) {
        match change {
            Change::Purged {
                departed: false, ..
            } => {}
            Change::Purged { owner, .. } if owner == me => {
                let _ = self.work.send(Work::Rejoined);
            }
            Change::Purged { slots, .. } => {
                let records: Vec<ChildRecord> =
                    slots.iter().filter_map(|(_, v)| v.clone()).collect();
                if !records.is_empty() {
                    let _ = self.work.send(Work::Failover(records));
                }
            }
            Change::Applied {
                owner,
                op: Op::Put { key, .. },
            } if owner != me => {
                // Another node runs a child this node also runs: the later
                // start gives way.
                let mine = replica
                    .slots(&**key)
                    .any(|s| s.owner == me && s.value.is_some());
                if mine && winner(replica, key).is_some_and(|(o, _, _)| o != me) {
                    let _ = self.work.send(Work::Duplicate(key.to_string()));
                }
            }
            Change::Applied { .. } => {}
        }
    }
}

/// Messages between supervisors.
#[derive(Serialize, Deserialize)]
pub enum SupMsg {
    /// Start this child here.
    Start(ChildSpec, Reply<Result<ActorAddr, String>>),
    /// Stop this child here and forget it.
    Terminate(String, Reply<Result<(), String>>),
    /// Take over this child from a node that is leaving, from its record.
    Adopt(ChildRecord, Reply<Result<ActorAddr, String>>),
}

impl Message for SupMsg {
    const TAG: &'static str = "drove.supervisor.v1";
}

struct SupervisorActor(Weak<Inner>);

impl Actor for SupervisorActor {
    type Msg = SupMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(&self, ctx: &Context<Self>, msg: SupMsg, _: &mut ()) -> Result<(), ActorError> {
        let Some(inner) = self.0.upgrade() else {
            return Ok(());
        };
        let sup = Supervisor { inner };
        match msg {
            SupMsg::Start(spec, reply) => {
                let result = sup.start_local(spec, None, 0).await;
                ctx.reply(reply, result)?;
            }
            SupMsg::Adopt(record, reply) => {
                let result = sup
                    .start_local(record.spec, record.checkpoint, record.restarts)
                    .await;
                ctx.reply(reply, result)?;
            }
            SupMsg::Terminate(id, reply) => {
                let result = sup.terminate_local(&id).map_err(|e| e.to_string());
                ctx.reply(reply, result)?;
            }
        }
        Ok(())
    }
}

impl Supervisor {
    /// A builder for the supervisor on `node`, using `registry` for the
    /// children's global names.
    pub fn builder(node: &Node, registry: &Registry) -> SupervisorBuilder {
        SupervisorBuilder {
            node: node.clone(),
            registry: registry.clone(),
            factories: HashMap::new(),
            placement: Box::new(Uniform),
            quorum: None,
        }
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

    /// With the quorum strategy: stops every local child whenever this
    /// side loses its majority. Their records stay, for the majority to
    /// fail them over.
    async fn watch_quorum(self) {
        let mut events = self.inner.node.subscribe();
        loop {
            match events.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            if !self.has_quorum() {
                let n = self.ledger().by_id.len();
                if n > 0 {
                    tracing::warn!(children = n, "no quorum: stopping every local child");
                    self.drop_all_local();
                }
            }
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.inner.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn me(&self) -> NodeId {
        self.inner.node.id()
    }

    fn declare_types(&self, types: &[Arc<str>]) {
        self.inner.types.write(|w| {
            for t in types {
                w.put(t.clone(), None, true);
            }
        });
    }

    async fn redeclare_on_rejoin(self, types: Vec<Arc<str>>) {
        let mut events = self.inner.node.subscribe();
        while let Ok(event) = events.recv().await {
            if let drove_runtime::MembershipEvent::Rejoined { .. } = event {
                // Give the types service time to purge the old incarnation.
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.declare_types(&types);
            }
        }
    }

    /// Up members that declared `type_name`, this node included.
    fn candidates(&self, type_name: &str) -> Vec<NodeId> {
        let up: Vec<NodeId> = self
            .inner
            .node
            .members()
            .into_iter()
            .filter(|m| m.status == MemberStatus::Up)
            .map(|m| m.info.id)
            .collect();
        let mut c: Vec<NodeId> = self.inner.types.read(|r, _| {
            r.slots(type_name)
                .filter(|s| s.value.is_some() && up.contains(s.owner))
                .map(|s| s.owner.clone())
                .collect()
        });
        c.sort();
        c.dedup();
        c
    }

    /// Starts a child wherever placement puts it and returns its handle.
    pub async fn start_child<M>(&self, mut spec: ChildSpec) -> Result<Handle<M>, SupervisorError> {
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
        addr.map(Handle::from_addr).map_err(SupervisorError::Start)
    }

    /// Starts the singleton `name` (a child with id `singleton:<name>` that
    /// holds the global name), or returns the running one.
    pub async fn singleton<M>(
        &self,
        name: &str,
        mut spec: ChildSpec,
    ) -> Result<Handle<M>, SupervisorError> {
        spec.id = format!("singleton:{name}");
        spec.name = Some(name.to_string());
        match self.start_child(spec).await {
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
                .map(Handle::from_addr)
                .ok_or(SupervisorError::NoSuchChild(id)),
            other => other,
        }
    }

    /// Runs a child on this node: builds it, takes its global name, records
    /// it. `restarts` counts earlier starts.
    async fn start_local(
        &self,
        spec: ChildSpec,
        checkpoint: Option<Arc<str>>,
        restarts: u32,
    ) -> Result<ActorAddr, String> {
        let factory = self
            .inner
            .factories
            .get(&spec.type_name)
            .cloned()
            .ok_or_else(|| format!("this node does not run type {:?}", spec.type_name))?;
        let ext = Arc::new(ChildExt {
            id: spec.id.clone(),
            supervisor: Arc::downgrade(&self.inner),
        });
        let info = StartInfo {
            id: spec.id.clone(),
            args: spec.args.clone(),
            checkpoint: checkpoint.as_deref().map(str::to_string),
            restarts,
        };
        let local = factory(self.inner.node.clone(), info, ext).await?;
        let addr = ActorAddr {
            node: self.me(),
            local: LocalRef::Id(local),
        };
        if let Some(name) = &spec.name {
            let handle: Handle<()> = Handle::from_addr(addr.clone());
            if let Err(e) = self.register_name(name, &handle).await {
                self.inner.node.stop_local(&handle);
                return Err(e);
            }
        }
        {
            let mut ledger = self.ledger();
            ledger.by_local.insert(local, spec.id.clone());
            ledger.by_id.insert(
                spec.id.clone(),
                LocalChild {
                    local,
                    terminating: false,
                },
            );
        }
        let id: Arc<str> = Arc::from(spec.id.as_str());
        let record = ChildRecord {
            spec,
            status: ChildStatus::Running,
            restarts,
            local: Some(local),
            checkpoint,
        };
        self.write_record(id, record);
        tracing::info!(child = %addr, restarts, "child started");
        Ok(addr)
    }

    /// Takes a child's global name. A holder on a node that is no longer
    /// up is about to be purged (the registry hears of the death on its own
    /// schedule), so that case waits a moment instead of failing.
    async fn register_name(&self, name: &str, handle: &Handle<()>) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.inner.registry.register(name, handle) {
                Ok(()) => return Ok(()),
                Err(RegistryError::Taken { owner, .. }) => {
                    let holder_up = self
                        .inner
                        .node
                        .members()
                        .iter()
                        .any(|m| m.info.id == owner.node && m.status == MemberStatus::Up);
                    if holder_up || Instant::now() > deadline {
                        return Err(format!("name {name:?} is held by {owner}"));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(other) => return Err(other.to_string()),
            }
        }
    }

    /// Writes this node's record of a child (its own slot, kept across local
    /// restarts so a restart is an update, not a new registration).
    fn write_record(&self, id: Arc<str>, record: ChildRecord) {
        self.inner.children.write(|w| {
            let lineage = w
                .replica()
                .slots(&*id)
                .find(|s| s.owner == w.me() && s.value.is_some())
                .map(|s| s.lineage);
            w.put(id.clone(), lineage, record);
        });
    }

    fn my_record(&self, id: &str) -> Option<ChildRecord> {
        self.inner.children.read(|r, me| {
            r.slots(id)
                .find(|s| s.owner == me && s.value.is_some())
                .and_then(|s| s.value.cloned())
        })
    }

    fn update_record(&self, id: &str, f: impl FnOnce(&mut ChildRecord)) {
        if let Some(mut record) = self.my_record(id) {
            f(&mut record);
            self.write_record(Arc::from(id), record);
        }
    }

    fn remove_record(&self, id: &str) {
        self.inner.children.write(|w| {
            let key: Arc<str> = Arc::from(id);
            let mine = w
                .replica()
                .slots(&*key)
                .find(|s| s.owner == w.me() && s.value.is_some())
                .map(|s| s.lineage);
            if let Some(lineage) = mine {
                w.remove(key, lineage);
            }
        });
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

    fn terminate_local(&self, id: &str) -> Result<(), SupervisorError> {
        let local = {
            let mut ledger = self.ledger();
            ledger.by_id.get_mut(id).map(|c| {
                c.terminating = true;
                c.local
            })
        };
        if self.my_record(id).is_none() && local.is_none() {
            return Err(SupervisorError::NoSuchChild(id.to_string()));
        }
        self.remove_record(id);
        if let Some(local) = local {
            let handle: Handle<()> = Handle::from_addr(ActorAddr {
                node: self.me(),
                local: LocalRef::Id(local),
            });
            self.inner.node.stop_local(&handle);
        }
        Ok(())
    }

    /// Before a graceful leave: stops each child here and hands it, with its
    /// last checkpoint, to the node placement picks among the others.
    /// Returns how many were handed over.
    pub async fn handoff(&self) -> usize {
        let me = self.me();
        let running: Vec<(String, u64)> = self
            .ledger()
            .by_id
            .iter()
            .map(|(id, c)| (id.clone(), c.local))
            .collect();
        let mut handed = 0;
        for (id, local) in running {
            let Some(record) = self.my_record(&id) else {
                continue;
            };
            let candidates: Vec<NodeId> = self
                .candidates(&record.spec.type_name)
                .into_iter()
                .filter(|n| *n != me)
                .collect();
            let Some(target) = self.inner.placement.place(&id, &candidates).cloned() else {
                tracing::warn!(child = %id, "no other node runs its type; it stops with this node");
                continue;
            };
            // Stop it first so it never runs twice, then hand over its
            // final record. The removal travels before the adoption on the
            // same link, so the target never sees two owners.
            if let Some(c) = self.ledger().by_id.get_mut(&id) {
                c.terminating = true;
            }
            let handle: Handle<()> = Handle::from_addr(ActorAddr {
                node: me.clone(),
                local: LocalRef::Id(local),
            });
            self.inner.node.stop_local(&handle);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.inner.node.local_id(&LocalRef::Id(local)).is_some()
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let record = self.my_record(&id).unwrap_or(record);
            self.remove_record(&id);
            let remote: Handle<SupMsg> = Handle::named(target.clone(), SUPERVISOR_NAME);
            match self
                .inner
                .node
                .call(
                    &remote,
                    |r| SupMsg::Adopt(record, r),
                    Duration::from_secs(10),
                )
                .await
            {
                Ok(Ok(addr)) => {
                    handed += 1;
                    tracing::info!(child = %id, %addr, "handed over");
                }
                Ok(Err(e)) => tracing::error!(child = %id, %target, error = %e, "handoff refused"),
                Err(e) => tracing::error!(child = %id, %target, error = %e, "handoff failed"),
            }
        }
        handed
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

    /// The node the supervisor runs on.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    async fn work(self, mut rx: mpsc::UnboundedReceiver<Work>) {
        while let Some(work) = rx.recv().await {
            match work {
                Work::Stopped(local, reason) => self.on_stopped(local, reason).await,
                Work::Failover(records) => {
                    // Its fencing wait must not hold up the other work.
                    let sup = self.clone();
                    tokio::spawn(async move { sup.failover(records).await });
                }
                Work::Rejoined => self.drop_all_local(),
                Work::Duplicate(id) => {
                    tracing::warn!(child = %id, "another node runs this child too; stopping this copy");
                    let _ = self.terminate_local(&id);
                }
            }
        }
    }

    async fn on_stopped(&self, local: u64, reason: ExitReason) {
        let (id, terminating) = {
            let mut ledger = self.ledger();
            let Some(id) = ledger.by_local.remove(&local) else {
                return;
            };
            let terminating = ledger.by_id.remove(&id).is_some_and(|c| c.terminating);
            (id, terminating)
        };
        if terminating {
            return;
        }
        let Some(mut record) = self.my_record(&id) else {
            return;
        };
        let restart = match record.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => matches!(reason, ExitReason::Failed(_)),
            Restart::Temporary => false,
        };
        record.local = None;
        if !restart {
            record.status = ChildStatus::Stopped;
            self.write_record(Arc::from(id.as_str()), record);
            return;
        }
        let within = Duration::from_millis(record.spec.within_ms);
        let allowed = {
            let mut ledger = self.ledger();
            let times = ledger.restart_times.entry(id.clone()).or_default();
            times.retain(|t| t.elapsed() < within);
            let ok = times.len() < record.spec.max_restarts as usize;
            if ok {
                times.push_back(Instant::now());
            }
            ok
        };
        if !allowed {
            tracing::error!(child = %id, ?reason, "restart intensity exceeded; giving up");
            record.status = ChildStatus::GivenUp;
            self.write_record(Arc::from(id.as_str()), record);
            return;
        }
        record.status = ChildStatus::Restarting;
        self.write_record(Arc::from(id.as_str()), record.clone());
        let restarts = record.restarts + 1;
        if let Err(e) = self
            .start_local(record.spec.clone(), record.checkpoint.clone(), restarts)
            .await
        {
            tracing::error!(child = %id, error = %e, "restart failed; giving up");
            self.update_record(&id, |r| r.status = ChildStatus::GivenUp);
        }
    }

    /// A node died: start each of its children that should run again, if
    /// placement among the survivors picks this node.
    async fn failover(&self, records: Vec<ChildRecord>) {
        let me = self.me();
        let alone = !self
            .inner
            .node
            .members()
            .iter()
            .any(|m| m.status == MemberStatus::Up && m.info.id != me);
        if let Some(q) = self.inner.quorum {
            // Fencing: the minority stops its copies when it loses its
            // majority; give it that long before starting ours.
            tokio::time::sleep(q.fencing_margin).await;
            if !self.has_quorum() {
                tracing::warn!("no quorum: not failing children over");
                return;
            }
        } else {
            // A node that wakes from a freeze sees its peers down on a stale
            // view, a moment before it learns that it was the one declared
            // down. Every failover waits a moment; a node that is alone, or
            // that has just woken, waits longer.
            tokio::time::sleep(FAILOVER_SETTLE).await;
            let suspect = alone || self.inner.node.woke_within(Duration::from_secs(5));
            if suspect && self.me() == me {
                tokio::time::sleep(ALONE_SETTLE).await;
            }
        }
        if self.me() != me {
            tracing::info!("rejoined meanwhile: the survivors own these children");
            return;
        }
        for record in records {
            let unfinished = matches!(
                record.status,
                ChildStatus::Running | ChildStatus::Restarting
            );
            if !unfinished || record.spec.restart == Restart::Temporary {
                continue;
            }
            let candidates = self.candidates(&record.spec.type_name);
            if self.inner.placement.place(&record.spec.id, &candidates) != Some(&me) {
                continue;
            }
            let id = record.spec.id.clone();
            match self
                .start_local(record.spec, record.checkpoint, record.restarts + 1)
                .await
            {
                Ok(addr) => tracing::info!(child = %id, %addr, "failed over"),
                Err(e) => tracing::error!(child = %id, error = %e, "failover start failed"),
            }
        }
    }

    /// This node was declared down and rejoined: its children belong to the
    /// survivors now, so its copies stop.
    fn drop_all_local(&self) {
        let children: Vec<(String, u64)> = {
            let mut ledger = self.ledger();
            ledger
                .by_id
                .iter_mut()
                .map(|(id, c)| {
                    c.terminating = true;
                    (id.clone(), c.local)
                })
                .collect()
        };
        for (id, local) in children {
            tracing::warn!(child = %id, "stopping a stale copy after rejoining");
            let handle: Handle<()> = Handle::from_addr(ActorAddr {
                node: self.me(),
                local: LocalRef::Id(local),
            });
            self.inner.node.stop_local(&handle);
        }
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
