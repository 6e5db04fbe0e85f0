//! Scale: the same measurements at 3, 5, 10 (or any) nodes, each node in a
//! network namespace of its own on one bridge (198.18.1.0/24).
//!
//! The run for one size happens inside host 0's namespace
//! (`scale-run`): an observer node in that process, and `scale-node`
//! processes in the other hosts' namespaces. A `scale-node` is a full
//! node (every service, the admin API) that also records when each
//! `vis.*` name reached its registry, served at `/bench/seen`. One
//! machine, so one wall clock for every process.
//!
//! Needs root (network namespaces).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use drove_registry::{Registry, RegistryEvent};
use drove_runtime::echo::Echo;
use drove_runtime::{MembershipEvent, NodeConfig};
use drove_tests::{cluster_at, metric, send_json, NodeProc};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::failover::{next_matching, wait_up};
use crate::stats::{now_ns, percentile};

const COOKIE: &str = "scale-bench-cookie";
/// Registrations timed for visibility (after the preload).
const VISIBILITY_NAMES: usize = 200;
/// The most `vis.*` sightings a node keeps.
const MAX_SEEN: usize = 10_000;

/// One size's figures.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ScaleReport {
    pub nodes: usize,
    /// From starting the node processes until every node sees all up.
    pub join_ms: f64,
    /// Gossip bytes sent plus received per second, mean over nodes, idle.
    pub gossip_bytes_per_sec: f64,
    /// All bytes on a node's interface per second (in + out), idle.
    pub link_bytes_per_sec: f64,
    /// Established TCP connections on the cluster port, mean per node.
    pub tcp_per_node: f64,
    /// CPU of all node processes together while idle, % of one core.
    pub idle_cpu_percent: f64,
    /// Resident memory per node process, mean, bytes.
    pub rss_per_node: f64,
    /// Names held when visibility was timed.
    pub names_held: usize,
    /// Register -> seen by every other node, ms.
    pub visibility_ms: Vec<f64>,
    /// Sightings that never came.
    pub visibility_missed: usize,
    /// kill -9 -> the observer's NodeDown, ms.
    pub kill_detect_ms: Vec<f64>,
    /// SIGSTOP -> the observer's NodeDown, ms.
    pub silent_detect_ms: Vec<f64>,
    /// kill -9 of the singleton's node -> it answers on another, ms.
    pub failover_ms: Vec<f64>,
    /// The phase that did not finish, if one did not: the figures before
    /// it stand.
    pub error: Option<String>,
}

impl ScaleReport {
    pub(crate) fn p(samples: &[f64], q: f64) -> f64 {
        let d: Vec<Duration> = samples
            .iter()
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .collect();
        percentile(&d, q).as_secs_f64() * 1000.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Flags of `scale-node`.
#[derive(clap::Args, Debug)]
pub(crate) struct NodeArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    listen: std::net::SocketAddr,
    #[arg(long)]
    http: std::net::SocketAddr,
    #[arg(long)]
    cookie: String,
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<String>,
}

/// A full node that also records when `vis.*` names arrive.
pub(crate) async fn node(args: NodeArgs) -> anyhow::Result<()> {
    let mut config = drove::Config::new(args.name);
    config.listen = args.listen;
    config.http = args.http;
    config.cookie = Some(args.cookie);
    config.seeds = args.seeds;
    if let Ok(url) = std::env::var("DROVE_JOBS") {
        config.jobs.store = url.parse().map_err(anyhow::Error::msg)?;
    }
    let listener = drove_admin::bind(config.http).await?;
    let drove = drove::Drove::builder(config).start().await?;
    let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let mut events = drove.registry().subscribe();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(RegistryEvent::Registered { name, .. }) if name.starts_with("vis.") => {
                    let at = now_ns();
                    let mut seen = record.lock().unwrap_or_else(|e| e.into_inner());
                    if seen.len() < MAX_SEEN {
                        seen.entry(name).or_insert(at);
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    let bench = Router::new().route(
        "/bench/seen",
        get(move || {
            let seen = seen.clone();
            async move { Json(seen.lock().unwrap_or_else(|e| e.into_inner()).clone()) }
        }),
    );
    let routes = drove_admin::router(&drove, drove_admin::Guard::default())
        .await
        .merge(bench);
    drove_admin::serve(&drove, vec![(listener, routes)]).await?;
    Ok(())
}

/// Flags of `scale-run`.
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// The data addresses, host 0 (this process) first.
    #[arg(long, value_delimiter = ',')]
    ips: Vec<String>,
    /// The namespaces of hosts 1.. (one node process each).
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
    #[arg(long)]
    names: usize,
    #[arg(long)]
    trials: usize,
}

/// All bytes through host `ns`'s interface, in and out (sysfs as that
/// namespace mounts it).
fn link_bytes(ns: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .args([
            "/sys/class/net/eth0/statistics/rx_bytes",
            "/sys/class/net/eth0/statistics/tx_bytes",
        ])
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .sum()
    })
    .unwrap_or(0)
}

