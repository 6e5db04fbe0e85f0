//! The registry API from an in-process node joined to one real node.

use std::time::Duration;

use drove_registry::{Registry, RegistryError, RegistryEvent, Spawned};
use drove_runtime::{Actor, ActorError, Context, Message, NodeConfig, NodeId, Reply};
use drove_tests::{
    free_port, fresh_loopback_ip, register_names, registry_at, wait_for, TestCluster,
};
use serde::{Deserialize, Serialize};

const T: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get(Reply<u64>),
    Stop,
}

impl Message for CounterMsg {
    const TAG: &'static str = "test.registry.counter.v1";
}

struct Counter;

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Args = u64;

    async fn init(&self, _: &Context<Self>, start: u64) -> Result<u64, ActorError> {
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
            CounterMsg::Stop => ctx.stop(),
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Meta {
    region: String,
    weight: u32,
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_api_against_a_real_peer() {
    let c = TestCluster::started(1).await;
    let ip = fresh_loopback_ip();
    let mut config = NodeConfig::new("tester");
    config.listen = format!("{ip}:{}", free_port(&ip)).parse().expect("addr");
    config.seeds = vec![c.nodes[0].listen.to_string()];
    config.cookie = c.cookie.clone();
    let node = config.start().await.expect("node");
    let registry = Registry::start(&node).await.expect("registry");
    let peer: NodeId = wait_for(Duration::from_secs(30), "n1 up", || async {
        let n1 = node
            .members()
            .into_iter()
            .find(|m| m.info.id.name == "n1")?
            .info
            .id;
        drove_runtime::echo::ping(&node, &n1, T)
            .await
            .ok()
            .map(|_| n1)
    })
    .await;
    let mut events = registry.subscribe();

    // Read your own writes, and the event.
    let counter = node.spawn(Counter, 1).await.expect("spawn");
    registry
        .register("counter.main", &counter)
        .expect("register");
    assert_eq!(
        registry.lookup("counter.main"),
        Some(counter.addr().clone())
    );
    let event = tokio::time::timeout(T, events.recv())
        .await
        .expect("event")
        .expect("event");
    assert_eq!(
        event,
        RegistryEvent::Registered {
            name: "counter.main".into(),
            addr: counter.addr().clone()
        }
    );
    // Many names, one actor.
    registry.register("counter.alias", &counter).expect("alias");

    // Visible on the peer.
    let http = c.nodes[0].http_addr();
    wait_for(T, "the peer to see the names", || async {
        let t = registry_at(&http).await?;
        (t.get("counter.main").map(|v| v.0.as_str()) == Some("tester")).then_some(())
    })
    .await;

    // Taken, naming the holder; registering a remote actor is refused.
    let other = node.spawn(Counter, 0).await.expect("spawn");
    match registry.register("counter.main", &other) {
        Err(RegistryError::Taken { owner, .. }) => assert_eq!(&owner, counter.addr()),
        other => panic!("expected Taken, got {other:?}"),
    }
    let remote_echo =
        drove_runtime::Handle::<drove_runtime::echo::EchoMsg>::named(peer.clone(), "drove.echo");
    assert!(matches!(
        registry.register("x", &remote_echo),
        Err(RegistryError::NotLocal(_))
    ));
    assert!(matches!(
        registry.register("", &other),
        Err(RegistryError::InvalidName)
    ));

    // Cast and call by name.
    registry
        .cast("counter.main", CounterMsg::Add(41))
        .expect("cast");
    let n: u64 = registry
        .call("counter.alias", CounterMsg::Get, T)
        .await
        .expect("call");
    assert_eq!(n, 42);
    assert!(matches!(
        registry.cast("nobody", CounterMsg::Add(1)),
        Err(RegistryError::NotRegistered(_))
    ));

    // Metadata round trip, visible on the peer's HTTP too.
    let meta = Meta {
        region: "eu".into(),
        weight: 3,
    };
    registry.put_meta("counter.main", &meta).expect("put_meta");
    assert_eq!(
        registry.meta::<Meta>("counter.main").expect("meta"),
        Some(meta)
    );
    assert_eq!(registry.meta::<Meta>("counter.alias").expect("meta"), None);

    // select, count, and names held by the peer.
    register_names(&http, &["peer.one".into(), "peer.two".into()]).await;
    wait_for(T, "peer names to arrive", || async {
        (registry.count() == 4).then_some(())
    })
    .await;
    let counters: Vec<String> = registry
        .select_prefix("counter.")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(counters, vec!["counter.alias", "counter.main"]);
    let on_peer = registry.select(|_, addr| addr.node == peer);
    assert_eq!(on_peer.len(), 2);
    assert!(matches!(
        registry.unregister("peer.one"),
        Err(RegistryError::NotOwner { .. })
    ));
    assert!(matches!(
        registry.put_meta("peer.one", &1),
        Err(RegistryError::NotOwner { .. })
    ));

    // spawn_global: the second call hands back the first.
    let first = registry
        .spawn_global("singleton", Counter, 7)
        .await
        .expect("spawn_global");
    assert!(matches!(first, Spawned::New(_)));
    let second = registry
        .spawn_global("singleton", Counter, 0)
        .await
        .expect("spawn_global");
    match second {
        Spawned::Existing(h) => assert_eq!(h.addr(), first.handle().addr()),
        Spawned::New(_) => panic!("spawned a second singleton"),
    }

    // An actor that stops loses every name, here and on the peer.
    node.cast(&counter, CounterMsg::Stop).expect("stop");
    wait_for(T, "names of a stopped actor to go", || async {
        (registry.lookup("counter.main").is_none() && registry.lookup("counter.alias").is_none())
            .then_some(())
    })
    .await;
    wait_for(T, "the peer to drop them too", || async {
        let t = registry_at(&http).await?;
        (!t.contains_key("counter.main") && !t.contains_key("counter.alias")).then_some(())
    })
    .await;
    // Unregister works and the name is free again.
    registry.unregister("singleton").expect("unregister");
    assert!(registry.lookup("singleton").is_none());
    registry
        .register("singleton", &other)
        .expect("name is free again");
    node.leave().await;
}
