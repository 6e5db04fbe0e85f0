//! Durable events: events per second from signal to handled, on Redis
//! (against raw `redis-benchmark` LPUSH and RPOP on the same server, in the
//! same run) and on SQLite; how late delayed events start with 1,000 and
//! with 1,000,000 timers pending; and the store's memory per pending timer
//! (against a bare sorted-set entry, Redis' own timer, in the same run).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drove::events::{Envelope, EventCtx, Filter, Handler, When};
use drove::jobs::{JobError, StoreUrl};
use drove::{Config, Drove, Shutdown};
use drove_tests::redis::RedisServer;
use serde_json::json;

use crate::stats::{fmt_duration, fmt_rate, percentile};

/// The type every measured event has.
const KIND: &str = "bench.event";
/// The type of the pending timers nobody waits for.
const FILLER: &str = "bench.filler";

/// Counts deliveries and records how late each started.
#[derive(Clone, Default)]
struct Probe {
    late: Arc<Mutex<Vec<Duration>>>,
}

impl Handler for Probe {
    const NAME: &'static str = "bench.probe";

    fn filter(&self) -> Filter {
        Filter::only([KIND])
    }

    async fn handle(&self, ctx: EventCtx, _event: Envelope) -> Result<(), JobError> {
        let late = now_ms().saturating_sub(ctx.due_ms);
        self.late
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Duration::from_millis(late));
        Ok(())
    }
}

