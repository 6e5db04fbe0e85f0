//! The cache at scale: get and put latency with 1,000,000 keys while
//! entries expire, on one node, against Redis (GET / SET PX) holding the
//! same keys in the same run.

use std::time::{Duration, Instant};

use drove_cache::Cache;
use drove_runtime::NodeConfig;
use drove_tests::redis::RedisServer;
use rand::Rng;

use crate::stats::fmt_duration;
use crate::stats::percentile;

/// Latencies of one engine.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    pub gets: Vec<Duration>,
    pub puts: Vec<Duration>,
    /// Entries that expired and were removed during the measurement.
    pub expired: u64,
    /// Memory held per key after loading (resident bytes of this process
    /// for drove, `used_memory` for Redis).
    pub bytes_per_key: f64,
}

impl Latencies {
    pub(crate) fn p(&self, gets: bool, q: f64) -> Duration {
        percentile(if gets { &self.gets } else { &self.puts }, q)
    }
}

/// The TTL of key `i`: half the keys have none; the others expire spread
/// over the first `seconds` of the measurement, so expiry runs throughout.
fn ttl_of(i: usize, keys: usize, seconds: u64) -> Option<Duration> {
    (i < keys / 2).then(|| Duration::from_millis(2000 + (i as u64 * 7919) % (seconds * 1000)))
}

fn value_of(i: usize) -> String {
    format!("value-{i:012}")
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// drove: one node's cache.
pub(crate) async fn drove(keys: usize, seconds: u64) -> anyhow::Result<Latencies> {
    let mut config = NodeConfig::new("cache-bench");
    config.listen = format!("127.0.0.1:{}", drove_tests::free_port("127.0.0.1")).parse()?;
    let node = config.start().await?;
    let cache = Cache::start(&node).await?;
    let before = rss();
    for i in 0..keys {
        cache.put(&format!("k{i}"), &value_of(i), ttl_of(i, keys, seconds))?;
    }
    let bytes_per_key = rss().saturating_sub(before) as f64 / keys as f64;
    let expired_before = expired(&cache);
    let mut out = Latencies {
        bytes_per_key,
        ..Latencies::default()
    };
    let mut rng = rand::rng();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let i = rng.random_range(0..keys);
        let key = format!("k{i}");
        let t = Instant::now();
        let _: Option<String> = cache.get(&key)?;
        out.gets.push(t.elapsed());
        let t = Instant::now();
        cache.put(&key, &value_of(i), ttl_of(i, keys, seconds))?;
        out.puts.push(t.elapsed());
        // Let the housekeeping task in, as a server's handlers would.
        tokio::task::yield_now().await;
    }
    out.expired = expired(&cache) - expired_before;
    node.leave().await;
    Ok(out)
}

fn expired(cache: &Cache) -> u64 {
    cache
        .metrics_text()
        .lines()
        .find_map(|l| {
            l.strip_prefix("drove_cache_expired_total")?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Redis: the same keys and TTLs, one connection, each command awaited.
pub(crate) async fn redis(keys: usize, seconds: u64) -> anyhow::Result<Latencies> {
    let server = RedisServer::start_in_memory();
    let client = redis::Client::open(server.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let used = |info: String| {
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    for start in (0..keys).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 10_000).min(keys) {
            set(&mut pipe, i, keys, seconds);
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    let after: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    let expired_before = expired_keys(&mut conn).await?;
    let mut out = Latencies {
        bytes_per_key: used(after).saturating_sub(used(before)) as f64 / keys as f64,
        ..Latencies::default()
    };
    let mut rng = rand::rng();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let i = rng.random_range(0..keys);
        let t = Instant::now();
        let _: Option<String> = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query_async(&mut conn)
            .await?;
        out.gets.push(t.elapsed());
        let mut pipe = redis::pipe();
        set(&mut pipe, i, keys, seconds);
        let t = Instant::now();
        pipe.query_async::<()>(&mut conn).await?;
        out.puts.push(t.elapsed());
    }
    out.expired = expired_keys(&mut conn).await? - expired_before;
    drop(server);
    Ok(out)
}

fn set(pipe: &mut redis::Pipeline, i: usize, keys: usize, seconds: u64) {
    let cmd = pipe.cmd("SET").arg(format!("k{i}")).arg(value_of(i));
    if let Some(ttl) = ttl_of(i, keys, seconds) {
        cmd.arg("PX").arg(ttl.as_millis() as u64);
    }
    cmd.ignore();
}

async fn expired_keys(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("stats").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("expired_keys:")?.trim().parse().ok())
        .unwrap_or(0))
}

/// Runs Redis and the drove cache and prints a Markdown table.
pub(crate) fn table(rt: &tokio::runtime::Runtime, keys: usize, seconds: u64) -> anyhow::Result<()> {
    let raw = rt.block_on(redis(keys, seconds))?;
    let drove = rt.block_on(drove(keys, seconds))?;
    println!("| what ({keys} keys, half expiring during {seconds} s) | Redis | drove cache (one node) | ratio (drove / raw) |");
    println!("| --- | --- | --- | --- |");
    for (what, gets) in [("get", true), ("put", false)] {
        for q in [50.0, 99.0, 99.9] {
            let (r, d) = (raw.p(gets, q), drove.p(gets, q));
            println!(
                "| {what} p{q} | {} | {} | {:.2}x |",
                fmt_duration(r),
                fmt_duration(d),
                d.as_secs_f64() / r.as_secs_f64().max(1e-9)
            );
        }
    }
    println!(
        "| operations measured (get + put) | {} | {} | - |",
        raw.gets.len() + raw.puts.len(),
        drove.gets.len() + drove.puts.len()
    );
    println!(
        "| entries expired during the run | {} | {} | - |",
        raw.expired, drove.expired
    );
    println!(
        "| memory per key | {:.0} B | {:.0} B | {:.2}x |",
        raw.bytes_per_key,
        drove.bytes_per_key,
        drove.bytes_per_key / raw.bytes_per_key.max(1.0)
    );
    Ok(())
}
