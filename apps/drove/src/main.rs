//! `drove`: run a node, inspect a cluster, or start a local one.
//!
//! - `drove node --name n1 [--listen ..] [--seeds ..] [--cookie ..] [--http ..]`
//! - `drove status --http ADDR`: print the member table of the node at ADDR.
//! - `drove cluster [--nodes 3]`: start a local cluster of child nodes on
//!   127.0.0.1, print its member table, and stop it all on Ctrl-C.

mod local_cluster;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use drove_runtime::{Node, NodeConfig};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(
    name = "drove",
    version,
    about = "An Erlang/OTP-style distributed actor runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Node(NodeArgs),
    /// Print the member table of a running node.
    Status {
        /// The node's admin HTTP address.
        #[arg(long, env = "DROVE_HTTP", default_value = "127.0.0.1:8370")]
        http: String,
    },
    /// Print the global registry as a node sees it.
    Registry {
        /// The node's admin HTTP address.
        #[arg(long, env = "DROVE_HTTP", default_value = "127.0.0.1:8370")]
        http: String,
        /// Only names starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Start a supervised child where placement puts it.
    Spawn {
        /// A node's admin HTTP address.
        #[arg(long, env = "DROVE_HTTP", default_value = "127.0.0.1:8370")]
        http: String,
        /// The actor type (built in: ticker, echo).
        #[arg(long = "type")]
        type_name: String,
        /// A global name (makes it a singleton).
        #[arg(long)]
        name: Option<String>,
        /// permanent, transient or temporary.
        #[arg(long, default_value = "transient")]
        restart: String,
        /// Start arguments, JSON.
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// Print the supervised children.
    Children {
        /// A node's admin HTTP address.
        #[arg(long, env = "DROVE_HTTP", default_value = "127.0.0.1:8370")]
        http: String,
        /// Only what that node itself runs.
        #[arg(long)]
        local: bool,
    },
    /// Start a local cluster (child `drove node` processes on 127.0.0.1),
    /// show it, and stop it on Ctrl-C.
    Cluster {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// First cluster port; node i listens on base + i.
        #[arg(long, default_value_t = 4370)]
        base_port: u16,
        /// First admin HTTP port; node i serves on base + i.
        #[arg(long, default_value_t = 8370)]
        base_http: u16,
    },
}

#[derive(Args)]
struct NodeArgs {
    /// The node's name.
    #[arg(long, env = "DROVE_NAME")]
    name: String,
    /// The cluster address (TCP transport, UDP gossip).
    #[arg(long, env = "DROVE_LISTEN", default_value = "127.0.0.1:4370")]
    listen: SocketAddr,
    /// Other nodes' --listen addresses, comma-separated.
    #[arg(long, env = "DROVE_SEEDS", value_delimiter = ',')]
    seeds: Vec<String>,
    /// The shared secret of the cluster.
    #[arg(
        long,
        env = "DROVE_COOKIE",
        default_value = "drove",
        hide_env_values = true
    )]
    cookie: String,
    /// The admin HTTP address.
    #[arg(long, env = "DROVE_HTTP", default_value = "127.0.0.1:8370")]
    http: SocketAddr,
    /// Gossip interval in milliseconds.
    #[arg(long, env = "DROVE_GOSSIP_MS", default_value_t = 200)]
    gossip_ms: u64,
    /// Phi-accrual threshold of the failure detector.
    #[arg(long, env = "DROVE_PHI", default_value_t = 8.0)]
    phi_threshold: f64,
    /// Quorum placement: a side without a strict majority of this many
    /// nodes runs no children (0: the largest membership seen). Off when
    /// absent.
    #[arg(long, env = "DROVE_QUORUM")]
    quorum: Option<usize>,
    /// With --quorum: how long the majority waits after a down declaration
    /// before failing children over, so the minority has stopped them.
    #[arg(long, env = "DROVE_FENCING_MS", default_value_t = 2000)]
    fencing_ms: u64,
    /// When a node joins: `passive` leaves running children where they are
    /// (only new ones go there); `active` hands over each child whose
    /// placement moved to the new node.
    #[arg(long, env = "DROVE_REDISTRIBUTION", default_value = "passive", value_parser = ["passive", "active"])]
    redistribution: String,
    /// Shifts this node's clock for the replicated cache by this many
    /// milliseconds (to test clock skew; see drove-cache's docs).
    #[arg(
        long,
        env = "DROVE_CLOCK_OFFSET_MS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    clock_offset_ms: i64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ractor_cluster=warn,chitchat=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => run_node(args).await,
            Command::Status { http } => print_status(&http).await,
            Command::Registry { http, prefix } => print_registry(&http, &prefix).await,
            Command::Spawn {
                http,
                type_name,
                name,
                restart,
                args,
            } => spawn_child(&http, &type_name, name, &restart, &args).await,
            Command::Children { http, local } => print_children(&http, local).await,
            Command::Cluster {
                nodes,
                base_port,
                base_http,
            } => local_cluster::run(nodes, base_port, base_http).await,
        }
    })
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let (quorum, fencing_ms) = (args.quorum, args.fencing_ms);
    let cache_config = drove_cache::CacheConfig {
        clock_offset_ms: args.clock_offset_ms,
    };
    let redistribution = match args.redistribution.as_str() {
        "active" => drove_supervisor::Redistribution::Active,
        _ => drove_supervisor::Redistribution::Passive,
    };
    let mut config = NodeConfig::new(args.name);
    config.listen = args.listen;
    config.seeds = args.seeds.into_iter().filter(|s| !s.is_empty()).collect();
    config.cookie = args.cookie;
    config.http = args.http.to_string();
    config.gossip_interval = Duration::from_millis(args.gossip_ms.max(10));
    config.phi_threshold = args.phi_threshold;
    let http = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("binding --http {}", args.http))?;
    let node = Node::start(config).await.context("starting the node")?;
    let registry = drove_registry::Registry::start(&node)
        .await
        .context("starting the registry")?;
    let mut builder = drove_supervisor::builtin::with_builtins(
        drove_supervisor::Supervisor::builder(&node, &registry),
    )
    .redistribution(redistribution);
    if let Some(size) = quorum {
        builder = builder.quorum(drove_supervisor::QuorumConfig {
            size: (size > 0).then_some(size),
            fencing_margin: Duration::from_millis(fencing_ms),
        });
    }
    let supervisor = builder.start().await.context("starting the supervisor")?;
    let pubsub = drove_pubsub::PubSub::start(&node)
        .await
        .context("starting pub/sub")?;
    let cache = drove_cache::Cache::start_with(&node, cache_config)
        .await
        .context("starting the cache")?;
    let metrics: Vec<drove_admin::ExtraMetrics> = {
        let (registry, pubsub, cache) = (registry.clone(), pubsub.clone(), cache.clone());
        vec![
            std::sync::Arc::new(move || registry.metrics_text()),
            std::sync::Arc::new(move || pubsub.metrics_text()),
            std::sync::Arc::new(move || cache.metrics_text()),
        ]
    };
    let app = drove_admin::router(node.clone(), metrics)
        .merge(drove_registry::http::router(registry))
        .merge(drove_supervisor::http::router(supervisor.clone()))
        .merge(drove_pubsub::http::router(pubsub))
        .merge(drove_cache::http::router(cache));
    let admin = tokio::spawn(async move { axum::serve(http, app).await });
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let hand_over = tokio::select! {
        _ = term.recv() => {
            tracing::info!("SIGTERM: handing children over, then leaving");
            true
        }
        _ = int.recv() => {
            tracing::info!("SIGINT: leaving without handing children over");
            false
        }
        result = admin => {
            tracing::error!(?result, "admin HTTP server stopped");
            false
        }
    };
    if hand_over {
        let handed = supervisor.handoff().await;
        tracing::info!(handed, "children handed to other nodes");
    }
    node.leave().await;
    Ok(())
}

