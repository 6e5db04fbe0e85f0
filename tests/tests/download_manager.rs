//! The download-manager demo through its JSON API, with real node
//! processes: the API's contract and bad requests, and 200 users whose
//! downloads all complete exactly once, with correct files, while a node
//! is killed midway.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use drove_admin::client::{request, Response};
use drove_tests::{children_at, wait_for, NodeProc};
use serde_json::Value;
use sha2::{Digest, Sha256};

const LONG: Duration = Duration::from_secs(60);

/// `n` download-manager nodes with these download settings.
fn dm_nodes(n: usize, steps: u32, step_ms: u64, file_kb: usize) -> Vec<NodeProc> {
    let cookie = format!("dm-{}", rand::random::<u64>());
    let secret = drove_tests::secret_file().to_string_lossy().into_owned();
    let (steps, step_ms, file_kb) = (steps.to_string(), step_ms.to_string(), file_kb.to_string());
    drove_tests::download_manager_nodes(
        n,
        "n",
        &cookie,
        &[
            "--steps",
            &steps,
            "--step-ms",
            &step_ms,
            "--file-kb",
            &file_kb,
            "--secret-file",
            &secret,
            // Every test user comes from this one address: limits per
            // client are tested in demo_attacks.rs.
            "--client-rps",
            "1000000",
            "--client-starts-per-min",
            "1000000",
            "--client-reports",
            "1000000",
        ],
    )
}

/// A browser-like user: keeps the session cookie it is given.
#[derive(Default, Clone)]
struct User {
    cookie: Option<String>,
}

impl User {
    async fn call(&mut self, http: &str, method: &str, path: &str) -> Response {
        let cookie = self.cookie.clone().map(|c| format!("dm_session={c}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        let r = request(http, method, path, &headers, "", Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on {http}: {e}"));
        if let Some(v) = r.header("set-cookie") {
            let value = v.split(';').next().unwrap_or_default();
            self.cookie = value.strip_prefix("dm_session=").map(str::to_string);
        }
        r
    }

    async fn json(&mut self, http: &str, method: &str, path: &str) -> (u16, Value) {
        let r = self.call(http, method, path).await;
        let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn api_contract_and_bad_requests() {
    let _machine = drove_tests::shared_machine().await;
    let mut nodes = dm_nodes(2, 4, 300, 8);
    drove_tests::start_all_and_wait(&mut nodes, LONG).await;
    let (a, b) = (nodes[0].app_addr(), nodes[1].app_addr());
    let mut user = User::default();
    let (status, body) = user.json(&a, "GET", "/api/downloads/current").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string(), "{body}");
    assert!(user.cookie.is_some(), "a new user gets a session cookie");

    let (status, d) = user.json(&a, "POST", "/api/downloads").await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(d["state"], "pending");
    let id = d["id"].as_str().expect("id").to_string();
    // One at a time, whichever node is asked.
    let (status, body) = user.json(&b, "POST", "/api/downloads").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["download"]["id"], id.as_str());
    let (status, d) = user.json(&b, "GET", "/api/downloads/current").await;
    assert_eq!((status, d["id"].as_str()), (200, Some(id.as_str())));
    let (status, _) = user.json(&b, "GET", "/api/downloads/current/file").await;
    assert_eq!(status, 409, "not ready yet");

    // A forged or foreign cookie is a new user, who sees nothing.
    let mut forged = User {
        cookie: user.cookie.clone().map(|c| c.replace('.', ".00")),
    };
    let (status, _) = forged.json(&a, "GET", "/api/downloads/current").await;
    assert_eq!(status, 404);
    assert_ne!(forged.cookie, user.cookie);

