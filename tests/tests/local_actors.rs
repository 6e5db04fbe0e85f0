//! The actor API on one node: spawn, cast, call, local names, stop, errors.

use std::time::Duration;

use drove_runtime::{
    Actor, ActorError, CallError, Context, DeliveryError, ExitReason, Handle, LocalRef, Message,
    NodeConfig, Reply, SendError, SpawnError,
};
use drove_tests::{free_port, fresh_loopback_ip};
use serde::{Deserialize, Serialize};

const T: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get(Reply<u64>),
    /// Forwards a Get to another counter, answering with its value: replies
    /// can be handed on.
    Ask(Handle<CounterMsg>, Reply<u64>),
    Fail,
    Stop,
}

impl Message for CounterMsg {
    const TAG: &'static str = "test.counter.v1";
}

struct Counter;

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Args = u64;

    async fn init(&self, _ctx: &Context<Self>, start: u64) -> Result<u64, ActorError> {
        if start == u64::MAX {
            return Err("refusing to start at MAX".into());
        }
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
            CounterMsg::Get(r) => ctx.reply(r, *n)?,
            CounterMsg::Ask(other, r) => ctx.cast(&other, CounterMsg::Get(r))?,
            CounterMsg::Fail => return Err("asked to fail".into()),
            CounterMsg::Stop => ctx.stop(),
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_actor_api() {
    let ip = fresh_loopback_ip();
    let mut config = NodeConfig::new("solo");
    config.listen = format!("{ip}:{}", free_port(&ip)).parse().expect("addr");
    let node = config.start().await.expect("node starts");

    let (stops_tx, mut stops) = tokio::sync::mpsc::unbounded_channel();
    node.on_actor_stopped(Box::new(move |id, reason| {
        let _ = stops_tx.send((id, reason.clone()));
    }));
    let a = node.spawn(Counter, 10).await.expect("spawn");
    node.cast(&a, CounterMsg::Add(5)).expect("cast");
    assert_eq!(node.call(&a, CounterMsg::Get, T).await.expect("call"), 15);

    // Named actors, and a handle rebuilt from the name alone.
    let b = node
        .spawn_named("counter.b", Counter, 1)
        .await
        .expect("spawn named");
    let by_name: Handle<CounterMsg> = Handle::named(node.id(), "counter.b");
    node.cast(&by_name, CounterMsg::Add(1))
        .expect("cast by name");
    assert_eq!(node.call(&b, CounterMsg::Get, T).await.expect("call"), 2);
    assert!(matches!(
        node.spawn_named("counter.b", Counter, 0).await,
        Err(SpawnError::NameTaken(_))
    ));

    // A reply token handed on to another actor.
    let got = node
        .call(&a, |r| CounterMsg::Ask(b.clone(), r), T)
        .await
        .expect("ask");
    assert_eq!(got, 2);

    // init failing fails the spawn and leaves no trace.
    assert!(matches!(
        node.spawn(Counter, u64::MAX).await,
        Err(SpawnError::Start(_))
    ));

    // An actor that stops (by request or by error) is gone: casts fail,
    // and its name is free again.
    node.cast(&b, CounterMsg::Stop).expect("cast stop");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        node.cast(&by_name, CounterMsg::Add(1)),
        Err(SendError::Delivery(DeliveryError::NoSuchActor(_)))
    ));
    node.spawn_named("counter.b", Counter, 0)
        .await
        .expect("name is free again");
    node.cast(&a, CounterMsg::Fail).expect("cast fail");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(node.cast(&a, CounterMsg::Add(1)).is_err());
    // Stop hooks hear about both, with the reason.
    let mut seen = Vec::new();
    while let Ok(s) = stops.try_recv() {
        seen.push(s);
    }
    assert!(
        seen.contains(&(
            match b.addr().local {
                LocalRef::Id(id) => id,
                LocalRef::Name(_) => 0,
            },
            ExitReason::Normal
        )),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(_, r)| *r == ExitReason::Failed("asked to fail".to_string())),
        "{seen:?}"
    );

    // A call nobody answers ends at its timeout.
    let c = node.spawn(Counter, 0).await.expect("spawn");
    let err = node
        .call(
            &c,
            |r: Reply<u64>| {
                drop(r);
                CounterMsg::Add(0)
            },
            Duration::from_millis(100),
        )
        .await
        .expect_err("no reply");
    assert!(matches!(err, CallError::Timeout(_)));
    node.leave().await;
}
