//! Typed children on one node: start and call, checkpoint and restart from
//! it, bad arguments refused with a clear error, duplicate type names
//! refused at start, checkpoints over the size limit refused, a child
//! whose name is held never running its `init`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use drove_registry::Registry;
use drove_runtime::testing::one_node;
use drove_runtime::{Actor, ActorError, Context, Message, Reply};
use drove_supervisor::{
    checkpoint, Child, ChildSpec, Restart, Started, SupervisorBuilder, SupervisorError,
    MAX_CHECKPOINT_BYTES,
};

#[derive(Debug, Serialize, Deserialize)]
enum KeeperMsg {
    Add(u64),
    Get(Reply<(u64, u32)>),
    Crash,
}

impl Message for KeeperMsg {
    const TAG: &'static str = "tests.keeper.v1";
}

/// Keeps a number, checkpointed on every change.
#[derive(Clone)]
struct Keeper;

impl Actor for Keeper {
    type Msg = KeeperMsg;
    type State = (u64, u32);
    type Args = (u64, u32);

    async fn init(&self, _: &Context<Self>, args: (u64, u32)) -> Result<(u64, u32), ActorError> {
        Ok(args)
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: KeeperMsg,
        (n, restarts): &mut (u64, u32),
    ) -> Result<(), ActorError> {
        match msg {
            KeeperMsg::Add(k) => {
                *n += k;
                checkpoint(ctx, n)?;
            }
            KeeperMsg::Get(reply) => ctx.reply(reply, (*n, *restarts))?,
            KeeperMsg::Crash => return Err("crash, as asked".into()),
        }
        Ok(())
    }
}

impl Child for Keeper {
    const TYPE: &'static str = "keeper";
    type Start = u64;
    type Checkpoint = u64;

    fn init_args(&self, start: Started<Self>) -> (u64, u32) {
        (start.checkpoint.unwrap_or(start.args), start.restarts)
    }
}

/// Another type that claims the keeper's name.
#[derive(Clone)]
struct Impostor;

impl Actor for Impostor {
    type Msg = KeeperMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, (): ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(&self, _: &Context<Self>, _: KeeperMsg, (): &mut ()) -> Result<(), ActorError> {
        Ok(())
    }
}

impl Child for Impostor {
    const TYPE: &'static str = "keeper";
    type Start = ();
    type Checkpoint = ();

    fn init_args(&self, _: Started<Self>) {}
}

#[derive(Debug, Serialize, Deserialize)]
enum DiaryMsg {
    /// Checkpoint a text of this many bytes; answers what the checkpoint said.
    Write(usize, Reply<Result<(), String>>),
}

impl Message for DiaryMsg {
    const TAG: &'static str = "tests.diary.v1";
}

/// Checkpoints texts of the size asked for.
#[derive(Clone)]
struct Diary;

impl Actor for Diary {
    type Msg = DiaryMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, (): ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: DiaryMsg,
        (): &mut (),
    ) -> Result<(), ActorError> {
        let DiaryMsg::Write(len, reply) = msg;
        let saved = checkpoint(ctx, &"x".repeat(len)).map_err(|e| e.to_string());
        ctx.reply(reply, saved)?;
        Ok(())
    }
}

impl Child for Diary {
    const TYPE: &'static str = "diary";
    type Start = ();
    type Checkpoint = String;

    fn init_args(&self, _: Started<Self>) {}
}

/// How many times a [`Witness`] ran its `init`.
static WITNESS_INITS: AtomicUsize = AtomicUsize::new(0);

/// Counts its `init` runs (an effect that cannot be taken back, such as a
/// write to the cache); fails its `init` when told to.
#[derive(Clone)]
struct Witness;

impl Actor for Witness {
    type Msg = KeeperMsg;
    type State = ();
    type Args = bool;

    async fn init(&self, _: &Context<Self>, fail: bool) -> Result<(), ActorError> {
        WITNESS_INITS.fetch_add(1, Ordering::SeqCst);
        if fail {
            return Err("told to fail".into());
        }
        Ok(())
    }

    async fn handle(&self, _: &Context<Self>, _: KeeperMsg, (): &mut ()) -> Result<(), ActorError> {
        Ok(())
    }
}

impl Child for Witness {
    const TYPE: &'static str = "witness";
    type Start = bool;
    type Checkpoint = ();

    fn init_args(&self, started: Started<Self>) -> bool {
        started.args
    }
}

