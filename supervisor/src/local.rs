//! What one node does for the children it runs: starting them, its ledger
//! of live children, its own records in the replicated table, local
//! restarts by policy and intensity.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use drove_registry::RegistryError;
use drove_runtime::{ActorAddr, ExitReason, Handle, LocalRef, MemberStatus};

use crate::checkpoint::ChildExt;
use crate::spec::{ChildRecord, ChildSpec, ChildStatus, Restart, StartInfo};
use crate::supervisor::{Supervisor, SupervisorError};

/// The children this node runs, by id and by local actor id.
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) by_id: HashMap<String, LocalChild>,
    by_local: HashMap<u64, String>,
    restart_times: HashMap<String, VecDeque<Instant>>,
}

/// One child in the ledger.
pub(crate) struct LocalChild {
    pub(crate) local: u64,
    /// Stopped on purpose: its stop is not a crash to restart.
    pub(crate) terminating: bool,
}

impl Supervisor {
    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.inner.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a child on this node: builds it, takes its global name, records
    /// it. `restarts` counts earlier starts.
    pub(crate) async fn start_local(
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
        let ext = Arc::new(ChildExt::new(&spec.id, self));
        let info = StartInfo {
            id: spec.id.clone(),
            args: spec.args.clone(),
            checkpoint: checkpoint.as_deref().map(str::to_string),
            restarts,
        };
        let local = factory(self.inner.node.clone(), info, ext).await?;
        let addr = self.local_addr(local);
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

    pub(crate) fn local_addr(&self, local: u64) -> ActorAddr {
        ActorAddr {
            node: self.me(),
            local: LocalRef::Id(local),
        }
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
    pub(crate) fn write_record(&self, id: Arc<str>, record: ChildRecord) {
        self.inner.children.write(|w| {
            let lineage = w
                .replica()
                .slots(&*id)
                .find(|s| s.owner == w.me() && s.value.is_some())
                .map(|s| s.lineage);
            w.put(id.clone(), lineage, record);
        });
    }

    pub(crate) fn my_record(&self, id: &str) -> Option<ChildRecord> {
        self.inner.children.read(|r, me| {
            r.slots(id)
                .find(|s| s.owner == me && s.value.is_some())
                .and_then(|s| s.value.cloned())
        })
    }

    pub(crate) fn update_record(&self, id: &str, f: impl FnOnce(&mut ChildRecord)) {
        if let Some(mut record) = self.my_record(id) {
            f(&mut record);
            self.write_record(Arc::from(id), record);
        }
    }

    pub(crate) fn remove_record(&self, id: &str) {
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

    /// Stops a local child on purpose (no restart) and waits, up to 5 s,
    /// until it is gone. Returns its actor id.
    pub(crate) async fn stop_and_wait(&self, id: &str) -> Option<u64> {
        let local = self.ledger().by_id.get_mut(id).map(|c| {
            c.terminating = true;
            c.local
        })?;
        let handle: Handle<()> = Handle::from_addr(self.local_addr(local));
        self.inner.node.stop_local(&handle);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.inner.node.local_id(&LocalRef::Id(local)).is_some() && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Some(local)
    }

    pub(crate) fn terminate_local(&self, id: &str) -> Result<(), SupervisorError> {
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
            let handle: Handle<()> = Handle::from_addr(self.local_addr(local));
            self.inner.node.stop_local(&handle);
        }
        Ok(())
    }

    /// A local actor stopped: if it was a child stopped by accident,
    /// restart it by its policy and intensity, from its last checkpoint.
    pub(crate) async fn on_stopped(&self, local: u64, reason: ExitReason) {
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
        if !self.may_restart(&id, &record.spec) {
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

    /// Counts a restart against the child's intensity (at most
    /// `max_restarts` within `within_ms`); false when it is exceeded.
    fn may_restart(&self, id: &str, spec: &ChildSpec) -> bool {
        let within = Duration::from_millis(spec.within_ms);
        let mut ledger = self.ledger();
        let times = ledger.restart_times.entry(id.to_string()).or_default();
        times.retain(|t| t.elapsed() < within);
        let ok = times.len() < spec.max_restarts as usize;
        if ok {
            times.push_back(Instant::now());
        }
        ok
    }

    /// Stops every local child without restarting it: after this node
    /// rejoined (the survivors own its children now) or lost its quorum.
    pub(crate) fn drop_all_local(&self) {
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
            tracing::warn!(child = %id, "stopping a local copy the cluster no longer gives this node");
            let handle: Handle<()> = Handle::from_addr(self.local_addr(local));
            self.inner.node.stop_local(&handle);
        }
    }
}