/// Established TCP connections to or from the cluster port in `ns`.
fn cluster_connections(ns: &str) -> usize {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-Htn", "state", "established"])
        .arg("( sport = :4370 or dport = :4370 )")
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0)
}

async fn gossip_bytes(http: &str) -> u64 {
    let sent = metric(http, "drove_gossip_sent_bytes_total", &[]).await;
    let got = metric(http, "drove_gossip_received_bytes_total", &[]).await;
    sent.unwrap_or(0) + got.unwrap_or(0)
}

/// Waits until every process sees `n` members up.
async fn converged(procs: &[NodeProc], n: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    for p in procs {
        loop {
            let up = cluster_at(&p.http_addr())
                .await
                .map(|c| c.members.iter().filter(|m| m.status == "up").count());
            if up == Some(n) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{} never saw {n} up", p.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// One size, run inside host 0's namespace. A phase that fails ends the
/// run; the report keeps what came before it.
pub(crate) async fn run(args: RunArgs) -> ScaleReport {
    let mut report = ScaleReport {
        nodes: args.ips.len(),
        ..ScaleReport::default()
    };
    let mut procs = Vec::new();
    if let Err(e) = phases(&args, &mut report, &mut procs).await {
        report.error = Some(format!("{e:#}"));
    }
    for p in &mut procs {
        p.kill9();
    }
    report
}

async fn phases(
    args: &RunArgs,
    report: &mut ScaleReport,
    procs: &mut Vec<NodeProc>,
) -> anyhow::Result<()> {
    let n = args.ips.len();
    anyhow::ensure!(n >= 2 && args.hosts.len() == n - 1, "one host per node");
    let mut config = NodeConfig::new("observer");
    config.listen = format!("{}:4370", args.ips[0]).parse()?;
    config.cookie = COOKIE.to_string();
    let observer = config.clone().start().await?;
    let registry = Registry::start(&observer).await?;
    let mut events = observer.subscribe();
    let exe = std::env::current_exe()?;
    for (k, ns) in args.hosts.iter().enumerate() {
        let ip: std::net::IpAddr = args.ips[k + 1].parse()?;
        let mut p = NodeProc::at(
            &format!("n{}", k + 1),
            (ip, 4370).into(),
            (ip, 8370).into(),
            vec![config.listen.to_string()],
            COOKIE,
        );
        p.bin = Some(exe.clone());
        p.command = vec!["scale-node".into()];
        p.wrapper = vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()];
        procs.push(p);
    }

    let t0 = Instant::now();
    for p in procs.iter_mut() {
        p.start();
    }
    converged(procs, n, Duration::from_secs(120)).await?;
    report.join_ms = ms(t0.elapsed());

    // Idle: what a formed cluster costs with nothing to do.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = Duration::from_secs(10);
    let https: Vec<String> = procs.iter().map(NodeProc::http_addr).collect();
    let pids: Vec<i32> = procs
        .iter()
        .filter_map(|p| p.pid().map(|p| p.as_raw()))
        .collect();
    let mut gossip0 = Vec::new();
    for h in &https {
        gossip0.push(gossip_bytes(h).await);
    }
    let link0: Vec<u64> = args.hosts.iter().map(|h| link_bytes(h)).collect();
    let cpu0: u64 = pids.iter().map(|&p| drove_tests::cpu_ticks(p)).sum();
    let w0 = Instant::now();
    tokio::time::sleep(window).await;
    let secs = w0.elapsed().as_secs_f64();
    let cpu1: u64 = pids.iter().map(|&p| drove_tests::cpu_ticks(p)).sum();
    let link1: Vec<u64> = args.hosts.iter().map(|h| link_bytes(h)).collect();
    let mut gossip = 0u64;
    for (h, before) in https.iter().zip(&gossip0) {
        gossip += gossip_bytes(h).await.saturating_sub(*before);
    }
    let nodes = procs.len() as f64;
    report.gossip_bytes_per_sec = gossip as f64 / secs / nodes;
    let link: u64 = link1.iter().zip(&link0).map(|(a, b)| a - b.min(a)).sum();
    report.link_bytes_per_sec = link as f64 / secs / nodes;
    // Clock ticks are 1/100 s.
    report.idle_cpu_percent = (cpu1 - cpu0.min(cpu1)) as f64 / secs;
    report.tcp_per_node = args
        .hosts
        .iter()
        .map(|h| cluster_connections(h) as f64)
        .sum::<f64>()
        / nodes;
    report.rss_per_node = pids
        .iter()
        .map(|&p| drove_tests::resident_bytes(p) as f64)
        .sum::<f64>()
        / nodes;

    preload(procs, &registry, args.names).await?;
    report.names_held = registry.held();
    visibility(&observer, &registry, &https, report).await?;

    // Singleton failover after kill -9 of its node.
    let body = json!({"type": "ticker", "name": crate::supervisor::SINGLETON,
        "restart": "permanent", "args": {"interval_ms": 1000}});
    let (status, answer) = send_json("POST", &https[0], "/api/children", &body)
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(status == 201, "starting the singleton: {status} {answer}");
    for _ in 0..args.trials {
        let d = crate::supervisor::trial(&observer, &registry, procs, false).await?;
        report.failover_ms.push(ms(d));
    }

    // Detection, seen from the observer, on the last node.
    let last = procs.len() - 1;
    let name = procs[last].name.clone();
    for _ in 0..args.trials {
        let id = wait_up(&observer, &mut events, &name).await?;
        let t0 = Instant::now();
        procs[last].kill9();
        next_matching(&mut events, Duration::from_secs(30), |e| {
            *e == MembershipEvent::NodeDown(id.clone())
        })
        .await?;
        report.kill_detect_ms.push(ms(t0.elapsed()));
        procs[last].start();
    }
    for _ in 0..args.trials {
        let id = wait_up(&observer, &mut events, &name).await?;
        let t0 = Instant::now();
        procs[last].signal(Signal::SIGSTOP);
        next_matching(&mut events, Duration::from_secs(30), |e| {
            *e == MembershipEvent::NodeDown(id.clone())
        })
        .await?;
        report.silent_detect_ms.push(ms(t0.elapsed()));
        // Past the concurrent-declaration window, so the node rejoins.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        procs[last].signal(Signal::SIGCONT);
    }
    observer.leave().await;
    Ok(())
}

/// Fills the registry with `names` names (held by node 1), and waits until
/// every node holds them all.
async fn preload(procs: &[NodeProc], registry: &Registry, names: usize) -> anyhow::Result<()> {
    const BATCH: usize = 10_000;
    let http = procs[0].http_addr();
    for start in (0..names).step_by(BATCH) {
        let batch: Vec<String> = (start..(start + BATCH).min(names))
            .map(|i| format!("pre.{i}"))
            .collect();
        let (status, answer) =
            send_json("POST", &http, "/api/registry", &json!({ "names": batch }))
                .await
                .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(status == 201, "preloading names: {status} {answer}");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for p in procs {
        loop {
            let keys = metric(&p.http_addr(), "drove_registry_keys", &[]).await;
            if keys.unwrap_or(0) as usize >= names {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} never held the preload",
                p.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    while registry.held() < names {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the observer never held the preload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The observer registers names one by one; each node stamps their arrival.
async fn visibility(
    observer: &drove_runtime::Node,
    registry: &Registry,
    https: &[String],
    report: &mut ScaleReport,
) -> anyhow::Result<()> {
    let holder = observer.spawn(Echo, ()).await?;
    let mut registered = Vec::new();
    for k in 0..VISIBILITY_NAMES {
        let name = format!("vis.{k}");
        registered.push((name.clone(), now_ns()));
        registry.register(&name, &holder)?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut seen = Vec::new();
    for h in https {
        let (status, body) = drove_admin::client::get(h, "/bench/seen", Duration::from_secs(10))
            .await
            .map_err(|e| anyhow::anyhow!("{h}: {e}"))?;
        anyhow::ensure!(status == 200, "{h}/bench/seen: {status}");
        seen.push(serde_json::from_str::<HashMap<String, u64>>(&body)?);
    }
    for (name, at) in registered {
        let mut last = 0u64;
        for s in &seen {
            match s.get(&name) {
                Some(&t) => last = last.max(t.saturating_sub(at)),
                None => report.visibility_missed += 1,
            }
        }
        report.visibility_ms.push(last as f64 / 1e6);
    }
    Ok(())
}

/// Runs each size in a fresh namespace network and returns the reports.
pub(crate) fn sizes(
    sizes: &[usize],
    names: usize,
    trials: usize,
) -> anyhow::Result<Vec<ScaleReport>> {
    anyhow::ensure!(
        drove_tests::netns::is_root(),
        "the scale bench needs root (network namespaces)"
    );
    let exe = std::env::current_exe()?;
    let mut reports = Vec::new();
    for &n in sizes {
        let net = drove_tests::netns::NetNs::isolated(n).map_err(anyhow::Error::msg)?;
        let ips: Vec<String> = (0..n).map(|i| net.data_ip(i)).collect();
        let hosts: Vec<String> = (1..n).map(|i| net.host(i)).collect();
        eprintln!("scale: {n} nodes");
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &net.host(0)])
            .arg(&exe)
            .arg("scale-run")
            .args(["--ips", &ips.join(",")])
            .args(["--hosts", &hosts.join(",")])
            .args(["--names", &names.to_string()])
            .args(["--trials", &trials.to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()?;
        anyhow::ensure!(out.status.success(), "the {n}-node run failed");
        let report: ScaleReport = serde_json::from_slice(&out.stdout)?;
        if let Some(e) = &report.error {
            eprintln!("scale: the {n}-node run stopped early: {e}");
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Prints the results as a Markdown table.
pub(crate) fn print_table(reports: &[ScaleReport]) {
    use ScaleReport as R;
    // A figure a run never reached (a phase that did not finish) is "-".
    let row = |what: &str, f: &dyn Fn(&R) -> Option<String>| {
        let cells: Vec<String> = reports
            .iter()
            .map(|r| f(r).unwrap_or_else(|| "-".to_string()))
            .collect();
        println!("| {what} | {} |", cells.join(" | "));
    };
    let reached = |v: f64| (v > 0.0).then_some(v);
    let spread = |samples: &[f64], q: f64, unit_fmt: &dyn Fn(f64, f64) -> String| {
        (!samples.is_empty()).then(|| unit_fmt(R::p(samples, 50.0), R::p(samples, q)))
    };
    let sizes: Vec<String> = reports
        .iter()
        .map(|r| format!("{} nodes", r.nodes))
        .collect();
    println!("| what | {} |", sizes.join(" | "));
    println!("| --- |{}", " --- |".repeat(reports.len()));
    row(
        "join: all processes started -> every node sees all up",
        &|r| reached(r.join_ms).map(|v| format!("{v:.0} ms")),
    );
    row("gossip bytes/s per node (sent + received, idle)", &|r| {
        reached(r.gossip_bytes_per_sec).map(|v| format!("{v:.0} B/s"))
    });
    row("all bytes/s per node on its link (idle)", &|r| {
        reached(r.link_bytes_per_sec).map(|v| format!("{v:.0} B/s"))
    });
    row("TCP connections per node (cluster port)", &|r| {
        reached(r.tcp_per_node).map(|v| format!("{v:.1}"))
    });
    row("CPU of all node processes, idle (% of one core)", &|r| {
        reached(r.idle_cpu_percent).map(|v| format!("{v:.1} %"))
    });
    row("resident memory per node", &|r| {
        reached(r.rss_per_node).map(|v| format!("{:.0} MB", v / 1e6))
    });
    row("register -> seen by every node, p50 / p99", &|r| {
        spread(&r.visibility_ms, 99.0, &|a, b| {
            format!(
                "{a:.1} / {b:.1} ms ({} names held, {} missed)",
                r.names_held, r.visibility_missed
            )
        })
    });
    row("kill -9 noticed, p50 / max", &|r| {
        spread(&r.kill_detect_ms, 100.0, &|a, b| {
            format!("{a:.1} / {b:.1} ms")
        })
    });
    row("silent node declared down, p50 / max", &|r| {
        spread(&r.silent_detect_ms, 100.0, &|a, b| {
            format!("{a:.0} / {b:.0} ms")
        })
    });
    row("singleton failover after kill -9, p50 / max", &|r| {
        spread(&r.failover_ms, 100.0, &|a, b| format!("{a:.0} / {b:.0} ms"))
    });
    for r in reports {
        if let Some(e) = &r.error {
            println!("\n{} nodes: stopped early: {e}", r.nodes);
        }
    }
}
