//! The replicated cache across real node processes: writes visible
//! everywhere, concurrent writes converging, TTL by the entry's own
//! deadline, new nodes receiving the contents, clock skew, and a crashed
//! writer's entries never missing on a survivor.

use std::time::{Duration, Instant};

use drove_tests::{metric, send_json, wait_for, NodeProc, TestCluster};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(40);

async fn put(http: &str, key: &str, body: Value) -> u16 {
    let (status, answer) = send_json("PUT", http, &format!("/api/cache/{key}"), &body)
        .await
        .unwrap_or_else(|e| panic!("PUT on {http}: {e}"));
    assert!(
        status == 204 || status == 409,
        "PUT answered {status}: {answer}"
    );
    status
}

/// The entry of `key` on `http`: `Some(None)` when absent, `None` when the
/// node did not answer.
async fn get(http: &str, key: &str) -> Option<Option<Value>> {
    let (status, body) =
        drove_admin::client::get(http, &format!("/api/cache/{key}"), Duration::from_secs(10))
            .await
            .ok()?;
    match status {
        200 => serde_json::from_str(&body).ok().map(Some),
        404 => Some(None),
        _ => None,
    }
}

async fn value_at(http: &str, key: &str) -> Option<Option<Value>> {
    get(http, key).await.map(|e| e.map(|e| e["value"].clone()))
}