    // Deleting clears it everywhere and the button comes back.
    let (status, _) = user.json(&a, "DELETE", "/api/downloads/current").await;
    assert_eq!(status, 204);
    let (status, _) = user.json(&a, "GET", "/api/downloads/current").await;
    assert_eq!(status, 404, "read your own delete");
    let seen = user.clone();
    wait_for(Duration::from_secs(5), "the delete to reach the other node", || {
        let (b, mut u) = (b.clone(), seen.clone());
        async move { (u.json(&b, "GET", "/api/downloads/current").await.0 == 404).then_some(()) }
    })
    .await;
    let (status, _) = user.json(&b, "DELETE", "/api/downloads/current").await;
    assert_eq!(status, 404);
    let (status, _) = user.json(&b, "GET", "/api/downloads/current/file").await;
    assert_eq!(status, 404);
    let (status, d) = user.json(&b, "POST", "/api/downloads").await;
    assert_eq!(status, 201, "{d}");
    assert_ne!(d["id"].as_str(), Some(id.as_str()));

    // Wrong methods and unknown paths get JSON errors.
    let (status, body) = user.json(&a, "PUT", "/api/downloads").await;
    assert_eq!(status, 405);
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = user.json(&a, "GET", "/api/nothing").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string(), "{body}");
}