/// The global name is taken before `init`: a second child under a held
/// name is refused without running its `init`, and a child whose `init`
/// fails lets the name go.
#[tokio::test(flavor = "multi_thread")]
async fn a_child_whose_name_is_held_never_runs_its_init() {
    let config = one_node("witnesses");
    let node = config.start().await.expect("node");
    let registry = Registry::start(&node).await.expect("registry");
    let sup = SupervisorBuilder::new(&node, &registry)
        .child(Witness)
        .start()
        .await
        .expect("supervisor");
    let first = sup
        .start_child(ChildSpec::of::<Witness>(false).id("w1").name("the-witness"))
        .await
        .expect("start");
    assert_eq!(WITNESS_INITS.load(Ordering::SeqCst), 1);
    let second = sup
        .start_child(ChildSpec::of::<Witness>(false).id("w2").name("the-witness"))
        .await;
    match second {
        Err(SupervisorError::NameHeld { owner, .. }) => assert_eq!(&owner, first.addr()),
        other => panic!("a second holder of the name started: {other:?}"),
    }
    assert_eq!(
        WITNESS_INITS.load(Ordering::SeqCst),
        1,
        "the refused child ran its init"
    );
    assert_eq!(sup.local_children().len(), 1);

    let failing = sup
        .start_child(
            ChildSpec::of::<Witness>(true)
                .id("w3")
                .name("another-witness"),
        )
        .await;
    assert!(
        matches!(failing, Err(SupervisorError::Start(_))),
        "{failing:?}"
    );
    assert_eq!(
        registry.lookup("another-witness"),
        None,
        "a failed init kept its name"
    );
    sup.start_child(
        ChildSpec::of::<Witness>(false)
            .id("w4")
            .name("another-witness"),
    )
    .await
    .expect("the name is free again");
    node.leave().await;
}

/// A checkpoint over the limit is refused with a clear error and counted;
/// the one before it stays.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_checkpoint_is_refused_and_the_last_one_kept() {
    let config = one_node("diarist");
    let node = config.start().await.expect("node");
    let registry = Registry::start(&node).await.expect("registry");
    let sup = SupervisorBuilder::new(&node, &registry)
        .child(Diary)
        .start()
        .await
        .expect("supervisor");
    let diary = sup
        .start_child(ChildSpec::of::<Diary>(()).id("d1"))
        .await
        .expect("start");
    let t = Duration::from_secs(5);
    let small = node.call(&diary, |r| DiaryMsg::Write(100, r), t).await;
    assert_eq!(small.expect("call"), Ok(()));
    let big = node
        .call(&diary, |r| DiaryMsg::Write(MAX_CHECKPOINT_BYTES + 1, r), t)
        .await
        .expect("call");
    let why = big.expect_err("an oversized checkpoint was taken");
    assert!(why.contains("over the"), "{why}");
    let kept = sup
        .local_children()
        .into_iter()
        .find(|c| c.id == "d1")
        .and_then(|c| c.checkpoint)
        .expect("a checkpoint");
    assert_eq!(kept.as_str().map(str::len), Some(100));
    assert!(node
        .metrics_text()
        .contains("drove_supervisor_checkpoints_refused_total{node=\"diarist\"} 1"));
    node.leave().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_children_on_one_node() {
    let config = one_node("solo");
    let node = config.start().await.expect("node");
    let registry = Registry::start(&node).await.expect("registry");

    let duplicate = SupervisorBuilder::new(&node, &registry)
        .child(Keeper)
        .child(Impostor)
        .start()
        .await;
    assert!(
        matches!(duplicate, Err(SupervisorError::DuplicateType("keeper"))),
        "{duplicate:?}"
    );

    let sup = SupervisorBuilder::new(&node, &registry)
        .child(Keeper)
        .start()
        .await
        .expect("supervisor");
    let keeper = sup
        .start_child(ChildSpec::of::<Keeper>(10).transient().id("k1"))
        .await
        .expect("start");
    let t = Duration::from_secs(5);
    node.cast(&keeper, KeeperMsg::Add(5)).expect("cast");
    assert_eq!(
        node.call(&keeper, KeeperMsg::Get, t).await.expect("get"),
        (15, 0)
    );

    // A crash restarts it in place from its last checkpoint, same id.
    node.cast(&keeper, KeeperMsg::Crash).expect("cast");
    let deadline = Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        let local = sup.local_children();
        if let Some(c) = local.iter().find(|c| c.id == "k1" && c.restarts == 1) {
            break c.clone();
        }
        assert!(Instant::now() < deadline, "never restarted: {local:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(restarted.checkpoint, Some(serde_json::json!(15)));
    let again = sup.start_child(ChildSpec::of::<Keeper>(0).id("k1")).await;
    assert!(
        matches!(again, Err(SupervisorError::AlreadyRunning { .. })),
        "{again:?}"
    );

    // Untyped starts (as the admin API makes them) are decoded by the type:
    // arguments of the wrong shape are refused, and nothing is left behind.
    let bad = ChildSpec::new("keeper", "\"ten\"".to_string(), Restart::Transient);
    match sup.start_spec(bad).await {
        Err(SupervisorError::Start(why)) => {
            assert!(why.contains("bad start arguments"), "{why}")
        }
        other => panic!("bad arguments started: {other:?}"),
    }
    assert_eq!(sup.local_children().len(), 1);

    // A singleton needs a name; with one, a second start hands back the first.
    let one = sup
        .singleton(ChildSpec::of::<Keeper>(1).name("the-keeper"))
        .await
        .expect("singleton");
    let two = sup
        .singleton(ChildSpec::of::<Keeper>(2).name("the-keeper"))
        .await
        .expect("singleton again");
    assert_eq!(one.addr(), two.addr());
    assert!(matches!(
        sup.singleton(ChildSpec::of::<Keeper>(3)).await,
        Err(SupervisorError::NoName)
    ));
    node.leave().await;
}
