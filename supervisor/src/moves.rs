//! [`Moves`]: children moving between nodes: failover when a node dies,
//! handoff when one leaves, redistribution when one joins, stopping
//! everything when this side loses its quorum; and the background loop
//! that turns the tables' changes into that [`Work`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use drove_replication::{Change, Op, SchemaReplica};
use drove_runtime::{ActorAddr, ExitReason, Handle, MemberStatus, MembershipEvent, Node, NodeId};

use crate::placer::Placer;
use crate::protocol::{SupMsg, SUPERVISOR_NAME};
use crate::records::{winner, Records};
use crate::runner::Runner;
use crate::spec::{ChildRecord, ChildStatus, ChildrenSchema, Restart, TypesSchema};

/// How long every failover waits first (see `failover`).
const FAILOVER_SETTLE: Duration = Duration::from_millis(300);

/// How much longer a node that finds itself alone, or that just woke from a
/// freeze, waits before failing children over (see `failover`).
const ALONE_SETTLE: Duration = Duration::from_secs(2);

/// How long active redistribution waits after a node declared its types,
/// so that a burst of joins moves each child once, and the new node has
/// caught up with the registry before it adopts named children.
const REBALANCE_SETTLE: Duration = Duration::from_secs(1);

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

/// Work for the supervisor's background loop.
pub(crate) enum Work {
    /// A local actor stopped.
    Stopped(u64, ExitReason),
    /// A node left the cluster with these children.
    Failover(Vec<ChildRecord>),
    /// This node was declared down and came back as a new incarnation.
    Rejoined,
    /// Another node runs this child too, and its start was earlier.
    Duplicate(String),
    /// Another node declared its types: placement may have moved.
    TypesChanged,
}

/// The work a change of the children table makes, if any (run under the
/// table's lock, with the table after the change).
pub(crate) fn child_work(
    replica: &SchemaReplica<ChildrenSchema>,
    me: &NodeId,
    change: Change<'_, Arc<str>, ChildRecord>,
) -> Option<Work> {
    match change {
        Change::Purged {
            departed: false, ..
        } => None,
        Change::Purged { owner, .. } if owner == me => Some(Work::Rejoined),
        Change::Purged { slots, .. } => {
            let records: Vec<ChildRecord> = slots.iter().filter_map(|(_, v)| v.clone()).collect();
            (!records.is_empty()).then_some(Work::Failover(records))
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
            (mine && winner(replica, key).is_some_and(|(o, _, _)| o != me))
                .then(|| Work::Duplicate(key.to_string()))
        }
        Change::Applied { .. } => None,
    }
}

/// The work a change of the types table makes: another node declared its
/// types, so placement may have moved.
pub(crate) fn types_work(
    _: &SchemaReplica<TypesSchema>,
    me: &NodeId,
    change: Change<'_, Arc<str>, bool>,
) -> Option<Work> {
    match change {
        Change::Applied {
            owner,
            op: Op::Put { .. },
        } if owner != me => Some(Work::TypesChanged),
        _ => None,
    }
}

/// Moves children between nodes. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Moves {
    node: Node,
    runner: Runner,
    records: Records,
    placer: Arc<Placer>,
    redistribution: Redistribution,
    /// A redistribution is scheduled and has not started yet.
    rebalance_pending: Arc<AtomicBool>,
    /// Held while a redistribution runs, so two never interleave.
    rebalancing: Arc<tokio::sync::Mutex<()>>,
}

