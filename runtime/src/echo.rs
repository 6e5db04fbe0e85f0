//! The echo service every node runs under the local name `drove.echo`:
//! pings for liveness, echoes for round trips, and a cast counter, so a
//! cluster can be checked and measured without user code.

use serde::{Deserialize, Serialize};

use std::time::Duration;

use drove_membership::NodeId;

use crate::actor::{Actor, ActorError, Context};
use crate::error::CallError;
use crate::handle::Handle;
use crate::message::{Message, Reply};
use crate::node::Node;

/// The local name of the echo actor on every node.
pub const ECHO_NAME: &str = "drove.echo";

/// Messages of the echo service.
#[derive(Debug, Serialize, Deserialize)]
pub enum EchoMsg {
    /// Answers with the number of `Count` casts received so far.
    Ping(Reply<u64>),
    /// Answers with the same bytes.
    Echo(#[serde(with = "serde_bytes")] Vec<u8>, Reply<Vec<u8>>),
    /// Adds one to the counter (a small cast for throughput tests).
    Count,
}

impl Message for EchoMsg {
    const TAG: &'static str = "drove.echo.v1";
}

/// The echo actor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = u64;
    type Args = ();

    async fn init(&self, _ctx: &Context<Self>, _args: ()) -> Result<u64, ActorError> {
        Ok(0)
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: EchoMsg,
        count: &mut u64,
    ) -> Result<(), ActorError> {
        match msg {
            EchoMsg::Count => *count += 1,
            EchoMsg::Ping(reply) => {
                let _ = ctx.reply(reply, *count);
            }
            EchoMsg::Echo(bytes, reply) => {
                let _ = ctx.reply(reply, bytes);
            }
        }
        Ok(())
    }
}

/// Round trip from `node` to `peer`'s echo service; the answer is how many
/// `EchoMsg::Count` casts that service has received.
pub async fn ping(node: &Node, peer: &NodeId, timeout: Duration) -> Result<u64, CallError> {
    let echo = Handle::named(peer.clone(), ECHO_NAME);
    node.call(&echo, EchoMsg::Ping, timeout).await
}