/// What a downloaded file says about itself, checked.
fn check_file(r: &Response, id: &str, steps: u32) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-download-id"), Some(id));
    let sha: String = Sha256::digest(r.body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.header("x-content-sha256"),
        Some(sha.as_str()),
        "checksum of {id}"
    );
    assert!(r.body.contains(&format!("# download_id: {id}\n")));
    let mut seen_steps = Vec::new();
    let mut nodes: Vec<String> = Vec::new();
    for line in r.body.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 5, "bad row {line:?} in {id}");
        let Ok(step) = cols[0].parse::<u32>() else {
            panic!("bad step in {line:?}")
        };
        if seen_steps.last() != Some(&step) {
            seen_steps.push(step);
        }
        if !nodes.iter().any(|n| n == cols[2]) {
            nodes.push(cols[2].to_string());
        }
    }
    assert_eq!(seen_steps, (0..steps).collect::<Vec<_>>(), "steps of {id}");
    nodes
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_users_complete_exactly_once_through_a_node_kill() {
    let _machine = drove_tests::timing_sensitive().await;
    const USERS: usize = 200;
    const STEPS: u32 = 10;
    let mut nodes = dm_nodes(3, STEPS, 400, 20);
    drove_tests::start_all_and_wait(&mut nodes, LONG).await;
    let https: Vec<String> = nodes.iter().map(|n| n.app_addr()).collect();
    let admins: Vec<String> = nodes.iter().map(|n| n.http_addr()).collect();
    let mut users = vec![User::default(); USERS];
    let mut ids = Vec::new();
    let mut trackers: BTreeMap<String, usize> = BTreeMap::new();
    for (i, u) in users.iter_mut().enumerate() {
        let (status, d) = u.json(&https[i % 3], "POST", "/api/downloads").await;
        assert_eq!(status, 201, "{d}");
        ids.push(d["id"].as_str().expect("id").to_string());
        *trackers
            .entry(d["tracker_node"].as_str().expect("node").to_string())
            .or_default() += 1;
    }
    // Midway, kill the node running the most trackers.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim_name = trackers
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(n, _)| n.clone())
        .expect("trackers");
    let victim = nodes
        .iter()
        .position(|n| n.name == victim_name)
        .expect("victim");
    nodes[victim].kill9();
    let survivors: Vec<String> = (0..3)
        .filter(|&i| i != victim)
        .map(|i| https[i].clone())
        .collect();
    let survivor_admins: Vec<String> = (0..3)
        .filter(|&i| i != victim)
        .map(|i| admins[i].clone())
        .collect();

    // Until every download is ready: no tracker ever on two ledgers.
    let mut ready: HashMap<usize, Value> = HashMap::new();
    let deadline = std::time::Instant::now() + LONG;
    while ready.len() < USERS {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {USERS} ready",
            ready.len()
        );
        let mut on: HashMap<String, usize> = HashMap::new();
        for http in &survivor_admins {
            for c in children_at(http, true).await.unwrap_or_default() {
                *on.entry(c.id).or_default() += 1;
            }
        }
        if let Some((id, n)) = on.iter().find(|(_, n)| **n > 1) {
            panic!("tracker {id} runs on {n} nodes");
        }
        for (i, u) in users.iter_mut().enumerate() {
            if ready.contains_key(&i) {
                continue;
            }
            let (status, d) = u
                .json(&survivors[i % 2], "GET", "/api/downloads/current")
                .await;
            assert_eq!(status, 200, "user {i} lost the download: {d}");
            assert_eq!(
                d["id"].as_str(),
                Some(ids[i].as_str()),
                "user {i}'s download changed"
            );
            assert_ne!(d["state"], "error", "{d}");
            if d["state"] == "ready" {
                ready.insert(i, d);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Every file checks out; the moved ones were made by two nodes.
    let mut moved = 0;
    for (i, u) in users.iter_mut().enumerate() {
        let r = u
            .call(
                &survivors[(i + 1) % 2],
                "GET",
                "/api/downloads/current/file",
            )
            .await;
        let producers = check_file(&r, &ids[i], STEPS);
        if producers.len() > 1 {
            assert!(
                producers[0].starts_with(&format!("{victim_name}#")),
                "{producers:?}"
            );
            moved += 1;
        }
        // A GET changes nothing; the page's DELETE clears the report on
        // the node that served it at once, and on the other as soon as the
        // delete's delta arrives.
        let (status, _) = u
            .json(&survivors[(i + 1) % 2], "GET", "/api/downloads/current")
            .await;
        assert_eq!(status, 200, "fetching the file changes nothing");
        let (status, _) = u
            .json(&survivors[(i + 1) % 2], "DELETE", "/api/downloads/current")
            .await;
        assert_eq!(status, 204);
        let (status, _) = u
            .json(&survivors[(i + 1) % 2], "GET", "/api/downloads/current")
            .await;
        assert_eq!(status, 404, "read your own delete");
        let other = survivors[i % 2].clone();
        let again = u.clone();
        wait_for(
            Duration::from_secs(5),
            "the clear to reach the other node",
            || {
                let (other, mut again) = (other.clone(), again.clone());
                async move {
                    let (status, _) = again.json(&other, "GET", "/api/downloads/current").await;
                    (status == 404).then_some(())
                }
            },
        )
        .await;
    }
    assert!(moved > 0, "no download was moved by the kill");
    // Nothing is left running or recorded.
    for http in &survivor_admins {
        let all = children_at(http, false).await.expect("children");
        assert!(
            all.iter().all(|c| !c.id.starts_with("download:")),
            "{all:?}"
        );
    }
}

/// A ready report nobody fetches expires after its TTL: a durable event
/// the tracker's node signalled, handled by a survivor after that node
/// was killed.
#[tokio::test(flavor = "multi_thread")]
async fn an_unfetched_report_expires_after_its_node_is_killed() {
    let _machine = drove_tests::shared_machine().await;
    let (store, _file) = drove_tests::stores::sqlite_file();
    let mut nodes = dm_nodes(3, 3, 100, 4);
    for n in nodes.iter_mut() {
        n.extra
            .extend(["--jobs", &store, "--report-ttl-ms", "3000"].map(String::from));
    }
    drove_tests::start_all_and_wait(&mut nodes, LONG).await;
    let https: Vec<String> = nodes.iter().map(|n| n.app_addr()).collect();
    let mut user = User::default();
    let (status, d) = user.json(&https[0], "POST", "/api/downloads").await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().expect("id").to_string();
    let ready = wait_for(LONG, "the report to be ready", || {
        let (http, mut u) = (https[0].clone(), user.clone());
        async move {
            let (status, d) = u.json(&http, "GET", "/api/downloads/current").await;
            (status == 200 && d["state"] == "ready").then_some(d)
        }
    })
    .await;
    let ready_at = std::time::Instant::now();
    // The node that sealed the file signalled its expiry: kill it.
    let tracker = ready["tracker_node"].as_str().expect("tracker node");
    let victim = nodes
        .iter()
        .position(|n| tracker == n.name || tracker.starts_with(&format!("{}#", n.name)))
        .expect("the tracker's node is ours");
    nodes[victim].kill9();
    let survivor = https[(victim + 1) % 3].clone();
    let (status, d) = user.json(&survivor, "GET", "/api/downloads/current").await;
    assert_eq!(status, 200, "not expired before its time: {d}");
    assert_eq!(d["id"].as_str(), Some(id.as_str()));
    wait_for(LONG, "the report to expire", || {
        let (http, mut u) = (survivor.clone(), user.clone());
        async move {
            let (status, _) = u.json(&http, "GET", "/api/downloads/current").await;
            (status == 404).then_some(())
        }
    })
    .await;
    assert!(
        ready_at.elapsed() >= Duration::from_millis(2500),
        "expired after {:?}",
        ready_at.elapsed()
    );
    let (status, _) = user
        .json(&survivor, "GET", "/api/downloads/current/file")
        .await;
    assert_eq!(status, 404, "the file went with it");
}

/// `download-manager demo` starts a local cluster, prints the URLs, serves
/// the page, and stops every node on Ctrl-C (SIGINT).
#[tokio::test(flavor = "multi_thread")]
async fn demo_command_starts_and_stops_a_local_cluster() {
    let _machine = drove_tests::shared_machine().await;
    // Three free consecutive ports for each range, from a random start.
    let free = |from: u16| {
        (from..from + 3).all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
        })
    };
    let mut base = 20_000 + (rand::random::<u16>() % 20_000);
    while !(free(base) && free(base + 3) && free(base + 6)) {
        base = 20_000 + (rand::random::<u16>() % 20_000);
    }
    let (base_port, base_http) = (base, base + 3);
    let mut demo = tokio::process::Command::new(drove_tests::download_manager_bin())
        .args([
            "demo",
            "--base-port",
            &base_port.to_string(),
            "--base-http",
            &base_http.to_string(),
            "--base-admin",
            &(base + 6).to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the demo");
    let stdout = demo.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut urls = Vec::new();
    let deadline = std::time::Instant::now() + LONG;
    while urls.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no URLs printed: {urls:?}"
        );
        let line = tokio::time::timeout(LONG, lines.next_line())
            .await
            .expect("output")
            .expect("read")
            .expect("the demo printed its URLs");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            urls.push(url.to_string());
        }
    }
    for (i, url) in urls.iter().enumerate() {
        let http = url.trim_start_matches("http://").trim_end_matches('/');
        assert_eq!(http, format!("127.0.0.1:{}", base_http + i as u16));
        let r = request(http, "GET", "/", &[], "", Duration::from_secs(10))
            .await
            .expect("GET /");
        assert_eq!(r.status, 200);
        assert!(r.body.contains("drove download manager"));
    }
    let pid = nix::unistd::Pid::from_raw(demo.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = tokio::time::timeout(Duration::from_secs(20), demo.wait())
        .await
        .expect("the demo stops on SIGINT")
        .expect("status");
    assert!(status.success(), "{status}");
    for i in 0..3u16 {
        let http = format!("127.0.0.1:{}", base_http + i);
        assert!(
            request(&http, "GET", "/", &[], "", Duration::from_secs(2))
                .await
                .is_err(),
            "{http} still answers"
        );
    }
}

