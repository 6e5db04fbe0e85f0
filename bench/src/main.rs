//! `drove-bench`: drove's benchmarks, each against the raw engine measured
//! in the same run. `drove-bench all` prints the table for BENCHMARKS.md.
//!
//! Run in release: `cargo run --release -p drove-bench -- all`.

mod cache;
mod cache_scale;
mod dashboard;
mod demo;
mod events;
mod failover;
mod jobs;
mod local;
mod pools;
mod pubsub;
mod registry;
mod remote;
mod scale;
mod stats;
mod supervisor;

use std::time::Duration;

use clap::{Parser, Subcommand};

use stats::{fmt_duration, fmt_rate, median, percentile};

#[derive(Parser)]
#[command(name = "drove-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every benchmark; prints a Markdown table.
    All {
        /// Casts per throughput round.
        #[arg(long, default_value_t = 2_000_000)]
        casts: u64,
        /// Sequential calls per latency round.
        #[arg(long, default_value_t = 20_000)]
        calls: usize,
        /// Rounds per engine (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Failure-detection trials of each kind.
        #[arg(long, default_value_t = 20)]
        trials: usize,
    },
    /// Registry benchmarks; prints a Markdown table.
    Registry {
        /// Names each of the 5 nodes registers for the visibility test.
        #[arg(long, default_value_t = 250)]
        per_node: usize,
        /// Registrations for the rate test.
        #[arg(long, default_value_t = 200_000)]
        rate_count: usize,
        /// Names for the memory and join tests.
        #[arg(long, default_value_t = 1_000_000)]
        big: usize,
    },
    /// Supervisor benchmarks; prints a Markdown table.
    Supervisor {
        /// Failover trials of each kind.
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Children for the placement and memory figures.
        #[arg(long, default_value_t = 3000)]
        children: usize,
    },
    /// Pub/sub and cache benchmarks; prints a Markdown table.
    Pubsub {
        /// Messages for the throughput runs, per subscriber count
        /// (1, 100, 10,000).
        #[arg(long, value_delimiter = ',', default_value = "100000,20000,300")]
        messages: Vec<u64>,
        /// Messages for the latency run (one every millisecond).
        #[arg(long, default_value_t = 3000)]
        latency_messages: u64,
        /// Writes for the cache visibility run.
        #[arg(long, default_value_t = 500)]
        cache_writes: usize,
    },
    /// The cache at scale: get and put latency with many keys while
    /// entries expire, against Redis; prints a Markdown table.
    CacheScale {
        /// Keys held (half of them expire during the run).
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
        /// Seconds of measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The download-manager demo under load; prints a Markdown table.
    Demo {
        /// Concurrent downloads, one run each.
        #[arg(long, value_delimiter = ',', default_value = "300,1000,3000")]
        downloads: Vec<usize>,
        /// Steps per download (long enough to outlast the measurement).
        #[arg(long, default_value_t = 600)]
        steps: u32,
        /// Milliseconds per step.
        #[arg(long, default_value_t = 500)]
        step_ms: u64,
        /// Seconds of measurement.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    /// Runner pools; prints a Markdown table.
    Pools {
        /// Sequential calls for the latency rows.
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        /// Cold boots and bursts.
        #[arg(long, default_value_t = 5)]
        trials: usize,
        /// Seconds of saturation.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// The parent's gossip interval (a runner's is at most 40 ms).
        #[arg(long, default_value_t = 200)]
        gossip_ms: u64,
    },
    /// Durable jobs; prints a Markdown table.
    Jobs {
        /// No-op jobs per throughput run.
        #[arg(long, default_value_t = 100_000)]
        jobs: usize,
        /// Sequential enqueues for the latency row.
        #[arg(long, default_value_t = 2000)]
        latency: usize,
        /// Kills for the rescue rows.
        #[arg(long, default_value_t = 3)]
        trials: usize,
    },
    /// The dashboard's cost to a node, and page reads of big tables;
    /// prints a Markdown table.
    Dashboard {
        /// Streams open in the watched run.
        #[arg(long, default_value_t = 10)]
        watchers: usize,
        /// Seconds of each run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Names and keys in the big tables.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
    },
    /// Durable events benchmarks; prints a Markdown table.
    Events {
        /// Events per throughput run.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Pending timers for the large lateness row.
        #[arg(long, default_value_t = 1_000_000)]
        pending: usize,
    },
    /// Internal: one node of a pub/sub run; the publisher prints JSON.
    PubsubNode(pubsub::NodeArgs),
    /// Internal: one node of the cache run; the writer prints JSON.
    CacheNode(cache::NodeArgs),
    /// Scale: every size in network namespaces (needs root); prints a
    /// Markdown table.
    Scale {
        /// Cluster sizes (the observer counts as one node).
        #[arg(long, value_delimiter = ',', default_value = "3,5,10")]
        sizes: Vec<usize>,
        /// Names held while visibility is timed.
        #[arg(long, default_value_t = 100_000)]
        names: usize,
        /// Trials of each fault.
        #[arg(long, default_value_t = 5)]
        trials: usize,
    },
    /// Internal: one size of the scale run, inside host 0's namespace;
    /// prints JSON.
    ScaleRun(scale::RunArgs),
    /// Internal: one node of the scale run.
    ScaleNode(scale::NodeArgs),
    /// Internal: one node of the registry visibility test; prints JSON.
    RegistryNode {
        #[arg(long)]
        name: String,
        #[arg(long)]
        listen: String,
        #[arg(long, value_delimiter = ',')]
        seeds: Vec<String>,
        #[arg(long)]
        nodes: usize,
        #[arg(long)]
        per_node: usize,
    },
    /// Internal: a raw ractor_cluster server.
    ServeRaw {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Internal: the raw ractor_cluster client; prints JSON.
    ClientRaw {
        #[arg(long)]
        server: String,
        #[arg(long)]
        casts: u64,
        #[arg(long)]
        calls: usize,
    },
    /// Internal: the drove client; prints JSON.
    ClientDrove {
        #[arg(long)]
        seed: String,
        #[arg(long)]
        casts: u64,
        #[arg(long)]
        calls: usize,
        /// Certificates from `drove certs` (server, bench-client): mutual TLS.
        #[arg(long)]
        tls_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    if drove::parent().is_some() {
        // Booted by the pools bench as a runner: serve until done.
        return rt.block_on(async {
            let drove = pools::node("runner", 200).await?;
            drove.run_until_signal().await?;
            Ok(())
        });
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Scale {
            sizes,
            names,
            trials,
        } => {
            let reports = scale::sizes(&sizes, names, trials)?;
            print_scale(&reports);
            Ok(())
        }
        Command::ScaleRun(args) => {
            let report = rt.block_on(scale::run(args));
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::ScaleNode(args) => rt.block_on(scale::node(args)),
        Command::RegistryNode {
            name,
            listen,
            seeds,
            nodes,
            per_node,
        } => {
            let seeds = seeds.into_iter().filter(|s| !s.is_empty()).collect();
            let r = rt.block_on(registry::visibility_node(
                name, listen, seeds, nodes, per_node,
            ))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::Registry {
            per_node,
            rate_count,
            big,
        } => {
            let (vis, missing) = registry::visibility(per_node)?;
            let (raw_rate, drove_rate) = rt.block_on(registry::rate(rate_count))?;
            let (plain, replica) = registry::memory(big);
            let join = rt.block_on(registry::join(big))?;
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
        Command::Supervisor { trials, children } => {
            let r = rt.block_on(supervisor::run(trials, children))?;
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
        Command::Pools {
            calls,
            trials,
            seconds,
            gossip_ms,
        } => {
            let r = rt.block_on(pools::run(calls, trials, seconds, gossip_ms))?;
            print_pools(&r);
            Ok(())
        }
        Command::Jobs {
            jobs,
            latency,
            trials,
        } => rt.block_on(jobs::run(jobs, latency, trials)),
        Command::Events { events, pending } => rt.block_on(events::run(events, pending)),
        Command::Dashboard {
            watchers,
            seconds,
            rows,
        } => {
            let r = rt.block_on(dashboard::run(watchers, seconds, rows))?;
            print_dashboard(&r);
            Ok(())
        }
        Command::Demo {
            downloads,
            steps,
            step_ms,
            seconds,
        } => {
            println!("| concurrent downloads | trackers running | progress events/s delivered to pages (expected at full pace) | memory per tracker |");
            println!("| --- | --- | --- | --- |");
            for n in downloads {
                let r = rt.block_on(demo::run(n, steps, step_ms, Duration::from_secs(seconds)))?;
                println!(
                    "| {} | {} | {:.0} ({:.0}) | {:.1} KB |",
                    r.downloads,
                    r.trackers_alive,
                    r.events_per_sec,
                    r.expected_per_sec,
                    r.bytes_per_tracker / 1000.0
                );
            }
            Ok(())
        }
        Command::CacheScale { keys, seconds } => {
            let raw = rt.block_on(cache_scale::redis(keys, seconds))?;
            let drove = rt.block_on(cache_scale::drove(keys, seconds))?;
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
        Command::PubsubNode(args) => {
            if let Some(r) = rt.block_on(pubsub::node(args))? {
                println!("{}", serde_json::to_string(&r)?);
            }
            Ok(())
        }
        Command::CacheNode(args) => {
            if let Some(r) = rt.block_on(cache::node(args))? {
                println!("{}", serde_json::to_string(&r)?);
            }
            Ok(())
        }
        Command::Pubsub {
            messages,
            latency_messages,
            cache_writes,
        } => {
            println!("| what | raw engine | drove | ratio (drove / raw) |");
            println!("| --- | --- | --- | --- |");
            for (subs, &n) in [1usize, 100, 10_000].iter().zip(messages.iter()) {
                let raw = pubsub::run("raw", *subs, n, 0)?;
                let drove = pubsub::run("drove", *subs, n, 0)?;
                let deliveries = |r: &pubsub::RunResult| n as f64 * *subs as f64 / r.elapsed_s;
                println!(
                    "| broadcast to {subs} subscribers over 3 nodes, {n} messages: deliveries/s | {} | {} | {:.2}x |",
                    fmt_rate(deliveries(&raw)),
                    fmt_rate(deliveries(&drove)),
                    deliveries(&drove) / deliveries(&raw)
                );
            }
            let raw = pubsub::run("raw", 1, latency_messages, 1000)?;
            let drove = pubsub::run("drove", 1, latency_messages, 1000)?;
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
            let c = cache::run(cache_writes)?;
            println!(
                "| cache put -> visible on both other nodes ({cache_writes} writes, 3 nodes) | - | p50 {} / p99 {} / max {} | - |",
                ns(c.p50_ns),
                ns(c.p99_ns),
                ns(c.max_ns)
            );
            Ok(())
        }
        Command::ServeRaw { listen } => rt.block_on(remote::serve_raw(listen)),
        Command::ClientRaw {
            server,
            casts,
            calls,
        } => {
            let r = rt.block_on(remote::client_raw(server, casts, calls))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::ClientDrove {
            seed,
            casts,
            calls,
            tls_dir,
        } => {
            let r = rt.block_on(remote::client_drove(seed, casts, calls, tls_dir))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::All {
            casts,
            calls,
            rounds,
            trials,
        } => {
            let (local_raw, local_drove) = rt.block_on(local::run(casts, rounds))?;
            let mut raw = Vec::new();
            let mut drove = Vec::new();
            let mut tls = Vec::new();
            for _ in 0..rounds {
                let (r, d) = remote::round(casts, calls)?;
                let t = remote::tls_round(casts, calls)?;
                eprintln!("remote round: raw {r:?} drove {d:?} drove over TLS {t:?}");
                raw.push(r);
                drove.push(d);
                tls.push(t);
            }
            let (killed, silent) = rt.block_on(failover::run(trials))?;
            let m = |v: &[remote::ClientResult], f: fn(&remote::ClientResult) -> f64| {
                median(&v.iter().map(f).collect::<Vec<_>>())
            };
            let (rc, dc) = (m(&raw, |r| r.casts_per_sec), m(&drove, |r| r.casts_per_sec));
            let (r50, d50) = (m(&raw, |r| r.call_p50_us), m(&drove, |r| r.call_p50_us));
            let (r99, d99) = (m(&raw, |r| r.call_p99_us), m(&drove, |r| r.call_p99_us));
            let (tc, t50) = (m(&tls, |r| r.casts_per_sec), m(&tls, |r| r.call_p50_us));
            let us = |v: f64| fmt_duration(Duration::from_secs_f64(v / 1e6));
            println!("| what | raw engine | drove | ratio (drove / raw) |");
            println!("| --- | --- | --- | --- |");
            println!(
                "| local casts (ractor) | {} | {} | {:.2}x |",
                fmt_rate(local_raw),
                fmt_rate(local_drove),
                local_drove / local_raw
            );
            println!(
                "| remote casts, 2 processes (ractor_cluster) | {} | {} | {:.2}x |",
                fmt_rate(rc),
                fmt_rate(dc),
                dc / rc
            );
            println!(
                "| remote call p50 (ractor_cluster) | {} | {} | {:.2}x |",
                us(r50),
                us(d50),
                d50 / r50
            );
            println!(
                "| remote call p99 (ractor_cluster) | {} | {} | {:.2}x |",
                us(r99),
                us(d99),
                d99 / r99
            );
            println!(
                "| remote casts over mutual TLS (vs plaintext ractor_cluster) | {} | {} | {:.2}x |",
                fmt_rate(rc),
                fmt_rate(tc),
                tc / rc
            );
            println!(
                "| remote call p50 over mutual TLS (vs plaintext ractor_cluster) | {} | {} | {:.2}x |",
                us(r50),
                us(t50),
                t50 / r50
            );
            println!(
                "| kill -9 noticed ({} trials) | - | p50 {} / p99 {} / max {} | - |",
                killed.len(),
                fmt_duration(percentile(&killed, 50.0)),
                fmt_duration(percentile(&killed, 99.0)),
                fmt_duration(percentile(&killed, 100.0))
            );
            println!(
                "| silent node (SIGSTOP) declared down ({} trials) | - | p50 {} / p99 {} / max {} | - |",
                silent.len(),
                fmt_duration(percentile(&silent, 50.0)),
                fmt_duration(percentile(&silent, 99.0)),
                fmt_duration(percentile(&silent, 100.0))
            );
            Ok(())
        }
    }
}

fn print_scale(reports: &[scale::ScaleReport]) {
    use scale::ScaleReport as R;
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

fn print_dashboard(r: &dashboard::DashboardResults) {
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

fn print_pools(r: &pools::PoolResults) {
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
