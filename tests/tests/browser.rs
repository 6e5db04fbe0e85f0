//! The download-manager demo in a real headless Chromium, driven over
//! WebDriver (chromedriver): click, watch progress, kill the node running
//! the tracker midway, kill the node serving the page, fetch the file.
//!
//! The browser comes from `drove_tests::browser` (skipped without
//! chromium, except under `CI=true`).

// The WebDriver helpers below are test code outside `#[test]` functions,
// where clippy.toml's allowance does not reach.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use drove_tests::browser::Browser;
use drove_tests::NodeProc;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const LONG: Duration = Duration::from_secs(60);

/// The page's view: state, progress, tracker node, serving node, link.
async fn page_state(c: &Client) -> Value {
    c.execute(
        r#"const t = (id) => document.getElementById(id).textContent;
           const busy = !document.getElementById("busy").hidden;
           return { busy, state: t("state"), fill: document.getElementById("fill").style.width,
                    tracker: t("tracker"), served: t("served"), conn: t("conn"),
                    link: document.getElementById("link").hidden ? null : document.getElementById("link").href };"#,
        vec![],
    )
    .await
    .unwrap_or(Value::Null)
}

fn progress(v: &Value) -> u64 {
    v["fill"]
        .as_str()
        .and_then(|f| f.trim_end_matches('%').parse::<f64>().ok())
        .map(|p| p as u64)
        .unwrap_or(0)
}

/// Polls the page until `done` holds, checking on every look that the
/// progress it shows never goes backwards.
async fn watch(c: &Client, highest: &mut u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LONG;
    loop {
        let v = page_state(c).await;
        if v["busy"] == true {
            let p = progress(&v);
            assert!(
                p >= *highest,
                "progress went back from {highest} to {p}: {v}"
            );
            *highest = p;
        }
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; page: {v}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_survives_node_kills_in_a_real_browser() {
    let _machine = drove_tests::timing_sensitive().await;
    let Some(browser) =
        Browser::open("demo_survives_node_kills_in_a_real_browser", 1100, 640).await
    else {
        return;
    };
    let mut nodes = dm_nodes();
    for n in nodes.iter_mut() {
        n.start();
    }
    for n in &nodes {
        drove_tests::wait_for(LONG, "the demo cluster to form", || async {
            let c = n.cluster().await?;
            (c.members.iter().filter(|m| m.status == "up").count() == 3).then_some(())
        })
        .await;
    }
    run(&browser, &mut nodes).await;
    browser.close().await;
}

fn dm_nodes() -> Vec<NodeProc> {
    let cookie = format!("browser-{}", rand::random::<u64>());
    let secret = drove_tests::secret_file().to_string_lossy().into_owned();
    drove_tests::download_manager_nodes(
        3,
        "n",
        &cookie,
        &[
            "--steps",
            "16",
            "--step-ms",
            "700",
            "--file-kb",
            "64",
            "--secret-file",
            &secret,
        ],
    )
}

async fn run(browser: &Browser, nodes: &mut [NodeProc]) {
    let c = &browser.client;
    let url = |i: usize| format!("http://{}/", nodes[i].app_addr());
    c.goto(&url(0)).await.expect("open the page");
    let mut highest = 0;
    watch(c, &mut highest, "the page to connect", |v| {
        v["served"] == "n1"
    })
    .await;
    c.find(Locator::Css("#go"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("click");
    let v = watch(c, &mut highest, "processing", |v| {
        v["state"] == "processing"
    })
    .await;
    let mut tracker = v["tracker"].as_str().unwrap_or_default().to_string();
    let id = c
        .find(Locator::Css("#did"))
        .await
        .expect("id")
        .text()
        .await
        .expect("text");
    // The page must be served by a node that does not run the tracker:
    // open it on another node if n1 runs it, else reload it. Either way
    // the same download shows (shared session and state).
    let serving = if tracker == "n1" { 1 } else { 0 };
    if serving == 0 {
        c.refresh().await.expect("reload");
    } else {
        c.goto(&url(serving)).await.expect("open on n2");
    }
    let name = nodes[serving].name.clone();
    let v = watch(c, &mut highest, "the same download after reload", |v| {
        v["served"] == name.as_str() && v["state"] == "processing"
    })
    .await;
    assert_eq!(
        c.find(Locator::Css("#did"))
            .await
            .expect("id")
            .text()
            .await
            .expect("text"),
        id
    );
    assert!(
        progress(&v) >= highest,
        "a reload showed less progress: {v}"
    );
    watch(c, &mut highest, "some progress", |v| progress(v) >= 20).await;

    // Kill the node that runs the tracker.
    let victim = nodes
        .iter()
        .position(|n| n.name == tracker)
        .expect("tracker node");
    nodes[victim].kill9();
    let before = highest;
    let v = watch(c, &mut highest, "the tracker to move and progress", |v| {
        v["tracker"] != tracker.as_str() && progress(v) > before
    })
    .await;
    tracker = v["tracker"].as_str().unwrap_or_default().to_string();
    browser.screenshot("download-manager-failover.png").await;

    // Kill the node serving the page: it reconnects to the last one.
    nodes[serving].kill9();
    let last = (0..3)
        .find(|&i| i != victim && i != serving)
        .expect("a third node");
    let v = watch(c, &mut highest, "the page to reconnect and finish", |v| {
        v["served"] == nodes[last].name.as_str() && v["state"] == "ready" && v["link"].is_string()
    })
    .await;
    assert_eq!(
        v["tracker"],
        nodes[last].name.as_str(),
        "only one node is left: {v} (tracker was {tracker})"
    );
    browser.screenshot("download-manager.png").await;

    // The file checks out (a GET changes nothing); the page's link fetches
    // it too and then clears the report with a DELETE.
    let link = v["link"].as_str().expect("link").to_string();
    let got = c
        .execute_async(
            r#"const [href, done] = arguments;
               fetch(href, { credentials: "include" }).then(async (r) => done({
                 status: r.status, sha: r.headers.get("x-content-sha256"),
                 id: r.headers.get("x-download-id"), nodes: r.headers.get("x-produced-by"),
                 body: await r.text() }));"#,
            vec![json!(link)],
        )
        .await
        .expect("fetch the file");
    assert_eq!(got["status"], 200, "{}", got["status"]);
    let body = got["body"].as_str().expect("body");
    let sha: String = Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got["sha"].as_str(), Some(sha.as_str()));
    let id = got["id"].as_str().expect("id");
    assert!(body.contains(&format!("# download_id: {id}\n")));
    let producers = got["nodes"].as_str().unwrap_or_default();
    assert!(
        producers.split(' ').count() >= 2,
        "the file should carry both trackers' rows: {producers}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = page_state(c).await;
    assert_eq!(
        still["busy"], true,
        "fetching the file cleared nothing: {still}"
    );
    c.execute(r#"document.getElementById("link").click();"#, vec![])
        .await
        .expect("click the link");
    watch(c, &mut highest, "the button to come back", |v| {
        v["busy"] == false
    })
    .await;
}
