//! Supervisor benchmarks: singleton failover after kill -9 and after
//! SIGSTOP, placements per second, memory per supervised child.

use std::time::{Duration, Instant};

use drove_registry::Registry;
use drove_runtime::{Handle, MemberStatus, Node, NodeConfig, NodeId};
use drove_supervisor::builtin::TickerMsg;
use drove_tests::{send_json, NodeProc};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::stats::{fmt_duration, percentile};

const COOKIE: &str = "supervisor-bench";
pub(crate) const SINGLETON: &str = "bench-singleton";

/// Results of one run.
#[derive(Debug)]
pub(crate) struct SupervisorResults {
    /// kill -9 of the singleton's node -> it answers on another node.
    pub killed: Vec<Duration>,
    /// SIGSTOP of the singleton's node -> it answers on another node.
    pub silent: Vec<Duration>,
    /// The same with the quorum strategy and a 2 s fencing margin.
    pub silent_quorum: Vec<Duration>,
    /// Children started per second through `POST /api/children`.
    pub placements_per_sec: f64,
    /// Resident bytes per supervised echo child, across the nodes.
    pub bytes_per_child: f64,
    /// Resident bytes per raw ractor actor, in this process.
    pub bytes_per_raw_actor: f64,
}

fn rss_of(pid: Option<nix::unistd::Pid>) -> u64 {
    let Some(pid) = pid else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

async fn wait_up(node: &Node, name: &str) -> anyhow::Result<NodeId> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = node
            .members()
            .into_iter()
            .find(|m| m.info.id.name == name && m.status == MemberStatus::Up)
            .map(|m| m.info.id);
        if let Some(id) = found {
            if drove_runtime::echo::ping(node, &id, Duration::from_millis(500))
                .await
                .is_ok()
            {
                return Ok(id);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Time from `fault` on the singleton's node until the singleton answers
/// a call from another node.
pub(crate) async fn trial(
    node: &Node,
    registry: &Registry,
    procs: &mut [NodeProc],
    silent: bool,
) -> anyhow::Result<Duration> {
    let addr = loop {
        if let Some(a) = registry.lookup(SINGLETON) {
            let h: Handle<TickerMsg> = Handle::from_addr(a.clone());
            if node
                .call(&h, TickerMsg::Get, Duration::from_millis(500))
                .await
                .is_ok()
            {
                break a;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let victim = procs
        .iter()
        .position(|p| p.name == addr.node.name)
        .ok_or_else(|| anyhow::anyhow!("singleton on an unknown node {}", addr.node))?;
    let t0 = Instant::now();
    if silent {
        procs[victim].signal(Signal::SIGSTOP);
    } else {
        procs[victim].kill9();
    }
    let elapsed = loop {
        if let Some(a) = registry.lookup(SINGLETON) {
            if a.node != addr.node {
                let h: Handle<TickerMsg> = Handle::from_addr(a);
                if node
                    .call(&h, TickerMsg::Get, Duration::from_millis(100))
                    .await
                    .is_ok()
                {
                    break t0.elapsed();
                }
            }
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(30),
            "singleton never came back"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    if silent {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        procs[victim].signal(Signal::SIGCONT);
    } else {
        procs[victim].start();
    }
    let name = procs[victim].name.clone();
    // Wait for the node's new incarnation.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let id = wait_up(node, &name).await?;
        if id != addr.node {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the returning node sync the others' children before the next
    // fault: a node that holds no record of a child cannot take it over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(elapsed)
}

/// Starts 3 node processes named `<prefix>1..3` with `extra` flags, and
/// the singleton on them.
async fn cluster_with_singleton(
    node: &Node,
    seeds: &[String],
    prefix: &str,
    extra: &[&str],
) -> anyhow::Result<Vec<NodeProc>> {
    let mut procs: Vec<NodeProc> = (1..=3)
        .map(|i| {
            let mut p = NodeProc::new(&format!("{prefix}{i}"), seeds.to_vec(), COOKIE);
            p.extra = extra.iter().map(|s| s.to_string()).collect();
            p
        })
        .collect();
    for p in &mut procs {
        p.start();
    }
    for p in &procs {
        wait_up(node, &p.name).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let http = procs[0].http_addr();
    let body = json!({"type": "ticker", "name": SINGLETON, "restart": "permanent", "args": {"interval_ms": 1000}});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) = send_json("POST", &http, "/api/children", &body)
            .await
            .map_err(anyhow::Error::msg)?;
        if status == 201 {
            return Ok(procs);
        }
        // The previous cluster's singleton name may not be purged yet.
        anyhow::ensure!(
            Instant::now() < deadline,
            "starting the singleton: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs every supervisor benchmark.
pub(crate) async fn run(trials: usize, children: usize) -> anyhow::Result<SupervisorResults> {
    let ip = drove_tests::fresh_loopback_ip();
    let mut config = NodeConfig::new("observer");
    config.listen = format!("{ip}:{}", drove_tests::free_port(&ip)).parse()?;
    config.cookie = COOKIE.to_string();
    let node = config.clone().start().await?;
    let registry = Registry::start(&node).await?;
    let seeds = vec![config.listen.to_string()];
    let mut quorum_procs = cluster_with_singleton(
        &node,
        &seeds,
        "q",
        &["--quorum", "0", "--fencing-ms", "2000"],
    )
    .await?;
    let mut silent_quorum = Vec::new();
    for _ in 0..trials {
        silent_quorum.push(trial(&node, &registry, &mut quorum_procs, true).await?);
    }
    for p in &mut quorum_procs {
        p.kill9();
    }
    let mut procs = cluster_with_singleton(&node, &seeds, "s", &[]).await?;
    let mut killed = Vec::new();
    for _ in 0..trials {
        killed.push(trial(&node, &registry, &mut procs, false).await?);
    }
    let mut silent = Vec::new();
    for _ in 0..trials {
        silent.push(trial(&node, &registry, &mut procs, true).await?);
    }

    // Placements and memory: echo children, which do nothing once started.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before: u64 = procs.iter().map(|p| rss_of(p.pid())).sum();
    let start = Instant::now();
    for i in 0..children {
        let http = procs[i % procs.len()].http_addr();
        let body = json!({"type": "echo", "id": format!("echo{i:06}"), "restart": "transient"});
        let (status, answer) = send_json("POST", &http, "/api/children", &body)
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(status == 201, "placing a child: {status} {answer}");
    }
    let placements_per_sec = children as f64 / start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after: u64 = procs.iter().map(|p| rss_of(p.pid())).sum();
    let bytes_per_child = rss_after.saturating_sub(rss_before) as f64 / children as f64;

    let own_before = rss_of(Some(nix::unistd::getpid()));
    let mut raw = Vec::with_capacity(children);
    for _ in 0..children {
        let (a, _) = ractor::Actor::spawn(None, crate::local::RawCounter, ()).await?;
        raw.push(a);
    }
    let own_after = rss_of(Some(nix::unistd::getpid()));
    let bytes_per_raw_actor = own_after.saturating_sub(own_before) as f64 / children as f64;
    for a in raw {
        a.stop(None);
    }
    node.leave().await;
    Ok(SupervisorResults {
        killed,
        silent,
        silent_quorum,
        placements_per_sec,
        bytes_per_child,
        bytes_per_raw_actor,
    })
}

/// Runs the supervisor benchmarks and prints a Markdown table.
pub(crate) fn table(
    rt: &tokio::runtime::Runtime,
    trials: usize,
    children: usize,
) -> anyhow::Result<()> {
    let r = rt.block_on(run(trials, children))?;
    let row = |what: &str, v: &[Duration]| {
        println!(
            "| {what} ({} trials) | p50 {} / p99 {} / max {} |",
            v.len(),
            fmt_duration(percentile(v, 50.0)),
            fmt_duration(percentile(v, 99.0)),
            fmt_duration(percentile(v, 100.0))
        )
    };
    println!("| what | drove |");
    println!("| --- | --- |");
    row(
        "singleton answering on another node after kill -9 of its node",
        &r.killed,
    );
    row(
        "singleton answering on another node after SIGSTOP of its node",
        &r.silent,
    );
    row(
        "the same with the quorum strategy (--quorum 0, --fencing-ms 2000)",
        &r.silent_quorum,
    );
    println!("| placements/s through POST /api/children, {children} echo children over 3 nodes | {:.0}/s |", r.placements_per_sec);
    println!(
        "| memory per supervised echo child (raw ractor actor: {:.0} B) | {:.0} B ({:.1}x) |",
        r.bytes_per_raw_actor,
        r.bytes_per_child,
        r.bytes_per_child / r.bytes_per_raw_actor.max(1.0)
    );
    Ok(())
}
