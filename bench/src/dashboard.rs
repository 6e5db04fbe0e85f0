//! The dashboard's cost to a node: CPU and bytes per second while
//! browsers watch, against the same node unwatched in the same run; and
//! how long one page of a table of a million names or keys takes to read,
//! against reading the whole table (what an unpaged API does).
//!
//! A "browser" here is what a browser asks of the node: one stream of
//! frames, read to the end. Chromium's own work runs elsewhere and is not
//! the node's cost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use drove::runtime::echo::Echo;
use drove::{Config, Drove};
use drove_dashboard::{views, View};
use drove_tests::{cpu_ticks, resident_bytes, wait_for, NodeProc};
use serde_json::Value;

use crate::stats::fmt_duration;

/// The panels the watchers look at, in turn.
const PANELS: [&str; 8] = [
    "cluster", "registry", "children", "pubsub", "cache", "pools", "jobs", "events",
];

/// One node's cost over a window.
#[derive(Debug)]
pub(crate) struct Cost {
    /// CPU of the node process, in percent of one core.
    pub cpu_percent: f64,
    /// Bytes per second the node sent to watchers.
    pub bytes_per_sec: f64,
    /// Frames per second the watchers got.
    pub frames_per_sec: f64,
}

/// Results of one run.
#[derive(Debug)]
pub(crate) struct DashboardResults {
    /// Watchers in the watched run.
    pub watchers: usize,
    /// Resident memory of the node before and after the watched run.
    pub rss_before: u64,
    /// After.
    pub rss_after: u64,
    /// The node unwatched.
    pub idle: Cost,
    /// The node watched.
    pub watched: Cost,
    /// Rows in the big tables.
    pub rows: usize,
    /// One dashboard page of the names, p50 (search, first page).
    pub names_page: Duration,
    /// Reading every name, p50: `select_prefix("")`.
    pub names_all: Duration,
    /// One dashboard page of the keys, p50.
    pub keys_page: Duration,
    /// Reading every key, p50: `keys()`.
    pub keys_all: Duration,
}

/// Reads one stream until `until`; returns bytes and frames.
async fn watch(http: String, panel: &str, until: Instant) -> anyhow::Result<(u64, u64)> {
    let mut s = TcpStream::connect(&http).await?;
    let head = format!(
        "GET /api/dashboard/stream?panel={panel} HTTP/1.0\r\nHost: {http}\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let (mut bytes, mut frames) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 << 10];
    let mut tail = [0u8; 2];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let n = match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.into()),
        };
        bytes += n as u64;
        // Frames end with a blank line; count them across reads.
        let mut prev = tail;
        for &b in &buf[..n] {
            if b == b'\n' && prev[1] == b'\n' {
                frames += 1;
            }
            prev = [prev[1], b];
        }
        tail = prev;
    }
    Ok((bytes, frames))
}

async fn cost(node: &NodeProc, watchers: usize, window: Duration) -> anyhow::Result<Cost> {
    let pid = node.pid().map(|p| p.as_raw()).unwrap_or(0);
    let until = Instant::now() + window;
    let streams: Vec<_> = (0..watchers)
        .map(|i| tokio::spawn(watch(node.http_addr(), PANELS[i % PANELS.len()], until)))
        .collect();
    let t0 = cpu_ticks(pid);
    let started = Instant::now();
    tokio::time::sleep_until(until.into()).await;
    let ticks = cpu_ticks(pid).saturating_sub(t0);
    let secs = started.elapsed().as_secs_f64();
    let (mut bytes, mut frames) = (0, 0);
    for s in streams {
        let (b, f) = s.await??;
        bytes += b;
        frames += f;
    }
    // Linux counts CPU time in ticks of 10 ms.
    Ok(Cost {
        cpu_percent: ticks as f64 / secs,
        bytes_per_sec: bytes as f64 / secs,
        frames_per_sec: frames as f64 / secs,
    })
}

