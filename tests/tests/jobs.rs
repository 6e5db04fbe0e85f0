//! Durable jobs with real node processes against a real Redis (a private
//! `redis-server` per test) and a real SQLite file shared by the nodes:
//! rescue after kill -9 and SIGSTOP (with fencing), a restart of every
//! node, rate limits across nodes, pauses, uniqueness, cron through a
//! node kill, backoff, the dead set, cancellation, a Redis outage, and
//! bad input.

// Helpers outside #[test] functions fail the test as loudly as an assert.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drove_tests::redis::RedisServer;
use drove_tests::stores::{config_file, post, sqlite_file, store_nodes};
use drove_tests::{metric, send_json, start_all_and_wait, wait_for, NodeProc};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);

/// Enqueues through `n`; returns the id.
async fn enqueue(n: &NodeProc, body: Value) -> u64 {
    let (status, answer) = post(n, "/api/jobs", body.clone()).await;
    assert_eq!(status, 200, "enqueue {body}: {answer}");
    answer["id"].as_u64().expect("an id")
}

async fn job(n: &NodeProc, id: u64) -> Option<Value> {
    let (status, text) = drove_admin::client::get(&n.http_addr(), &format!("/api/jobs/{id}"), LONG)
        .await
        .ok()?;
    (status == 200).then(|| serde_json::from_str(&text).ok())?
}

async fn wait_state(n: &NodeProc, id: u64, state: &str, timeout: Duration) -> Value {
    wait_for(timeout, &format!("job {id} to be {state}"), || async {
        job(n, id).await.filter(|j| j["state"] == state)
    })
    .await
}

async fn queues(n: &NodeProc) -> Vec<Value> {
    let (status, text) = drove_admin::client::get(&n.http_addr(), "/api/jobs/queues", LONG)
        .await
        .expect("GET /api/jobs/queues");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("queues JSON")
}

async fn queue(n: &NodeProc, name: &str) -> Value {
    queues(n)
        .await
        .into_iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(
            || json!({ "queue": name, "paused": {"cluster": false, "nodes": []}, "counts": {} }),
        )
}

fn count(q: &Value, state: &str) -> u64 {
    q["counts"][state].as_u64().unwrap_or(0)
}

fn sleep_job(queue: &str, ms: u64) -> Value {
    json!({ "queue": queue, "worker": "drove.sleep", "args": { "ms": ms } })
}

/// Enqueues `jobs` sleep jobs and waits until all are executing; returns
/// job id -> consumer.
async fn all_executing(n: &NodeProc, queue: &str, jobs: usize, ms: u64) -> BTreeMap<u64, String> {
    let mut ids = Vec::new();
    for _ in 0..jobs {
        ids.push(enqueue(n, sleep_job(queue, ms)).await);
    }
    let mut held = BTreeMap::new();
    for id in ids {
        let j = wait_state(n, id, "executing", LONG).await;
        held.insert(id, j["node"].as_str().expect("a node").to_string());
    }
    held
}

