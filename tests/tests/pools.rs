//! Runner pools with real runner processes: each of FLAME's reported bugs
//! as a regression test (#56 never grew past one runner, #64 grew past max,
//! #60 single_use dropped below min, #49 orphaned runners), idle shrink,
//! deadlines and cancellation that stop the remote work, a runner that
//! dies mid-call, failed boots, another build's runner, and bad input.

// Helpers outside #[test] functions fail the test as loudly as an assert.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use drove_tests::{wait_for, NodeProc};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const LONG: Duration = Duration::from_secs(60);
const T: Duration = Duration::from_secs(20);

/// A node running these pools (`--pool` specs).
async fn node_with(specs: &[&str]) -> NodeProc {
    let mut n = NodeProc::new("n1", vec![], &drove_tests::random_hex());
    for spec in specs {
        n.extra.push("--pool".into());
        n.extra.push((*spec).to_string());
    }
    drove_tests::start_all_and_wait(std::slice::from_mut(&mut n), LONG).await;
    n
}

/// `POST /api/pools/{pool}/call`: status, JSON answer, and how long it took.
async fn call(n: &NodeProc, pool: &str, body: Value) -> (u16, Value, Duration) {
    call_at(n.http_addr(), pool.to_string(), body).await
}

async fn call_at(http: String, pool: String, body: Value) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, text) =
        drove_tests::send_json("POST", &http, &format!("/api/pools/{pool}/call"), &body)
            .await
            .expect("the admin API answers");
    let answer = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (status, answer, started.elapsed())
}

fn sleep_ms(ms: u64) -> Value {
    json!({ "fn": "drove.sleep", "args": { "ms": ms } })
}

/// The pool as `GET /api/pools` shows it.
async fn pool(n: &NodeProc, name: &str) -> Value {
    let (status, text) = drove_admin::client::get(&n.http_addr(), "/api/pools", T)
        .await
        .expect("GET /api/pools");
    assert_eq!(status, 200, "{text}");
    let pools: Vec<Value> = serde_json::from_str(&text).expect("pools JSON");
    pools
        .into_iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pool {name} in {text}"))
}

fn runners(p: &Value) -> Vec<Value> {
    p["runners"].as_array().cloned().unwrap_or_default()
}

fn ready(p: &Value) -> Vec<Value> {
    runners(p)
        .into_iter()
        .filter(|r| r["state"] == "ready")
        .collect()
}

/// Waits until the pool has exactly `n` ready runners; returns them.
async fn wait_ready(node: &NodeProc, name: &str, n: usize) -> Vec<Value> {
    wait_for(LONG, &format!("{n} ready runners in {name}"), || async {
        let p = pool(node, name).await;
        let r = ready(&p);
        (r.len() == n && runners(&p).len() == n).then_some(r)
    })
    .await
}