impl Probe {
    fn count(&self) -> usize {
        self.late.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.late.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn node(store: StoreUrl, probe: &Probe) -> anyhow::Result<Drove> {
    let mut config = Config::new("bench");
    let port = crate::pools::free_port()?;
    config.listen = format!("127.0.0.1:{port}").parse()?;
    config.cookie = Some(drove_tests::random_hex());
    config.jobs.store = store;
    config.events.max_demand = 1000;
    Ok(Drove::builder(config)
        .without_builtins()
        .handler(probe.clone())
        .start()
        .await?)
}

async fn wait_count(probe: &Probe, n: usize, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    while probe.count() < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: {} of {n}",
            probe.count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// `n` events signalled by 32 concurrent signallers, one a call: events
/// per second from the first signal to the last handled.
async fn throughput(drove: &Drove, probe: &Probe, n: usize) -> anyhow::Result<f64> {
    let events = drove
        .events()
        .ok_or_else(|| anyhow::anyhow!("no events"))?
        .clone();
    probe.take();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let events = events.clone();
        let mine = n / 32 + usize::from(w < n % 32);
        tasks.push(tokio::spawn(async move {
            for i in 0..mine {
                events
                    .signal_value(KIND, json!({ "i": i }), When::Now)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    wait_count(probe, n, "events handled").await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `pending` timers due in an hour, stored 1000 a call.
async fn fill(drove: &Drove, pending: usize) -> anyhow::Result<()> {
    let events = drove.events().ok_or_else(|| anyhow::anyhow!("no events"))?;
    let mut left = pending;
    while left > 0 {
        let chunk = left.min(1000);
        let batch = (0..chunk)
            .map(|i| (FILLER.to_owned(), json!({ "i": i })))
            .collect();
        events
            .signal_all(batch, When::After(Duration::from_secs(3600)))
            .await?;
        left -= chunk;
    }
    Ok(())
}

/// 1000 events due 0.5 to 3 s ahead, with whatever is pending: how late
/// each delivery started.
async fn lateness(drove: &Drove, probe: &Probe) -> anyhow::Result<Vec<Duration>> {
    let events = drove.events().ok_or_else(|| anyhow::anyhow!("no events"))?;
    probe.take();
    for i in 0..1000u64 {
        let delay = Duration::from_millis(500 + rand::random::<u64>() % 2500);
        events
            .signal_value(KIND, json!({ "i": i }), When::After(delay))
            .await?;
    }
    wait_count(probe, 1000, "delayed events").await?;
    Ok(probe.take())
}

fn redis_used_memory(port: u16) -> anyhow::Result<u64> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info", "memory"])
        .output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no used_memory"))
}

/// Bytes per entry of a bare sorted set of `n` timers (member = an id,
/// score = a due time): the least a Redis timer costs.
fn raw_zset_bytes(port: u16, n: usize) -> anyhow::Result<f64> {
    let before = redis_used_memory(port)?;
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    let due = now_ms() + 3_600_000;
    let mut buf = String::new();
    for i in 0..n {
        let score = (due + i as u64).to_string();
        let member = i.to_string();
        buf.push_str(&format!(
            "*4\r\n$4\r\nZADD\r\n$9\r\nraw:timer\r\n${}\r\n{score}\r\n${}\r\n{member}\r\n",
            score.len(),
            member.len()
        ));
        if buf.len() > 1 << 20 {
            stdin.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    stdin.write_all(buf.as_bytes())?;
    drop(stdin);
    child.wait()?;
    let after = redis_used_memory(port)?;
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

struct StoreRun {
    rate: f64,
    late_small: Vec<Duration>,
    late_big: Vec<Duration>,
    bytes_per_timer: f64,
}

async fn one_store(
    store: StoreUrl,
    events: usize,
    pending: usize,
    size: &dyn Fn() -> anyhow::Result<u64>,
) -> anyhow::Result<StoreRun> {
    let probe = Probe::default();
    let drove = node(store, &probe).await?;
    let rate = throughput(&drove, &probe, events).await?;
    fill(&drove, 1000).await?;
    let late_small = lateness(&drove, &probe).await?;
    let before = size()?;
    fill(&drove, pending - 1000).await?;
    let bytes_per_timer = size()?.saturating_sub(before) as f64 / (pending - 1000) as f64;
    let late_big = lateness(&drove, &probe).await?;
    drove.shutdown(Shutdown::Leave).await;
    Ok(StoreRun {
        rate,
        late_small,
        late_big,
        bytes_per_timer,
    })
}

/// Runs everything and prints the Markdown table.
pub(crate) async fn run(events: usize, pending: usize) -> anyhow::Result<()> {
    anyhow::ensure!(pending > 1000, "--pending must be over 1000");
    let redis = RedisServer::start_in_memory();
    let (lpush, rpop) = crate::jobs::raw_redis(redis.port(), 200_000)?;
    let pair = 1.0 / (1.0 / lpush + 1.0 / rpop);
    let zset = raw_zset_bytes(redis.port(), pending)?;
    let port = redis.port();
    let r = one_store(StoreUrl::Redis(redis.url()), events, pending, &|| {
        redis_used_memory(port)
    })
    .await?;
    drop(redis);
    let file = std::env::temp_dir().join(format!(
        "drove-bench-events-{}.sqlite3",
        drove_tests::random_hex()
    ));
    let path = file.clone();
    let file_size = move || -> anyhow::Result<u64> {
        let mut total = 0;
        for suffix in ["", "-wal"] {
            total += std::fs::metadata(format!("{}{suffix}", path.display()))
                .map(|m| m.len())
                .unwrap_or(0);
        }
        Ok(total)
    };
    let s = one_store(StoreUrl::Sqlite(file.clone()), events, pending, &file_size).await?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }

    let p = |v: &[Duration], q: f64| fmt_duration(percentile(v, q));
    println!("| what | raw | drove | ratio (drove / raw) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| events/s, signal to handled, Redis ({events} events, 32 signallers, one handler) | {} LPUSH+RPOP pairs/s (redis-benchmark, unpipelined) | {} | {:.2} |",
        fmt_rate(pair), fmt_rate(r.rate), r.rate / pair
    );
    println!(
        "| events/s, signal to handled, SQLite (WAL, same run) | - | {} | - |",
        fmt_rate(s.rate)
    );
    println!(
        "| lateness of delayed events, 1,000 timers pending | SQS: 1 s precision | Redis p50 {} / p99 {}; SQLite p50 {} / p99 {} | - |",
        p(&r.late_small, 50.0), p(&r.late_small, 99.0), p(&s.late_small, 50.0), p(&s.late_small, 99.0)
    );
    println!(
        "| lateness of delayed events, {pending} timers pending | - | Redis p50 {} / p99 {}; SQLite p50 {} / p99 {} | - |",
        p(&r.late_big, 50.0), p(&r.late_big, 99.0), p(&s.late_big, 50.0), p(&s.late_big, 99.0)
    );
    println!(
        "| store memory per pending timer | {zset:.0} B (a bare ZADD entry, Redis) | Redis {:.0} B; SQLite file {:.0} B | {:.1} |",
        r.bytes_per_timer, s.bytes_per_timer, r.bytes_per_timer / zset
    );
    Ok(())
}
