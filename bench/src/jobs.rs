//! Durable jobs: no-op jobs per second through Redis (against raw
//! `redis-benchmark` LPUSH and RPOP on the same server, in the same run)
//! and through SQLite, enqueue latency, scheduled jobs' lateness, and the
//! rescue of a killed node's jobs (real node processes).

use std::process::Command;
use std::time::{Duration, Instant};

use drove::jobs::{JobId, JobSpec, PipelineConfig, Scope, StoreUrl};
use drove::{Config, Drove, Shutdown};
use drove_tests::redis::RedisServer;
use drove_tests::{send_json, start_all_and_wait, wait_for, NodeProc};
use serde_json::json;

use crate::stats::{fmt_duration, fmt_rate, percentile};

async fn node(store: StoreUrl, max_demand: u32) -> anyhow::Result<Drove> {
    let mut config = Config::new("bench");
    let port = crate::pools::free_port()?;
    config.listen = format!("127.0.0.1:{port}").parse()?;
    config.cookie = Some(drove_tests::random_hex());
    config.jobs.store = store;
    config.jobs.pipelines = vec![PipelineConfig {
        max_demand,
        ..PipelineConfig::default_pipeline()
    }];
    Ok(Drove::builder(config).start().await?)
}

/// Enqueues `n` no-op jobs (bulk, 1000 a call) while the queue is paused,
/// then runs them; returns (enqueued/s, completed/s).
async fn throughput(store: StoreUrl, n: usize) -> anyhow::Result<(f64, f64)> {
    let drove = node(store, 1000).await?;
    let jobs = drove
        .jobs()
        .ok_or_else(|| anyhow::anyhow!("no jobs"))?
        .clone();
    jobs.pause("default", Scope::Cluster, Some(Duration::from_secs(10)))
        .await?;
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let chunk = left.min(1000);
        let specs = (0..chunk)
            .map(|_| JobSpec::raw("default", "drove.noop", json!(null)))
            .collect();
        jobs.insert_all(specs).await?;
        left -= chunk;
    }
    let enqueue_rate = n as f64 / started.elapsed().as_secs_f64();
    let before = jobs.outcome_total("completed");
    let started = Instant::now();
    jobs.resume("default", Scope::Cluster, None).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while jobs.outcome_total("completed") < before + n as u64 {
        anyhow::ensure!(Instant::now() < deadline, "jobs did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let run_rate = n as f64 / started.elapsed().as_secs_f64();
    drove.shutdown(Shutdown::Leave).await;
    Ok((enqueue_rate, run_rate))
}

/// Sequential single enqueues.
async fn enqueue_latency(store: StoreUrl, n: usize) -> anyhow::Result<Vec<Duration>> {
    let drove = node(store, 100).await?;
    let jobs = drove
        .jobs()
        .ok_or_else(|| anyhow::anyhow!("no jobs"))?
        .clone();
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        jobs.insert(JobSpec::raw("latency", "drove.noop", json!(null)))
            .await?;
        took.push(started.elapsed());
    }
    drove.shutdown(Shutdown::Leave).await;
    Ok(took)
}

