//! [`LocalChildren`]: what one node does for the children it runs: starting them
//! (with their global names), its ledger of live children, its own records
//! in the children table, local restarts by policy and intensity, and
//! stopping them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use drove_registry::{Registry, RegistryError};
use drove_runtime::{
    ActorAddr, BeforeInit, ExitReason, Handle, LocalRef, MemberStatus, Node, SpawnOptions,
};

use crate::checkpoints::ChildExt;
use crate::child::Factory;
use crate::error::{StartRefused, SupervisorError};
use crate::ledger::{Claim, Ledger};
use crate::records::Records;
use crate::spec::{ChildInfo, ChildRecord, ChildSpec, ChildStatus, Restart, StartInfo};

/// How long a start waits for a child's global name held by a node that
/// is no longer up (the registry purges it on its own schedule).
const NAME_WAIT: Duration = Duration::from_secs(5);

/// The children of this node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LocalChildren {
    node: Node,
    registry: Registry,
    records: Records,
    factories: Arc<HashMap<String, Factory>>,
    ledger: Arc<Mutex<Ledger>>,
}

impl std::fmt::Debug for LocalChildren {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChildren")
            .field("node", &self.node.id())
            .field("types", &self.type_names())
            .field("children", &self.ledger().len())
            .finish()
    }
}

impl LocalChildren {
    pub(crate) fn new(
        node: &Node,
        registry: &Registry,
        records: &Records,
        factories: HashMap<String, Factory>,
    ) -> Self {
        LocalChildren {
            node: node.clone(),
            registry: registry.clone(),
            records: records.clone(),
            factories: Arc::new(factories),
            ledger: Arc::default(),
        }
    }

    /// The child types this node runs.
    pub(crate) fn type_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.factories.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many children run here.
    pub(crate) fn count(&self) -> usize {
        self.ledger().len()
    }

    fn local_addr(&self, local: u64) -> ActorAddr {
        ActorAddr {
            node: self.node.id(),
            local: LocalRef::Id(local),
        }
    }

    /// Runs a child on this node: takes its global name before the child's
    /// `init` runs (as Erlang registers a global name before `init/1`: a
    /// child that may not run never does anything), builds it, records it.
    /// `restarts` counts earlier starts. A child that runs here already is
    /// not started again: the answer is where it runs. The error is text:
    /// it may answer another node's request.
    pub(crate) async fn start_local(
        &self,
        spec: ChildSpec,
        checkpoint: Option<Arc<str>>,
        restarts: u32,
    ) -> Result<ActorAddr, StartRefused> {
        let id = spec.id.clone();
        match self.ledger().claim(&id) {
            Claim::Claimed => {}
            Claim::Running(local) => return Ok(self.local_addr(local)),
            Claim::Starting => {
                return Err(StartRefused::Failed(format!(
                    "child {id} is being started on this node already"
                )))
            }
        }
        let started = self.claimed_start(spec, checkpoint, restarts).await;
        if started.is_err() {
            self.ledger().release(&id);
        }
        started
    }

    /// [`start_local`](Self::start_local) once this start holds the claim.
    async fn claimed_start(
        &self,
        spec: ChildSpec,
        checkpoint: Option<Arc<str>>,
        restarts: u32,
    ) -> Result<ActorAddr, StartRefused> {
        let factory = self
            .factories
            .get(&spec.type_name)
            .cloned()
            .ok_or_else(|| format!("this node does not run type {:?}", spec.type_name))?;
        let ext = Arc::new(ChildExt::new(&spec.id, &self.records));
        let info = StartInfo {
            id: spec.id.clone(),
            args: spec.args.clone(),
            checkpoint: checkpoint.as_deref().map(str::to_string),
            restarts,
        };
        // What taking the name came to, if it was tried.
        let named: Arc<Mutex<Option<Result<(), StartRefused>>>> = Arc::default();
        let before_init = spec.name.clone().map(|name| {
            let (local_children, named) = (self.clone(), named.clone());
            Box::new(move |addr: ActorAddr| {
                Box::pin(async move {
                    let handle: Handle<()> = Handle::from_addr(addr);
                    let taken = local_children.register_name(&name, &handle).await;
                    let reason = taken.as_ref().err().map(ToString::to_string);
                    *named.lock().unwrap_or_else(|p| p.into_inner()) = Some(taken);
                    reason.map_or(Ok(()), Err)
                }) as Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
            }) as BeforeInit
        });
        let options = SpawnOptions {
            name: None,
            extension: Some(ext),
            before_init,
        };
        let spawned = factory(self.node.clone(), info, options).await;
        let named = named.lock().unwrap_or_else(|p| p.into_inner()).take();
        let local = match (spawned, named) {
            (Ok(local), _) => local,
            (Err(_), Some(Err(refused))) => return Err(refused),
            (Err(e), Some(Ok(()))) => {
                // `init` failed after the name was taken: let the name go.
                if let Some(name) = &spec.name {
                    let _ = self.registry.unregister(name);
                }
                return Err(StartRefused::Failed(e));
            }
            (Err(e), None) => return Err(StartRefused::Failed(e)),
        };
        let addr = self.local_addr(local);
        self.ledger().insert(&spec.id, local);
        let id = spec.id.clone();
        let record = ChildRecord {
            spec,
            status: ChildStatus::Running,
            restarts,
            local: Some(local),
            checkpoint,
        };
        self.records.write(&id, record);
        tracing::info!(child = %addr, restarts, "child started");
        Ok(addr)
    }

