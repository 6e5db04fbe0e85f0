//! The dashboard agent every node with a dashboard runs under the local
//! name [`AGENT_NAME`]. A dashboard asks each member's agent for its
//! [`NodeCard`]: what only that node knows (when it started, how many
//! subscribers it has per topic, how many children it runs), as Erlang's
//! observer asks a node over rpc. Nothing is asked while no one watches.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use drove::runtime::{
    Actor, ActorError, CallError, Context, DeliveryError, Handle, Message, NodeId, Reply,
};
use drove::Drove;

/// The local name of the agent on every node.
pub const AGENT_NAME: &str = "drove.dashboard";

/// Topics one card lists at most: a hostile or huge node cannot make a
/// card grow without bound.
pub const MAX_CARD_TOPICS: usize = 1_000;

/// How long a dashboard waits for a member's card.
pub const CARD_TIMEOUT: Duration = Duration::from_millis(700);

/// What a node tells a dashboard about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCard {
    /// When its dashboard started (with the node), Unix ms.
    pub started_at_ms: u64,
    /// Topics it has subscribers to, with how many, sorted by topic.
    pub topics: Vec<(String, u32)>,
    /// Children it runs now.
    pub running_children: u32,
}

/// Messages of the agent.
#[derive(Debug, Serialize, Deserialize)]
pub enum AgentMsg {
    /// Answers with this node's card.
    Card(Reply<NodeCard>),
}

impl Message for AgentMsg {
    const TAG: &'static str = "drove.dashboard.v1";
}

/// This node's card, read now.
pub fn card_of(drove: &Drove, started_at_ms: u64) -> NodeCard {
    let me = drove.node().id();
    let pubsub = drove.pubsub();
    let topics = pubsub
        .topics()
        .into_iter()
        .filter(|(_, nodes)| nodes.contains(&me))
        .take(MAX_CARD_TOPICS)
        .map(|(topic, _)| {
            let n = u32::try_from(pubsub.local_subscribers(&topic)).unwrap_or(u32::MAX);
            (topic, n)
        })
        .collect();
    NodeCard {
        started_at_ms,
        topics,
        running_children: u32::try_from(drove.supervisor().local_children().len())
            .unwrap_or(u32::MAX),
    }
}

/// What asking a peer for its card gave.
#[derive(Debug)]
pub enum Asked {
    /// Its card.
    Card(NodeCard),
    /// It runs no agent (a pool's runner): no use asking it again.
    NoAgent,
    /// No answer in time, or an answer past the bounds.
    Nothing,
}

/// Asks `peer` for its card.
pub async fn ask_card(drove: &Drove, peer: &NodeId) -> Asked {
    let agent = Handle::named(peer.clone(), AGENT_NAME);
    match drove
        .node()
        .call(&agent, AgentMsg::Card, CARD_TIMEOUT)
        .await
    {
        // A peer's answer is hostile until checked: keep the bound.
        Ok(card) if card.topics.len() <= MAX_CARD_TOPICS => Asked::Card(card),
        Err(CallError::Delivery(DeliveryError::NoSuchActor(_))) => Asked::NoAgent,
        _ => Asked::Nothing,
    }
}

/// The agent: answers cards.
pub(crate) struct Agent {
    pub(crate) drove: Drove,
    pub(crate) started_at_ms: u64,
}

impl Actor for Agent {
    type Msg = AgentMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _ctx: &Context<Self>, _args: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: AgentMsg,
        _: &mut (),
    ) -> Result<(), ActorError> {
        match msg {
            AgentMsg::Card(reply) => {
                let _ = ctx.reply(reply, card_of(&self.drove, self.started_at_ms));
            }
        }
        Ok(())
    }
}
