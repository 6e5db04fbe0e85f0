//! Global names on one node: register an actor, reach it by name, attach
//! metadata, select by prefix. Every other node of the cluster reads the
//! same table locally.
//!
//! `cargo run -p drove-examples --example names`

use std::time::Duration;

use drove_runtime::{Actor, ActorError, Context, Message, NodeConfig, Reply};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get(Reply<u64>),
}

impl Message for CounterMsg {
    const TAG: &'static str = "examples.names.v1";
}

struct Counter;

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Args = u64;

    async fn init(&self, _: &Context<Self>, n: u64) -> Result<u64, ActorError> {
        Ok(n)
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: CounterMsg,
        n: &mut u64,
    ) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Add(k) => *n += k,
            CounterMsg::Get(reply) => ctx.reply(reply, *n)?,
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = NodeConfig::new("names-example");
    config.listen = "127.0.0.1:47372".parse()?;
    let node = config.start().await?;
    let timeout = Duration::from_secs(5);

    let registry = drove_registry::Registry::start(&node).await?;
    let counter = node.spawn(Counter, 0).await?;
    registry.register("counter", &counter)?; // Err(Taken { owner }) if held
    registry.cast("counter", CounterMsg::Add(1))?; // from any node
    let n: u64 = registry.call("counter", CounterMsg::Get, timeout).await?;
    registry.put_meta(
        "counter",
        &Region {
            region: "eu".into(),
        },
    )?;
    let all = registry.select_prefix("count");

    println!(
        "counter = {n}; names: {:?}",
        all.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
    node.leave().await;
    Ok(())
}

#[derive(Serialize)]
struct Region {
    region: String,
}