    /// Takes a child's global name. A holder on a node that is no longer
    /// up, or a local holder that no longer runs, is about to be purged
    /// (the registry hears of the death on its own schedule), so that case
    /// waits a moment instead of failing.
    async fn register_name(&self, name: &str, handle: &Handle<()>) -> Result<(), StartRefused> {
        let deadline = Instant::now() + NAME_WAIT;
        loop {
            match self.registry.register(name, handle) {
                Ok(()) => return Ok(()),
                Err(RegistryError::Taken { owner, .. }) => {
                    let holder_up = self
                        .node
                        .members()
                        .iter()
                        .any(|m| m.info.id == owner.node && m.status == MemberStatus::Up);
                    // A holder here that no longer runs (the crashed copy
                    // of a child restarting now) is purged in a moment too.
                    let holder_gone_here =
                        owner.node == self.node.id() && self.node.local_id(&owner.local).is_none();
                    if (holder_up && !holder_gone_here) || Instant::now() > deadline {
                        return Err(StartRefused::NameHeld {
                            name: name.to_owned(),
                            owner,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(other) => return Err(StartRefused::Failed(other.to_string())),
            }
        }
    }

    /// Stops a local child on purpose (no restart) and waits, up to 5 s,
    /// until it is gone. Returns its actor id.
    pub(crate) async fn stop_and_wait(&self, id: &str) -> Option<u64> {
        let local = self.ledger().terminate(id)?;
        let handle: Handle<()> = Handle::from_addr(self.local_addr(local));
        self.node.stop_local(&handle);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.node.local_id(&LocalRef::Id(local)).is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Some(local)
    }

    /// Stops a local child on purpose and forgets its record.
    pub(crate) fn terminate_local(&self, id: &str) -> Result<(), SupervisorError> {
        let local = self.ledger().terminate(id);
        if self.records.mine(id).is_none() && local.is_none() {
            return Err(SupervisorError::NoSuchChild(id.to_string()));
        }
        self.records.remove(id);
        if let Some(local) = local {
            let handle: Handle<()> = Handle::from_addr(self.local_addr(local));
            self.node.stop_local(&handle);
        }
        Ok(())
    }

    /// A local actor stopped: if it was a child stopped by accident,
    /// restart it by its policy and intensity, from its last checkpoint.
    pub(crate) async fn on_stopped(&self, local: u64, reason: ExitReason) {
        let Some((id, terminating)) = self.ledger().stopped(local) else {
            return;
        };
        if terminating {
            return;
        }
        let Some(mut record) = self.records.mine(&id) else {
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
            self.records.write(&id, record);
            return;
        }
        let within = Duration::from_millis(record.spec.within_ms);
        if !self
            .ledger()
            .may_restart(&id, record.spec.max_restarts, within)
        {
            tracing::error!(child = %id, ?reason, "restart intensity exceeded; giving up");
            record.status = ChildStatus::GivenUp;
            self.records.write(&id, record);
            return;
        }
        record.status = ChildStatus::Restarting;
        self.records.write(&id, record.clone());
        let restarts = record.restarts + 1;
        if let Err(e) = self
            .start_local(record.spec.clone(), record.checkpoint.clone(), restarts)
            .await
        {
            tracing::error!(child = %id, error = %e, "restart failed; giving up");
            self.records
                .update(&id, |r| r.status = ChildStatus::GivenUp);
        }
    }

    /// Stops every local child without restarting it: after this node
    /// rejoined (the survivors own its children now) or lost its quorum.
    pub(crate) fn drop_all_local(&self) {
        let children = self.ledger().terminate_all();
        for (id, local) in children {
            tracing::warn!(child = %id, "stopping a local copy the cluster no longer gives this node");
            let handle: Handle<()> = Handle::from_addr(self.local_addr(local));
            self.node.stop_local(&handle);
        }
    }

    /// The children this node runs now, from its own ledger (not from the
    /// replicated table): the ground truth for duplicate checks.
    pub(crate) fn local_children(&self) -> Vec<ChildInfo> {
        // Only actors that are alive right now: a stop that the ledger has
        // not processed yet must not show up as a running copy.
        let running: Vec<String> = self
            .ledger()
            .children()
            .filter(|(_, local)| self.node.local_id(&LocalRef::Id(*local)).is_some())
            .map(|(id, _)| id.to_string())
            .collect();
        let me = self.node.id();
        let mut out: Vec<ChildInfo> = running
            .into_iter()
            .filter_map(|id| self.records.mine(&id).map(|rec| ChildInfo::of(&me, &rec)))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// This node's records of children that should run here and do not:
    /// those it stopped when it lost its quorum.
    pub(crate) fn dropped_here(&self) -> Vec<ChildRecord> {
        let running = self.ledger().running();
        self.records
            .all_mine()
            .into_iter()
            .filter(|r| {
                matches!(r.status, ChildStatus::Running | ChildStatus::Restarting)
                    && !running.contains(&r.spec.id)
            })
            .collect()
    }

    /// Whether child `id` runs on this node.
    pub(crate) fn is_running_here(&self, id: &str) -> bool {
        self.ledger().running().iter().any(|r| r == id)
    }

    /// The running local children, with their records.
    pub(crate) fn running_here(&self) -> Vec<ChildRecord> {
        let ids = self.ledger().running();
        ids.iter()
            .filter_map(|id| self.records.mine(id))
            .filter(|r| r.status == ChildStatus::Running)
            .collect()
    }
}
