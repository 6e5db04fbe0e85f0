//! The live dashboard in a real headless Chromium, on a 3-node cluster
//! whose admin API wants a token: sign in, see every panel fill with live
//! data, see a killed node turn down without a reload, start and terminate
//! a ticker, pause a queue cluster-wide and see jobs wait, change a pool's
//! bounds and see its runners follow. Screenshots go to `target/e2e/`.

// The WebDriver helpers below are test code outside `#[test]` functions,
// where clippy.toml's allowance does not reach.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use drove_tests::browser::Browser;
use drove_tests::sse::SseClient;
use drove_tests::stores::{sqlite_file, store_nodes};
use drove_tests::NodeProc;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);
const TOKEN: &str = "dashboard-test-token-8f2c";

/// An admin request with the token; status and JSON answer, or why it
/// got none.
async fn try_api(
    n: &NodeProc,
    method: &str,
    path: &str,
    body: Value,
) -> Result<(u16, Value), String> {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let auth = format!("Bearer {TOKEN}");
    let r = drove_admin::client::request(
        &n.http_addr(),
        method,
        path,
        &[("Authorization", auth.as_str())],
        &body,
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| format!("{method} {path} on {}: {e}", n.name))?;
    Ok((
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    ))
}

async fn api(n: &NodeProc, method: &str, path: &str, body: Value) -> (u16, Value) {
    try_api(n, method, path, body)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `script` in the page until it returns something truthy.
async fn until(c: &Client, what: &str, timeout: Duration, script: &str) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = c.execute(script, vec![]).await.unwrap_or(Value::Null);
        if !matches!(v, Value::Null | Value::Bool(false)) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn tab(c: &Client, panel: &str) {
    click(c, &format!("#tabs [data-panel={panel}]")).await;
}

/// Sets an input's or select's value as a user would.
async fn set(c: &Client, id: &str, value: &str) {
    c.execute(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];
         e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change'));",
        vec![json!(id), json!(value)],
    )
    .await
    .unwrap_or_else(|e| panic!("setting {id}: {e}"));
}

fn nodes(store: &str, token_file: &str) -> Vec<NodeProc> {
    let mut nodes = store_nodes(
        3,
        store,
        &[
            "--admin-token-file",
            token_file,
            "--pipeline",
            "mail:max_demand=2",
            "--record-events",
            "dash.now",
        ],
    );
    nodes[0].extra.extend(
        [
            "--pool",
            "render:min=0,max=1,max_concurrency=1,idle_ms=600000,backend=process",
        ]
        .map(String::from),
    );
    nodes
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_a_live_cluster_and_acts_on_it() {
    let _machine = drove_tests::timing_sensitive().await;
    let Some(browser) = Browser::open(
        "the_dashboard_shows_a_live_cluster_and_acts_on_it",
        1280,
        900,
    )
    .await
    else {
        return;
    };
    let (store, _store_file) = sqlite_file();
    let token_file = std::env::temp_dir().join(format!("drove-dash-{}", drove_tests::random_hex()));
    std::fs::write(&token_file, TOKEN).expect("token file");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&token_file, mode).expect("token file mode");
    let mut cluster = nodes(&store, &token_file.to_string_lossy());
    for n in cluster.iter_mut() {
        n.start();
    }
    drove_tests::wait_for(LONG, "3 members up", || async {
        let (status, c) = try_api(&cluster[0], "GET", "/api/cluster", Value::Null)
            .await
            .ok()?;
        let up = c["members"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["status"] == "up").count());
        (status == 200 && up == Some(3)).then_some(())
    })
    .await;
    let _subscriber = seed(&cluster).await;
    run(&browser, &mut cluster).await;
    browser.close().await;
    let _ = std::fs::remove_file(&token_file);
}

