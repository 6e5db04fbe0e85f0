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
mod foundation;
mod jobs;
mod local;
mod pools;
mod pubsub;
mod registry;
mod remote;
mod scale;
mod stats;
mod supervisor;

use clap::{Parser, Subcommand};

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
            scale::print_table(&reports);
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
        } => registry::table(&rt, per_node, rate_count, big),
        Command::Supervisor { trials, children } => supervisor::table(&rt, trials, children),
        Command::Pools {
            calls,
            trials,
            seconds,
            gossip_ms,
        } => {
            let r = rt.block_on(pools::run(calls, trials, seconds, gossip_ms))?;
            pools::print_table(&r);
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
            dashboard::print_table(&r);
            Ok(())
        }
        Command::Demo {
            downloads,
            steps,
            step_ms,
            seconds,
        } => demo::table(&rt, &downloads, steps, step_ms, seconds),
        Command::CacheScale { keys, seconds } => cache_scale::table(&rt, keys, seconds),
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
        } => pubsub::table(&messages, latency_messages, cache_writes),
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
        } => foundation::table(&rt, casts, calls, rounds, trials),
    }
}