fn p50(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Page reads against whole-table reads on an in-process node with `rows`
/// names and keys.
async fn big_tables(rows: usize) -> anyhow::Result<[Duration; 4]> {
    let mut config = Config::new("big");
    let port = drove_tests::free_port("127.0.0.1");
    config.listen = format!("127.0.0.1:{port}").parse()?;
    config.cookie = Some(format!("{:032x}", rand::random::<u128>()));
    config.jobs.store = drove::jobs::StoreUrl::Sqlite(":memory:".into());
    config.cache_max_bytes = 4 << 30;
    let drove = Drove::builder(config).start().await?;
    let holder = drove.node().spawn(Echo, ()).await?;
    for i in 0..rows {
        drove
            .registry()
            .register(&format!("user.{i:08}"), &holder)?;
        drove.cache().put(&format!("key.{i:08}"), &i, None)?;
    }
    let view = |panel: &str| View {
        panel: Some(panel.into()),
        q: Some("9".into()),
        ..View::default()
    };
    let time = |f: &dyn Fn()| {
        (0..11)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect::<Vec<_>>()
    };
    let mut names_page = Vec::new();
    let mut keys_page = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        views::panel(&drove, &view("registry"), &BTreeMap::new(), Value::Null).await;
        names_page.push(t.elapsed());
        let t = Instant::now();
        views::panel(&drove, &view("cache"), &BTreeMap::new(), Value::Null).await;
        keys_page.push(t.elapsed());
    }
    let names_all = time(&|| {
        std::hint::black_box(drove.registry().select_prefix(""));
    });
    let keys_all = time(&|| {
        std::hint::black_box(drove.cache().keys());
    });
    drove.shutdown(drove::Shutdown::Leave).await;
    Ok([
        p50(names_page),
        p50(names_all),
        p50(keys_page),
        p50(keys_all),
    ])
}

/// A 3-node cluster with some of everything; n1's cost unwatched, then
/// with `watchers` streams, `seconds` each; then the big-table reads.
pub(crate) async fn run(
    watchers: usize,
    seconds: u64,
    rows: usize,
) -> anyhow::Result<DashboardResults> {
    let cookie = format!("{:032x}", rand::random::<u128>());
    let mut nodes: Vec<NodeProc> = Vec::new();
    for i in 0..3 {
        let seeds = nodes
            .first()
            .map(|f| vec![f.listen.to_string()])
            .unwrap_or_default();
        let mut n = NodeProc::new(&format!("n{}", i + 1), seeds, &cookie);
        n.extra = ["--pool", "p:min=1,max=2,backend=process"]
            .map(String::from)
            .to_vec();
        n.start();
        nodes.push(n);
    }
    wait_for(Duration::from_secs(60), "3 members up", || async {
        let c = nodes[0].cluster().await?;
        (c.members.iter().filter(|m| m.status == "up").count() >= 3).then_some(())
    })
    .await;
    let names: Vec<String> = (0..1000).map(|i| format!("bench.{i}")).collect();
    drove_tests::register_names(&nodes[1].http_addr(), &names).await;
    for i in 0..50 {
        let child = serde_json::json!({"type": "ticker", "restart": "permanent", "args": {"interval_ms": 1000}, "id": format!("t{i}")});
        drove_tests::spawn_child(&nodes[i % 3].http_addr(), child).await;
    }
    // Let start-up settle before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let window = Duration::from_secs(seconds);
    let pid = nodes[0].pid().map(|p| p.as_raw()).unwrap_or(0);
    let idle = cost(&nodes[0], 0, window).await?;
    let rss_before = resident_bytes(pid);
    let watched = cost(&nodes[0], watchers, window).await?;
    let rss_after = resident_bytes(pid);
    drop(nodes);
    let [names_page, names_all, keys_page, keys_all] = big_tables(rows).await?;
    Ok(DashboardResults {
        watchers,
        rss_before,
        rss_after,
        idle,
        watched,
        rows,
        names_page,
        names_all,
        keys_page,
        keys_all,
    })
}

/// Prints the results as a Markdown table.
pub(crate) fn print_table(r: &DashboardResults) {
    let (idle, watched) = (&r.idle, &r.watched);
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.1}x", a / b)
        } else {
            "-".into()
        }
    };
    println!(
        "| what | node unwatched | {} watchers | ratio |",
        r.watchers
    );
    println!("| --- | --- | --- | --- |");
    println!(
        "| node CPU, % of one core | {:.1} | {:.1} | {} |",
        idle.cpu_percent,
        watched.cpu_percent,
        ratio(watched.cpu_percent, idle.cpu_percent)
    );
    println!(
        "| bytes/s sent to watchers | 0 | {:.0} ({:.1} frames/s) | - |",
        watched.bytes_per_sec, watched.frames_per_sec
    );
    println!(
        "| node resident memory | {:.1} MB | {:.1} MB | - |",
        r.rss_before as f64 / 1e6,
        r.rss_after as f64 / 1e6
    );
    println!();
    println!(
        "| {} rows, p50 of 11 | one page (50 rows, search \"9\") | the whole table | ratio |",
        r.rows
    );
    println!("| --- | --- | --- | --- |");
    for (what, page, all) in [
        ("registry names", r.names_page, r.names_all),
        ("cache keys", r.keys_page, r.keys_all),
    ] {
        println!(
            "| {what} | {} | {} | {:.2}x |",
            fmt_duration(page),
            fmt_duration(all),
            page.as_secs_f64() / all.as_secs_f64().max(1e-9)
        );
    }
}
