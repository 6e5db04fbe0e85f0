//! Registry benchmarks: visibility across 5 nodes, registrations per
//! second, memory per entry per replica, and join convergence.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drove_registry::schema::RegValue;
use drove_registry::{Registry, RegistryEvent};
use drove_replication::{Hlc, Op, Replica};
use drove_runtime::echo::Echo;
use drove_runtime::{Incarnation, MemberStatus, NodeConfig, NodeId};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::stats::now_ns;
use crate::stats::{fmt_duration, fmt_rate, percentile};

const COOKIE: &str = "registry-bench";

/// What one visibility node reports.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct VisibilityReport {
    /// Name -> wall-clock ns when this node registered it.
    pub registered: HashMap<String, u64>,
    /// Name -> wall-clock ns when this node first saw it registered.
    pub seen: HashMap<String, u64>,
}

/// One of the visibility processes: waits for `nodes` members, registers
/// `per_node` names one by one, and records when every name arrives.
pub(crate) async fn visibility_node(
    name: String,
    listen: String,
    seeds: Vec<String>,
    nodes: usize,
    per_node: usize,
) -> anyhow::Result<VisibilityReport> {
    let mut config = NodeConfig::new(name.clone());
    config.listen = listen.parse()?;
    config.seeds = seeds;
    config.cookie = COOKIE.to_string();
    let node = config.start().await?;
    let registry = Registry::start(&node).await?;
    let mut events = registry.subscribe();
    // Stamp arrivals as they happen, from the start: an event read late
    // from the channel's buffer would be stamped late.
    let total = nodes * per_node;
    let collector = tokio::spawn(async move {
        let mut seen = HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while seen.len() < total {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(RegistryEvent::Registered { name, .. })) => {
                    seen.entry(name).or_insert_with(now_ns);
                }
                Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
                Ok(Err(RecvError::Closed)) | Err(_) => break,
            }
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up: Vec<NodeId> = node
            .members()
            .into_iter()
            .filter(|m| m.status == MemberStatus::Up)
            .map(|m| m.info.id)
            .collect();
        if up.len() == nodes {
            let mut all = true;
            for id in up.iter().filter(|id| **id != node.id()) {
                all &= drove_runtime::echo::ping(&node, id, Duration::from_secs(1))
                    .await
                    .is_ok();
            }
            if all {
                break;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "cluster of {nodes} never formed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let every node get here before anyone registers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let holder = node.spawn(Echo, ()).await?;
    let mut registered = HashMap::new();
    for k in 0..per_node {
        let n = format!("vis.{name}.{k}");
        registered.insert(n.clone(), now_ns());
        registry.register(&n, &holder)?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seen = collector.await?;
    // Stay up until the others are done reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(VisibilityReport { registered, seen })
}

/// Runs 5 visibility processes and returns every name's time until the
/// last of the other 4 nodes saw it.
pub(crate) fn visibility(per_node: usize) -> anyhow::Result<(Vec<Duration>, usize)> {
    let exe = std::env::current_exe()?;
    let nodes = 5;
    let ip = drove_tests::fresh_loopback_ip();
    let addrs: Vec<String> = (0..nodes)
        .map(|_| format!("{ip}:{}", drove_tests::free_port(&ip)))
        .collect();
    let mut children = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let seeds = if i == 0 {
            String::new()
        } else {
            addrs[0].clone()
        };
        let child = std::process::Command::new(&exe)
            .args([
                "registry-node",
                "--name",
                &format!("v{i}"),
                "--listen",
                addr,
                "--seeds",
                &seeds,
            ])
            .args([
                "--nodes",
                &nodes.to_string(),
                "--per-node",
                &per_node.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        children.push(child);
    }
    let mut reports = Vec::new();
    for child in children {
        let out = child.wait_with_output()?;
        anyhow::ensure!(out.status.success(), "a registry-node process failed");
        reports.push(serde_json::from_slice::<VisibilityReport>(&out.stdout)?);
    }
    let mut samples = Vec::new();
    let mut missing = 0;
    for (i, r) in reports.iter().enumerate() {
        for (name, &at) in &r.registered {
            let mut last = 0u64;
            for (j, other) in reports.iter().enumerate() {
                if i == j {
                    continue;
                }
                match other.seen.get(name) {
                    Some(&t) => last = last.max(t.saturating_sub(at)),
                    None => missing += 1,
                }
            }
            samples.push(Duration::from_nanos(last));
        }
    }
    Ok((samples, missing))
}

/// Registrations per second on a node with two peers (each write is
/// applied locally and pushed to both), against ractor's local process
/// group join in the same process.
pub(crate) async fn rate(count: usize) -> anyhow::Result<(f64, f64)> {
    let ip = drove_tests::fresh_loopback_ip();
    let mut config = NodeConfig::new("rate");
    config.listen = format!("{ip}:{}", drove_tests::free_port(&ip)).parse()?;
    config.cookie = COOKIE.to_string();
    let node = config.clone().start().await?;
    let registry = Registry::start(&node).await?;
    let mut peers = Vec::new();
    for i in 0..2 {
        let mut p = drove_tests::NodeProc::new(
            &format!("peer{i}"),
            vec![config.listen.to_string()],
            COOKIE,
        );
        p.start();
        peers.push(p);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while node
        .members()
        .iter()
        .filter(|m| m.status == MemberStatus::Up)
        .count()
        < 3
    {
        anyhow::ensure!(Instant::now() < deadline, "peers never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let holder = node.spawn(Echo, ()).await?;
    let names: Vec<String> = (0..count).map(|i| format!("rate.{i}")).collect();
    let start = Instant::now();
    for n in &names {
        registry.register(n, &holder)?;
    }
    let drove = count as f64 / start.elapsed().as_secs_f64();

    let (raw_actor, _) = ractor::Actor::spawn(None, crate::local::RawCounter, ()).await?;
    let start = Instant::now();
    for n in &names {
        ractor::pg::join(n.clone(), vec![raw_actor.get_cell()]);
    }
    let raw = count as f64 / start.elapsed().as_secs_f64();
    raw_actor.stop(None);
    node.leave().await;
    Ok((raw, drove))
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Bytes per entry of one registry replica holding `count` names, against
/// a plain `HashMap<String, u64>` of the same names.
pub(crate) fn memory(count: usize) -> (f64, f64) {
    let names: Vec<String> = (0..count).map(|i| format!("name-{i:07}")).collect();
    let before = rss_bytes();
    let mut plain: HashMap<String, u64> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        plain.insert(n.clone(), i as u64);
    }
    let plain_bytes = rss_bytes().saturating_sub(before) as f64 / count as f64;
    drop(plain);
    let before = rss_bytes();
    let mut replica: Replica<Arc<str>, RegValue> = Replica::new();
    let owners: Vec<NodeId> = (0..3)
        .map(|i| NodeId::new(format!("n{i}"), Incarnation(i)))
        .collect();
    for (i, n) in names.iter().enumerate() {
        let stamp = Hlc::new(1_700_000_000_000 + i as u64, 0);
        let op = Op::Put {
            key: Arc::from(n.as_str()),
            lineage: stamp,
            stamp,
            value: RegValue {
                local: i as u64,
                meta: None,
            },
        };
        replica.apply(&owners[i % 3], op);
    }
    let replica_bytes = rss_bytes().saturating_sub(before) as f64 / count as f64;
    drop(replica);
    (plain_bytes, replica_bytes)
}

/// Time for a node that joins a cluster whose registry holds `count`
/// names to hold them all.
pub(crate) async fn join(count: usize) -> anyhow::Result<Duration> {
    let mut first = drove_tests::NodeProc::new("j1", vec![], COOKIE);
    first.start();
    let http = first.http_addr();
    drove_tests::wait_for(Duration::from_secs(30), "j1 to serve", || first.cluster()).await;
    let names: Vec<String> = (0..count).map(|i| format!("join.{i:07}")).collect();
    for batch in names.chunks(10_000) {
        let answer = drove_tests::register_names(&http, batch).await;
        anyhow::ensure!(
            answer.refused.is_empty(),
            "refused: {:?}",
            answer.refused.first()
        );
    }
    let mut second = drove_tests::NodeProc::new("j2", vec![first.listen.to_string()], COOKIE);
    let start = Instant::now();
    second.start();
    let target = count as u64;
    let http2 = second.http_addr();
    loop {
        if let Ok((200, text)) =
            drove_admin::client::get(&http2, "/metrics", Duration::from_secs(5)).await
        {
            let keys = text
                .lines()
                .find(|l| l.starts_with("drove_registry_keys"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
            if keys == Some(target) {
                break;
            }
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(300),
            "j2 never converged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(start.elapsed())
}

/// Runs every registry benchmark and prints a Markdown table.
pub(crate) fn table(
    rt: &tokio::runtime::Runtime,
    per_node: usize,
    rate_count: usize,
    big: usize,
) -> anyhow::Result<()> {
    let (vis, missing) = visibility(per_node)?;
    let (raw_rate, drove_rate) = rt.block_on(rate(rate_count))?;
    let (plain, replica) = memory(big);
    let join = rt.block_on(join(big))?;
    println!("| what | raw engine | drove | ratio (drove / raw) |");
    println!("| --- | --- | --- | --- |");
    println!(
                "| register -> visible on all 4 other nodes ({} names, 5 nodes; {missing} sightings missed) | - | p50 {} / p99 {} / max {} | - |",
                vis.len(),
                fmt_duration(percentile(&vis, 50.0)),
                fmt_duration(percentile(&vis, 99.0)),
                fmt_duration(percentile(&vis, 100.0))
            );
    println!(
                "| registrations/s, {rate_count} names (raw: ractor pg::join, local only; drove: local + delta to 2 peers) | {} | {} | {:.2}x |",
                fmt_rate(raw_rate),
                fmt_rate(drove_rate),
                drove_rate / raw_rate
            );
    println!(
                "| memory per entry per replica, {big} names (raw: HashMap<String, u64>) | {plain:.0} B | {replica:.0} B | {:.2}x |",
                replica / plain
            );
    println!(
        "| join convergence, {big} names, 2nd node from start to full table | - | {} | - |",
        fmt_duration(join)
    );
    Ok(())
}