/// `n` no-op jobs due at random times 0.2 to 3 s ahead; how late each
/// started.
async fn lateness(store: StoreUrl, n: usize) -> anyhow::Result<Vec<Duration>> {
    let drove = node(store, 100).await?;
    let jobs = drove
        .jobs()
        .ok_or_else(|| anyhow::anyhow!("no jobs"))?
        .clone();
    let specs = (0..n)
        .map(|_| {
            let delay = Duration::from_millis(200 + rand::random::<u64>() % 2800);
            JobSpec::raw("default", "drove.noop", json!(null)).run_in(delay)
        })
        .collect();
    let ids: Vec<JobId> = jobs
        .insert_all(specs)
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut late = Vec::with_capacity(n);
    for id in ids {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = jobs
                .get(id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("lost job"))?;
            if let Some(at) = job.attempted_at_ms {
                late.push(Duration::from_millis(
                    at.saturating_sub(job.scheduled_at_ms),
                ));
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "job {id} never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drove.shutdown(Shutdown::Leave).await;
    Ok(late)
}

/// Kill -9 of a node holding jobs: (kill to rescue, rescue to the
/// attempt on a survivor) per rescued job, over `trials` kills.
async fn rescue(trials: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut to_rescue = Vec::new();
    let mut to_restart = Vec::new();
    for _ in 0..trials {
        let redis = RedisServer::start_in_memory();
        let cookie = drove_tests::random_hex();
        let mut nodes: Vec<NodeProc> = Vec::new();
        for i in 0..3 {
            let seeds = nodes
                .first()
                .map(|f| vec![f.listen.to_string()])
                .unwrap_or_default();
            let mut n = NodeProc::new(&format!("n{}", i + 1), seeds, &cookie);
            n.extra = vec![
                "--jobs".into(),
                redis.url(),
                "--pipeline".into(),
                "slow:max_demand=4".into(),
            ];
            nodes.push(n);
        }
        start_all_and_wait(&mut nodes, Duration::from_secs(60)).await;
        let pause = json!({"scope": "node", "wait_ms": 5000});
        for n in &nodes[..2] {
            send_json(
                "POST",
                &n.http_addr(),
                "/api/jobs/queues/slow/pause",
                &pause,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        }
        let mut ids = Vec::new();
        for _ in 0..4 {
            let body = json!({"queue": "slow", "worker": "drove.sleep", "args": {"ms": 10_000}});
            let (_, text) = send_json("POST", &nodes[0].http_addr(), "/api/jobs", &body)
                .await
                .map_err(anyhow::Error::msg)?;
            let v: serde_json::Value = serde_json::from_str(&text)?;
            ids.push(v["id"].as_u64().unwrap_or(0));
        }
        let http = nodes[0].http_addr();
        for id in &ids {
            wait_for(Duration::from_secs(30), "the job to run on n3", || async {
                let j = job(&http, *id).await?;
                (j["state"] == "executing").then_some(())
            })
            .await;
        }
        for n in &nodes[..2] {
            send_json(
                "POST",
                &n.http_addr(),
                "/api/jobs/queues/slow/resume",
                &pause,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        }
        let killed_at = now_ms();
        nodes[2].kill9();
        for id in &ids {
            let j = wait_for(Duration::from_secs(30), "the rescued attempt", || async {
                let j = job(&http, *id).await?;
                (j["attempt"] == 2 && j["attempted_at_ms"].is_u64()).then_some(j)
            })
            .await;
            let rescued = j["errors"][0]["at_ms"].as_u64().unwrap_or(killed_at);
            let restarted = j["attempted_at_ms"].as_u64().unwrap_or(rescued);
            to_rescue.push(Duration::from_millis(rescued.saturating_sub(killed_at)));
            to_restart.push(Duration::from_millis(restarted.saturating_sub(rescued)));
        }
    }
    Ok((to_rescue, to_restart))
}

async fn job(http: &str, id: u64) -> Option<serde_json::Value> {
    let (status, text) =
        drove_admin::client::get(http, &format!("/api/jobs/{id}"), Duration::from_secs(5))
            .await
            .ok()?;
    (status == 200).then(|| serde_json::from_str(&text).ok())?
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `redis-benchmark -t lpush,rpop` on `port`: requests/s of each.
pub(crate) fn raw_redis(port: u16, n: usize) -> anyhow::Result<(f64, f64)> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "lpush,rpop", "-n", &n.to_string(), "-q"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = |name: &str| {
        text.split(['\r', '\n'])
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .next_back()
            .ok_or_else(|| anyhow::anyhow!("no {name} rate in: {text}"))
    };
    Ok((rate("LPUSH:")?, rate("RPOP:")?))
}

/// Runs everything and prints the Markdown table.
pub(crate) async fn run(jobs: usize, latency: usize, trials: usize) -> anyhow::Result<()> {
    let redis = RedisServer::start_in_memory();
    let (lpush, rpop) = raw_redis(redis.port(), 200_000)?;
    let pair = 1.0 / (1.0 / lpush + 1.0 / rpop);
    let (r_enq, r_run) = throughput(StoreUrl::Redis(redis.url()), jobs).await?;
    let r_lat = enqueue_latency(StoreUrl::Redis(redis.url()), latency).await?;
    let r_late = lateness(StoreUrl::Redis(redis.url()), 1000).await?;
    drop(redis);
    let file = std::env::temp_dir().join(format!(
        "drove-bench-jobs-{}.sqlite3",
        drove_tests::random_hex()
    ));
    let sqlite = StoreUrl::Sqlite(file.clone());
    let (s_enq, s_run) = throughput(sqlite.clone(), jobs).await?;
    let s_lat = enqueue_latency(sqlite.clone(), latency).await?;
    let s_late = lateness(sqlite, 1000).await?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    let (to_rescue, to_restart) = rescue(trials).await?;

    let p = |v: &[Duration], q: f64| fmt_duration(percentile(v, q));
    println!("| what | raw | drove | ratio (drove / raw) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| no-op jobs/s through Redis ({jobs} jobs, one node, max_demand 1000) | LPUSH {} + RPOP {} = {} push-pop pairs (redis-benchmark, unpipelined) | {} | {:.2} |",
        fmt_rate(lpush), fmt_rate(rpop), fmt_rate(pair), fmt_rate(r_run), r_run / pair
    );
    println!(
        "| bulk enqueue through Redis (1000 a call) | - | {} | - |",
        fmt_rate(r_enq)
    );
    println!(
        "| no-op jobs/s through SQLite (WAL, same run) | - | {} (bulk enqueue {}) | - |",
        fmt_rate(s_run),
        fmt_rate(s_enq)
    );
    println!(
        "| enqueue latency, one job a call ({latency} sequential) | - | Redis p50 {} / p99 {}; SQLite p50 {} / p99 {} | - |",
        p(&r_lat, 50.0), p(&r_lat, 99.0), p(&s_lat, 50.0), p(&s_lat, 99.0)
    );
    println!(
        "| lateness of scheduled jobs (1000, due 0.2-3 s ahead) | Flume polls every 10 s | Redis p50 {} / p99 {}; SQLite p50 {} / p99 {} | - |",
        p(&r_late, 50.0), p(&r_late, 99.0), p(&s_late, 50.0), p(&s_late, 99.0)
    );
    println!(
        "| kill -9 of a node holding jobs ({trials} kills, {} jobs): kill to rescue (down declaration) | Flume 600 s, Oban 60 min | p50 {} / max {} | - |",
        to_rescue.len(), p(&to_rescue, 50.0), p(&to_rescue, 100.0)
    );
    println!(
        "| rescue to the job's next attempt on a survivor | - | p50 {} / max {} | - |",
        p(&to_restart, 50.0),
        p(&to_restart, 100.0)
    );
    Ok(())
}