/// Data for every panel: names, a cache key, a subscriber, a child, a
/// queue, a pending and a handled event. The subscriber lives as long as
/// what is returned.
async fn seed(cluster: &[NodeProc]) -> SseClient {
    let names = json!({"names": ["dash.alpha", "dash.beta"], "meta": {"role": "demo"}});
    assert_eq!(
        api(&cluster[1], "POST", "/api/registry", names).await.0,
        201
    );
    let put = json!({"value": {"hello": "world"}, "ttl_ms": 600_000});
    assert_eq!(
        api(&cluster[1], "PUT", "/api/cache/dash.key", put).await.0,
        204
    );
    let child =
        json!({"type": "ticker", "restart": "permanent", "id": "seeded-ticker", "args": {}});
    assert_eq!(
        api(&cluster[2], "POST", "/api/children", child).await.0,
        201
    );
    let later = json!({"type": "dash.later", "payload": {"n": 1}, "delay_ms": 600_000});
    assert_eq!(api(&cluster[0], "POST", "/api/events", later).await.0, 201);
    let now = json!({"type": "dash.now", "payload": {"n": 2}});
    assert_eq!(api(&cluster[0], "POST", "/api/events", now).await.0, 201);
    let job = json!({"queue": "mail", "worker": "drove.noop"});
    assert_eq!(api(&cluster[0], "POST", "/api/jobs", job).await.0, 200);
    SseClient::connect_bearer(
        &cluster[2].http_addr(),
        "/api/pubsub/dash.topic/events",
        TOKEN,
    )
    .await
    .expect("a subscriber")
}

async fn run(browser: &Browser, cluster: &mut [NodeProc]) {
    let c = &browser.client;
    c.goto(&format!("http://{}/", cluster[0].http_addr()))
        .await
        .expect("open the dashboard");
    // No token yet: the login form.
    until(
        c,
        "the login form",
        LONG,
        "return !document.getElementById('login').hidden;",
    )
    .await;
    set(c, "token", TOKEN).await;
    click(c, "#login button[type=submit]").await;
    until(
        c,
        "3 members up",
        LONG,
        "return document.querySelectorAll('#members tr.up').length === 3 && document.getElementById('conn').textContent === 'live';",
    )
    .await;
    // A marker that a reload would wipe.
    c.execute("window.__noReload = 'still here';", vec![])
        .await
        .expect("marker");

    // Each panel renders live data.
    let panels = [
        ("registry", "#names tr[data-name='dash.alpha']"),
        (
            "children",
            "#children tr[data-child='seeded-ticker'].running",
        ),
        ("pubsub", "#topics tr[data-topic='dash.topic']"),
        ("cache", "#keys tr[data-key='dash.key']"),
        ("pools", "article[data-pool='render']"),
        ("jobs", "#queues tr[data-queue='mail']"),
        ("events", "#events-pending tr[data-event]"),
    ];
    for (panel, row) in panels {
        tab(c, panel).await;
        until(
            c,
            &format!("the {panel} panel's row {row}"),
            LONG,
            &format!("return document.querySelector(\"{row}\") !== null;"),
        )
        .await;
        browser.screenshot(&format!("dashboard-{panel}.png")).await;
    }
    tab(c, "pubsub").await;
    let counts = until(
        c,
        "n3's subscriber count on the pub/sub panel",
        LONG,
        "const r = document.querySelector(\"#topics tr[data-topic='dash.topic']\"); return r && r.cells[1].textContent.includes('n3: 1') && r.cells[1].textContent;",
    )
    .await;
    assert_eq!(counts, "n3: 1");
    tab(c, "events").await;
    until(
        c,
        "the handled event with its handler's attempt",
        LONG,
        "return [...document.querySelectorAll('#events-dispatched li')].some((li) => li.textContent.includes('drove.record: completed, 1 attempt'));",
    )
    .await;

    // kill -9 a node: its row turns down within 2 s, with no reload.
    tab(c, "cluster").await;
    browser.screenshot("dashboard-cluster.png").await;
    cluster[2].kill9();
    let killed = Instant::now();
    until(
        c,
        "n3's row to turn down",
        Duration::from_secs(10),
        "const r = document.querySelector('#members tr[data-member=n3] .status'); return r && r.textContent === 'down';",
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "n3 showed down after {took:?}"
    );
    let marker = c
        .execute("return window.__noReload;", vec![])
        .await
        .expect("marker");
    assert_eq!(marker, "still here", "the page reloaded");
    browser.screenshot("dashboard-node-down.png").await;

    children(c).await;
    jobs(c, &cluster[0]).await;
    pools(browser).await;
}

