//! The download-manager demo under load: how many concurrent downloads a
//! 3-node local cluster tracks, the progress events per second its pages
//! receive, and the memory each tracker costs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drove_admin::client::request;
use drove_tests::sse::SseClient;
use drove_tests::NodeProc;

/// Results of one run.
#[derive(Debug)]
pub(crate) struct DemoResults {
    /// Downloads started.
    pub downloads: usize,
    /// Trackers running at the measurement, across the ledgers.
    pub trackers_alive: usize,
    /// Progress events the pages received per second.
    pub events_per_sec: f64,
    /// Progress events per second if every tracker kept its pace.
    pub expected_per_sec: f64,
    /// Resident bytes per tracker (growth of the 3 processes / downloads).
    pub bytes_per_tracker: f64,
}

fn rss(p: &NodeProc) -> u64 {
    p.pid()
        .map_or(0, |pid| drove_tests::resident_bytes(pid.as_raw()))
}

/// Starts `downloads` downloads of `steps` steps of `step_ms` each over 3
/// nodes, follows each user's page stream, and measures for `window`.
pub(crate) async fn run(
    downloads: usize,
    steps: u32,
    step_ms: u64,
    window: Duration,
) -> anyhow::Result<DemoResults> {
    // One KiB per step: the file grows, but slowly.
    let (steps_s, step_ms_s) = (steps.to_string(), step_ms.to_string());
    let secret = drove_tests::secret_file();
    let secret_s = secret.to_string_lossy().into_owned();
    let mut nodes = drove_tests::download_manager_nodes(
        3,
        "d",
        "demo-bench",
        &[
            "--steps",
            &steps_s,
            "--step-ms",
            &step_ms_s,
            "--file-kb",
            &steps_s,
            "--secret-file",
            &secret_s,
            // One load generator, one address: no per-client limits here.
            "--client-rps",
            "1000000",
            "--client-starts-per-min",
            "1000000",
            "--client-streams",
            "1000000",
            "--client-reports",
            "1000000",
        ],
    );
    for n in &mut nodes {
        n.start();
    }
    let https: Vec<String> = nodes.iter().map(|n| n.app_addr()).collect();
    let admins: Vec<String> = nodes.iter().map(|n| n.http_addr()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in &nodes {
        loop {
            let up = n
                .cluster()
                .await
                .map(|c| c.members.iter().filter(|m| m.status == "up").count());
            if up == Some(3) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the cluster never formed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: u64 = nodes.iter().map(rss).sum();

    // Start the downloads, 16 at a time; each user keeps its cookie.
    let cookies = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(downloads)));
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (https, cookies, next) = (https.clone(), cookies.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= downloads {
                    return Ok::<(), anyhow::Error>(());
                }
                let r = request(
                    &https[i % 3],
                    "POST",
                    "/api/downloads",
                    &[],
                    "",
                    Duration::from_secs(30),
                )
                .await?;
                anyhow::ensure!(
                    r.status == 201,
                    "starting a download: {} {}",
                    r.status,
                    r.body
                );
                let cookie = r
                    .header("set-cookie")
                    .and_then(|c| c.split(';').next())
                    .unwrap_or_default()
                    .to_string();
                cookies.lock().await.push((i, cookie));
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let started = Instant::now();
    let after_start: u64 = nodes.iter().map(rss).sum();

    // Every user's page follows its stream, on another node than the one
    // that took its request.
    let events = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pages = Vec::new();
    for (i, cookie) in cookies.lock().await.iter().cloned() {
        let http = https[(i + 1) % 3].clone();
        let (events, counting) = (events.clone(), counting.clone());
        let mut sse = SseClient::connect_with(&http, "/api/downloads/events", Some(&cookie))
            .await
            .map_err(anyhow::Error::msg)?;
        pages.push(tokio::spawn(async move {
            while let Some(data) = sse.next_data(Duration::from_secs(30)).await {
                if data.contains("\"download\"") && counting.load(Ordering::Relaxed) {
                    events.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let events_per_sec = events.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    let mut trackers_alive = 0;
    for http in &admins {
        let r = request(
            http,
            "GET",
            "/api/children?scope=local",
            &[],
            "",
            Duration::from_secs(30),
        )
        .await?;
        let rows: Vec<serde_json::Value> = serde_json::from_str(&r.body)?;
        trackers_alive += rows
            .iter()
            .filter(|c| c["type"] == "download-tracker" && c["status"] == "running")
            .count();
    }
    anyhow::ensure!(
        started.elapsed() < Duration::from_millis(u64::from(steps) * step_ms),
        "the downloads finished before the measurement ended; use more steps"
    );
    for p in pages {
        p.abort();
    }
    Ok(DemoResults {
        downloads,
        trackers_alive,
        events_per_sec,
        expected_per_sec: downloads as f64 * 1000.0 / step_ms as f64,
        bytes_per_tracker: after_start.saturating_sub(before) as f64 / downloads as f64,
    })
}

/// Runs the demo under each load and prints a Markdown table.
pub(crate) fn table(
    rt: &tokio::runtime::Runtime,
    downloads: &[usize],
    steps: u32,
    step_ms: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    println!("| concurrent downloads | trackers running | progress events/s delivered to pages (expected at full pace) | memory per tracker |");
    println!("| --- | --- | --- | --- |");
    for &n in downloads {
        let r = rt.block_on(run(n, steps, step_ms, Duration::from_secs(seconds)))?;
        println!(
            "| {} | {} | {:.0} ({:.0}) | {:.1} KB |",
            r.downloads,
            r.trackers_alive,
            r.events_per_sec,
            r.expected_per_sec,
            r.bytes_per_tracker / 1000.0
        );
    }
    Ok(())
}
