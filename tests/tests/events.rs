//! Durable events with real node processes, on a real Redis (a private
//! `redis-server` per test) and a real SQLite file the nodes share: a node
//! without a listener, a delayed event through its signaller's kill -9, a
//! restart of the whole cluster, a handler node killed mid-handler, a
//! flaky handler retried alone, the dead letter, direct mode, and bad
//! input.

// Helpers outside #[test] functions fail the test as loudly as an assert.
#![allow(clippy::expect_used)]

use std::time::Duration;

use drove_tests::redis::RedisServer;
use drove_tests::stores::{config_file, get, post, sqlite_file, store_nodes};
use drove_tests::{metric, start_all_and_wait, wait_for, NodeProc};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);

/// Signals through `n`; returns the id.
async fn signal(n: &NodeProc, body: Value) -> u64 {
    let (status, answer) = post(n, "/api/events", body.clone()).await;
    assert_eq!(status, 201, "signal {body}: {answer}");
    answer["id"].as_u64().expect("an id")
}

async fn event(n: &NodeProc, id: u64) -> Option<Value> {
    get(n, &format!("/api/events/{id}"))
        .await
        .filter(|(status, _)| *status == 200)
        .map(|(_, v)| v)
}

/// What `drove.record` recorded on `n` for event `id`.
async fn recorded(n: &NodeProc, id: u64) -> Vec<Value> {
    let Some((200, Value::Array(entries))) = get(n, "/api/events/handled?scope=local").await else {
        return Vec::new();
    };
    entries.into_iter().filter(|e| e["id"] == id).collect()
}

/// Waits until some node of `nodes` recorded `id`: (its index, the entry).
async fn wait_recorded(nodes: &[NodeProc], id: u64) -> (usize, Value) {
    wait_for(LONG, &format!("event {id} to be recorded"), || async {
        for (i, n) in nodes.iter().enumerate() {
            if let Some(entry) = recorded(n, id).await.into_iter().next() {
                return Some((i, entry));
            }
        }
        None
    })
    .await
}

/// The delivery of handler `name` in an event's JSON.
fn delivery<'a>(event: &'a Value, name: &str) -> &'a Value {
    event["handlers"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["handler"] == name))
        .unwrap_or(&Value::Null)
}

async fn wait_delivery(n: &NodeProc, id: u64, name: &str, state: &str) -> Value {
    wait_for(
        LONG,
        &format!("{name}'s delivery of {id} to be {state}"),
        || async {
            let e = event(n, id).await?;
            (delivery(&e, name)["state"] == state).then_some(e)
        },
    )
    .await
}