/// One demo node and one user who started a download on it: the nodes
/// (kept alive by the caller), the app and admin addresses, the user and
/// the download's id.
async fn one_node_download(
    steps: u32,
    step_ms: u64,
    file_kb: usize,
) -> (Vec<NodeProc>, String, String, User, String) {
    let mut nodes = dm_nodes(1, steps, step_ms, file_kb);
    drove_tests::start_all_and_wait(&mut nodes, LONG).await;
    let (app, admin) = (nodes[0].app_addr(), nodes[0].http_addr());
    let mut user = User::default();
    let (status, d) = user.json(&app, "POST", "/api/downloads").await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {d}"))
        .to_string();
    (nodes, app, admin, user, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_runner_killed_mid_step_gives_a_retried_step_not_a_failed_download() {
    let _machine = drove_tests::shared_machine().await;
    const STEPS: u32 = 12;
    let (_nodes, app, admin, mut user, id) = one_node_download(STEPS, 250, 12).await;
    let mut killed = std::collections::BTreeSet::new();
    for _ in 0..2 {
        let pid = wait_for(LONG, "a report runner", || {
            let (admin, killed) = (admin.clone(), killed.clone());
            async move {
                let (_, text) = drove_admin::client::get(&admin, "/api/pools", LONG)
                    .await
                    .ok()?;
                let pools: Vec<Value> = serde_json::from_str(&text).ok()?;
                let report = pools.into_iter().find(|p| p["name"] == "report")?;
                report["runners"]
                    .as_array()?
                    .iter()
                    .filter(|r| r["state"] == "ready")
                    .filter_map(|r| r["pid"].as_i64())
                    .find(|pid| !killed.contains(pid))
            }
        })
        .await;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        killed.insert(pid);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let d = wait_for(LONG, "the download to be ready", || {
        let (mut user, app) = (user.clone(), app.clone());
        async move {
            let (_, d) = user.json(&app, "GET", "/api/downloads/current").await;
            (d["state"] == "ready").then_some(d)
        }
    })
    .await;
    let step_runner = d["step_runner"]
        .as_str()
        .expect("the page learns the step's runner");
    assert!(step_runner.starts_with("n1.report."), "{step_runner}");
    let r = user.call(&app, "GET", "/api/downloads/current/file").await;
    check_file(&r, &id, STEPS);
    let runners: std::collections::BTreeSet<&str> = r
        .body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .filter_map(|l| l.split(',').nth(3))
        .collect();
    assert!(
        runners.len() >= 2 && runners.iter().all(|r| r.starts_with("n1.report.")),
        "each row names the runner that rendered it: {runners:?}"
    );
}

/// A chunk lost after it was written (as when its writer died before its
/// delta left, while the checkpoint after it got out) is rendered again
/// before the seal: the download completes and the file checks out.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_chunk_is_rendered_again_before_the_seal() {
    let _machine = drove_tests::shared_machine().await;
    const STEPS: u32 = 8;
    let (_nodes, app, admin, mut user, id) = one_node_download(STEPS, 300, 8).await;
    let chunk = format!("/api/cache/dm:chunk:{id}:1");
    wait_for(LONG, "chunk 1 to be written", || async {
        let (status, _) = drove_admin::client::get(&admin, &chunk, LONG).await.ok()?;
        (status == 200).then_some(())
    })
    .await;
    let (status, body) = drove_tests::send_json("DELETE", &admin, &chunk, &serde_json::json!({}))
        .await
        .expect("DELETE");
    assert!(status == 204 || status == 200, "{status} {body}");
    let d = wait_for(LONG, "the download to be ready", || {
        let (mut user, app) = (user.clone(), app.clone());
        async move {
            let (_, d) = user.json(&app, "GET", "/api/downloads/current").await;
            assert_ne!(d["state"], "error", "{d}");
            (d["state"] == "ready").then_some(d)
        }
    })
    .await;
    assert_eq!(d["progress"], 100);
    let r = user.call(&app, "GET", "/api/downloads/current/file").await;
    check_file(&r, &id, STEPS);
}
