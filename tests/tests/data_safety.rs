//! Nothing lost across node processes: partitions of large values reach a
//! joining node, a rolling restart keeps every cache entry, name and child,
//! and one node's clock far ahead moves nobody else's time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use drove_supervisor::ChildStatus;
use drove_tests::forge::now_ms;
use drove_tests::{
    children_at, metric, registry_at, send_json, spawn_child, wait_for, NodeProc, TestCluster,
};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(90);

/// A cache value of about `len` bytes of JSON, unique to `key`.
fn big_value(key: &str, len: usize) -> Value {
    let mut s = format!("{key}:");
    while s.len() < len {
        s.push_str("0123456789abcdef");
    }
    s.truncate(len);
    Value::String(s)
}

async fn put(http: &str, key: &str, body: Value) {
    let (status, answer) = send_json("PUT", http, &format!("/api/cache/{key}"), &body)
        .await
        .unwrap_or_else(|e| panic!("PUT {key} on {http}: {e}"));
    assert_eq!(status, 204, "PUT {key} answered {status}: {answer}");
}

/// The value of `key` on `http`, if it has one (`None` also when the node
/// did not answer).
async fn value_at(http: &str, key: &str) -> Option<Value> {
    let (status, body) =
        drove_admin::client::get(http, &format!("/api/cache/{key}"), Duration::from_secs(30))
            .await
            .ok()?;
    if status != 200 {
        return None;
    }
    let entry: Value = serde_json::from_str(&body).ok()?;
    Some(entry["value"].clone())
}

/// Waits until the node at `http` holds every one of `entries` as written.
async fn wait_holds(http: &str, entries: &[(String, Value)]) {
    wait_for(LONG, &format!("{http} to hold every entry"), || async {
        let n = metric(http, "drove_cache_entries", &[]).await?;
        (n as usize == entries.len()).then_some(())
    })
    .await;
    for (key, want) in entries {
        let got = value_at(http, key).await;
        assert!(got.as_ref() == Some(want), "{key} differs on {http}");
    }
}

/// One owner's partition of 40 values of 900 KB (36 MB, over four times the
/// 8 MiB frame limit) reaches a node that joins afterwards, whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_joining_node_receives_a_partition_far_over_the_frame_limit() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(1).await;
    let http = c.nodes[0].http_addr();
    let entries: Vec<(String, Value)> = (0..40)
        .map(|i| {
            let key = format!("big{i:02}");
            let value = big_value(&key, 900_000);
            (key, value)
        })
        .collect();
    for (key, value) in &entries {
        put(&http, key, json!({ "value": value })).await;
    }
    let mut joiner = NodeProc::new("n2", vec![c.nodes[0].listen.to_string()], &c.cookie);
    joiner.start();
    c.nodes.push(joiner);
    c.wait_converged(LONG).await;
    wait_holds(&c.nodes[1].http_addr(), &entries).await;
    assert_eq!(
        metric(
            &http,
            "drove_repl_send_failures_total",
            &["channel=\"cache\"", "reason=\"encode\""]
        )
        .await,
        Some(0),
        "a resync message was too large to send"
    );
}

