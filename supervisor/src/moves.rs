//! Children moving between nodes: failover when a node dies, handoff when
//! one leaves, redistribution when one joins; and the background loop that
//! drives them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use drove_runtime::{ActorAddr, Handle, MemberStatus, MembershipEvent, NodeId};

use crate::builder::Redistribution;
use crate::protocol::{SupMsg, Work};
use crate::spec::{ChildRecord, ChildStatus, Restart};
use crate::supervisor::{Supervisor, SUPERVISOR_NAME};

/// How long every failover waits first (see `failover`).
const FAILOVER_SETTLE: Duration = Duration::from_millis(300);

/// How much longer a node that finds itself alone, or that just woke from a
/// freeze, waits before failing children over (see `failover`).
const ALONE_SETTLE: Duration = Duration::from_secs(2);

/// How long active redistribution waits after a node declared its types,
/// so that a burst of joins moves each child once, and the new node has
/// caught up with the registry before it adopts named children.
const REBALANCE_SETTLE: Duration = Duration::from_secs(1);

impl Supervisor {
    /// The background loop: local stops, and what the children and types
    /// tables report.
    pub(crate) async fn work(
        self,
        mut stops: mpsc::UnboundedReceiver<Work>,
        mut children: mpsc::UnboundedReceiver<Work>,
        mut types: mpsc::UnboundedReceiver<Work>,
    ) {
        loop {
            let work = tokio::select! {
                Some(work) = stops.recv() => work,
                Some(work) = children.recv() => work,
                Some(work) = types.recv() => work,
                else => return,
            };
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
                Work::TypesChanged => self.schedule_rebalance(),
            }
        }
    }

    pub(crate) fn declare_types(&self, types: &[Arc<str>]) {
        self.inner.types.write(|w| {
            for t in types {
                w.put(t.clone(), None, true);
            }
        });
    }

    pub(crate) async fn redeclare_on_rejoin(self, types: Vec<Arc<str>>) {
        let mut events = self.inner.node.subscribe();
        while let Ok(event) = events.recv().await {
            if let MembershipEvent::Rejoined { .. } = event {
                // Give the types service time to purge the old incarnation.
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.declare_types(&types);
            }
        }
    }

    /// With the quorum strategy: stops every local child whenever this
    /// side loses its majority. Their records stay, for the majority to
    /// fail them over.
    pub(crate) async fn watch_quorum(self) {
        let mut events = self.inner.node.subscribe();
        loop {
            match events.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
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

    /// Up members that declared `type_name`, this node included.
    pub(crate) fn candidates(&self, type_name: &str) -> Vec<NodeId> {
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

    /// Stops a local child, then has `target` adopt it from its final
    /// record. The removal of this node's record travels before the
    /// adoption on the same link, so the target never sees two owners. On
    /// failure the final record comes back.
    async fn hand_over(
        &self,
        id: &str,
        record: ChildRecord,
        target: &NodeId,
    ) -> Result<ActorAddr, (String, ChildRecord)> {
        self.stop_and_wait(id).await;
        let record = self.my_record(id).unwrap_or(record);
        self.remove_record(id);
        let remote: Handle<SupMsg> = Handle::named(target.clone(), SUPERVISOR_NAME);
        let sent = record.clone();
        match self
            .inner
            .node
            .call(&remote, |r| SupMsg::Adopt(sent, r), Duration::from_secs(10))
            .await
        {
            Ok(Ok(addr)) => Ok(addr),
            Ok(Err(e)) => Err((e, record)),
            Err(e) => Err((e.to_string(), record)),
        }
    }

    /// The running local children, with their records.
    fn running_here(&self) -> Vec<ChildRecord> {
        let ids: Vec<String> = self
            .ledger()
            .by_id
            .iter()
            .filter(|(_, c)| !c.terminating)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| self.my_record(id))
            .filter(|r| r.status == ChildStatus::Running)
            .collect()
    }

    /// Before a graceful leave: stops each child here and hands it, with its
    /// last checkpoint, to the node placement picks among the others.
    /// Returns how many were handed over.
    pub async fn handoff(&self) -> usize {
        let me = self.me();
        let mut handed = 0;
        for record in self.running_here() {
            let id = record.spec.id.clone();
            let candidates: Vec<NodeId> = self
                .candidates(&record.spec.type_name)
                .into_iter()
                .filter(|n| *n != me)
                .collect();
            let Some(target) = self.inner.placement.place(&id, &candidates).cloned() else {
                tracing::warn!(child = %id, "no other node runs its type; it stops with this node");
                continue;
            };
            match self.hand_over(&id, record, &target).await {
                Ok(addr) => {
                    handed += 1;
                    tracing::info!(child = %id, %addr, "handed over");
                }
                Err((e, _)) => tracing::error!(child = %id, %target, error = %e, "handoff failed"),
            }
        }
        handed
    }

    /// With active redistribution, a node declared its types: hand each
    /// local child that placement now puts elsewhere over to that node,
    /// once the joins settle.
    fn schedule_rebalance(&self) {
        if self.inner.redistribution != Redistribution::Active
            || self.inner.rebalance_pending.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let sup = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REBALANCE_SETTLE).await;
            let _one_at_a_time = sup.inner.rebalancing.lock().await;
            sup.inner.rebalance_pending.store(false, Ordering::SeqCst);
            let moved = sup.rebalance().await;
            if moved > 0 {
                tracing::info!(moved, "children redistributed");
            }
        });
    }

    /// Hands over every local child that placement puts on another node;
    /// returns how many moved. A child whose new node refuses it runs here
    /// again.
    pub(crate) async fn rebalance(&self) -> usize {
        if !self.has_quorum() {
            return 0;
        }
        let me = self.me();
        let mut moved = 0;
        for record in self.running_here() {
            let id = record.spec.id.clone();
            let candidates = self.candidates(&record.spec.type_name);
            let Some(target) = self.inner.placement.place(&id, &candidates).cloned() else {
                continue;
            };
            if target == me {
                continue;
            }
            match self.hand_over(&id, record, &target).await {
                Ok(addr) => {
                    moved += 1;
                    tracing::info!(child = %id, %addr, "redistributed");
                }
                Err((e, record)) => {
                    tracing::warn!(child = %id, %target, error = %e, "redistribution failed; running it here again");
                    let mut kept = record.clone();
                    if let Err(e) = self
                        .start_local(record.spec, record.checkpoint, record.restarts)
                        .await
                    {
                        tracing::error!(child = %id, error = %e, "restart after a failed move failed; giving up");
                        kept.status = ChildStatus::GivenUp;
                        kept.local = None;
                        self.write_record(Arc::from(id.as_str()), kept);
                    }
                }
            }
        }
        moved
    }
}
