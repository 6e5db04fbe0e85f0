//! Pub/sub and cache benchmarks, each engine's nodes in processes of their
//! own: broadcast throughput to 1, 100 and 10,000 subscribers over 3
//! nodes (drove pub/sub against raw ractor_cluster process groups, where
//! the publisher casts to every member), publish-to-receive latency across
//! nodes, and cache write-to-visible-everywhere latency.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use drove_pubsub::PubSub;
use drove_runtime::{ActorError, Context, MemberStatus, Message, NodeConfig};
use ractor::ActorRef;
use ractor_cluster::{NodeServer, RactorClusterMessage};
use serde::{Deserialize, Serialize};

use crate::stats::{fmt_duration, fmt_rate};
use crate::stats::{now_ns, percentile, Killed};

const COOKIE: &str = "pubsub-bench";
const TOPIC: &str = "bench";
const DONE: &str = "bench.done";

/// One node's part of a run.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// `drove` or `raw`.
    #[arg(long)]
    pub engine: String,
    /// Node name.
    #[arg(long)]
    pub name: String,
    /// Cluster address.
    #[arg(long)]
    pub listen: String,
    /// Seed (drove) or peers to connect to (raw).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Subscribers on this node.
    #[arg(long)]
    pub subs: usize,
    /// Subscribers in the whole cluster.
    #[arg(long)]
    pub total_subs: usize,
    /// Messages to publish.
    #[arg(long)]
    pub messages: u64,
    /// Publish from this node.
    #[arg(long)]
    pub publisher: bool,
    /// Nodes in the cluster.
    #[arg(long)]
    pub nodes: usize,
    /// Pause between publishes, microseconds (0: back to back).
    #[arg(long, default_value_t = 0)]
    pub pace_us: u64,
}

/// What the publisher reports.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct RunResult {
    /// From the first publish to the last subscriber's last message.
    pub elapsed_s: f64,
    /// Publish-to-receive latency, median over all samples, ns.
    pub p50_ns: u64,
    /// Publish-to-receive latency, 99th percentile, ns.
    pub p99_ns: u64,
}

/// What each subscriber node collects.
#[derive(Default)]
struct Tally {
    done_subs: AtomicUsize,
    latencies: Mutex<Vec<u64>>,
}

impl Tally {
    /// Records one subscriber's last message; true for the node's last.
    fn finish(&self, subs: usize) -> bool {
        self.done_subs.fetch_add(1, Ordering::SeqCst) + 1 == subs
    }

    fn percentiles(&self) -> (u64, u64) {
        let lat = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let d: Vec<Duration> = lat.iter().map(|&n| Duration::from_nanos(n)).collect();
        (
            percentile(&d, 50.0).as_nanos() as u64,
            percentile(&d, 99.0).as_nanos() as u64,
        )
    }
}

// ---- drove ----

#[derive(Clone, Serialize, Deserialize)]
struct Tick {
    seq: u64,
    sent_ns: u64,
}

impl Message for Tick {
    const TAG: &'static str = "bench.pubsub.tick";
}

#[derive(Clone, Serialize, Deserialize)]
struct Done {
    node: String,
    p50_ns: u64,
    p99_ns: u64,
}

impl Message for Done {
    const TAG: &'static str = "bench.pubsub.done";
}

struct Sub {
    expect: u64,
    subs: usize,
    tally: Arc<Tally>,
    /// The first subscriber of each node records latencies.
    record: bool,
    done: Arc<tokio::sync::Notify>,
}

impl drove_runtime::Actor for Sub {
    type Msg = Tick;
    type State = u64;
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<u64, ActorError> {
        Ok(0)
    }

    async fn handle(&self, _: &Context<Self>, msg: Tick, n: &mut u64) -> Result<(), ActorError> {
        if self.record {
            let lat = now_ns().saturating_sub(msg.sent_ns);
            self.tally
                .latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(lat);
        }
        *n += 1;
        if *n == self.expect && self.tally.finish(self.subs) {
            self.done.notify_one();
        }
        Ok(())
    }
}