/// The children as `(id, name)`, once each runs on exactly one node and
/// every one of `ids` is there.
async fn wait_children(nodes: &[&NodeProc], ids: &BTreeSet<String>) {
    wait_for(LONG, "every child running exactly once", || async {
        let mut seen = Vec::new();
        for n in nodes {
            for ch in children_at(&n.http_addr(), true).await? {
                if ch.status == ChildStatus::Running {
                    seen.push(ch.id);
                }
            }
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        (seen.len() == unique.len() && unique == *ids).then_some(())
    })
    .await;
}

/// Three nodes, each holding cache entries (some of them large), children
/// and singletons' names; each node in turn is stopped with SIGTERM and
/// started again once the one before it has resynced. Every entry, name
/// and child is still there at the end, on every node.
#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_keeps_every_entry_name_and_child() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(3).await;
    let mut entries = Vec::new();
    for (i, n) in c.nodes.iter().enumerate() {
        let http = n.http_addr();
        for k in 0..30 {
            let key = format!("n{i}-small{k:02}");
            let value = json!({ "from": i, "k": k });
            put(&http, &key, json!({ "value": value })).await;
            entries.push((key, value));
        }
        // Over the frame limit per owner: adoption and resync must split.
        for k in 0..10 {
            let key = format!("n{i}-large{k:02}");
            let value = big_value(&key, 900_000);
            put(&http, &key, json!({ "value": value })).await;
            entries.push((key, value));
        }
    }
    let http0 = c.nodes[0].http_addr();
    for i in 0..12 {
        spawn_child(&http0, json!({"type": "ticker", "id": format!("long{i:02}"), "restart": "permanent", "args": {"interval_ms": 100}})).await;
    }
    let names: BTreeSet<String> = (0..3).map(|i| format!("single{i}")).collect();
    for name in &names {
        spawn_child(&http0, json!({"type": "ticker", "name": name, "restart": "permanent", "args": {"interval_ms": 100}})).await;
    }
    let ids: BTreeSet<String> = children_at(&http0, false)
        .await
        .expect("children")
        .into_iter()
        .map(|ch| ch.id)
        .collect();
    assert_eq!(ids.len(), 15);
    for n in &c.nodes {
        wait_holds(&n.http_addr(), &entries).await;
    }

    for i in 0..3 {
        assert!(
            c.nodes[i].terminate(Duration::from_secs(30)),
            "{} did not exit on SIGTERM",
            c.nodes[i].name
        );
        // Seeded by a node that is up, so it rejoins this cluster.
        let seed = c.nodes[(i + 1) % 3].listen.to_string();
        c.nodes[i].seeds = vec![seed];
        c.nodes[i].start();
        c.wait_converged(LONG).await;
        let http = c.nodes[i].http_addr();
        wait_holds(&http, &entries).await;
        let all: Vec<&NodeProc> = c.nodes.iter().collect();
        wait_children(&all, &ids).await;
        wait_for(
            LONG,
            "every singleton's name on the restarted node",
            || async {
                let table = registry_at(&http).await?;
                names.iter().all(|n| table.contains_key(n)).then_some(())
            },
        )
        .await;
    }
    for n in &c.nodes {
        wait_holds(&n.http_addr(), &entries).await;
    }
}

/// n3's clock runs an hour ahead. Its stamps do not move the others'
/// clocks (each counts and logs them), so their TTL entries live out their
/// time.
#[tokio::test(flavor = "multi_thread")]
async fn a_clock_an_hour_ahead_expires_nobody_s_entries_early() {
    let mut c = TestCluster::new(3);
    c.nodes[2].extra = vec!["--clock-offset-ms".into(), "3600000".into()];
    c.start_all();
    c.wait_converged(LONG).await;
    let https: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();

    // n3's writes reach n1 and n2 first.
    put(
        &https[2],
        "from-n3",
        json!({"value": "ahead", "ttl_ms": 5000}),
    )
    .await;
    for http in &https[..2] {
        wait_for(LONG, "n3's write everywhere", || async {
            (value_at(http, "from-n3").await? == json!("ahead")).then_some(())
        })
        .await;
        wait_for(LONG, "n3's stamps counted as too far ahead", || async {
            let n = metric(
                http,
                "drove_repl_stamps_too_far_ahead_total",
                &["channel=\"cache\""],
            )
            .await?;
            (n > 0).then_some(())
        })
        .await;
    }
    // n3's deadline is in its own time, an hour from now.
    let (_, body) =
        drove_admin::client::get(&https[0], "/api/cache/from-n3", Duration::from_secs(10))
            .await
            .expect("GET");
    let entry: Value = serde_json::from_str(&body).expect("JSON");
    let deadline = entry["expires_at_ms"].as_u64().unwrap_or(0);
    assert!(
        deadline > now_ms() + 3_500_000,
        "n3's deadline {deadline} is not in its own time"
    );

    put(&https[0], "session", json!({"value": "s", "ttl_ms": 6000})).await;
    let written = Instant::now();
    for http in &https[..2] {
        wait_for(LONG, "the session everywhere", || async {
            (value_at(http, "session").await? == json!("s")).then_some(())
        })
        .await;
    }
    // Well inside its TTL, it is there on n1 and n2...
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(written.elapsed())).await;
    for http in &https[..2] {
        assert_eq!(
            value_at(http, "session").await,
            Some(json!("s")),
            "{http} expired it early, after {:?}",
            written.elapsed()
        );
    }
    // It expires on time.
    for http in &https[..2] {
        wait_for(LONG, "the session to expire", || async {
            value_at(http, "session").await.is_none().then_some(())
        })
        .await;
    }
    assert!(written.elapsed() >= Duration::from_millis(5500));
}