/// Start a ticker from the Children panel, then terminate it.
async fn children(c: &Client) {
    tab(c, "children").await;
    until(
        c,
        "the ticker type",
        LONG,
        "return [...document.getElementById('child-type').options].some((o) => o.value === 'ticker');",
    )
    .await;
    set(c, "child-type", "ticker").await;
    set(c, "child-name", "dash.ticker").await;
    set(c, "child-restart", "transient").await;
    click(c, "#child-start").await;
    let id = until(
        c,
        "the started ticker's row",
        LONG,
        "const r = [...document.querySelectorAll('#children tr[data-child].running')].find((r) => r.cells[2].textContent === 'dash.ticker'); return r && r.dataset.child;",
    )
    .await;
    let id = id.as_str().expect("an id").to_string();
    click(
        c,
        &format!("#children tr[data-child='{id}'] button.terminate"),
    )
    .await;
    until(
        c,
        "the terminated ticker's row to go",
        LONG,
        &format!("return document.querySelector(\"#children tr[data-child='{id}']\") === null;"),
    )
    .await;
}

/// Pause `mail` cluster-wide from the Jobs panel: enqueued jobs wait; resume: they run.
async fn jobs(c: &Client, n1: &NodeProc) {
    tab(c, "jobs").await;
    set(c, "pause-scope", "cluster").await;
    click(c, "#queues tr[data-queue='mail'] button.pause").await;
    until(
        c,
        "mail paused cluster-wide",
        LONG,
        "const r = document.querySelector(\"#queues tr[data-queue='mail'] .paused-cell\"); return r && r.textContent === 'cluster-wide';",
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, answer) = api(
            n1,
            "POST",
            "/api/jobs",
            json!({"queue": "mail", "worker": "drove.noop"}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        ids.push(answer["id"].as_u64().expect("an id"));
    }
    until(
        c,
        "3 available jobs on the mail row",
        LONG,
        "const r = document.querySelector(\"#queues tr[data-queue='mail'] td[data-state=available]\"); return r && r.textContent === '3';",
    )
    .await;
    // Pipelines on both live nodes poll the queue; paused, they take nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &ids {
        let (_, job) = api(n1, "GET", &format!("/api/jobs/{id}"), Value::Null).await;
        assert_eq!(
            job["state"], "available",
            "a job ran on a paused queue: {job}"
        );
    }
    set(c, "jobs-queue", "mail").await;
    set(c, "jobs-state", "available").await;
    until(
        c,
        "the waiting jobs in the job list",
        LONG,
        "return document.querySelectorAll('#jobs tr[data-job].available').length === 3;",
    )
    .await;
    click(c, "#queues tr[data-queue='mail'] button.resume").await;
    until(
        c,
        "the jobs to run after the resume",
        LONG,
        "const r = document.querySelector(\"#queues tr[data-queue='mail'] td[data-state=available]\"); return r && r.textContent === '0';",
    )
    .await;
    for id in &ids {
        let (_, job) = api(n1, "GET", &format!("/api/jobs/{id}"), Value::Null).await;
        assert_eq!(job["state"], "completed", "{job}");
    }
}

/// Raise the render pool's bounds to 2 and see two runners; lower max to
/// 1 and see one.
async fn pools(browser: &Browser) {
    let c = &browser.client;
    tab(c, "pools").await;
    set(c, "bounds-pool", "render").await;
    set(c, "bounds-min", "2").await;
    set(c, "bounds-max", "2").await;
    click(c, "#bounds-apply").await;
    until(
        c,
        "two ready runners",
        LONG,
        "return document.querySelectorAll(\"article[data-pool='render'] tr[data-runner].ready\").length === 2;",
    )
    .await;
    browser.screenshot("dashboard-pools.png").await;
    set(c, "bounds-min", "0").await;
    set(c, "bounds-max", "1").await;
    click(c, "#bounds-apply").await;
    until(
        c,
        "one runner left",
        LONG,
        "return document.querySelector(\"article[data-pool='render']\").dataset.runners === '1';",
    )
    .await;
    // The README's picture: the pool's charts after all of the above.
    browser.screenshot("dashboard.png").await;
}
