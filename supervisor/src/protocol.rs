//! What supervisors say to each other: [`SupMsg`], answered by each node's
//! supervisor actor from its `LocalChildren`.

use serde::{Deserialize, Serialize};

use drove_runtime::{Actor, ActorAddr, ActorError, Context, Message, Reply};

use crate::error::StartRefused;
use crate::local_children::LocalChildren;
use crate::spec::{ChildRecord, ChildSpec};

/// The local name of the supervisor actor on every node.
pub const SUPERVISOR_NAME: &str = "drove.supervisor";

/// Messages between supervisors.
#[derive(Serialize, Deserialize)]
pub enum SupMsg {
    /// Start this child here.
    Start(ChildSpec, Reply<Result<ActorAddr, StartRefused>>),
    /// Stop this child here and forget it.
    Terminate(String, Reply<Result<(), String>>),
    /// Take over this child, from its last record, from a node that is
    /// leaving or that placement no longer picks.
    Adopt(ChildRecord, Reply<Result<ActorAddr, String>>),
}

impl Message for SupMsg {
    const TAG: &'static str = "drove.supervisor.v2";
}

/// The supervisor's actor, registered under [`SUPERVISOR_NAME`] on every
/// node.
pub(crate) struct SupervisorActor(pub(crate) LocalChildren);

impl Actor for SupervisorActor {
    type Msg = SupMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(&self, ctx: &Context<Self>, msg: SupMsg, _: &mut ()) -> Result<(), ActorError> {
        let local_children = &self.0;
        match msg {
            SupMsg::Start(spec, reply) => {
                let result = local_children.start_local(spec, None, 0).await;
                ctx.reply(reply, result)?;
            }
            SupMsg::Adopt(record, reply) => {
                let result = local_children
                    .start_local(record.spec, record.checkpoint, record.restarts)
                    .await
                    .map_err(|e| e.to_string());
                ctx.reply(reply, result)?;
            }
            SupMsg::Terminate(id, reply) => {
                let result = local_children
                    .terminate_local(&id)
                    .map_err(|e| e.to_string());
                ctx.reply(reply, result)?;
            }
        }
        Ok(())
    }
}