async fn wait_everywhere(https: &[String], key: &str, want: Option<Value>) {
    for http in https {
        wait_for(LONG, &format!("{key} = {want:?} on {http}"), || async {
            (value_at(http, key).await? == want).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_and_deletes_are_visible_everywhere() {
    let c = TestCluster::started(3).await;
    let https: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();
    put(&https[0], "user:1", json!({"value": {"state": "pending"}})).await;
    wait_everywhere(&https, "user:1", Some(json!({"state": "pending"}))).await;
    put(
        &https[1],
        "user:1",
        json!({"value": {"state": "processing", "progress": 40}}),
    )
    .await;
    wait_everywhere(
        &https,
        "user:1",
        Some(json!({"state": "processing", "progress": 40})),
    )
    .await;
    let entry = get(&https[2], "user:1").await.flatten().expect("entry");
    assert_eq!(entry["written_by"], "n2");

    // put_new refuses an existing key anywhere it has arrived.
    assert_eq!(
        put(
            &https[2],
            "user:1",
            json!({"value": 1, "only_if_absent": true})
        )
        .await,
        409
    );
    assert_eq!(
        put(
            &https[2],
            "user:2",
            json!({"value": 2, "only_if_absent": true})
        )
        .await,
        204
    );

    // A delete on a third node hides both older writes everywhere, and
    // the nodes drop their shadowed slots.
    let (status, _) = send_json("DELETE", &https[2], "/api/cache/user:1", &json!({}))
        .await
        .expect("DELETE");
    assert_eq!(status, 204);
    wait_everywhere(&https, "user:1", None).await;
    wait_for(LONG, "shadowed slots dropped", || async {
        let mut keys = 0;
        for http in &https {
            keys += metric(http, "drove_cache_slots", &[]).await?;
        }
        // Only user:2 remains, on three nodes.
        (keys == 3).then_some(())
    })
    .await;
    let (status, _) = send_json("DELETE", &https[0], "/api/cache/user:1", &json!({}))
        .await
        .expect("DELETE");
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_converge_to_one_value_everywhere() {
    let c = TestCluster::started(3).await;
    let https: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();
    let mut writers = Vec::new();
    for (i, http) in https.iter().enumerate() {
        let http = http.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..5 {
                for k in 0..40 {
                    put(
                        &http,
                        &format!("k{k}"),
                        json!({"value": format!("n{}-{round}", i + 1)}),
                    )
                    .await;
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    for k in 0..40 {
        let key = format!("k{k}");
        let agreed = wait_for(LONG, &format!("{key} to agree"), || async {
            let mut seen = Vec::new();
            for http in &https {
                seen.push(value_at(http, &key).await??);
            }
            seen.windows(2)
                .all(|w| w[0] == w[1])
                .then(|| seen[0].clone())
        })
        .await;
        let s = agreed.as_str().expect("a string");
        assert!(s.ends_with("-4"), "{key} settled on {s}, not a last write");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ttl_expires_everywhere_and_new_nodes_get_the_contents() {
    let mut c = TestCluster::started(2).await;
    let https: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();
    for i in 0..300 {
        put(&https[i % 2], &format!("keep{i}"), json!({"value": i})).await;
    }
    put(
        &https[0],
        "short",
        json!({"value": "soon gone", "ttl_ms": 2000}),
    )
    .await;
    wait_everywhere(&https, "short", Some(json!("soon gone"))).await;
    let deadline = get(&https[1], "short").await.flatten().expect("entry")["expires_at_ms"].clone();
    assert_eq!(
        get(&https[0], "short").await.flatten().expect("entry")["expires_at_ms"],
        deadline
    );

    // A node that joins now receives everything.
    let mut late = NodeProc::new("n3", vec![c.nodes[0].listen.to_string()], &c.cookie);
    late.start();
    c.nodes.push(late);
    c.wait_converged(LONG).await;
    let all: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();
    wait_for(LONG, "the new node to hold every entry", || async {
        (metric(&all[2], "drove_cache_entries", &[]).await? >= 300).then_some(())
    })
    .await;
    assert_eq!(value_at(&all[2], "keep123").await, Some(Some(json!(123))));

    wait_everywhere(&all, "short", None).await;
    wait_for(LONG, "the writer to drop its expired slot", || async {
        (metric(&all[0], "drove_cache_expired_total", &[]).await? >= 1).then_some(())
    })
    .await;
    assert_eq!(metric(&all[2], "drove_cache_entries", &[]).await, Some(300));
}

/// n3's clock runs 400 ms ahead, within the maximum offset (500 ms). A
/// causal later write still wins (the hybrid clock moved past n3's stamp),
/// and a TTL is a deadline in the writer's time, which the others do not
/// reach early. (A clock further ahead: `data_safety.rs`.)
#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_within_the_offset_keeps_causal_order() {
    let mut c = TestCluster::new(3);
    c.nodes[2].extra = vec!["--clock-offset-ms".into(), "400".into()];
    c.start_all();
    c.wait_converged(LONG).await;
    let https: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();

    put(&https[0], "session", json!({"value": "s", "ttl_ms": 6000})).await;
    let written = Instant::now();
    wait_everywhere(&https, "session", Some(json!("s"))).await;
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(written.elapsed())).await;
    for http in &https[..2] {
        assert_eq!(
            value_at(http, "session").await,
            Some(Some(json!("s"))),
            "{http} expired it too early ({:?})",
            written.elapsed()
        );
    }
    wait_everywhere(&https, "session", None).await;
    assert!(written.elapsed() >= Duration::from_millis(5500));

    // LWW: n3 writes, n1 sees it and writes after: n1's write wins although
    // n3's clock is ahead.
    put(&https[2], "owner", json!({"value": "n3"})).await;
    wait_everywhere(&https, "owner", Some(json!("n3"))).await;
    put(&https[0], "owner", json!({"value": "n1"})).await;
    wait_everywhere(&https, "owner", Some(json!("n1"))).await;
    assert_eq!(
        metric(&https[0], "drove_repl_stamps_too_far_ahead_total", &[]).await,
        Some(0)
    );
}

/// A node with a 100 kB cap takes writes up to it, refuses the one past it
/// with 507 and a clear error (writing nothing), takes a replacement that
/// shrinks a value, and counts what it refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_byte_cap_refuses_writes_past_it_and_loses_nothing() {
    let mut c = TestCluster::new(1);
    c.nodes[0].extra = vec!["--cache-max-bytes".into(), "100000".into()];
    c.start_all();
    c.wait_converged(LONG).await;
    let http = c.nodes[0].http_addr();
    let text = |n: usize| "x".repeat(n);
    put(&http, "a", json!({"value": text(60_000)})).await;
    let (status, answer) = send_json(
        "PUT",
        &http,
        "/api/cache/b",
        &json!({"value": text(60_000)}),
    )
    .await
    .expect("PUT");
    assert_eq!(status, 507, "{answer}");
    assert!(answer.contains("cache full"), "{answer}");
    assert_eq!(value_at(&http, "b").await, Some(None));
    assert_eq!(value_at(&http, "a").await, Some(Some(json!(text(60_000)))));
    // Shrinking a held value makes room.
    put(&http, "a", json!({"value": text(20_000)})).await;
    put(&http, "b", json!({"value": text(60_000)})).await;
    assert_eq!(
        metric(&http, "drove_cache_refused_total", &[]).await,
        Some(1)
    );
    let bytes = metric(&http, "drove_cache_bytes", &[])
        .await
        .expect("bytes");
    assert!((80_000..=100_000).contains(&bytes), "{bytes} bytes");
    assert_eq!(
        metric(&http, "drove_cache_max_bytes", &[]).await,
        Some(100_000)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors() {
    let c = TestCluster::started(1).await;
    let http = c.nodes[0].http_addr();
    for body in [
        "{not json",
        r#"{"valu": 1}"#,
        r#"{"value": 1, "ttl_ms": -5}"#,
    ] {
        let (status, answer) =
            drove_admin::client::send(&http, "PUT", "/api/cache/k", body, Duration::from_secs(10))
                .await
                .expect("PUT");
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains("error"), "{answer}");
    }
    let long = "k".repeat(2000);
    let (status, answer) = send_json(
        "PUT",
        &http,
        &format!("/api/cache/{long}"),
        &json!({"value": 1}),
    )
    .await
    .expect("PUT");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(get(&http, "k").await, Some(None));
}

/// A cache entry outlives the node that wrote it: the survivors adopt the
/// departed writer's copies (and then keep one copy per key).
#[tokio::test(flavor = "multi_thread")]
async fn entries_outlive_their_writer() {
    let mut c = TestCluster::started(3).await;
    let https: Vec<String> = c.nodes.iter().map(|n| n.http_addr()).collect();
    for i in 0..50 {
        put(&https[2], &format!("orphan{i}"), json!({"value": i})).await;
    }
    put(&https[2], "gone", json!({"value": 1})).await;
    let (status, _) = send_json("DELETE", &https[2], "/api/cache/gone", &json!({}))
        .await
        .expect("DELETE");
    assert_eq!(status, 204);
    wait_everywhere(&https, "orphan49", Some(json!(49))).await;
    c.nodes[2].kill9();
    let survivors = &https[..2];
    // Whichever survivor purges n3 first adopts its entries; the other may
    // then already hold that node's copies and adopt none.
    wait_for(LONG, "the survivors to adopt n3's entries", || async {
        let mut adopted = 0;
        for http in survivors {
            adopted += metric(http, "drove_cache_adopted_total", &[]).await?;
        }
        (adopted >= 50).then_some(())
    })
    .await;
    for http in survivors {
        for i in [0, 17, 49] {
            assert_eq!(
                value_at(http, &format!("orphan{i}")).await,
                Some(Some(json!(i)))
            );
        }
        assert_eq!(value_at(http, "gone").await, Some(None));
    }
    for http in survivors {
        wait_for(LONG, "one copy per key again", || async {
            (metric(http, "drove_cache_slots", &[]).await? == 50).then_some(())
        })
        .await;
    }
}

/// A crashed writer's entries never go missing on a survivor: they are
/// adopted in the same step that purges them. A reader on the survivor
/// (this process) polls every key through the kill -9 and never misses one.
#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_writers_entries_never_go_missing_on_a_survivor() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    const KEYS: usize = 200;
    let mut c = TestCluster::started(1).await;
    let writer = c.nodes[0].http_addr();
    let ip = drove_tests::fresh_loopback_ip();
    let mut config = drove_runtime::NodeConfig::new("survivor");
    config.listen = format!("{ip}:{}", drove_tests::free_port(&ip))
        .parse()
        .expect("addr");
    config.cookie = c.nodes[0].cookie.clone();
    config.seeds = vec![c.nodes[0].listen.to_string()];
    let node = config.start().await.expect("survivor");
    let cache = drove_cache::Cache::start(&node).await.expect("cache");
    wait_for(LONG, "the survivor to join", || async {
        (node.up_members().len() == 2).then_some(())
    })
    .await;
    for k in 0..KEYS {
        put(&writer, &format!("k{k}"), json!({ "value": k })).await;
    }
    wait_for(LONG, "every entry on the survivor", || async {
        (cache.len() == KEYS).then_some(())
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let missing = Arc::new(AtomicU64::new(0));
    let sweeps = Arc::new(AtomicU64::new(0));
    let reader = {
        let (cache, stop, missing, sweeps) =
            (cache.clone(), stop.clone(), missing.clone(), sweeps.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for k in 0..KEYS {
                    if cache.get::<usize>(&format!("k{k}")).ok().flatten() != Some(k) {
                        missing.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sweeps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    c.nodes[0].kill9();
    wait_for(LONG, "the writer to be down", || async {
        (node.up_members().len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");

    assert!(sweeps.load(Ordering::Relaxed) > 0);
    assert_eq!(missing.load(Ordering::Relaxed), 0, "entries went missing");
    assert_eq!(cache.len(), KEYS);
    node.leave().await;
}