#[tokio::test]
async fn kill9_mid_job_completes_on_a_survivor_within_a_second_of_the_rescue() {
    let _alone = drove_tests::timing_sensitive().await;
    let redis = RedisServer::start();
    let mut cluster = store_nodes(3, &redis.url(), &["--pipeline", "slow:max_demand=4"]);
    start_all_and_wait(&mut cluster, LONG).await;
    // Only n3 takes the jobs; the survivors keep free slots for the rescue.
    let scope = |wait: bool| json!({"scope": "node", "wait_ms": if wait { 5000 } else { 0 }});
    for n in &cluster[..2] {
        let (status, answer) = post(n, "/api/jobs/queues/slow/pause", scope(true)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let held = all_executing(&cluster[0], "slow", 3, 3000).await;
    let victim = held.values().next().cloned().expect("a job");
    assert!(held.values().all(|c| c.starts_with("n3#")), "{held:?}");
    for n in &cluster[..2] {
        let (status, answer) = post(n, "/api/jobs/queues/slow/resume", scope(true)).await;
        assert_eq!(status, 200, "{answer}");
    }
    cluster[2].kill9();
    for (id, consumer) in held.iter().filter(|(_, c)| **c == victim) {
        let j = wait_state(&cluster[0], *id, "completed", LONG).await;
        assert_eq!(j["attempt"], 2, "{j}");
        assert_ne!(j["node"].as_str(), Some(consumer.as_str()), "{j}");
        let rescue = &j["errors"][0];
        assert!(
            rescue["error"].as_str().unwrap_or("").contains("went down"),
            "{j}"
        );
        let rescued_at = rescue["at_ms"].as_u64().expect("rescue time");
        let restarted_at = j["attempted_at_ms"].as_u64().expect("attempt time");
        assert!(
            restarted_at.saturating_sub(rescued_at) < 1500,
            "the rescued job restarted {} ms after the rescue: {j}",
            restarted_at - rescued_at
        );
    }
}

#[tokio::test]
async fn a_frozen_node_cannot_complete_attempts_that_were_rescued() {
    let _alone = drove_tests::timing_sensitive().await;
    let (store, _file) = sqlite_file();
    let mut cluster = store_nodes(3, &store, &["--pipeline", "slow:max_demand=2"]);
    start_all_and_wait(&mut cluster, LONG).await;
    let held = all_executing(&cluster[0], "slow", 6, 4000).await;
    let victim = held
        .values()
        .find(|c| c.starts_with("n3#"))
        .cloned()
        .expect("n3 holds a job");
    cluster[2].freeze().await;
    let mine: Vec<u64> = held
        .iter()
        .filter(|(_, c)| **c == victim)
        .map(|(id, _)| *id)
        .collect();
    let mut done = BTreeMap::new();
    for id in &mine {
        let j = wait_state(&cluster[0], *id, "completed", LONG).await;
        assert_eq!(j["attempt"], 2, "{j}");
        done.insert(*id, j);
    }
    cluster[2].signal(Signal::SIGCONT);
    // Long enough for the woken node's 4 s sleeps to end and try to complete.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for id in &mine {
        let j = job(&cluster[0], *id).await.expect("the job");
        assert_eq!(j, done[id], "the woken node changed a rescued job");
    }
    wait_for(
        LONG,
        "the woken node to count its attempts as lost",
        || async {
            let lost = metric(
                &cluster[2].http_addr(),
                "drove_jobs_runs_total",
                &["outcome=\"lost\""],
            )
            .await?;
            (lost >= mine.len() as u64).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn scheduled_retryable_and_paused_survive_a_restart_of_every_node() {
    let _shared = drove_tests::shared_machine().await;
    let (store, _file) = sqlite_file();
    let (config, _config) = config_file("[jobs.backoff]\nmin_ms = 5000\nmax_ms = 5000\n");
    let mut cluster = store_nodes(2, &store, &["--config", &config, "--pipeline", "held"]);
    start_all_and_wait(&mut cluster, LONG).await;
    let n1 = &cluster[0];
    let scheduled = enqueue(
        n1,
        json!({"queue": "default", "worker": "drove.noop", "in_ms": 6000}),
    )
    .await;
    let retried = enqueue(
        n1,
        json!({"queue": "default", "worker": "drove.fail", "args": {"times": 1}}),
    )
    .await;
    wait_state(n1, retried, "retryable", LONG).await;
    let (status, answer) = post(
        n1,
        "/api/jobs/queues/held/pause",
        json!({"scope": "cluster", "wait_ms": 5000}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let held = enqueue(n1, json!({"queue": "held", "worker": "drove.noop"})).await;
    for n in cluster.iter_mut() {
        n.kill9();
    }
    start_all_and_wait(&mut cluster, LONG).await;
    let n1 = &cluster[0];
    let j = wait_state(n1, scheduled, "completed", LONG).await;
    assert!(
        j["attempted_at_ms"].as_u64() >= j["scheduled_at_ms"].as_u64(),
        "{j}"
    );
    let j = wait_state(n1, retried, "completed", LONG).await;
    assert_eq!(j["attempt"], 2, "{j}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(job(n1, held).await.expect("job")["state"], "available");
    assert_eq!(queue(n1, "held").await["paused"]["cluster"], true);
    let (status, _) = post(
        n1,
        "/api/jobs/queues/held/resume",
        json!({"scope": "cluster"}),
    )
    .await;
    assert_eq!(status, 200);
    wait_state(n1, held, "completed", LONG).await;
}

#[tokio::test]
async fn a_rate_limit_holds_across_three_nodes() {
    let _shared = drove_tests::shared_machine().await;
    let redis = RedisServer::start();
    let spec = "rl:max_demand=10,rate=4/1000";
    let mut cluster = store_nodes(3, &redis.url(), &["--pipeline", spec]);
    start_all_and_wait(&mut cluster, LONG).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let via = &cluster[i % 3];
        ids.push(enqueue(via, json!({"queue": "rl", "worker": "drove.noop"})).await);
    }
    let mut done = Vec::new();
    let mut nodes_used = BTreeSet::new();
    for id in ids {
        let j = wait_state(&cluster[0], id, "completed", LONG).await;
        done.push(j["completed_at_ms"].as_u64().expect("completion time"));
        nodes_used.insert(
            j["node"]
                .as_str()
                .unwrap_or("")
                .split('#')
                .next()
                .unwrap_or("")
                .to_string(),
        );
    }
    done.sort_unstable();
    let span = done[done.len() - 1] - done[0];
    assert!(span >= 3500, "20 jobs at 4/s finished within {span} ms");
    for (i, start) in done.iter().enumerate() {
        let in_window = done[i..].iter().take_while(|t| **t < start + 900).count();
        assert!(
            in_window <= 4,
            "{in_window} completions within 900 ms of {start}: {done:?}"
        );
    }
    assert!(
        nodes_used.len() >= 2,
        "one node did everything: {nodes_used:?}"
    );
}

#[tokio::test]
async fn a_cluster_pause_stops_every_node_and_a_node_pause_only_that_node() {
    let _shared = drove_tests::shared_machine().await;
    let (store, _file) = sqlite_file();
    let mut cluster = store_nodes(2, &store, &["--pipeline", "p"]);
    start_all_and_wait(&mut cluster, LONG).await;
    let (n1, n2) = (&cluster[0], &cluster[1]);
    let (status, answer) = post(
        n1,
        "/api/jobs/queues/p/pause",
        json!({"scope": "cluster", "wait_ms": 5000}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(queue(n2, "p").await["paused"]["cluster"], true);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(enqueue(n2, json!({"queue": "p", "worker": "drove.noop"})).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in &ids {
        assert_eq!(job(n1, *id).await.expect("job")["state"], "available");
    }
    let (status, _) = post(
        n2,
        "/api/jobs/queues/p/resume",
        json!({"scope": "cluster", "wait_ms": 5000}),
    )
    .await;
    assert_eq!(status, 200);
    for id in &ids {
        wait_state(n1, *id, "completed", LONG).await;
    }
    let (status, answer) = post(
        n1,
        "/api/jobs/queues/p/pause",
        json!({"scope": "node", "wait_ms": 5000}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let q = queue(n2, "p").await;
    assert_eq!(
        q["paused"],
        json!({"cluster": false, "nodes": ["n1"]}),
        "{q}"
    );
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(enqueue(n1, json!({"queue": "p", "worker": "drove.noop"})).await);
    }
    for id in ids {
        let j = wait_state(n1, id, "completed", LONG).await;
        assert!(j["node"].as_str().unwrap_or("").starts_with("n2#"), "{j}");
    }
    let (status, answer) = post(n1, "/api/jobs/queues/p/pause", json!({"scope": "galaxy"})).await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn unique_jobs_by_args_and_by_keys() {
    let _shared = drove_tests::shared_machine().await;
    let redis = RedisServer::start();
    let mut cluster = store_nodes(1, &redis.url(), &[]);
    start_all_and_wait(&mut cluster, LONG).await;
    let n = &cluster[0];
    let unique = |args: Value, keys: Option<Vec<&str>>| {
        let mut u = json!({"period_ms": 60_000});
        if let Some(keys) = keys {
            u["keys"] = json!(keys);
        }
        json!({"queue": "u", "worker": "drove.noop", "args": args, "unique": u})
    };
    let (_, first) = post(n, "/api/jobs", unique(json!({"a": 1}), None)).await;
    let (_, again) = post(n, "/api/jobs", unique(json!({"a": 1}), None)).await;
    assert_eq!(again, json!({"id": first["id"], "duplicate": true}));
    let (_, other) = post(n, "/api/jobs", unique(json!({"a": 2}), None)).await;
    assert_ne!(other["id"], first["id"]);
    assert!(other.get("duplicate").is_none(), "{other}");
    let (_, k1) = post(
        n,
        "/api/jobs",
        unique(json!({"user": 7, "n": 1}), Some(vec!["user"])),
    )
    .await;
    let (_, k2) = post(
        n,
        "/api/jobs",
        unique(json!({"user": 7, "n": 2}), Some(vec!["user"])),
    )
    .await;
    assert_eq!(k2, json!({"id": k1["id"], "duplicate": true}));
    let (status, answer) = post(n, "/api/jobs", unique(json!(5), Some(vec!["user"]))).await;
    assert_eq!(status, 400, "{answer}");

    // Uniqueness as a weapon: enqueue first, then cancel. By default the
    // cancelled job lets its key go, so the honest enqueue goes in.
    let later = |hold: Option<&str>| {
        let mut body = unique(json!({"victim": 1, "hold": hold}), None);
        body["in_ms"] = json!(60_000);
        if let Some(h) = hold {
            body["unique"]["hold"] = json!(h);
        }
        body
    };
    let planted = enqueue(n, later(None)).await;
    let (status, _) = send_json(
        "DELETE",
        &n.http_addr(),
        &format!("/api/jobs/{planted}"),
        &json!({}),
    )
    .await
    .expect("cancel");
    assert_eq!(status, 200);
    let (_, honest) = post(n, "/api/jobs", later(None)).await;
    assert!(honest.get("duplicate").is_none(), "{honest}");
    assert_ne!(honest["id"], json!(planted));
    // A job that asks to hold its key always keeps it through a cancel.
    let kept = enqueue(n, later(Some("always"))).await;
    send_json(
        "DELETE",
        &n.http_addr(),
        &format!("/api/jobs/{kept}"),
        &json!({}),
    )
    .await
    .expect("cancel");
    let (_, again) = post(n, "/api/jobs", later(Some("always"))).await;
    assert_eq!(again, json!({"id": kept, "duplicate": true}));
    let (status, answer) = post(n, "/api/jobs", later(Some("sometimes"))).await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn cron_fires_once_per_tick_across_three_nodes_through_a_kill() {
    let _alone = drove_tests::timing_sensitive().await;
    let redis = RedisServer::start();
    let (config, _config) = config_file(
        "[[jobs.cron]]\nname = \"beat\"\nschedule = \"* * * * * *\"\nqueue = \"cron\"\nworker = \"drove.noop\"\n",
    );
    let mut cluster = store_nodes(3, &redis.url(), &["--config", &config]);
    start_all_and_wait(&mut cluster, LONG).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster[1].kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let n1 = &cluster[0];
    let mut ticks = Vec::new();
    let mut id = 1;
    while let Some(j) = job(n1, id).await {
        assert_eq!(j["queue"], "cron");
        ticks.push(j["scheduled_at_ms"].as_u64().expect("tick"));
        id += 1;
    }
    assert!(
        ticks.len() >= 6,
        "only {} ticks in 8 s: {ticks:?}",
        ticks.len()
    );
    let distinct: BTreeSet<u64> = ticks.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ticks.len(),
        "a tick enqueued twice: {ticks:?}"
    );
    let sorted: Vec<u64> = distinct.into_iter().collect();
    for pair in sorted.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a tick was missed: {sorted:?}");
    }
}

#[tokio::test]
async fn backoff_gaps_grow_and_the_dead_set_keeps_every_error() {
    let _shared = drove_tests::shared_machine().await;
    let redis = RedisServer::start();
    let (config, _config) = config_file("[jobs.backoff]\nmin_ms = 300\nmax_ms = 60000\n");
    let mut cluster = store_nodes(1, &redis.url(), &["--config", &config]);
    start_all_and_wait(&mut cluster, LONG).await;
    let n = &cluster[0];
    let flaky = enqueue(
        n,
        json!({"queue": "default", "worker": "drove.fail", "args": {"times": 3}}),
    )
    .await;
    let doomed = enqueue(
        n,
        json!({"queue": "default", "worker": "drove.fail", "args": {"times": 99}, "max_retries": 2}),
    )
    .await;
    let j = wait_state(n, flaky, "completed", LONG).await;
    assert_eq!(j["attempt"], 4, "{j}");
    let at: Vec<u64> = j["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["at_ms"].as_u64().expect("at_ms"))
        .collect();
    let last = j["attempted_at_ms"].as_u64().expect("attempted_at_ms");
    let gaps = [at[1] - at[0], at[2] - at[1], last - at[2]];
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "gaps {gaps:?}");
    let d = wait_state(n, doomed, "dead", LONG).await;
    let attempts: Vec<u64> = d["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["attempt"].as_u64().expect("attempt"))
        .collect();
    assert_eq!(attempts, vec![1, 2, 3], "{d}");
    assert!(d["completed_at_ms"].as_u64().is_some(), "{d}");
}

#[tokio::test]
async fn cancelling_a_running_job_stops_it() {
    let _shared = drove_tests::shared_machine().await;
    let (store, _file) = sqlite_file();
    let mut cluster = store_nodes(2, &store, &[]);
    start_all_and_wait(&mut cluster, LONG).await;
    let id = enqueue(&cluster[0], sleep_job("default", 30_000)).await;
    let j = wait_state(&cluster[0], id, "executing", LONG).await;
    let runner = if j["node"].as_str().unwrap_or("").starts_with("n1#") {
        0
    } else {
        1
    };
    let (status, answer) = send_json(
        "DELETE",
        &cluster[1].http_addr(),
        &format!("/api/jobs/{id}"),
        &json!({}),
    )
    .await
    .expect("DELETE");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("executing"), "{answer}");
    wait_for(LONG, "the running node to stop the job", || async {
        let lost = metric(
            &cluster[runner].http_addr(),
            "drove_jobs_runs_total",
            &["outcome=\"lost\""],
        )
        .await?;
        (lost >= 1).then_some(())
    })
    .await;
    assert_eq!(
        job(&cluster[0], id).await.expect("job")["state"],
        "cancelled"
    );
    let queued = enqueue(
        &cluster[0],
        json!({"queue": "later", "worker": "drove.noop"}),
    )
    .await;
    let (status, _) = send_json(
        "DELETE",
        &cluster[0].http_addr(),
        &format!("/api/jobs/{queued}"),
        &json!({}),
    )
    .await
    .expect("DELETE");
    assert_eq!(status, 200);
    assert_eq!(
        job(&cluster[0], queued).await.expect("job")["state"],
        "cancelled"
    );
}

#[tokio::test]
async fn a_redis_outage_loses_nothing() {
    let _shared = drove_tests::shared_machine().await;
    let mut redis = RedisServer::start();
    let mut cluster = store_nodes(2, &redis.url(), &["--pipeline", "default:max_demand=4"]);
    start_all_and_wait(&mut cluster, LONG).await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(enqueue(&cluster[0], sleep_job("default", 50)).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill9();
    let (status, answer) = post(
        &cluster[1],
        "/api/jobs",
        json!({"queue": "default", "worker": "drove.noop"}),
    )
    .await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("unavailable"),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();
    for id in ids {
        wait_state(&cluster[0], id, "completed", LONG).await;
    }
    let q = queue(&cluster[0], "default").await;
    assert_eq!(count(&q, "completed"), 60, "{q}");
}

#[tokio::test]
async fn bad_input_goes_to_the_dead_set_or_is_refused_and_the_node_keeps_going() {
    let _shared = drove_tests::shared_machine().await;
    let (store, _file) = sqlite_file();
    let mut cluster = store_nodes(1, &store, &[]);
    start_all_and_wait(&mut cluster, LONG).await;
    let n = &cluster[0];
    let unknown = enqueue(n, json!({"queue": "default", "worker": "no.such.worker"})).await;
    let j = wait_state(n, unknown, "dead", LONG).await;
    assert!(
        j["errors"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("unknown worker"),
        "{j}"
    );
    assert_eq!(j["attempt"], 1, "never retried: {j}");
    let garbled = enqueue(
        n,
        json!({"queue": "default", "worker": "drove.sleep", "args": {"ms": "soon"}}),
    )
    .await;
    let j = wait_state(n, garbled, "dead", LONG).await;
    assert!(
        j["errors"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("do not decode"),
        "{j}"
    );
    // Times more than ten years ahead are refused with the reason: once
    // stored, one made the record unreadable on Redis.
    for far in [
        json!({"queue": "default", "worker": "drove.noop", "at_ms": u64::MAX}),
        json!({"queue": "default", "worker": "drove.noop", "at_ms": 100_000_000_000_000_000u64}),
        json!({"queue": "default", "worker": "drove.noop", "in_ms": 400_000_000_000u64}),
        json!({"queue": "default", "worker": "drove.noop",
               "unique": {"period_ms": 400_000_000_000u64}}),
    ] {
        let (status, answer) = post(n, "/api/jobs", far.clone()).await;
        assert_eq!(status, 400, "{far}: {answer}");
        assert!(answer.to_string().contains("ten years"), "{answer}");
    }
    let huge = json!({"queue": "default", "worker": "drove.noop", "args": "x".repeat(1_100_000)});
    let (status, answer) = post(n, "/api/jobs", huge).await;
    assert_eq!(status, 413, "{answer}");
    for bad in [
        json!({"queue": "default", "worker": "drove.noop", "priority": 12}),
        json!({"queue": "", "worker": "drove.noop"}),
        json!({"queue": "default", "worker": "drove.noop", "in_ms": 5, "at_ms": 5}),
        json!({"queue": "default", "worker": "drove.noop", "colour": "red"}),
        json!({"worker": "drove.noop"}),
    ] {
        let (status, answer) = post(n, "/api/jobs", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    let (status, _) = send_json("GET", &n.http_addr(), "/api/jobs/abc", &json!({}))
        .await
        .expect("GET");
    assert_eq!(status, 400);
    let (status, _) = send_json("GET", &n.http_addr(), "/api/jobs/999999", &json!({}))
        .await
        .expect("GET");
    assert_eq!(status, 404);
    let fine = enqueue(n, json!({"queue": "default", "worker": "drove.noop"})).await;
    wait_state(n, fine, "completed", LONG).await;
}
