//! [`Moves`]: the I/O shell around the [`Decider`]: one loop turns what
//! the tables, the membership, the local children and the timers report
//! into the decider's inputs, and carries out its [`Action`]s (starts,
//! adoptions, handovers, stops, record writes, timers), feeding their
//! results back. Graceful handoff before a leave is here too.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use drove_replication::{Change, Hlc, Op, SchemaReplica};
use drove_runtime::{ActorAddr, ExitReason, Handle, MemberStatus, Node, NodeId};

use crate::candidates::Placer;
use crate::decider::{Action, Decider, DeciderConfig, Outlook, StartOutcome, Timer};
use crate::error::StartRefused;
use crate::local_children::LocalChildren;
use crate::protocol::{SupMsg, SUPERVISOR_NAME};
use crate::records::Records;
use crate::spec::{ChildRecord, ChildrenSchema, TypesSchema};
use crate::table::{table_event, Orphan, TableEvent};

/// How long a remote adoption may take before it counts as failed.
const ADOPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Work for the supervisor's loop, from the tables and local stops.
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
    /// This node's old incarnation's declarations were purged (it
    /// rejoined): it declares its types again.
    Redeclare,
}

/// What a carried-out action came to.
enum Done {
    Started(String, StartOutcome),
    Adopted(String, Result<(), String>),
    HandedOver(String, Result<(), ChildRecord>),
}

/// The work a change of the children table makes, if any.
pub(crate) fn child_work(
    replica: &SchemaReplica<ChildrenSchema>,
    me: &NodeId,
    change: Change<'_, Arc<str>, ChildRecord>,
) -> Option<Work> {
    table_event(replica, me, change).map(|event| match event {
        TableEvent::Failover(orphans) => Work::Failover(orphans),
        TableEvent::Rejoined(orphans) => Work::Rejoined(orphans),
        TableEvent::Duplicate(id) => Work::Duplicate(id),
    })
}

/// The work a change of the types table makes: another node declared its
/// types (placement may have moved), or this node rejoined and its old
/// declarations were purged.
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
        Change::Purged { owner, .. } if owner == me => Some(Work::Redeclare),
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
    /// The decider's clock starts here.
    epoch: Instant,
}

/// What this node knows, read live for the decider.
impl Outlook for Moves {
    fn me(&self) -> NodeId {
        self.node.id()
    }

    fn alone(&self) -> bool {
        let me = self.node.id();
        !self
            .node
            .members()
            .iter()
            .any(|m| m.status == MemberStatus::Up && m.info.id != me)
    }

    fn woke_at_ms(&self) -> Option<u64> {
        self.node
            .woke_at()
            .map(|t| t.saturating_duration_since(self.epoch).as_millis() as u64)
    }

    fn is_up(&self, node: &NodeId) -> bool {
        self.node.up_members().contains(node)
    }

    fn has_quorum(&self) -> bool {
        self.placer.has_quorum()
    }

    fn place(&self, id: &str, type_name: &str) -> Option<NodeId> {
        self.placer.place(id, type_name)
    }

    fn runs(&self, id: &str) -> Option<NodeId> {
        self.records.winner(id).map(|(owner, _)| owner)
    }

    fn runs_elsewhere(&self, id: &str) -> bool {
        self.records.runs_elsewhere(id)
    }

    fn handled_after(&self, id: &str, stamp: Hlc) -> bool {
        self.records.handled_after(id, stamp)
    }

    fn running_here(&self, id: &str) -> bool {
        self.local_children.is_running_here(id)
    }

    fn running_records(&self) -> Vec<ChildRecord> {
        self.local_children.running_here()
    }

    fn dropped_here(&self) -> Vec<ChildRecord> {
        self.local_children.dropped_here()
    }
}

