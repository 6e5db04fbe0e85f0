//! What supervisors say to each other, and what the replicated tables tell
//! the local supervisor.

use std::sync::{Arc, Weak};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use drove_replication::{Change, Hlc, Observer, Op, SchemaReplica};
use drove_runtime::{Actor, ActorAddr, ActorError, Context, ExitReason, Message, NodeId, Reply};

use crate::spec::{ChildRecord, ChildSpec, ChildrenSchema, TypesSchema};
use crate::supervisor::{Inner, Supervisor};

/// Messages between supervisors.
#[derive(Serialize, Deserialize)]
pub enum SupMsg {
    /// Start this child here.
    Start(ChildSpec, Reply<Result<ActorAddr, String>>),
    /// Stop this child here and forget it.
    Terminate(String, Reply<Result<(), String>>),
    /// Take over this child, from its last record, from a node that is
    /// leaving or that placement no longer picks.
    Adopt(ChildRecord, Reply<Result<ActorAddr, String>>),
}

impl Message for SupMsg {
    const TAG: &'static str = "drove.supervisor.v1";
}

/// The supervisor's actor, registered under
/// [`SUPERVISOR_NAME`](crate::SUPERVISOR_NAME) on every node.
pub(crate) struct SupervisorActor(pub(crate) Weak<Inner>);

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

/// The winning record of a child: the earliest slot, then by owner.
pub(crate) fn winner<'a>(
    r: &'a SchemaReplica<ChildrenSchema>,
    id: &str,
) -> Option<(&'a NodeId, &'a ChildRecord, Hlc)> {
    r.slots(id)
        .filter_map(|s| s.value.map(|v| (s.owner, v, s.lineage)))
        .min_by(|a, b| (a.2, a.0).cmp(&(b.2, b.0)))
}

/// Turns changes of the children table into work.
pub(crate) struct ChildObserver {
    pub(crate) work: mpsc::UnboundedSender<Work>,
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

/// Tells the supervisor when another node declares a type.
pub(crate) struct TypesObserver {
    pub(crate) work: mpsc::UnboundedSender<Work>,
}

impl Observer<TypesSchema> for TypesObserver {
    fn changed(
        &self,
        _: &SchemaReplica<TypesSchema>,
        me: &NodeId,
        change: Change<'_, Arc<str>, bool>,
    ) {
        if let Change::Applied {
            owner,
            op: Op::Put { .. },
        } = change
        {
            if owner != me {
                let _ = self.work.send(Work::TypesChanged);
            }
        }
    }
}
