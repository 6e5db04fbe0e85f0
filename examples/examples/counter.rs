//! A local actor: spawn it, cast to it, call it.
//!
//! `cargo run -p drove-examples --example counter`

use std::time::Duration;

use drove_runtime::{Actor, ActorError, Context, Message, NodeConfig, Reply};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get(Reply<u64>),
}

impl Message for CounterMsg {
    const TAG: &'static str = "examples.counter.v1";
}

struct Counter;

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Args = u64;

    async fn init(&self, _ctx: &Context<Self>, start: u64) -> Result<u64, ActorError> {
        Ok(start)
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
    let mut config = NodeConfig::new("counter-example");
    config.listen = "127.0.0.1:47370".parse()?;
    let node = config.start().await?;
    let counter = node.spawn(Counter, 40).await?;
    node.cast(&counter, CounterMsg::Add(2))?;
    let n = node
        .call(&counter, CounterMsg::Get, Duration::from_secs(1))
        .await?;
    println!("{counter} counts {n}");
    node.leave().await;
    Ok(())
}
