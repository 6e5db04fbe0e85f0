//! `drove`: run a node, inspect a cluster, or start a local one.
//!
//! - `drove node --name n1 [--listen ..] [--seeds ..] [--cookie-file ..] [--http ..]`
//! - `drove status --http ADDR`: print the member table of the node at ADDR.
//! - `drove pools --http ADDR`: print a node's runner pools.
//! - `drove jobs --http ADDR`: print the job queues.
//! - `drove certs --out DIR --nodes n1,n2,n3`: a development CA and node
//!   certificates for `--tls-cert`, `--tls-key`, `--tls-ca`.
//! - `drove cluster [--nodes 3]`: start a local cluster of child nodes on
//!   127.0.0.1, print its member table, and stop it all on Ctrl-C.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use drove::Drove;
use drove_cli::admin_args::AdminArgs;
use drove_cli::local_cluster::LocalCluster;
use drove_cli::node_args::NodeArgs;

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
    Node {
        #[command(flatten)]
        node: Box<NodeArgs>,
        #[command(flatten)]
        admin: AdminArgs,
    },
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
    /// Print the runner pools of a node.
    Pools {
        /// The node's admin HTTP address.
        #[arg(long, env = "DROVE_HTTP", default_value = "127.0.0.1:8370")]
        http: String,
    },
    /// Print the job queues of a cluster (counts by state, pauses).
    Jobs {
        /// A node's admin HTTP address.
        #[arg(long, env = "DROVE_HTTP", default_value = "127.0.0.1:8370")]
        http: String,
    },
    /// Make a development CA and node certificates for mutual TLS.
    Certs {
        /// The output directory (an existing CA there is reused).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Node names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
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

fn main() -> anyhow::Result<()> {
    drove_cli::init_tracing();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Node { node, admin } => run_node(*node, admin).await,
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
            Command::Pools { http } => print_pools(&http).await,
            Command::Jobs { http } => print_jobs(&http).await,
            Command::Certs { out, nodes } => {
                for path in drove_cli::certs::make(&out, &nodes)? {
                    println!("wrote {}", path.display());
                }
                Ok(())
            }
            Command::Cluster {
                nodes,
                base_port,
                base_http,
            } => run_cluster(nodes, base_port, base_http).await,
        }
    })
}

async fn run_node(args: NodeArgs, admin: AdminArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    if drove::parent().is_some() {
        // A runner booted by a pool: no admin API (its parent's port is
        // taken anyway); it ends itself when its pool is done with it.
        let drove = Drove::builder(config).start().await?;
        drove.run_until_signal().await?;
        return Ok(());
    }
    let guard = admin.guard()?;
    let listener = drove_admin::bind(config.http).await?;
    let drove = Drove::builder(config).start().await?;
    let routes = drove_admin::router(&drove, guard).await;
    drove_admin::serve(&drove, vec![(listener, routes)]).await?;
    Ok(())
}

async fn run_cluster(nodes: u16, base_port: u16, base_http: u16) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the drove binary")?;
    let cookie_file = drove::cookie_file::default_path()?;
    drove::cookie_file::read_or_create(&cookie_file)?;
    let command = [
        "node".into(),
        "--cookie-file".into(),
        cookie_file.into_os_string(),
    ];
    let cluster =
        LocalCluster::start(&exe, &command, nodes, base_port, base_http, &|_| Vec::new())?;
    cluster.wait_formed().await?;
    println!("A {nodes}-node drove cluster is up:");
    print_status(&cluster.https[0]).await?;
    for (i, http) in cluster.https.iter().enumerate() {
        println!("  n{}: http://{http}/api/cluster", i + 1);
    }
    println!(
        "Try `drove status --http {}`, kill a node and look again. Ctrl-C stops the cluster.",
        cluster.https.get(1).unwrap_or(&cluster.https[0])
    );
    LocalCluster::wait_for_stop_signal()
        .await
        .context("waiting for Ctrl-C")?;
    cluster.stop().await;
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

async fn print_pools(http: &str) -> anyhow::Result<()> {
    let (status, body) =
        drove_admin::client::get(http, "/api/pools", Duration::from_secs(5)).await?;
    anyhow::ensure!(status == 200, "{http} answered {status}: {body}");
    let pools: Vec<drove_admin::pools::PoolJson> =
        serde_json::from_str(&body).context("parsing /api/pools")?;
    let mut rows = vec![[
        "POOL".to_string(),
        "MIN/MAX".to_string(),
        "RUNNER".to_string(),
        "STATE".to_string(),
        "BUSY".to_string(),
        "PID".to_string(),
    ]];
    for p in pools {
        let bounds = format!("{}/{} x{}", p.min, p.max, p.max_concurrency);
        rows.push([
            p.name.clone(),
            bounds,
            format!("({} booting, {} waiting)", p.booting, p.waiting),
            String::new(),
            String::new(),
            String::new(),
        ]);
        for r in p.runners {
            let pid = r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
            rows.push([
                String::new(),
                String::new(),
                r.name,
                r.state,
                r.busy.to_string(),
                pid,
            ]);
        }
    }
    print!("{}", align(&rows));
    Ok(())
}

async fn print_jobs(http: &str) -> anyhow::Result<()> {
    let (status, body) =
        drove_admin::client::get(http, "/api/jobs/queues", Duration::from_secs(5)).await?;
    anyhow::ensure!(status == 200, "{http} answered {status}: {body}");
    let queues: Vec<drove_admin::jobs::QueueJson> =
        serde_json::from_str(&body).context("parsing /api/jobs/queues")?;
    let states = drove::jobs::JobState::ALL;
    let header: [String; 9] = std::array::from_fn(|i| match i {
        0 => "QUEUE".to_string(),
        1 => "PAUSED".to_string(),
        i => states[i - 2].as_str().to_uppercase(),
    });
    let mut rows = vec![header];
    for q in queues {
        let mut paused: Vec<String> = q.paused.nodes.clone();
        if q.paused.cluster {
            paused.insert(0, "cluster".into());
        }
        rows.push(std::array::from_fn(|i| match i {
            0 => q.queue.clone(),
            1 if paused.is_empty() => "-".to_string(),
            1 => paused.join(","),
            i => q
                .counts
                .get(states[i - 2].as_str())
                .copied()
                .unwrap_or(0)
                .to_string(),
        }));
    }
    print!("{}", align(&rows));
    Ok(())
}

async fn print_registry(http: &str, prefix: &str) -> anyhow::Result<()> {
    let path = format!("/api/registry?prefix={}", url_escape(prefix));
    let (status, body) = drove_admin::client::get(http, &path, Duration::from_secs(10)).await?;
    anyhow::ensure!(status == 200, "{http} answered {status}: {body}");
    let entries: Vec<drove_admin::registry::EntryJson> =
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
    let children: Vec<drove::supervisor::ChildInfo> =
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
    let mut table = align(&rows);
    for m in &cluster.members {
        if let Some(reason) = &m.reason {
            table.push_str(&format!("{} is unreachable: {reason}\n", m.name));
        }
    }
    table
}
