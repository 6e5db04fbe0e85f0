//! [`Moves`]: children moving between nodes: failover when a node dies,
//! handoff when one leaves, redistribution when one joins, stopping
//! everything when this side loses its quorum; and the background loop
//! that turns the tables' changes into that [`Work`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use drove_replication::{Change, Hlc, Op, PurgedSlot, SchemaReplica};
use drove_runtime::{ActorAddr, ExitReason, Handle, MemberStatus, MembershipEvent, Node, NodeId};

use crate::candidates::Placer;
use crate::error::StartRefused;
use crate::local_children::LocalChildren;
use crate::protocol::{SupMsg, SUPERVISOR_NAME};
use crate::records::{winner, Records};
use crate::spec::{ChildRecord, ChildStatus, ChildrenSchema, Restart, TypesSchema};

/// How long a node that finds itself alone, or that just woke from a
/// freeze, waits before failing children over (see `failover`).
const ALONE_SETTLE: Duration = Duration::from_secs(2);

/// How long a node that did not fail a child over itself waits before it
/// checks that some node runs it (see `watch_failover`): past the placed
/// node's own settle when it just woke, and past a rejoined node's resync.
const FAILOVER_WATCH: Duration = Duration::from_millis(2500);

/// A failover start that fails is tried again after this wait, doubling
/// up to [`RETRY_MAX_WAIT`], [`FAILOVER_TRIES`] times in all (about 20 s)
/// before the child is `given_up`.
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(200);
const RETRY_MAX_WAIT: Duration = Duration::from_secs(5);
const FAILOVER_TRIES: u32 = 8;

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
    Failover(Vec<Orphan>),
    /// This node was declared down and came back as a new incarnation;
    /// the records of its old incarnation.
    Rejoined(Vec<Orphan>),
    /// Another node runs this child too, and its start was earlier.
    Duplicate(String),
    /// Another node declared its types: placement may have moved.
    TypesChanged,
}

/// A child record whose owner is gone from the table.
#[derive(Clone, Debug)]
pub(crate) struct Orphan {
    /// The node that ran it.
    pub(crate) owner: NodeId,
    /// Its last record there.
    pub(crate) record: ChildRecord,
    /// The stamp of that record: a slot of the child written or dropped
    /// later than this came from a node that handled it since.
    pub(crate) stamp: Hlc,
}

/// Whether a child whose node is gone should run again: it had not
/// finished, and its restart policy is not `temporary`.
fn should_run_again(record: &ChildRecord) -> bool {
    matches!(
        record.status,
        ChildStatus::Running | ChildStatus::Restarting
    ) && record.spec.restart != Restart::Temporary
}

