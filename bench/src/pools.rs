//! Runner pools: a warm call against calling the same function locally,
//! a process runner's cold boot, calls per second at max x
//! max_concurrency, scaling from 0 to max under a burst, and the memory of
//! an idle runner. The runners are this bench binary, started again with
//! `DROVE_PARENT_FILE` (see `main`).

use std::time::{Duration, Instant};

use drove::pool::{BackendKind, Pool, PoolBuilder};
use drove::{Config, Drove, Shutdown};

use crate::stats::{fmt_duration, fmt_rate, percentile};

/// The function every measurement calls: a small echo.
#[drove::remote(name = "bench.echo.v1")]
pub(crate) async fn echo(x: u64) -> Result<u64, String> {
    Ok(x)
}

/// What the pools bench measured.
#[derive(Debug)]
pub(crate) struct PoolResults {
    /// A warm call through a process runner.
    pub warm_call: Vec<Duration>,
    /// The same function called in this process.
    pub local_call: Vec<Duration>,
    /// Cold boots: call to first result on a fresh runner.
    pub cold: Vec<Duration>,
    /// Calls per second with every slot of the pool busy.
    pub calls_per_sec: f64,
    /// Slots used for that (max x max_concurrency).
    pub slots: usize,
    /// From a burst to `max` runners up, per trial.
    pub scale_up: Vec<Duration>,
    /// Runners for that.
    pub max: usize,
    /// Resident bytes per idle runner (average).
    pub idle_rss: f64,
    /// Resident bytes of this parent node, for scale.
    pub parent_rss: f64,
}

/// The pools this bench defines, also on its runners.
pub(crate) fn pools() -> Vec<PoolBuilder> {
    let process = |name: &str| Pool::builder(name).backend_kind(BackendKind::Process);
    vec![
        process("warm").max(1).max_concurrency(64),
        process("cold").max(1).max_concurrency(1).single_use(true),
        process("wide").max(2).max_concurrency(8),
        process("burst")
            .max(4)
            .max_concurrency(1)
            .idle_shutdown_after(Duration::from_millis(300)),
    ]
}

/// Starts a node with [`pools`]; on a runner, serves until its pool is done.
pub(crate) async fn node(name: &str, gossip_ms: u64) -> anyhow::Result<Drove> {
    let mut config = Config::new(name);
    config.gossip_ms = gossip_ms;
    let port = free_port()?;
    config.listen = format!("127.0.0.1:{port}").parse()?;
    config.cookie = Some(format!("{:032x}", rand::random::<u128>()));
    let mut builder = Drove::builder(config).without_builtins();
    for pool in pools() {
        builder = builder.pool(pool);
    }
    Ok(builder.start().await?)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port")
}

fn rss(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|pages| pages * 4096.0)
        .unwrap_or(0.0)
}

/// Runs every measurement: `calls` sequential calls for latency, `trials`
/// cold boots and bursts, `seconds` of saturation, the parent gossiping
/// every `gossip_ms`.
pub(crate) async fn run(
    calls: usize,
    trials: usize,
    seconds: u64,
    gossip_ms: u64,
) -> anyhow::Result<PoolResults> {
    let drove = node("bench-parent", gossip_ms).await?;
    let pool = |name: &str| {
        drove
            .pool(name)
            .ok_or_else(|| anyhow::anyhow!("no pool {name}"))
    };

    let warm = pool("warm")?;
    warm.call(echo, 0).await?;
    let mut warm_call = Vec::with_capacity(calls);
    let mut local_call = Vec::with_capacity(calls);
    let ctx = drove::pool::Ctx::new(drove.node().clone(), None);
    for i in 0..calls as u64 {
        let t = Instant::now();
        std::hint::black_box(
            <echo as drove::pool::RemoteFn>::run(ctx.clone(), i)
                .await
                .map_err(anyhow::Error::msg)?,
        );
        local_call.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(warm.call(echo, i).await?);
        warm_call.push(t.elapsed());
    }

    let cold_pool = pool("cold")?;
    let mut cold = Vec::new();
    for i in 0..trials as u64 {
        // Single use: each call boots a fresh runner; wait for the last to go.
        while !cold_pool.snapshot().runners.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        cold_pool.call(echo, i).await?;
        cold.push(t.elapsed());
    }

    let wide = pool("wide")?;
    let slots: u64 = 16;
    let warmup: Vec<_> = (0..slots)
        .map(|i| {
            let wide = wide.clone();
            tokio::spawn(async move { wide.call(echo, i).await })
        })
        .collect();
    for w in warmup {
        w.await??;
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..slots)
        .map(|_| {
            let wide = wide.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < end {
                    if wide.call(echo, n).await.is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let mut done = 0u64;
    for w in workers {
        done += w.await?;
    }
    let calls_per_sec = done as f64 / seconds as f64;

    let burst = pool("burst")?;
    let max = 4;
    let mut scale_up = Vec::new();
    let mut idle_rss = 0.0;
    for trial in 0..trials {
        while !burst.snapshot().runners.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        let calls: Vec<_> = (0..max as u64)
            .map(|i| {
                let burst = burst.clone();
                tokio::spawn(async move { burst.call(echo, i).await })
            })
            .collect();
        for c in calls {
            c.await??;
        }
        scale_up.push(t.elapsed());
        if trial == 0 {
            let runners = burst.snapshot().runners;
            let pids: Vec<u32> = runners.iter().filter_map(|r| r.pid).collect();
            idle_rss = pids.iter().map(|&p| rss(p)).sum::<f64>() / pids.len().max(1) as f64;
        }
    }
    let parent_rss = rss(std::process::id());
    drove.shutdown(Shutdown::Leave).await;
    Ok(PoolResults {
        warm_call,
        local_call,
        cold,
        calls_per_sec,
        slots: slots as usize,
        scale_up,
        max,
        idle_rss,
        parent_rss,
    })
}

/// Prints the results as a Markdown table.
pub(crate) fn print_table(r: &PoolResults) {
    let p50 = |v: &[Duration]| percentile(v, 50.0);
    let (warm, local) = (p50(&r.warm_call), p50(&r.local_call));
    println!("| what | raw (same function, in process) | drove | ratio (drove / raw) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| warm call, p50 ({} sequential calls; p99 {}) | {} ns | {} | {:.0}x |",
        r.warm_call.len(),
        fmt_duration(percentile(&r.warm_call, 99.0)),
        local.as_nanos(),
        fmt_duration(warm),
        warm.as_secs_f64() / local.as_secs_f64().max(1e-9)
    );
    println!(
        "| cold boot of a process runner, call to first result ({} trials) | - | p50 {} / max {} | - |",
        r.cold.len(),
        fmt_duration(p50(&r.cold)),
        fmt_duration(percentile(&r.cold, 100.0))
    );
    println!(
        "| calls/s at max x max_concurrency ({} slots, 2 process runners) | - | {} | - |",
        r.slots,
        fmt_rate(r.calls_per_sec)
    );
    println!(
        "| 0 to max ({}) runners under a burst of {} calls, to the last result | - | p50 {} / max {} | - |",
        r.max,
        r.max,
        fmt_duration(p50(&r.scale_up)),
        fmt_duration(percentile(&r.scale_up, 100.0))
    );
    println!(
        "| resident memory per idle runner (the parent node: {:.1} MB) | - | {:.1} MB | - |",
        r.parent_rss / 1e6,
        r.idle_rss / 1e6
    );
}
