//! Cluster pub/sub across real node processes, observed through the
//! server-sent-events route and the per-peer counters.

use std::collections::BTreeMap;
use std::time::Duration;

use drove_tests::sse::SseClient;
use drove_tests::{metric, send_json, wait_for, TestCluster};
use serde_json::json;

const LONG: Duration = Duration::from_secs(40);

/// The nodes with subscribers to each topic, as `http` sees them.
async fn topics_at(http: &str) -> Option<BTreeMap<String, Vec<String>>> {
    let (status, body) = drove_admin::client::get(http, "/api/pubsub", Duration::from_secs(10))
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
    Some(
        rows.into_iter()
            .filter_map(|r| {
                let topic = r["topic"].as_str()?.to_string();
                let nodes = r["nodes"]
                    .as_array()?
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect();
                Some((topic, nodes))
            })
            .collect(),
    )
}

async fn wait_subscribers(http: &str, topic: &str, nodes: &[&str]) {
    let want: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    wait_for(
        LONG,
        &format!("{http} to see {topic} on {nodes:?}"),
        || async {
            let topics = topics_at(http).await?;
            let seen = topics.get(topic).cloned().unwrap_or_default();
            (seen == want).then_some(())
        },
    )
    .await;
}

async fn publish(http: &str, topic: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, answer) = send_json("POST", http, &format!("/api/pubsub/{topic}"), &body)
        .await
        .unwrap_or_else(|e| panic!("POST on {http}: {e}"));
    assert_eq!(status, 202, "publish answered {status}: {answer}");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer is not JSON: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn broadcast_reaches_every_subscriber_in_order_with_one_message_per_node() {
    let c = TestCluster::started(3).await;
    let http: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();
    // Two subscribers on n2, one on n3, none on n1.
    let mut subs = Vec::new();
    for h in [&http[1], &http[1], &http[2]] {
        subs.push(
            SseClient::connect(h, "/api/pubsub/progress/events")
                .await
                .expect("subscribe"),
        );
    }
    for h in &http {
        wait_subscribers(h, "progress", &["n2", "n3"]).await;
    }
    // n3 alone follows another topic.
    let mut other = SseClient::connect(&http[2], "/api/pubsub/other/events")
        .await
        .expect("subscribe");
    wait_subscribers(&http[0], "other", &["n3"]).await;

    const N: u64 = 200;
    let sent_to_n2 = metric(&http[0], "drove_pubsub_sent_total", &["peer=\"n2\""])
        .await
        .expect("metrics");
    for i in 0..N {
        // Two publishers, interleaved: n1 (no subscribers) and n2.
        let a = publish(&http[0], "progress", json!({"from": "n1", "seq": i})).await;
        assert_eq!(a["nodes"], 2, "{a}");
        assert_eq!(a["local"], 0, "{a}");
        let b = publish(&http[1], "progress", json!({"from": "n2", "seq": i})).await;
        assert_eq!(b["nodes"], 1, "{b}");
        assert_eq!(b["local"], 2, "{b}");
    }
    for i in 0..10 {
        publish(&http[0], "other", json!({"seq": i})).await;
    }
    for (k, sub) in subs.iter_mut().enumerate() {
        let mut next: BTreeMap<String, u64> = BTreeMap::new();
        for _ in 0..2 * N {
            let data = sub
                .next_data(Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("subscriber {k} stopped after {next:?}"));
            let v: serde_json::Value = serde_json::from_str(&data).expect("JSON event");
            let from = v["from"].as_str().expect("from").to_string();
            let seq = v["seq"].as_u64().expect("seq");
            let expected = next.entry(from.clone()).or_insert(0);
            assert_eq!(
                seq, *expected,
                "subscriber {k}: {from}'s messages out of order"
            );
            *expected += 1;
        }
        assert_eq!(next.values().copied().collect::<Vec<_>>(), vec![N, N]);
    }
    for i in 0..10 {
        let data = other
            .next_data(Duration::from_secs(20))
            .await
            .expect("event");
        let v: serde_json::Value = serde_json::from_str(&data).expect("JSON");
        assert_eq!(v["seq"], i);
    }
    // direct_broadcast reaches one node's subscribers, local_broadcast the
    // publisher's own.
    let a = publish(&http[0], "progress?node=n3", json!({"to": "n3"})).await;
    assert_eq!(
        (a["nodes"].as_u64(), a["local"].as_u64()),
        (Some(1), Some(0)),
        "{a}"
    );
    let got = subs[2]
        .next_data(Duration::from_secs(10))
        .await
        .expect("n3 hears it");
    assert!(got.contains("\"n3\""), "{got}");
    let a = publish(&http[1], "progress?local=true", json!({"to": "n2"})).await;
    assert_eq!(
        (a["nodes"].as_u64(), a["local"].as_u64()),
        (Some(0), Some(2)),
        "{a}"
    );
    for sub in &mut subs[..2] {
        let got = sub
            .next_data(Duration::from_secs(10))
            .await
            .expect("n2 hears it");
        assert!(got.contains("\"n2\""), "only n2's own message: {got}");
    }
    assert_eq!(subs[2].next_data(Duration::from_millis(500)).await, None);
    let (status, body) = send_json("POST", &http[0], "/api/pubsub/progress?node=n9", &json!(1))
        .await
        .expect("POST");
    assert_eq!(status, 404, "{body}");

    // One message per broadcast per node with subscribers: n2's two
    // subscribers cost n1 one message each time, and the topic only n3
    // follows sent n2 nothing.
    let sent_to_n2_after = metric(&http[0], "drove_pubsub_sent_total", &["peer=\"n2\""])
        .await
        .expect("metrics");
    assert_eq!(sent_to_n2_after - sent_to_n2, N);
    let sent_to_n3 = metric(&http[0], "drove_pubsub_sent_total", &["peer=\"n3\""])
        .await
        .expect("metrics");
    assert_eq!(sent_to_n3, N + 10 + 1);
    let received = metric(&http[1], "drove_pubsub_received_total", &["peer=\"n1\""])
        .await
        .expect("metrics");
    assert_eq!(received, N);
    // n1 has no subscribers, so n2 never sent it anything.
    let to_n1 = metric(&http[1], "drove_pubsub_sent_total", &["peer=\"n1\""])
        .await
        .expect("metrics");
    assert_eq!(to_n1, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_nodes_are_forgotten_and_joining_nodes_learn_the_table() {
    let mut c = TestCluster::started(3).await;
    let http: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();
    let _on_n2 = SseClient::connect(&http[1], "/api/pubsub/jobs/events")
        .await
        .expect("subscribe");
    let _on_n3 = SseClient::connect(&http[2], "/api/pubsub/jobs/events")
        .await
        .expect("subscribe");
    wait_subscribers(&http[0], "jobs", &["n2", "n3"]).await;

    c.nodes[2].kill9();
    wait_subscribers(&http[0], "jobs", &["n2"]).await;
    let a = publish(&http[0], "jobs", json!({"after": "kill"})).await;
    assert_eq!(a["nodes"], 1, "{a}");

    // A node that joins now learns that n2 subscribes.
    let mut late = drove_tests::NodeProc::new("n4", vec![c.nodes[0].listen.to_string()], &c.cookie);
    late.start();
    wait_subscribers(&late.http_addr(), "jobs", &["n2"]).await;
    // Publishing goes to members n4 sees up; the table can arrive first.
    wait_for(LONG, "n4 to see n2 up", || async {
        let view = late.cluster().await?;
        view.members
            .iter()
            .any(|m| m.name == "n2" && m.status == "up")
            .then_some(())
    })
    .await;
    let a = publish(&late.http_addr(), "jobs", json!({"from": "n4"})).await;
    assert_eq!(a["nodes"], 1, "{a}");

    // A subscriber that goes away (its connection closes) is dropped too.
    drop(_on_n2);
    wait_for(LONG, "n2's last subscriber to be dropped", || async {
        let topics = topics_at(&http[0]).await?;
        (!topics.contains_key("jobs")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors() {
    let c = TestCluster::started(1).await;
    let http = c.nodes[0].http_addr();
    let (status, body) = drove_admin::client::send(
        &http,
        "POST",
        "/api/pubsub/t",
        "{not json",
        Duration::from_secs(10),
    )
    .await
    .expect("POST");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not JSON"), "{body}");
    let long = "x".repeat(300);
    let (status, body) = send_json("POST", &http, &format!("/api/pubsub/{long}"), &json!(1))
        .await
        .expect("POST");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid topic"), "{body}");
    assert!(
        SseClient::connect(&http, &format!("/api/pubsub/{long}/events"))
            .await
            .is_err()
    );
}

/// The window after a join: the moment a joining node's table names a
/// subscriber, a broadcast from it is sent or reported failed, never
/// answered `{"nodes": 0, "failed": 0}`. Tried on several joiners, each
/// publishing at the first sight of the subscriber.
#[tokio::test(flavor = "multi_thread")]
async fn a_joining_node_never_misses_a_subscriber_its_table_names() {
    let c = TestCluster::started(1).await;
    let http = c.nodes[0].http_addr();
    let mut events = SseClient::connect(&http, "/api/pubsub/window/events")
        .await
        .expect("subscribe");
    let seed = c.nodes[0].listen.to_string();
    let mut delivered = 0;
    for i in 0..4 {
        let mut joiner =
            drove_tests::NodeProc::new(&format!("j{i}"), vec![seed.clone()], &c.cookie);
        joiner.start();
        let jhttp = joiner.http_addr();
        wait_for(LONG, "the joiner's table to name n1", || async {
            let topics = topics_at(&jhttp).await?;
            topics.contains_key("window").then_some(())
        })
        .await;
        let a = publish(&jhttp, "window", json!({"from": i})).await;
        let (nodes, failed) = (a["nodes"].as_u64(), a["failed"].as_u64());
        assert_eq!(
            nodes.unwrap_or(0) + failed.unwrap_or(0),
            1,
            "the table names n1 but the broadcast went nowhere: {a}"
        );
        if nodes == Some(1) {
            let got = events.next_data(LONG).await.expect("the message");
            assert!(got.contains(&format!("\"from\":{i}")), "{got}");
            delivered += 1;
        }
    }
    eprintln!("{delivered} of 4 first-sight broadcasts were sent at once");
}