async fn drove_node(a: NodeArgs) -> anyhow::Result<Option<RunResult>> {
    let mut config = NodeConfig::new(a.name.clone());
    config.listen = a.listen.parse()?;
    config.seeds = a.seeds.clone();
    config.cookie = COOKIE.to_string();
    let node = config.start().await?;
    let pubsub = PubSub::start(&node).await?;
    let tally = Arc::new(Tally::default());
    let done = Arc::new(tokio::sync::Notify::new());
    for i in 0..a.subs {
        let sub = Sub {
            expect: a.messages,
            subs: a.subs,
            tally: tally.clone(),
            record: i == 0,
            done: done.clone(),
        };
        let h = node.spawn(sub, ()).await?;
        pubsub.subscribe(TOPIC, &h)?;
    }
    let sub_nodes = a.total_subs.min(a.nodes);
    if !a.publisher {
        done.notified().await;
        let (p50_ns, p99_ns) = tally.percentiles();
        let msg = Done {
            node: a.name.clone(),
            p50_ns,
            p99_ns,
        };
        pubsub.broadcast(DONE, &msg)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        return Ok(None);
    }
    let mut dones = pubsub.subscribe_stream::<Done>(DONE)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while node
        .members()
        .iter()
        .filter(|m| m.status == MemberStatus::Up)
        .count()
        < a.nodes
        || pubsub.subscriber_nodes(TOPIC).len() < sub_nodes
    {
        anyhow::ensure!(Instant::now() < deadline, "the cluster never got ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the others learn that this node follows the done topic.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now();
    for seq in 0..a.messages {
        let p = pubsub.broadcast(
            TOPIC,
            &Tick {
                seq,
                sent_ns: now_ns(),
            },
        )?;
        anyhow::ensure!(p.failed == 0, "a broadcast could not be sent: {p:?}");
        if a.pace_us > 0 {
            tokio::time::sleep(Duration::from_micros(a.pace_us)).await;
        }
    }
    let mut result = RunResult::default();
    let remote_nodes = sub_nodes - usize::from(a.subs > 0);
    for _ in 0..remote_nodes {
        let d = tokio::time::timeout(Duration::from_secs(120), dones.recv())
            .await
            .context("waiting for the subscribers")?
            .context("done stream closed")?
            .context("a done report was dropped")?;
        result.p50_ns = result.p50_ns.max(d.p50_ns);
        result.p99_ns = result.p99_ns.max(d.p99_ns);
    }
    if a.subs > 0 {
        tokio::time::timeout(Duration::from_secs(120), done.notified())
            .await
            .context("waiting for the local subscribers")?;
    }
    result.elapsed_s = start.elapsed().as_secs_f64();
    Ok(Some(result))
}

// ---- raw ractor_cluster: a process group, the publisher casts to each member ----

#[derive(RactorClusterMessage)]
enum RawTick {
    Tick(u64, u64),
}

#[derive(RactorClusterMessage)]
enum RawDone {
    Done(u64, u64),
}

struct RawSub {
    expect: u64,
    subs: usize,
    tally: Arc<Tally>,
    record: bool,
    done: Arc<tokio::sync::Notify>,
}

impl ractor::Actor for RawSub {
    type Msg = RawTick;
    type State = u64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<RawTick>,
        _: (),
    ) -> Result<u64, ractor::ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<RawTick>,
        msg: RawTick,
        n: &mut u64,
    ) -> Result<(), ractor::ActorProcessingErr> {
        let RawTick::Tick(_, sent_ns) = msg;
        if self.record {
            let lat = now_ns().saturating_sub(sent_ns);
            self.tally
                .latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(lat);
        }
        *n += 1;
        if *n == self.expect && self.tally.finish(self.subs) {
            self.done.notify_one();
        }
        Ok(())
    }
}

