//! The pub/sub API on one node: who gets what from each kind of broadcast,
//! unsubscribing, and subscribers that go away.

use std::time::Duration;

use drove_pubsub::{Lagged, PubSub, PubSubError, MAX_STREAM_CAPACITY};
use drove_runtime::testing::one_node;
use drove_runtime::{Actor, ActorError, Context, Message};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Note(String);

impl Message for Note {
    const TAG: &'static str = "tests.pubsub.note";
}

/// Forwards what it hears to the test.
struct Listener(mpsc::UnboundedSender<String>);

impl Actor for Listener {
    type Msg = Note;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(&self, _: &Context<Self>, msg: Note, _: &mut ()) -> Result<(), ActorError> {
        let _ = self.0.send(msg.0);
        Ok(())
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> Option<String> {
    tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_of_broadcast_reaches_whom_it_says() {
    let config = one_node("solo");
    let node = config.start().await.expect("node");
    let pubsub = PubSub::start(&node).await.expect("pubsub");

    let mut a = pubsub.subscribe_stream::<Note>("t").expect("subscribe");
    let mut b = pubsub.subscribe_stream::<Note>("t").expect("subscribe");
    let (tx, mut heard) = mpsc::unbounded_channel();
    let actor = node.spawn(Listener(tx), ()).await.expect("spawn");
    pubsub.subscribe("t", &actor).expect("subscribe actor");
    assert_eq!(pubsub.local_subscribers("t"), 3);
    assert_eq!(pubsub.subscriber_nodes("t"), vec![node.id()]);

    let p = pubsub
        .broadcast("t", &Note("all".into()))
        .expect("broadcast");
    assert_eq!((p.local, p.nodes, p.failed), (3, 0, 0));
    assert_eq!(a.recv().await, Some(Ok(Note("all".into()))));
    assert_eq!(b.recv().await, Some(Ok(Note("all".into()))));
    assert_eq!(next(&mut heard).await.as_deref(), Some("all"));

    // broadcast_from leaves the sender's own subscription out.
    let p = pubsub
        .broadcast_from(a.key(), "t", &Note("not a".into()))
        .expect("broadcast_from");
    assert_eq!(p.local, 2);
    assert_eq!(b.recv().await, Some(Ok(Note("not a".into()))));
    assert_eq!(next(&mut heard).await.as_deref(), Some("not a"));
    let direct = pubsub
        .direct_broadcast(&node.id(), "t", &Note("here".into()))
        .expect("direct");
    assert_eq!(direct.local, 3);
    assert_eq!(
        a.recv().await,
        Some(Ok(Note("here".into()))),
        "a skipped 'not a'"
    );

    // Other topics and other types do not leak in.
    pubsub
        .local_broadcast("u", &Note("elsewhere".into()))
        .expect("local");
    assert_eq!(next(&mut heard).await.as_deref(), Some("here"));
    assert_eq!(next(&mut heard).await, None);

    // Unsubscribing, dropping a stream, and stopping an actor all count.
    pubsub.unsubscribe("t", &actor);
    drop(b);
    assert_eq!(pubsub.local_subscribers("t"), 1);
    let again = node
        .spawn(Listener(mpsc::unbounded_channel().0), ())
        .await
        .expect("spawn");
    pubsub.subscribe("t", &again).expect("subscribe");
    assert_eq!(pubsub.local_subscribers("t"), 2);
    node.stop_local(&again);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pubsub.local_subscribers("t") != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped actor is still subscribed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(a);
    assert_eq!(pubsub.local_subscribers("t"), 0);
    assert!(pubsub.subscriber_nodes("t").is_empty());

    // Bad input.
    assert!(pubsub.broadcast("", &Note("x".into())).is_err());
    assert!(pubsub.subscribe_stream::<Note>(&"x".repeat(300)).is_err());
    node.leave().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_stream_subscriber_keeps_the_newest_and_hears_what_it_missed() {
    let config = one_node("solo");
    let node = config.start().await.expect("node");
    let pubsub = PubSub::start(&node).await.expect("pubsub");

    let mut slow = pubsub
        .subscribe_stream_with::<Note>("t", 4)
        .expect("subscribe");
    let mut roomy = pubsub.subscribe_stream::<Note>("t").expect("subscribe");
    for i in 0..10 {
        let p = pubsub
            .broadcast("t", &Note(i.to_string()))
            .expect("broadcast");
        assert_eq!(p.local, 2, "a full subscriber still counts as reached");
    }
    // The four newest are kept; the six oldest were dropped, and said so.
    assert_eq!(slow.recv().await, Some(Err(Lagged(6))));
    for i in 6..10 {
        assert_eq!(slow.recv().await, Some(Ok(Note(i.to_string()))));
    }
    for i in 0..10 {
        assert_eq!(roomy.recv().await, Some(Ok(Note(i.to_string()))));
    }
    let text = pubsub.metrics_text();
    assert!(
        text.contains("drove_pubsub_lagged_total{node=\"solo\"} 6"),
        "{text}"
    );

    // Bad capacities are refused with a clear error.
    for bad in [0, MAX_STREAM_CAPACITY + 1] {
        let err = pubsub
            .subscribe_stream_with::<Note>("t", bad)
            .expect_err("bad capacity");
        assert!(matches!(err, PubSubError::Capacity(n) if n == bad), "{err}");
    }
    node.leave().await;
}
