//! Local cast throughput: drove's API against raw ractor, same process.

use std::time::{Duration, Instant};

use drove_runtime::{ActorError, Context, Node, NodeConfig, Reply};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use crate::stats::{fmt_rate, median};

pub(crate) enum RawLocal {
    Inc,
    Get(RpcReplyPort<u64>),
}

impl ractor::Message for RawLocal {}

pub(crate) struct RawCounter;

impl Actor for RawCounter {
    type Msg = RawLocal;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<RawLocal>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<RawLocal>,
        msg: RawLocal,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RawLocal::Inc => *n += 1,
            RawLocal::Get(port) => {
                let _ = port.send(*n);
            }
        }
        Ok(())
    }
}

/// The same counter in drove's API, with the same two messages.
#[derive(Serialize, Deserialize)]
enum CountMsg {
    Inc,
    Get(Reply<u64>),
}

impl drove_runtime::Message for CountMsg {
    const TAG: &'static str = "bench.count.v1";
}

struct DroveCounter;

impl drove_runtime::Actor for DroveCounter {
    type Msg = CountMsg;
    type State = u64;
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<u64, ActorError> {
        Ok(0)
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: CountMsg,
        n: &mut u64,
    ) -> Result<(), ActorError> {
        match msg {
            CountMsg::Inc => *n += 1,
            CountMsg::Get(reply) => ctx.reply(reply, *n)?,
        }
        Ok(())
    }
}

async fn raw_round(casts: u64) -> anyhow::Result<f64> {
    let (actor, handle) = Actor::spawn(None, RawCounter, ()).await?;
    let start = Instant::now();
    for _ in 0..casts {
        actor.cast(RawLocal::Inc)?;
    }
    let n = ractor::call_t!(actor, RawLocal::Get, 60_000)?;
    let elapsed = start.elapsed();
    anyhow::ensure!(n == casts, "raw counter saw {n} of {casts}");
    actor.stop(None);
    handle.await?;
    Ok(casts as f64 / elapsed.as_secs_f64())
}

async fn drove_round(node: &Node, casts: u64) -> anyhow::Result<f64> {
    let counter = node.spawn(DroveCounter, ()).await?;
    let start = Instant::now();
    for _ in 0..casts {
        node.cast(&counter, CountMsg::Inc)?;
    }
    let n = node
        .call(&counter, CountMsg::Get, Duration::from_secs(60))
        .await?;
    let elapsed = start.elapsed();
    anyhow::ensure!(n == casts, "drove counter saw {n} of {casts}");
    Ok(casts as f64 / elapsed.as_secs_f64())
}

/// Runs `rounds` alternating rounds and returns (raw, drove) medians.
pub(crate) async fn run(casts: u64, rounds: usize) -> anyhow::Result<(f64, f64)> {
    let ip = drove_tests::fresh_loopback_ip();
    let mut config = NodeConfig::new("bench-local");
    config.listen = format!("{ip}:{}", drove_tests::free_port(&ip)).parse()?;
    let node = config.start().await?;
    let (mut raw, mut drove) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        raw.push(raw_round(casts).await?);
        drove.push(drove_round(&node, casts).await?);
    }
    node.leave().await;
    let (r, d) = (median(&raw), median(&drove));
    eprintln!(
        "local casts: raw ractor {} drove {}",
        fmt_rate(r),
        fmt_rate(d)
    );
    Ok((r, d))
}