struct RawDoneSink(tokio::sync::mpsc::UnboundedSender<(u64, u64)>);

impl ractor::Actor for RawDoneSink {
    type Msg = RawDone;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<RawDone>,
        _: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<RawDone>,
        RawDone::Done(p50, p99): RawDone,
        _: &mut (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        let _ = self.0.send((p50, p99));
        Ok(())
    }
}

async fn raw_node(a: NodeArgs) -> anyhow::Result<Option<RunResult>> {
    let listen: std::net::SocketAddr = a.listen.parse()?;
    let server = NodeServer::new(
        listen.port(),
        COOKIE.into(),
        a.name.clone(),
        listen.ip().to_string(),
        None,
        None,
    )
    .with_listen_addr(listen.ip());
    let (server, _) = ractor::Actor::spawn(None, server, ()).await?;
    for peer in a.seeds.iter().filter(|s| !s.is_empty()) {
        ractor_cluster::client_connect(&server, peer.as_str()).await?;
    }
    let tally = Arc::new(Tally::default());
    let done = Arc::new(tokio::sync::Notify::new());
    let mut cells = Vec::new();
    for i in 0..a.subs {
        let sub = RawSub {
            expect: a.messages,
            subs: a.subs,
            tally: tally.clone(),
            record: i == 0,
            done: done.clone(),
        };
        let (r, _) = ractor::Actor::spawn(None, sub, ()).await?;
        cells.push(r.get_cell());
    }
    ractor::pg::join(TOPIC.to_string(), cells);
    if !a.publisher {
        done.notified().await;
        let (p50, p99) = tally.percentiles();
        let deadline = Instant::now() + Duration::from_secs(30);
        let sink: ActorRef<RawDone> = loop {
            if let Some(c) = ractor::pg::get_members(&DONE.to_string())
                .into_iter()
                .next()
            {
                break c.into();
            }
            anyhow::ensure!(Instant::now() < deadline, "no done sink");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        sink.cast(RawDone::Done(p50, p99))?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        return Ok(None);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (sink, _) = ractor::Actor::spawn(None, RawDoneSink(tx), ()).await?;
    ractor::pg::join(DONE.to_string(), vec![sink.get_cell()]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let members = loop {
        let m = ractor::pg::get_members(&TOPIC.to_string());
        if m.len() >= a.total_subs {
            break m;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} raw subscribers appeared",
            m.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let members: Vec<ActorRef<RawTick>> = members.into_iter().map(Into::into).collect();
    let start = Instant::now();
    for seq in 0..a.messages {
        let sent = now_ns();
        for m in &members {
            m.cast(RawTick::Tick(seq, sent))?;
        }
        if a.pace_us > 0 {
            tokio::time::sleep(Duration::from_micros(a.pace_us)).await;
        }
    }
    let mut result = RunResult::default();
    let sub_nodes = a.total_subs.min(a.nodes);
    for _ in 0..sub_nodes - usize::from(a.subs > 0) {
        let (p50, p99) = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .context("waiting for the raw subscribers")?
            .context("done channel closed")?;
        result.p50_ns = result.p50_ns.max(p50);
        result.p99_ns = result.p99_ns.max(p99);
    }
    if a.subs > 0 {
        tokio::time::timeout(Duration::from_secs(120), done.notified())
            .await
            .context("waiting for the local raw subscribers")?;
    }
    result.elapsed_s = start.elapsed().as_secs_f64();
    drop(server);
    Ok(Some(result))
}

/// `pubsub-node`: one node of a run; the publisher prints its result.
pub(crate) async fn node(a: NodeArgs) -> anyhow::Result<Option<RunResult>> {
    match a.engine.as_str() {
        "drove" => drove_node(a).await,
        "raw" => raw_node(a).await,
        other => anyhow::bail!("unknown engine {other:?}"),
    }
}

/// Runs 3 node processes of `engine` with `total` subscribers spread over
/// them (all on the publisher's peers when `total` < 3) and returns the
/// publisher's result.
pub(crate) fn run(
    engine: &str,
    total: usize,
    messages: u64,
    pace_us: u64,
) -> anyhow::Result<RunResult> {
    let exe = std::env::current_exe()?;
    let ip = drove_tests::fresh_loopback_ip();
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("{ip}:{}", drove_tests::free_port(&ip)))
        .collect();
    // The publisher is node 0; with fewer subscribers than nodes they go
    // to the other nodes, so every message crosses the network.
    let subs: Vec<usize> = if total < 3 {
        vec![0, total, 0]
    } else {
        (0..3)
            .map(|i| total / 3 + usize::from(i < total % 3))
            .collect()
    };
    let args = |i: usize, seeds: &str| -> Vec<String> {
        vec![
            "pubsub-node".into(),
            "--engine".into(),
            engine.into(),
            "--name".into(),
            format!("p{i}"),
            "--listen".into(),
            addrs[i].clone(),
            "--seeds".into(),
            seeds.into(),
            "--subs".into(),
            subs[i].to_string(),
            "--total-subs".into(),
            total.to_string(),
            "--messages".into(),
            messages.to_string(),
            "--nodes".into(),
            "3".into(),
            "--pace-us".into(),
            pace_us.to_string(),
        ]
    };
    // Started in the order 1, 2, 0; each seeds with (raw: connects to)
    // the nodes started before it, which makes a full mesh for both.
    let mut others = Vec::new();
    for i in 1..3 {
        let seeds = addrs[1..i].join(",");
        others.push(Killed(
            std::process::Command::new(&exe)
                .args(args(i, &seeds))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()?,
        ));
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut publisher = args(0, &addrs[1..].join(","));
    publisher.push("--publisher".into());
    let out = std::process::Command::new(&exe)
        .args(&publisher)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .context("running the publisher")?;
    anyhow::ensure!(out.status.success(), "the {engine} publisher failed");
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs the pub/sub and cache-visibility benchmarks and prints a Markdown
/// table.
pub(crate) fn table(
    messages: &[u64],
    latency_messages: u64,
    cache_writes: usize,
) -> anyhow::Result<()> {
    println!("| what | raw engine | drove | ratio (drove / raw) |");
    println!("| --- | --- | --- | --- |");
    for (subs, &n) in [1usize, 100, 10_000].iter().zip(messages.iter()) {
        let raw = run("raw", *subs, n, 0)?;
        let drove = run("drove", *subs, n, 0)?;
        let deliveries = |r: &RunResult| n as f64 * *subs as f64 / r.elapsed_s;
        println!(
                    "| broadcast to {subs} subscribers over 3 nodes, {n} messages: deliveries/s | {} | {} | {:.2}x |",
                    fmt_rate(deliveries(&raw)),
                    fmt_rate(deliveries(&drove)),
                    deliveries(&drove) / deliveries(&raw)
                );
    }
    let raw = run("raw", 1, latency_messages, 1000)?;
    let drove = run("drove", 1, latency_messages, 1000)?;
    let ns = |v: u64| fmt_duration(Duration::from_nanos(v));
    println!(
                "| publish -> receive on another node, p50 ({latency_messages} messages, 1/ms) | {} | {} | {:.2}x |",
                ns(raw.p50_ns),
                ns(drove.p50_ns),
                drove.p50_ns as f64 / raw.p50_ns.max(1) as f64
            );
    println!(
        "| publish -> receive on another node, p99 | {} | {} | {:.2}x |",
        ns(raw.p99_ns),
        ns(drove.p99_ns),
        drove.p99_ns as f64 / raw.p99_ns.max(1) as f64
    );
    let c = crate::cache::run(cache_writes)?;
    println!(
                "| cache put -> visible on both other nodes ({cache_writes} writes, 3 nodes) | - | p50 {} / p99 {} / max {} | - |",
                ns(c.p50_ns),
                ns(c.p99_ns),
                ns(c.max_ns)
            );
    Ok(())
}