#[tokio::test]
async fn a_signal_on_a_node_without_a_listener_is_handled_elsewhere() {
    let _shared = drove_tests::shared_machine().await;
    let (store, _file) = sqlite_file();
    let mut cluster = store_nodes(2, &store, &[]);
    cluster[0].extra.push("--no-event-listener".into());
    start_all_and_wait(&mut cluster, LONG).await;
    for i in 0..5 {
        let id = signal(&cluster[0], json!({"type": "test.a", "payload": {"i": i}})).await;
        let (at, entry) = wait_recorded(&cluster, id).await;
        assert_eq!(at, 1, "handled on the node without a listener: {entry}");
        assert_eq!(entry["payload"]["i"], i);
        let e = wait_delivery(&cluster[0], id, "drove.record", "completed").await;
        let node = delivery(&e, "drove.record")["node"].as_str().unwrap_or("");
        assert!(node.starts_with("n2#"), "{e}");
        assert!(
            e["signalled_by"].as_str().unwrap_or("").starts_with("n1#"),
            "{e}"
        );
    }
    // Direct events are handled on the signalling node: this one has none.
    let (status, answer) = post(
        &cluster[0],
        "/api/events",
        json!({"type": "test.a", "direct": true}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
}

#[tokio::test]
async fn a_delayed_event_fires_on_time_after_its_signaller_is_killed() {
    let _alone = drove_tests::timing_sensitive().await;
    let redis = RedisServer::start();
    let mut cluster = store_nodes(2, &redis.url(), &[]);
    cluster[0].extra.push("--no-event-listener".into());
    start_all_and_wait(&mut cluster, LONG).await;
    let id = signal(
        &cluster[0],
        json!({"type": "test.later", "payload": {"n": 1}, "delay_ms": 2000}),
    )
    .await;
    cluster[0].kill9();
    let e = event(&cluster[1], id).await.expect("stored");
    assert_eq!(e["state"], "scheduled", "{e}");
    let (_, entry) = wait_recorded(&cluster[1..], id).await;
    let due = e["due_ms"].as_u64().expect("due");
    let handled = entry["handled_at_ms"].as_u64().expect("handled");
    assert!(handled >= due, "handled {} ms early", due - handled);
    assert!(handled - due < 1000, "handled {} ms late", handled - due);
}

#[tokio::test]
async fn events_survive_a_restart_of_the_whole_cluster() {
    let _shared = drove_tests::shared_machine().await;
    let (store, _file) = sqlite_file();
    let mut cluster = store_nodes(2, &store, &[]);
    start_all_and_wait(&mut cluster, LONG).await;
    let id = signal(
        &cluster[1],
        json!({"type": "test.restart", "delay_ms": 4000}),
    )
    .await;
    for n in cluster.iter_mut() {
        n.kill9();
    }
    start_all_and_wait(&mut cluster, LONG).await;
    let (_, entry) = wait_recorded(&cluster, id).await;
    let e = event(&cluster[0], id).await.expect("stored");
    assert!(
        entry["handled_at_ms"].as_u64() >= e["due_ms"].as_u64(),
        "{entry} {e}"
    );
}

#[tokio::test]
async fn a_handler_killed_mid_handler_is_handled_again_elsewhere() {
    let _alone = drove_tests::timing_sensitive().await;
    let redis = RedisServer::start();
    let mut cluster = store_nodes(3, &redis.url(), &[]);
    start_all_and_wait(&mut cluster, LONG).await;
    let id = signal(
        &cluster[0],
        json!({"type": "test.slow", "payload": {"sleep_ms": 4000}}),
    )
    .await;
    let e = wait_delivery(&cluster[0], id, "drove.record", "executing").await;
    let holder = delivery(&e, "drove.record")["node"]
        .as_str()
        .expect("a node")
        .to_string();
    let victim = cluster
        .iter()
        .position(|n| holder.starts_with(&format!("{}#", n.name)))
        .expect("the holder is one of ours");
    cluster[victim].kill9();
    let survivor = (victim + 1) % 3;
    let e = wait_delivery(&cluster[survivor], id, "drove.record", "completed").await;
    let d = delivery(&e, "drove.record");
    assert_eq!(d["attempts"], 2, "{e}");
    let rescue = d["errors"][0]["error"].as_str().unwrap_or("");
    assert!(rescue.contains("went down"), "{e}");
    let (at, entry) = wait_recorded(&cluster, id).await;
    assert_ne!(at, victim);
    assert_eq!(entry["attempt"], 2, "{entry}");
}

#[tokio::test]
async fn a_flaky_handler_is_retried_alone_then_dead_lettered() {
    let _shared = drove_tests::shared_machine().await;
    let (store, _file) = sqlite_file();
    let (config, _config) =
        config_file("[jobs.backoff]\nmin_ms = 100\nmax_ms = 200\n\n[events]\nmax_retries = 3\n");
    let mut cluster = store_nodes(2, &store, &["--config", &config]);
    start_all_and_wait(&mut cluster, LONG).await;

    // Two planned failures: the third attempt succeeds; the other handler
    // of the type ran once.
    let id = signal(
        &cluster[0],
        json!({"type": "drove.flaky", "payload": {"times": 2}}),
    )
    .await;
    let e = wait_delivery(&cluster[0], id, "drove.flaky", "completed").await;
    let flaky = delivery(&e, "drove.flaky");
    assert_eq!(flaky["attempts"], 3, "{e}");
    assert_eq!(flaky["errors"].as_array().map(Vec::len), Some(2), "{e}");
    let e = wait_delivery(&cluster[0], id, "drove.record", "completed").await;
    assert_eq!(delivery(&e, "drove.record")["attempts"], 1, "{e}");
    let mut records = 0;
    for n in &cluster {
        records += recorded(n, id).await.len();
    }
    assert_eq!(records, 1, "drove.record ran once");

    // More failures than retries: the dead letter keeps every error.
    let id = signal(
        &cluster[1],
        json!({"type": "drove.flaky", "payload": {"times": 50}}),
    )
    .await;
    let e = wait_delivery(&cluster[1], id, "drove.flaky", "dead").await;
    let flaky = delivery(&e, "drove.flaky");
    assert_eq!(flaky["attempts"], 4, "{e}");
    assert_eq!(flaky["errors"].as_array().map(Vec::len), Some(4), "{e}");
    assert_eq!(e["state"], "dispatched", "{e}");
    wait_for(LONG, "the dead letter to be counted", || async {
        let mut dead = 0;
        for n in &cluster {
            dead += metric(&n.http_addr(), "drove_events_dead_total", &[]).await?;
        }
        (dead >= 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn direct_mode_and_bad_input() {
    let _shared = drove_tests::shared_machine().await;
    let (store, _file) = sqlite_file();
    let mut cluster = store_nodes(2, &store, &["--record-events", "test.known"]);
    start_all_and_wait(&mut cluster, LONG).await;
    let n1 = &cluster[0];

    // Direct: handled here at once, never stored.
    let id = signal(n1, json!({"type": "test.known", "direct": true})).await;
    wait_for(LONG, "the direct event", || async {
        (!recorded(n1, id).await.is_empty()).then_some(())
    })
    .await;
    let (status, _) = get(n1, &format!("/api/events/{id}")).await.expect("answer");
    assert_eq!(status, 404);

    // Refused at signal time, with a reason.
    let big = "x".repeat(300 * 1024);
    for (body, want) in [
        (json!({"type": "test.known", "payload": {"pad": big}}), 413),
        (json!({"type": "bad type", "payload": {}}), 400),
        (json!({"type": "", "payload": {}}), 400),
        (
            json!({"type": "test.known", "delay_ms": 5, "at_ms": 5}),
            400,
        ),
        (json!({"type": "test.known", "surprise": 1}), 400),
        (json!({"payload": {}}), 400),
    ] {
        let (status, answer) = post(n1, "/api/events", body).await;
        assert_eq!(status, want, "{answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    let (status, _) = get(n1, "/api/events/abc").await.expect("answer");
    assert_eq!(status, 400);
    let (status, _) = get(n1, "/api/events/handled?scope=cluster")
        .await
        .expect("answer");
    assert_eq!(status, 400);

    // A payload the typed handler cannot decode: dead-lettered with why.
    let id = signal(
        n1,
        json!({"type": "drove.flaky", "payload": {"times": "x"}}),
    )
    .await;
    let e = wait_delivery(n1, id, "drove.flaky", "dead").await;
    let why = delivery(&e, "drove.flaky")["errors"][0]["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(why.contains("drove.flaky wants"), "{e}");

    // A type no node handles waits, visibly, until a node that handles it
    // joins.
    let id = signal(n1, json!({"type": "test.unknown", "payload": {"k": 1}})).await;
    wait_for(LONG, "the event to wait for a handler", || async {
        let e = event(n1, id).await?;
        (e["state"] == "waiting-for-handler").then_some(())
    })
    .await;
    let mut late = NodeProc::new("n3", vec![n1.listen.to_string()], &n1.cookie);
    late.extra = ["--jobs", &store, "--record-events", "test.unknown"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    late.start();
    cluster.push(late);
    wait_for(LONG, "n3 to join", || async {
        let c = cluster[0].cluster().await?;
        (c.members.iter().filter(|m| m.status == "up").count() == 3).then_some(())
    })
    .await;
    let (at, entry) = wait_recorded(&cluster, id).await;
    assert_eq!(at, 2, "{entry}");
    assert_eq!(entry["payload"]["k"], 1);
    assert_eq!(
        event(&cluster[0], id).await.expect("stored")["state"],
        "dispatched"
    );
}