fn orphans_of(owner: &NodeId, slots: &[PurgedSlot<Arc<str>, ChildRecord>]) -> Vec<Orphan> {
    slots
        .iter()
        .filter_map(|s| {
            s.value.clone().map(|record| Orphan {
                owner: owner.clone(),
                record,
                stamp: s.stamp,
            })
        })
        .collect()
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
        Change::Purged { owner, slots, .. } if owner == me => {
            Some(Work::Rejoined(orphans_of(owner, slots)))
        }
        Change::Purged { owner, slots, .. } => {
            let records = orphans_of(owner, slots);
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
    local_children: LocalChildren,
    records: Records,
    placer: Arc<Placer>,
    redistribution: Redistribution,
    /// A redistribution is scheduled and has not started yet.
    rebalance_pending: Arc<AtomicBool>,
    /// Held while a redistribution runs, so two never interleave.
    rebalancing: Arc<tokio::sync::Mutex<()>>,
    /// Children of departed incarnations (dead nodes, or this node's own
    /// before it rejoined) whose failover waits for this side's quorum to
    /// come back (the table no longer holds their records).
    orphans: Arc<Mutex<Vec<Orphan>>>,
}

impl Moves {
    pub(crate) fn new(
        node: &Node,
        local_children: &LocalChildren,
        records: &Records,
        placer: &Arc<Placer>,
        redistribution: Redistribution,
    ) -> Self {
        Moves {
            node: node.clone(),
            local_children: local_children.clone(),
            records: records.clone(),
            placer: placer.clone(),
            redistribution,
            rebalance_pending: Arc::default(),
            rebalancing: Arc::default(),
            orphans: Arc::default(),
        }
    }

    fn orphans(&self) -> std::sync::MutexGuard<'_, Vec<Orphan>> {
        self.orphans.lock().unwrap_or_else(|p| p.into_inner())
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
                Work::Stopped(local, reason) => self.local_children.on_stopped(local, reason).await,
                Work::Failover(records) => {
                    // Its fencing wait must not hold up the other work.
                    let moves = self.clone();
                    tokio::spawn(async move { moves.failover(records).await });
                }
                Work::Rejoined(records) => {
                    self.local_children.drop_all_local();
                    // The survivors fail the old incarnation's children
                    // over; but in a storm of freezes every node may have
                    // been declared down by another, with no survivor left
                    // to do it. With a quorum, they wait for it here;
                    // otherwise this node watches that some node runs them.
                    if self.placer.quorum().is_some() {
                        self.orphaned(records);
                    } else {
                        self.watch_all(records);
                    }
                }
                Work::Duplicate(id) => {
                    tracing::warn!(child = %id, "another node runs this child too; stopping this copy");
                    let _ = self.local_children.terminate_local(&id);
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
    /// side loses its majority (their records stay, for the majority to
    /// fail them over), and fails over the children left waiting for it
    /// when it comes back.
    pub(crate) async fn watch_quorum(self) {
        let mut events = self.node.subscribe();
        let mut had_quorum = true;
        loop {
            match events.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
            if !self.placer.has_quorum() {
                had_quorum = false;
                let n = self.local_children.count();
                if n > 0 {
                    tracing::warn!(children = n, "no quorum: stopping every local child");
                    self.local_children.drop_all_local();
                }
                continue;
            }
            if std::mem::replace(&mut had_quorum, true) {
                continue;
            }
            // Its own children it stopped without quorum: no other side
            // took them over, or this node would have been declared down
            // and have rejoined (its records purged with it).
            for record in self.local_children.dropped_here() {
                tracing::info!(child = %record.spec.id, "quorum is back: running it here again");
                let moves = self.clone();
                let me = self.node.id();
                tokio::spawn(async move { moves.start_failed_over(record, me).await });
            }
            let orphans = std::mem::take(&mut *self.orphans());
            if !orphans.is_empty() {
                tracing::info!(
                    children = orphans.len(),
                    "quorum is back: failing over the children that waited for it"
                );
                let moves = self.clone();
                tokio::spawn(async move { moves.failover(orphans).await });
            }
        }
    }

    /// A node died: start each of its children that should run again, if
    /// placement among the survivors picks this node. Every survivor saw
    /// the death, so each holds these records, whether it fails them over
    /// now or keeps them until its side has its quorum again.
    async fn failover(&self, records: Vec<Orphan>) {
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
            if self.node.id() != me || !self.placer.has_quorum() {
                tracing::warn!(
                    children = records.len(),
                    "no quorum, or rejoined: these children fail over once the quorum is back"
                );
                self.orphaned(records);
                return;
            }
        } else {
            // A node that wakes from a freeze sees its peers down on a stale
            // view, a moment before it learns that it was the one declared
            // down; its driver notes the freeze before it reports any of
            // those downs, so such a node (or one that finds itself alone)
            // waits to learn it. Any other node fails over at once.
            let suspect = alone || self.node.woke_within(Duration::from_secs(5));
            if suspect && self.node.id() == me {
                tokio::time::sleep(ALONE_SETTLE).await;
            }
        }
        if self.node.id() != me {
            tracing::info!("rejoined meanwhile: watching that some node runs these children");
            self.watch_all(records);
            return;
        }
        let up = self.node.up_members();
        for orphan in records {
            // Its owner is up: a stale view (this node froze) took it for
            // dead; it runs there.
            if up.contains(&orphan.owner) || !should_run_again(&orphan.record) {
                continue;
            }
            let spec = &orphan.record.spec;
            let Some(target) = self.placer.place(&spec.id, &spec.type_name) else {
                continue;
            };
            // A live node runs it already (it adopted it from a leaver that
            // died before dropping its record, say).
            if self.records.winner(&spec.id).is_some() {
                continue;
            }
            let moves = self.clone();
            let me = me.clone();
            if target == me {
                tokio::spawn(async move { moves.start_failed_over(orphan.record, me).await });
            } else {
                tokio::spawn(async move { moves.watch_failover(orphan).await });
            }
        }
    }

    /// [`watch_failover`](Self::watch_failover) for each of `records` that
    /// should run again.
    fn watch_all(&self, records: Vec<Orphan>) {
        for orphan in records {
            if should_run_again(&orphan.record) {
                let moves = self.clone();
                tokio::spawn(async move { moves.watch_failover(orphan).await });
            }
        }
    }

    /// Checks, [`FAILOVER_WATCH`] after a failover this node did not make,
    /// that some node runs the child. The node placed to start it may not
    /// hold its record (it rejoined, and the dead node froze before it could
    /// sync that node's partition), or may itself have been declared down
    /// before it did. While no live node has handled it since its dead
    /// owner's last record (started, finished or terminated it) and that
    /// owner is still gone, this node starts it (if placement picks this
    /// node) or sends the record to the node placement picks; a node that
    /// runs the child already answers where. A watch that spans a rejoin of
    /// this node waits again, so the new incarnation has the tables first;
    /// one that finds its side without a quorum leaves the child to wait
    /// for it.
    async fn watch_failover(&self, orphan: Orphan) {
        let id = orphan.record.spec.id.clone();
        for _ in 0..FAILOVER_TRIES {
            let me = self.node.id();
            tokio::time::sleep(FAILOVER_WATCH).await;
            if self.node.id() != me {
                continue;
            }
            if !self.placer.has_quorum() {
                self.orphaned(vec![orphan]);
                return;
            }
            if self.records.handled_after(&id, orphan.stamp)
                || self.node.up_members().contains(&orphan.owner)
            {
                return;
            }
            let record = &orphan.record;
            let Some(target) = self.placer.place(&id, &record.spec.type_name) else {
                continue;
            };
            if target == me {
                self.start_failed_over(orphan.record, me).await;
                return;
            }
            let mut sent = record.clone();
            sent.restarts += 1;
            let remote: Handle<SupMsg> = Handle::named(target.clone(), SUPERVISOR_NAME);
            let adopted = self
                .node
                .call(&remote, |r| SupMsg::Adopt(sent, r), Duration::from_secs(10))
                .await;
            match adopted {
                Ok(Ok(addr)) => {
                    tracing::info!(child = %id, %target, %addr, "no node ran a failed-over child: sent its record to the node placed to run it");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(child = %id, %target, error = %e, "the node placed to run a failed-over child refused its record")
                }
                Err(e) => {
                    tracing::warn!(child = %id, %target, error = %e, "could not send a failed-over child's record")
                }
            }
        }
        tracing::error!(child = %id, "no node would run a failed-over child; giving up");
        let mut record = orphan.record;
        record.status = ChildStatus::GivenUp;
        record.local = None;
        self.records.write(&id, record);
    }

    /// Starts a failed-over child here, trying again with backoff while its
    /// start fails, showing it as `restarting` meanwhile and as `given_up`
    /// once the tries run out. Stops trying when another node runs it or
    /// this node rejoined as `me`'s successor.
    async fn start_failed_over(&self, record: ChildRecord, me: NodeId) {
        let id = record.spec.id.clone();
        let restarts = record.restarts + 1;
        let mut wait = RETRY_FIRST_WAIT;
        for attempt in 1..=FAILOVER_TRIES {
            if self.local_children.is_running_here(&id) {
                return;
            }
            let started = self
                .local_children
                .start_local(record.spec.clone(), record.checkpoint.clone(), restarts)
                .await;
            let error = match started {
                Ok(addr) => {
                    tracing::info!(child = %id, %addr, attempt, "failed over");
                    return;
                }
                Err(StartRefused::NameHeld { name, owner }) => {
                    tracing::info!(child = %id, %name, %owner, "its name is held by a live actor: it runs elsewhere");
                    self.records.remove(&id);
                    return;
                }
                Err(StartRefused::Failed(e)) => e,
            };
            let mut shown = record.clone();
            shown.local = None;
            shown.restarts = restarts;
            if attempt == FAILOVER_TRIES {
                tracing::error!(child = %id, error = %error, attempt, "failover start failed; giving up");
                shown.status = ChildStatus::GivenUp;
                self.records.write(&id, shown);
                return;
            }
            tracing::warn!(child = %id, error = %error, attempt, retry_in = ?wait, "failover start failed; trying again");
            shown.status = ChildStatus::Restarting;
            self.records.write(&id, shown);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX_WAIT);
            let elsewhere = self
                .records
                .winner(&id)
                .is_some_and(|(owner, _)| owner != me);
            if self.node.id() != me || elsewhere {
                self.records.remove(&id);
                return;
            }
        }
    }

    /// Children to fail over once this side has its quorum: now, if it has
    /// it, else when it comes back (see `watch_quorum`). A child that
    /// another node took over meanwhile is skipped then.
    fn orphaned(&self, records: Vec<Orphan>) {
        if records.is_empty() {
            return;
        }
        let mut orphans = self.orphans();
        for orphan in records {
            orphans.retain(|o| o.record.spec.id != orphan.record.spec.id);
            orphans.push(orphan);
        }
        if self.placer.has_quorum() {
            let orphans = std::mem::take(&mut *orphans);
            let moves = self.clone();
            tokio::spawn(async move { moves.failover(orphans).await });
        }
    }

    /// Stops a local child, then has `target` adopt it from its final
    /// record. This node's record stays until the target confirms: if the
    /// target refuses or dies, the child is not lost (it runs here again,
    /// or fails over from this record when this node leaves). Meanwhile
    /// the record is not written, so the target, whose own record is the
    /// later one, never takes it for a duplicate to stop.
    async fn hand_over(
        &self,
        id: &str,
        record: ChildRecord,
        target: &NodeId,
    ) -> Result<ActorAddr, (String, ChildRecord)> {
        self.local_children.stop_and_wait(id).await;
        let record = self.records.mine(id).unwrap_or(record);
        let remote: Handle<SupMsg> = Handle::named(target.clone(), SUPERVISOR_NAME);
        let sent = record.clone();
        let adopted = match self
            .node
            .call(&remote, |r| SupMsg::Adopt(sent, r), Duration::from_secs(10))
            .await
        {
            Ok(Ok(addr)) => Ok(addr),
            Ok(Err(e)) => Err((e, record)),
            Err(e) => Err((e.to_string(), record)),
        };
        if adopted.is_ok() {
            self.records.remove(id);
        }
        adopted
    }

    /// Before a graceful leave: stops each child here and hands it, with its
    /// last checkpoint, to the node placement picks among the others.
    /// Returns how many were handed over.
    pub(crate) async fn handoff(&self) -> usize {
        let mut handed = 0;
        for record in self.local_children.running_here() {
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
                Err((e, _)) => {
                    tracing::error!(child = %id, %target, error = %e, "handoff failed; the survivors fail it over from its record when this node has left")
                }
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
        for record in self.local_children.running_here() {
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
                        .local_children
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
