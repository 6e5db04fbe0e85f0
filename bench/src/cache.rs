//! Cache write-to-visible-everywhere latency: one writer and two readers,
//! each a node process; readers poll their local copy every 50 us.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use drove_cache::Cache;
use drove_runtime::{MemberStatus, NodeConfig};
use serde::{Deserialize, Serialize};

use crate::stats::{now_ns, percentile, Killed};

const COOKIE: &str = "cache-bench";

/// One node's part of the run.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// Node name.
    #[arg(long)]
    pub name: String,
    /// Cluster address.
    #[arg(long)]
    pub listen: String,
    /// Seeds.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Writes to make or watch.
    #[arg(long)]
    pub writes: usize,
    /// This node writes; the others read.
    #[arg(long)]
    pub writer: bool,
}

/// What the writer reports: each write's time until both readers had it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CacheResult {
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Worst, ns.
    pub max_ns: u64,
}

/// `cache-node`: one node of the run.
pub(crate) async fn node(a: NodeArgs) -> anyhow::Result<Option<CacheResult>> {
    let mut config = NodeConfig::new(a.name.clone());
    config.listen = a.listen.parse()?;
    config.seeds = a.seeds.into_iter().filter(|s| !s.is_empty()).collect();
    config.cookie = COOKIE.to_string();
    let node = config.start().await?;
    let cache = Cache::start(&node).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while node
        .members()
        .iter()
        .filter(|m| m.status == MemberStatus::Up)
        .count()
        < 3
    {
        anyhow::ensure!(Instant::now() < deadline, "the cluster never formed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !a.writer {
        let reader = cache.clone();
        let writes = a.writes;
        let seen = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u64>> {
            let mut seen = Vec::with_capacity(writes);
            for i in 0..writes {
                let key = format!("k{i}");
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    if let Some(sent) = reader.get::<u64>(&key)? {
                        seen.push(now_ns().saturating_sub(sent));
                        break;
                    }
                    anyhow::ensure!(Instant::now() < deadline, "{key} never arrived");
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            Ok(seen)
        })
        .await??;
        cache.put(&format!("result.{}", a.name), &seen, None)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        return Ok(None);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..a.writes {
        cache.put(&format!("k{i}"), &now_ns(), None)?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let results = loop {
        let r: Vec<Option<Vec<u64>>> = vec![cache.get("result.c1")?, cache.get("result.c2")?];
        if let [Some(a), Some(b)] = &r[..] {
            break (a.clone(), b.clone());
        }
        anyhow::ensure!(Instant::now() < deadline, "the readers never reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let worst: Vec<Duration> = results
        .0
        .iter()
        .zip(results.1.iter())
        .map(|(a, b)| Duration::from_nanos(*a.max(b)))
        .collect();
    Ok(Some(CacheResult {
        p50_ns: percentile(&worst, 50.0).as_nanos() as u64,
        p99_ns: percentile(&worst, 99.0).as_nanos() as u64,
        max_ns: percentile(&worst, 100.0).as_nanos() as u64,
    }))
}

/// Runs the writer and two readers; returns the writer's result.
pub(crate) fn run(writes: usize) -> anyhow::Result<CacheResult> {
    let exe = std::env::current_exe()?;
    let ip = drove_tests::fresh_loopback_ip();
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("{ip}:{}", drove_tests::free_port(&ip)))
        .collect();
    let args = |i: usize| -> Vec<String> {
        vec![
            "cache-node".into(),
            "--name".into(),
            format!("c{i}"),
            "--listen".into(),
            addrs[i].clone(),
            "--seeds".into(),
            if i == 0 {
                String::new()
            } else {
                addrs[0].clone()
            },
            "--writes".into(),
            writes.to_string(),
        ]
    };
    let _readers: Vec<Killed> = (1..3)
        .map(|i| {
            std::process::Command::new(&exe)
                .args(args(i))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .map(Killed)
        })
        .collect::<Result<_, _>>()?;
    let mut writer = args(0);
    writer.push("--writer".into());
    let out = std::process::Command::new(&exe)
        .args(&writer)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .context("running the cache writer")?;
    anyhow::ensure!(out.status.success(), "the cache writer failed");
    Ok(serde_json::from_slice(&out.stdout)?)
}