impl Moves {
    pub(crate) fn new(
        node: &Node,
        local_children: &LocalChildren,
        records: &Records,
        placer: &Arc<Placer>,
    ) -> Self {
        Moves {
            node: node.clone(),
            local_children: local_children.clone(),
            records: records.clone(),
            placer: placer.clone(),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The loop: local stops, what the children and types tables report,
    /// membership changes and the decider's timers go in; its actions are
    /// carried out (the slow ones in tasks that report back).
    pub(crate) async fn work(
        self,
        config: DeciderConfig,
        declared: Vec<Arc<str>>,
        mut stops: mpsc::UnboundedReceiver<Work>,
        mut children: mpsc::UnboundedReceiver<Work>,
        mut types: mpsc::UnboundedReceiver<Work>,
    ) {
        let mut decider = Decider::new(config);
        let mut events = self.node.subscribe();
        let (done_tx, mut done) = mpsc::unbounded_channel::<Done>();
        let mut timers: BTreeSet<(u64, Timer)> = BTreeSet::new();
        loop {
            let next = timers.first().map(|(at, _)| *at);
            let due = async {
                match next {
                    Some(at) => {
                        tokio::time::sleep_until((self.epoch + Duration::from_millis(at)).into())
                            .await
                    }
                    None => std::future::pending().await,
                }
            };
            let actions = tokio::select! {
                Some(work) = stops.recv() => self.on_work(&mut decider, &declared, work),
                Some(work) = children.recv() => self.on_work(&mut decider, &declared, work),
                Some(work) = types.recv() => self.on_work(&mut decider, &declared, work),
                Some(done) = done.recv() => {
                    let now = self.now_ms();
                    match done {
                        Done::Started(id, outcome) => decider.started(now, &id, outcome, &self),
                        Done::Adopted(id, result) => decider.adopted(now, &id, result, &self),
                        Done::HandedOver(id, result) => decider.handed_over(&id, result, &self),
                    }
                }
                event = events.recv() => match event {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        decider.membership_changed(self.now_ms(), &self)
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = due => {
                    let now = self.now_ms();
                    let mut actions = Vec::new();
                    while let Some((at, which)) = timers.first().cloned() {
                        if at > now {
                            break;
                        }
                        timers.remove(&(at, which.clone()));
                        actions.extend(decider.fire(now, &which, &self));
                    }
                    actions
                }
            };
            for action in actions {
                self.carry_out(action, &mut timers, &done_tx);
            }
        }
    }

    /// Feeds one piece of work to the decider (local restarts are this
    /// node's own business and run in a task of their own).
    fn on_work(&self, decider: &mut Decider, declared: &[Arc<str>], work: Work) -> Vec<Action> {
        let now = self.now_ms();
        match work {
            Work::Stopped(local, reason) => {
                // A local restart may wait for its name (seconds): the
                // decider's timers and inputs do not wait for it.
                let local_children = self.local_children.clone();
                tokio::spawn(async move { local_children.on_stopped(local, reason).await });
                Vec::new()
            }
            Work::Failover(orphans) => decider.failover(now, orphans, self),
            Work::Rejoined(orphans) => decider.rejoined(now, orphans, self),
            Work::Duplicate(id) => {
                tracing::warn!(child = %id, "another node runs this child too; stopping this copy");
                decider.duplicate(&id)
            }
            Work::TypesChanged => decider.types_changed(now),
            Work::Redeclare => {
                self.placer.declare(declared);
                Vec::new()
            }
        }
    }

    /// Carries out one action; the slow ones run in tasks that answer on
    /// `done`.
    fn carry_out(
        &self,
        action: Action,
        timers: &mut BTreeSet<(u64, Timer)>,
        done: &mpsc::UnboundedSender<Done>,
    ) {
        match action {
            Action::SetTimer { at, which } => {
                timers.insert((at, which));
            }
            Action::Show(record) => {
                let id = record.spec.id.clone();
                self.records.write(&id, record);
            }
            Action::Forget(id) => self.records.remove(&id),
            Action::StopCopy(id) => {
                let _ = self.local_children.terminate_local(&id);
            }
            Action::StopAll => {
                let n = self.local_children.count();
                if n > 0 {
                    tracing::warn!(children = n, "stopping every local child");
                    self.local_children.drop_all_local();
                }
            }
            Action::Start { record, restarts } => {
                let (moves, done) = (self.clone(), done.clone());
                tokio::spawn(async move {
                    let id = record.spec.id.clone();
                    let started = moves
                        .local_children
                        .start_local(record.spec, record.checkpoint, restarts)
                        .await;
                    let outcome = match started {
                        Ok(addr) => {
                            tracing::info!(child = %id, %addr, "failed over");
                            StartOutcome::Started
                        }
                        Err(StartRefused::NameHeld { name, owner }) => {
                            tracing::info!(child = %id, %name, %owner, "its name is held by a live actor: it runs elsewhere");
                            StartOutcome::NameHeld
                        }
                        Err(StartRefused::Failed(e)) => StartOutcome::Failed(e),
                    };
                    let _ = done.send(Done::Started(id, outcome));
                });
            }
            Action::Adopt { target, record } => {
                let (moves, done) = (self.clone(), done.clone());
                tokio::spawn(async move {
                    let id = record.spec.id.clone();
                    let result = moves.adopt(&target, record).await.map(|addr| {
                        tracing::info!(child = %id, %target, %addr, "adopted");
                    });
                    let _ = done.send(Done::Adopted(id, result));
                });
            }
            Action::HandOver { id, target } => {
                let (moves, done) = (self.clone(), done.clone());
                tokio::spawn(async move {
                    // A child stopped meanwhile has nothing to move.
                    let result = match moves.records.mine(&id) {
                        None => Ok(()),
                        Some(record) => match moves.hand_over(&id, record, &target).await {
                            Ok(addr) => {
                                tracing::info!(child = %id, %addr, "redistributed");
                                Ok(())
                            }
                            Err((e, record)) => {
                                tracing::warn!(child = %id, %target, error = %e, "redistribution failed");
                                Err(record)
                            }
                        },
                    };
                    let _ = done.send(Done::HandedOver(id, result));
                });
            }
        }
    }

    /// Has `target` start a child from `record`; where it runs, or why not.
    async fn adopt(&self, target: &NodeId, record: ChildRecord) -> Result<ActorAddr, String> {
        let remote: Handle<SupMsg> = Handle::named(target.clone(), SUPERVISOR_NAME);
        match self
            .node
            .call(&remote, |r| SupMsg::Adopt(record, r), ADOPT_TIMEOUT)
            .await
        {
            Ok(adopted) => adopted,
            Err(e) => Err(e.to_string()),
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
        match self.adopt(target, record.clone()).await {
            Ok(addr) => {
                self.records.remove(id);
                Ok(addr)
            }
            Err(e) => Err((e, record)),
        }
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
}
