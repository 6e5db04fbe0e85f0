//! A node with every service and one custom child type, through the
//! `drove` facade: a counter supervised cluster-wide, that checkpoints
//! every change and so survives its node.
//!
//! `cargo run -p drove-examples --example custom_child` (settings from
//! `DROVE_*` variables: `DROVE_NAME`, `DROVE_LISTEN`, `DROVE_HTTP`, ...).

use std::time::Duration;

use drove::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get(Reply<u64>),
}

impl Message for CounterMsg {
    const TAG: &'static str = "examples.counter-child.v1";
}

#[derive(Clone)]
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
            CounterMsg::Add(k) => {
                *n += k;
                checkpoint(ctx, n)?; // back from here after a crash or failover
            }
            CounterMsg::Get(reply) => ctx.reply(reply, *n)?,
        }
        Ok(())
    }
}

impl Child for Counter {
    const TYPE: &'static str = "counter";
    type Start = u64; // its first value
    type Checkpoint = u64; // its value when it last changed

    fn init_args(&self, start: Started<Self>) -> u64 {
        start.checkpoint.unwrap_or(start.args)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config {
        name: "counter-node".into(),
        ..Config::from_env()?
    };
    let drove = Drove::builder(config).child(Counter).start().await?;
    let spec = ChildSpec::of::<Counter>(40).transient().name("counter");
    let counter = drove.supervisor().singleton(spec).await?;
    drove.node().cast(&counter, CounterMsg::Add(2))?;
    let n = drove
        .node()
        .call(&counter, CounterMsg::Get, Duration::from_secs(5))
        .await?;
    println!("counter = {n}");
    drove.shutdown(Shutdown::Leave).await;
    Ok(())
}