impl Moves {
    pub(crate) fn new(
        node: &Node,
        runner: &Runner,
        records: &Records,
        placer: &Arc<Placer>,
        redistribution: Redistribution,
    ) -> Self {
        Moves {
            node: node.clone(),
            runner: runner.clone(),
            records: records.clone(),
            placer: placer.clone(),
            redistribution,
            rebalance_pending: Arc::default(),
            rebalancing: Arc::default(),
        }
    }

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
                Work::Stopped(local, reason) => self.runner.on_stopped(local, reason).await,
                Work::Failover(records) => {
                    // Its fencing wait must not hold up the other work.
                    let moves = self.clone();
                    tokio::spawn(async move { moves.failover(records).await });
                }
                Work::Rejoined => self.runner.drop_all_local(),
                Work::Duplicate(id) => {
                    tracing::warn!(child = %id, "another node runs this child too; stopping this copy");
                    let _ = self.runner.terminate_local(&id);
                }
                Work::TypesChanged => self.schedule_rebalance(),
            }
        }
    }

    /// Declares `types` again whenever this node rejoins as a new
    /// incarnation (the old one's declarations were purged with it).
    pub(crate) async fn redeclare_on_rejoin(self, types: Vec<Arc<str>>) {
        let mut events = self.node.subscribe();
        while let Ok(event) = events.recv().await {
            if let MembershipEvent::Rejoined { .. } = event {
                // Give the types service time to purge the old incarnation.
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.placer.declare(&types);
            }
        }
    }

    /// With the quorum strategy: stops every local child whenever this
    /// side loses its majority. Their records stay, for the majority to
    /// fail them over.
    pub(crate) async fn watch_quorum(self) {
        let mut events = self.node.subscribe();
        loop {
            match events.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
            if !self.placer.has_quorum() {
                let n = self.runner.count();
                if n > 0 {
                    tracing::warn!(children = n, "no quorum: stopping every local child");
                    self.runner.drop_all_local();
                }
            }
        }
    }

    /// A node died: start each of its children that should run again, if
    /// placement among the survivors picks this node.
    async fn failover(&self, records: Vec<ChildRecord>) {
        let me = self.node.id();
        let alone = !self
            .node
            .members()
            .iter()
            .any(|m| m.status == MemberStatus::Up && m.info.id != me);
        if let Some(q) = self.placer.quorum() {
            // Fencing: the minority stops its copies when it loses its
            // majority; give it that long before starting ours.
            tokio::time::sleep(q.fencing_margin).await;
            if !self.placer.has_quorum() {
                tracing::warn!("no quorum: not failing children over");
                return;
            }
        } else {
            // A node that wakes from a freeze sees its peers down on a stale
            // view, a moment before it learns that it was the one declared
            // down. Every failover waits a moment; a node that is alone, or
            // that has just woken, waits longer.
            tokio::time::sleep(FAILOVER_SETTLE).await;
            let suspect = alone || self.node.woke_within(Duration::from_secs(5));
            if suspect && self.node.id() == me {
                tokio::time::sleep(ALONE_SETTLE).await;
            }
        }
        if self.node.id() != me {
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
            if self.placer.place(&record.spec.id, &record.spec.type_name) != Some(me.clone()) {
                continue;
            }
            let id = record.spec.id.clone();
            match self
                .runner
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
        self.runner.stop_and_wait(id).await;
        let record = self.records.mine(id).unwrap_or(record);
        self.records.remove(id);
        let remote: Handle<SupMsg> = Handle::named(target.clone(), SUPERVISOR_NAME);
        let sent = record.clone();
        match self
            .node
            .call(&remote, |r| SupMsg::Adopt(sent, r), Duration::from_secs(10))
            .await
        {
            Ok(Ok(addr)) => Ok(addr),
            Ok(Err(e)) => Err((e, record)),
            Err(e) => Err((e.to_string(), record)),
        }
    }

    /// Before a graceful leave: stops each child here and hands it, with its
    /// last checkpoint, to the node placement picks among the others.
    /// Returns how many were handed over.
    pub(crate) async fn handoff(&self) -> usize {
        let mut handed = 0;
        for record in self.runner.running_here() {
            let id = record.spec.id.clone();
            let Some(target) = self.placer.place_elsewhere(&id, &record.spec.type_name) else {
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
        if self.redistribution != Redistribution::Active
            || self.rebalance_pending.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let moves = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REBALANCE_SETTLE).await;
            let _one_at_a_time = moves.rebalancing.lock().await;
            moves.rebalance_pending.store(false, Ordering::SeqCst);
            let moved = moves.rebalance().await;
            if moved > 0 {
                tracing::info!(moved, "children redistributed");
            }
        });
    }

    /// Hands over every local child that placement puts on another node;
    /// returns how many moved. A child whose new node refuses it runs here
    /// again.
    async fn rebalance(&self) -> usize {
        if !self.placer.has_quorum() {
            return 0;
        }
        let me = self.node.id();
        let mut moved = 0;
        for record in self.runner.running_here() {
            let id = record.spec.id.clone();
            let Some(target) = self.placer.place(&id, &record.spec.type_name) else {
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
                        .runner
                        .start_local(record.spec, record.checkpoint, record.restarts)
                        .await
                    {
                        tracing::error!(child = %id, error = %e, "restart after a failed move failed; giving up");
                        kept.status = ChildStatus::GivenUp;
                        kept.local = None;
                        self.records.write(&id, kept);
                    }
                }
            }
        }
        moved
    }
}