async fn print_status(http: &str) -> anyhow::Result<()> {
    let (status, body) =
        drove_admin::client::get(http, "/api/cluster", Duration::from_secs(5)).await?;
    anyhow::ensure!(status == 200, "{http} answered {status}: {body}");
    let cluster: drove_admin::ClusterJson =
        serde_json::from_str(&body).context("parsing /api/cluster")?;
    print!("{}", render_table(&cluster));
    Ok(())
}

async fn print_registry(http: &str, prefix: &str) -> anyhow::Result<()> {
    let path = format!("/api/registry?prefix={}", url_escape(prefix));
    let (status, body) = drove_admin::client::get(http, &path, Duration::from_secs(10)).await?;
    anyhow::ensure!(status == 200, "{http} answered {status}: {body}");
    let entries: Vec<drove_registry::http::EntryJson> =
        serde_json::from_str(&body).context("parsing /api/registry")?;
    let mut rows = vec![[
        "NAME".to_string(),
        "NODE".to_string(),
        "INCARNATION".to_string(),
        "META".to_string(),
    ]];
    for e in entries {
        let meta = e.meta.map(|m| m.to_string()).unwrap_or_default();
        rows.push([e.name, e.node, e.incarnation, meta]);
    }
    print!("{}", align(&rows));
    Ok(())
}

