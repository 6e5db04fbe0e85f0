//! Declaring the actor types a node runs, and starting its supervisor.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use drove_registry::Registry;
use drove_replication::Replicated;
use drove_runtime::{LocalRef, Node};

use crate::checkpoint::ChildExt;
use crate::child::{Child, Started};
use crate::placement::{Placement, Quorum, Uniform};
use crate::protocol::{child_work, types_work, SupervisorActor, Work};
use crate::spec::StartInfo;
use crate::supervisor::{Inner, Supervisor, SupervisorError, SUPERVISOR_NAME};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds and spawns one child of a declared type; returns its local id.
/// The error is text: it answers a remote start.
pub(crate) type Factory =
    Arc<dyn Fn(Node, StartInfo, Arc<ChildExt>) -> BoxFuture<Result<u64, String>> + Send + Sync>;

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

/// What happens to running children when a node joins (Horde's
/// `process_redistribution`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redistribution {
    /// Children stay where they run; only new children go to the new node.
    #[default]
    Passive,
    /// Each child whose placement now picks another node is handed over to
    /// it, with its last checkpoint.
    Active,
}

/// Declares the actor types this node can run, then starts the supervisor.
pub struct SupervisorBuilder {
    node: Node,
    registry: Registry,
    factories: HashMap<String, Factory>,
    duplicate: Option<&'static str>,
    placement: Box<dyn Placement>,
    quorum: Option<QuorumConfig>,
    redistribution: Redistribution,
}

impl SupervisorBuilder {
    pub(crate) fn new(node: &Node, registry: &Registry) -> Self {
        SupervisorBuilder {
            node: node.clone(),
            registry: registry.clone(),
            factories: HashMap::new(),
            duplicate: None,
            placement: Box::new(Uniform),
            quorum: None,
            redistribution: Redistribution::Passive,
        }
    }

    /// Declares that this node runs children of type `C`; `child` is
    /// cloned for every start. Declaring two types under one
    /// [`Child::TYPE`] makes [`start`](Self::start) fail.
    pub fn child<C: Child>(mut self, child: C) -> Self {
        let factory: Factory = Arc::new(move |node: Node, info: StartInfo, ext: Arc<ChildExt>| {
            let child = child.clone();
            Box::pin(async move {
                let started = Started::<C>::decode(info).map_err(|e| e.to_string())?;
                let args = child.init_args(started);
                let handle = node
                    .spawn_with_extension(child, args, ext)
                    .await
                    .map_err(|e| e.to_string())?;
                match handle.addr().local {
                    LocalRef::Id(id) => Ok(id),
                    LocalRef::Name(_) => Err("spawned actor has no id".to_string()),
                }
            }) as BoxFuture<Result<u64, String>>
        });
        if self
            .factories
            .insert(C::TYPE.to_string(), factory)
            .is_some()
        {
            self.duplicate.get_or_insert(C::TYPE);
        }
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

    /// What this node does with its running children when another node
    /// joins (passive by default).
    pub fn redistribution(mut self, redistribution: Redistribution) -> Self {
        self.redistribution = redistribution;
        self
    }

    /// Starts the supervisor and advertises the declared types.
    pub async fn start(self) -> Result<Supervisor, SupervisorError> {
        if let Some(type_name) = self.duplicate {
            return Err(SupervisorError::DuplicateType(type_name));
        }
        let (work_tx, work_rx) = mpsc::unbounded_channel();
        let mut children = Replicated::builder(&self.node);
        let child_work = children.subscribe(child_work);
        let children = children.start().await?;
        let mut types = Replicated::builder(&self.node);
        let types_work = types.subscribe(types_work);
        let types = types.start().await?;
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
            ledger: Mutex::default(),
            quorum: self.quorum,
            quorum_state: Mutex::new(Quorum::new(self.quorum.and_then(|q| q.size))),
            redistribution: self.redistribution,
            rebalance_pending: AtomicBool::new(false),
            rebalancing: tokio::sync::Mutex::new(()),
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
        tokio::spawn(sup.clone().work(work_rx, child_work, types_work));
        tokio::spawn(sup.clone().redeclare_on_rejoin(types_to_declare));
        if sup.inner.quorum.is_some() {
            tokio::spawn(sup.clone().watch_quorum());
        }
        Ok(sup)
    }
}
