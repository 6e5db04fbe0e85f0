//! What supervisors say to each other, and what the replicated tables tell
//! the local supervisor.

use std::sync::{Arc, Weak};

use serde::{Deserialize, Serialize};

use drove_replication::{Change, Hlc, Op, SchemaReplica};
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