async fn spawn_child(
    http: &str,
    type_name: &str,
    name: Option<String>,
    restart: &str,
    args: &str,
) -> anyhow::Result<()> {
    let args: serde_json::Value = serde_json::from_str(args).context("--args is not JSON")?;
    let body =
        serde_json::json!({ "type": type_name, "name": name, "restart": restart, "args": args });
    let (status, answer) = drove_admin::client::send(
        http,
        "POST",
        "/api/children",
        &body.to_string(),
        Duration::from_secs(15),
    )
    .await?;
    anyhow::ensure!(status == 201, "{http} answered {status}: {answer}");
    println!("{answer}");
    Ok(())
}

async fn print_children(http: &str, local: bool) -> anyhow::Result<()> {
    let path = if local {
        "/api/children?scope=local"
    } else {
        "/api/children"
    };
    let (status, body) = drove_admin::client::get(http, path, Duration::from_secs(10)).await?;
    anyhow::ensure!(status == 200, "{http} answered {status}: {body}");
    let children: Vec<drove_supervisor::ChildInfo> =
        serde_json::from_str(&body).context("parsing /api/children")?;
    let mut rows = vec![[
        "ID".to_string(),
        "TYPE".to_string(),
        "NAME".to_string(),
        "NODE".to_string(),
        "RESTARTS".to_string(),
        "STATUS".to_string(),
    ]];
    for c in children {
        let status = serde_json::to_value(c.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        rows.push([
            c.id,
            c.type_name,
            c.name.unwrap_or_default(),
            c.node,
            c.restarts.to_string(),
            status,
        ]);
    }
    print!("{}", align(&rows));
    Ok(())
}

/// Percent-encodes a query value.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Rows as left-aligned columns.
fn align<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The member table as aligned text.
fn render_table(cluster: &drove_admin::ClusterJson) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "INCARNATION".to_string(),
        "STATUS".to_string(),
        "ADDR".to_string(),
        "HTTP".to_string(),
    ]];
    for m in &cluster.members {
        let me = if m.name == cluster.node && m.incarnation == cluster.incarnation {
            "*"
        } else {
            ""
        };
        rows.push([
            format!("{}{me}", m.name),
            m.incarnation.clone(),
            m.status.clone(),
            m.addr.clone(),
            m.http.clone(),
        ]);
    }
    align(&rows)
}