fn pid_of(runner: &Value) -> i32 {
    runner["pid"].as_i64().expect("a process runner has a pid") as i32
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// CPU ticks `pid` uses over `window`.
async fn cpu_over(pid: i32, window: Duration) -> u64 {
    let before = drove_tests::cpu_ticks(pid);
    tokio::time::sleep(window).await;
    drove_tests::cpu_ticks(pid).saturating_sub(before)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_boots_a_process_runner_that_joins_the_cluster_and_idles_down() {
    let _machine = drove_tests::shared_machine().await;
    let n = node_with(&["p:max=2,max_concurrency=2,idle_ms=800,backend=process"]).await;
    let (status, answer, _) = call(&n, "p", sleep_ms(5)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["slept_ms"], 5);
    let runner = answer["runner"].as_str().expect("runner name").to_string();
    assert_eq!(runner, "n1.p.1");
    let p = pool(&n, "p").await;
    let pid = pid_of(&runners(&p)[0]);
    assert!(alive(pid));
    assert_ne!(
        Some(pid),
        n.pid().map(|p| p.as_raw()),
        "the runner is its own process"
    );
    // It hello'd its parent first; gossip shows it up a round later.
    wait_for(T, "the runner to be an up member", || async {
        let cluster = n.cluster().await?;
        cluster
            .members
            .iter()
            .any(|m| m.name == runner && m.status == "up")
            .then_some(())
    })
    .await;
    // The same runner takes the next call while warm.
    let (_, again, _) = call(&n, "p", sleep_ms(1)).await;
    assert_eq!(again["runner"], runner.as_str());
    wait_for(T, "the idle runner to stop", || async {
        (runners(&pool(&n, "p").await).is_empty() && !alive(pid)).then_some(())
    })
    .await;
    let boots =
        drove_tests::metric(&n.http_addr(), "drove_pool_boots_total", &["pool=\"p\""]).await;
    assert_eq!(boots, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_grows_past_one_runner_and_never_past_max() {
    let _machine = drove_tests::timing_sensitive().await;
    let n = node_with(&["b:max=3,max_concurrency=1,idle_ms=60000,backend=process"]).await;
    let node_pid = n.pid().expect("running").as_raw();
    let burst = calls(&n, "b", sleep_ms(400), 12);
    let watch = async {
        let mut most = 0usize;
        let end = Instant::now() + Duration::from_secs(6);
        while Instant::now() < end {
            let p = pool(&n, "b").await;
            most = most.max(runners(&p).len()).max(runner_processes(node_pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        most
    };
    let (answers, most) = tokio::join!(burst, watch);
    for (status, answer, _) in &answers {
        assert_eq!(*status, 200, "{answer}");
    }
    assert!(most <= 3, "FLAME #64: {most} runners at once with max 3");
    // Which runner served which call depends on how fast each booted; that
    // the pool booted up to max for the burst does not.
    let boots =
        drove_tests::metric(&n.http_addr(), "drove_pool_boots_total", &["pool=\"b\""]).await;
    assert_eq!(boots, Some(3), "FLAME #56: the pool grows past one runner");
}

/// Child processes of `parent` (runners, since a node starts no others).
fn runner_processes(parent: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn single_use_runners_never_drop_below_min() {
    let _machine = drove_tests::shared_machine().await;
    let n = node_with(&["s:min=1,max=3,max_concurrency=1,single_use=true,backend=process"]).await;
    wait_ready(&n, "s", 1).await;
    let mut used = BTreeSet::new();
    for _ in 0..4 {
        let (status, answer, _) = call(&n, "s", sleep_ms(50)).await;
        assert_eq!(status, 200, "{answer}");
        used.insert(answer["runner"].as_str().expect("runner").to_string());
        // FLAME #60: right after a single use, a runner is up or booting.
        let p = pool(&n, "s").await;
        let live = runners(&p)
            .iter()
            .filter(|r| r["state"] != "draining")
            .count();
        assert!(live >= 1, "below min after a single use: {p}");
    }
    assert_eq!(used.len(), 4, "each call had a runner of its own: {used:?}");
    wait_ready(&n, "s", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_parent_leaves_no_runner_alive() {
    let _machine = drove_tests::shared_machine().await;
    let mut n = node_with(&[
        "k:min=2,max=2,backend=process",
        "e:min=1,max=1,exec=exec env {env} {exe} {args}",
    ])
    .await;
    let mut pids: Vec<i32> = wait_ready(&n, "k", 2).await.iter().map(pid_of).collect();
    pids.extend(wait_ready(&n, "e", 1).await.iter().map(pid_of));
    assert!(pids.iter().all(|p| alive(*p)));
    // No runner's command line or environment carries its credentials:
    // only the path of a 0600 file, which the runner removed once read.
    let cookie_hex: String = format!("\"cookie\":\"{}\"", n.cookie)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    for pid in &pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        for (what, bytes) in [("command line", &cmdline), ("environment", &environ)] {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains(&cookie_hex),
                "runner {pid}'s {what} holds the credentials"
            );
            assert!(
                !text.contains("DROVE_PARENT="),
                "runner {pid}'s {what}: {text}"
            );
        }
        let environ = String::from_utf8_lossy(&environ);
        let file = environ
            .split('\0')
            .find_map(|kv| kv.strip_prefix("DROVE_PARENT_FILE="))
            .expect("the runner was given a parent file");
        let file = file.trim_matches('\'');
        assert!(
            !std::path::Path::new(file).exists(),
            "runner {pid} left its parent file {file}"
        );
    }
    n.kill9();
    // FLAME #49: no orphans.
    wait_for(
        Duration::from_secs(5),
        "every runner to exit after its parent's kill -9",
        || async { pids.iter().all(|p| !alive(*p)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_runners_shrink_to_min_and_min_runners_stay_with_no_children_placed_on_them() {
    let _machine = drove_tests::shared_machine().await;
    let n = node_with(&["m:min=1,max=3,max_concurrency=1,idle_ms=500,backend=process"]).await;
    wait_ready(&n, "m", 1).await;
    for (status, answer, _) in calls(&n, "m", sleep_ms(600), 3).await {
        assert_eq!(status, 200, "{answer}");
    }
    // Two callers found the min runner busy: the pool grew by two (which
    // runner served whom depends on boot times).
    let boots =
        drove_tests::metric(&n.http_addr(), "drove_pool_boots_total", &["pool=\"m\""]).await;
    assert_eq!(boots, Some(3));
    for _ in 0..6 {
        drove_tests::spawn_child(
            &n.http_addr(),
            json!({"type": "ticker", "restart": "transient", "args": {"interval_ms": 1000}}),
        )
        .await;
    }
    let children = drove_tests::children_at(&n.http_addr(), false)
        .await
        .expect("children");
    assert!(
        children.iter().all(|c| c.node == "n1"),
        "a runner declares no child types: {children:?}"
    );
    let kept = wait_ready(&n, "m", 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = ready(&pool(&n, "m").await);
    assert_eq!(still.len(), 1);
    assert_eq!(still[0]["name"], kept[0]["name"], "the min runner stays");
}

/// `k` calls at once.
async fn calls(n: &NodeProc, pool: &str, body: Value, k: usize) -> Vec<(u16, Value, Duration)> {
    let handles: Vec<_> = (0..k)
        .map(|_| tokio::spawn(call_at(n.http_addr(), pool.to_string(), body.clone())))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("call task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_or_a_dropped_caller_stops_the_remote_work_and_frees_the_slot() {
    let _machine = drove_tests::timing_sensitive().await;
    let n = node_with(&["t:max=1,max_concurrency=1,idle_ms=60000,backend=process"]).await;
    let hash_a_gib =
        json!({ "fn": "drove.sha256", "args": { "bytes": 1u64 << 30 }, "timeout_ms": 400 });
    let (status, answer, took) = call(&n, "t", hash_a_gib).await;
    assert_eq!(status, 504, "{answer}");
    assert!(
        took < Duration::from_secs(5),
        "the timeout answered after {took:?}"
    );
    let pid = pid_of(&ready(&pool(&n, "t").await)[0]);
    let burnt = cpu_over(pid, Duration::from_secs(1)).await;
    assert!(
        burnt <= 15,
        "the runner still hashes after the deadline: {burnt} ticks in 1 s"
    );
    // The one slot is free again: this call does not wait.
    let (status, answer, took) = call(&n, "t", sleep_ms(1)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        took < Duration::from_secs(3),
        "waited {took:?} for a freed slot"
    );

    // A caller that goes away: the HTTP connection closes mid-call.
    let body =
        json!({ "fn": "drove.sha256", "args": { "bytes": 1u64 << 30 }, "timeout_ms": 60000 })
            .to_string();
    let mut conn = tokio::net::TcpStream::connect(n.http_addr())
        .await
        .expect("connect");
    let request = format!(
        "POST /api/pools/t/call HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        n.http_addr(),
        body.len()
    );
    conn.write_all(request.as_bytes()).await.expect("send");
    let working = cpu_over(pid, Duration::from_millis(700)).await;
    assert!(
        working >= 20,
        "the runner should be hashing: {working} ticks"
    );
    drop(conn);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let burnt = cpu_over(pid, Duration::from_secs(1)).await;
    assert!(
        burnt <= 15,
        "the runner still hashes after its caller left: {burnt} ticks in 1 s"
    );
    let (status, answer, took) = call(&n, "t", sleep_ms(1)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        took < Duration::from_secs(3),
        "waited {took:?} for a freed slot"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_that_dies_mid_call_fails_its_caller_at_once_and_is_replaced() {
    let _machine = drove_tests::shared_machine().await;
    let n = node_with(&["x:min=1,max=1,max_concurrency=2,backend=process"]).await;
    let first = wait_ready(&n, "x", 1).await;
    let first_name = first[0]["name"].as_str().expect("name").to_string();
    let slow = tokio::spawn({
        let http = n.http_addr();
        async move {
            let started = Instant::now();
            let r =
                drove_tests::send_json("POST", &http, "/api/pools/x/call", &sleep_ms(20_000)).await;
            (r, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, answer, took) = call(&n, "x", json!({ "fn": "drove.exit", "args": {} })).await;
    assert_eq!(status, 502, "{answer}");
    assert!(took < Duration::from_secs(3), "the caller waited {took:?}");
    let error = answer["error"].as_str().expect("error");
    assert!(
        error.contains(&first_name),
        "the error names the runner: {error}"
    );
    let (other, took) = slow.await.expect("slow call");
    let (status, text) = other.expect("answer");
    assert_eq!(
        status, 502,
        "the other caller on that runner fails too: {text}"
    );
    assert!(
        took < Duration::from_secs(5),
        "and at once, not at its deadline: {took:?}"
    );
    wait_for(T, "a new runner to replace it", || async {
        let r = ready(&pool(&n, "x").await);
        (r.len() == 1 && r[0]["name"] != first_name.as_str()).then_some(())
    })
    .await;
    let (status, answer, _) = call(&n, "x", sleep_ms(1)).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_boot_that_fails_gives_a_clear_error_and_backs_off() {
    let _machine = drove_tests::shared_machine().await;
    let n =
        node_with(&["bad:max=2,boot_timeout_ms=5000,exec=exec /nonexistent/drove-runner {env}"])
            .await;
    let (status, answer, took) = call(&n, "bad", sleep_ms(1)).await;
    assert_eq!(status, 503, "{answer}");
    let error = answer["error"].as_str().expect("error");
    assert!(
        error.contains("could not boot") && error.contains("127"),
        "{error}"
    );
    assert!(took < Duration::from_secs(3), "the caller waited {took:?}");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let (status, _, _) = call(&n, "bad", sleep_ms(1)).await;
        assert_eq!(status, 503);
    }
    let boots = drove_tests::metric(&n.http_addr(), "drove_pool_boots_total", &["pool=\"bad\""])
        .await
        .expect("metrics");
    let failures = drove_tests::metric(
        &n.http_addr(),
        "drove_pool_boot_failures_total",
        &["pool=\"bad\""],
    )
    .await
    .expect("metrics");
    assert!(failures >= 2, "{failures} failed boots");
    // Backing off from 200 ms, doubling: a handful of boots in 2 s, not one per call.
    assert!(boots <= 8, "{boots} boots in about 2 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_of_another_build_is_refused() {
    let _machine = drove_tests::shared_machine().await;
    let secret = drove_tests::secret_file();
    let other = drove_tests::download_manager_bin();
    let spec = format!(
        "other:max=1,boot_timeout_ms=20000,exec=exec env {{env}} {} --name x --secret-file {} --report-pool none",
        other.display(),
        secret.display()
    );
    let n = node_with(&[&spec]).await;
    let (status, answer, _) = call(&n, "other", sleep_ms(1)).await;
    assert_eq!(status, 503, "{answer}");
    let error = answer["error"].as_str().expect("error");
    assert!(error.contains("is build"), "{error}");
    wait_for(T, "the refused runner to go", || async {
        runners(&pool(&n, "other").await).is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_bounds_change_at_run_time() {
    let _machine = drove_tests::shared_machine().await;
    let n = node_with(&["q:max=3,max_concurrency=1,idle_ms=60000,backend=process"]).await;
    let cases = [
        ("nopool", sleep_ms(1), 404),
        ("q", json!({ "fn": "no.such.fn", "args": {} }), 404),
        (
            "q",
            json!({ "fn": "drove.sleep", "args": { "ms": "soon" } }),
            400,
        ),
        (
            "q",
            json!({ "fn": "drove.sleep", "args": { "ms": 1, "extra": true } }),
            400,
        ),
        (
            "q",
            json!({ "fn": "drove.sleep", "args": { "ms": 1 }, "timeout_ms": 0 }),
            400,
        ),
        ("q", json!({ "args": {} }), 400),
    ];
    for (pool_name, body, want) in cases {
        let (status, answer, _) = call(&n, pool_name, body.clone()).await;
        assert_eq!(status, want, "{body} answered {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let huge = json!({ "fn": "drove.sleep", "args": { "ms": 1, "pad": "x".repeat(5 << 20) } });
    let (status, _, _) = call(&n, "q", huge).await;
    assert_eq!(status, 413, "a huge payload is refused");
    let (status, text) = drove_tests::send_json(
        "PUT",
        &n.http_addr(),
        "/api/pools/q",
        &json!({"min": 3, "max": 1}),
    )
    .await
    .expect("PUT");
    assert_eq!(status, 400, "{text}");
    // One request must not boot 200 processes: max has a ceiling (64 by
    // default), and nothing boots.
    let (status, text) = drove_tests::send_json(
        "PUT",
        &n.http_addr(),
        "/api/pools/q",
        &json!({"min": 200, "max": 200}),
    )
    .await
    .expect("PUT");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("max_limit"), "{text}");
    assert_eq!(pool(&n, "q").await["booting"], 0);

    // Three runners, then max lowered to 1: the idle ones stop.
    for (status, answer, _) in calls(&n, "q", sleep_ms(300), 3).await {
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(ready(&pool(&n, "q").await).len(), 3);
    let (status, text) = drove_tests::send_json(
        "PUT",
        &n.http_addr(),
        "/api/pools/q",
        &json!({"min": 0, "max": 1}),
    )
    .await
    .expect("PUT");
    assert_eq!(status, 200, "{text}");
    let p = wait_for(T, "runners to follow the lower max", || async {
        let p = pool(&n, "q").await;
        (runners(&p).len() == 1).then_some(p)
    })
    .await;
    assert_eq!(p["max"], 1);
    let out = std::process::Command::new(drove_tests::drove_bin())
        .args(["pools", "--http", &n.http_addr()])
        .output()
        .expect("drove pools");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("q") && text.contains("0/1"),
        "{text}"
    );
}
