//! `download-manager`: the download-manager demo on drove (the seed's
//! "distributed download requester and progress tracker").
//!
//! - `download-manager demo`: a local 3-node cluster on 127.0.0.1; prints
//!   the URLs; Ctrl-C stops every node.
//! - `download-manager --name n1 --listen .. --app .. --http .. --seeds ..`:
//!   one node, to join others by hand (the same flags as `drove node`, plus
//!   `--app` (the public pages), `--secret-file`, `--steps`, `--step-ms`,
//!   `--file-kb`). The public address serves the app only; the admin API
//!   is on `--http` (loopback by default).
//!
//! A user (a signed cookie session) asks for a report; a tracker (a
//! transient child of drove's distributed supervisor, globally named by the
//! user) produces it step by step, storing each chunk in the replicated
//! cache and checkpointing; progress reaches the page over pub/sub and
//! server-sent events from whichever node serves it. Kill the tracker's
//! node and the tracker resumes on a survivor from its checkpoint; kill the
//! page's node and the page reconnects to another.
//!
//! # Layout
//!
//! - `app`: the operations (start, read, file, clear), HTTP-free.
//! - `tracker`: the supervised tracker actor.
//! - `expiry`: the durable event that clears an unfetched report.
//! - `download`: the download, the file manifest, keys and topics.
//! - `web`: routes, the progress stream, CORS.
//! - `page`: the HTML page and its script.
//! - `session`: signed cookie sessions (issue time, expiry).
//! - `limits`: limits per client address.
//! - `nginx.conf` (beside `src/`): a load balancer in front of the demo.

mod app;
mod download;
mod expiry;
mod limits;
mod page;
mod proxy;
mod report;
mod session;
mod share;
mod tracker;
mod web;

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser};

use drove::Drove;
use drove_cli::admin_args::AdminArgs;
use drove_cli::local_cluster::LocalCluster;
use drove_cli::node_args::NodeArgs;

use crate::app::{App, AppConfig};
use crate::expiry::ExpireReport;
use crate::limits::ClientLimits;
use crate::session::Sessions;
use crate::tracker::{NodeParts, Tracker};
use crate::web::WebState;

/// `download-manager --name n1 ...`: one node of the demo.
#[derive(Parser)]
#[command(
    name = "download-manager",
    version,
    about = "A distributed download manager that survives node loss, on drove \
             (`download-manager demo` starts a local cluster)"
)]
struct NodeCli {
    #[command(flatten)]
    node: NodeWithApp,
}

/// `download-manager demo`: a local cluster.
#[derive(Parser)]
#[command(
    name = "download-manager demo",
    about = "Start a local cluster on 127.0.0.1 and print its URLs; Ctrl-C stops it"
)]
struct DemoCli {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// First cluster port; node i listens on base + i.
    #[arg(long, default_value_t = 4370)]
    base_port: u16,
    /// First app port (the public pages); node i serves on base + i.
    #[arg(long, default_value_t = 8370)]
    base_http: u16,
    /// First admin port (loopback); node i's admin API is on base + i.
    #[arg(long, default_value_t = 9370)]
    base_admin: u16,
    /// Passed to every node: reverse proxies whose `X-Forwarded-For` is
    /// believed (`127.0.0.1` for the nginx sample).
    #[arg(long)]
    trusted_proxy: Option<String>,
}

#[derive(Args)]
struct NodeWithApp {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    app: AppArgs,
}

#[derive(Args)]
struct AppArgs {
    /// The public address of the app (its pages and /api/downloads only;
    /// the admin API stays on --http).
    #[arg(long, env = "DM_APP", default_value = "127.0.0.1:8080")]
    app: std::net::SocketAddr,
    /// A file (mode 0600) holding the key that signs session cookies; the
    /// same on every node. Required: `demo` makes a random one per run.
    #[arg(long, env = "DM_SECRET_FILE")]
    secret_file: std::path::PathBuf,
    /// Steps (file chunks) per download.
    #[arg(long, env = "DM_STEPS", default_value_t = 60)]
    steps: u32,
    /// Milliseconds per step.
    #[arg(long, env = "DM_STEP_MS", default_value_t = 500)]
    step_ms: u64,
    /// Size of the generated file, KiB (split into the steps' chunks).
    #[arg(long, env = "DM_FILE_KB", default_value_t = 1024)]
    file_kb: usize,
    /// Requests per second per client address (bursts of twice as many).
    #[arg(long, env = "DM_CLIENT_RPS", default_value_t = 50.0)]
    client_rps: f64,
    /// Download starts per minute per client address.
    #[arg(long, env = "DM_CLIENT_STARTS_PER_MIN", default_value_t = 20.0)]
    client_starts_per_min: f64,
    /// Downloads, running or ready but unfetched, one client address may
    /// hold; past it, its oldest ready one is cleared.
    #[arg(long, env = "DM_CLIENT_REPORTS", default_value_t = 4)]
    client_reports: usize,
    /// Progress streams open at once per client address.
    #[arg(long, env = "DM_CLIENT_STREAMS", default_value_t = 16)]
    client_streams: usize,
    /// The runner pool report steps are rendered on (`drove node --pool`
    /// syntax, named `report`), or `none` to render in the tracker.
    #[arg(long, env = "DM_REPORT_POOL", default_value = report::DEFAULT_POOL)]
    report_pool: String,
    /// How long a ready report waits to be fetched before it expires, ms
    /// (a durable event: it expires even if its node is gone; 0 keeps it
    /// until the file's one-hour TTL).
    #[arg(long, env = "DM_REPORT_TTL_MS", default_value_t = 600_000)]
    report_ttl_ms: u64,
    /// Reverse proxies (address or CIDR range, comma-separated) whose
    /// `X-Forwarded-For` names the client the per-client limits count;
    /// from anyone else the header is ignored.
    #[arg(long, env = "DM_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxy: Vec<proxy::Cidr>,
}

fn main() -> anyhow::Result<()> {
    drove_cli::init_tracing();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    let rest: Vec<std::ffi::OsString> = args.collect();
    if rest.first().is_some_and(|a| a == "demo") {
        let demo = DemoCli::parse_from(std::iter::once(program).chain(rest.into_iter().skip(1)));
        runtime.block_on(run_demo(demo))
    } else {
        let cli = NodeCli::parse_from(std::iter::once(program).chain(rest));
        runtime.block_on(run_node(cli.node))
    }
}

async fn run_node(args: NodeWithApp) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&args.app.steps),
        "--steps must be 1 to 10000"
    );
    let chunk_bytes = (args.app.file_kb * 1024 / args.app.steps as usize).max(64);
    anyhow::ensure!(
        chunk_bytes <= 512 * 1024,
        "--file-kb / --steps must stay under 512 KiB per chunk"
    );
    let mut config = args.node.to_config()?;
    if args.app.report_pool != "none" {
        let pool: drove::pool::PoolConfig =
            args.app.report_pool.parse().context("--report-pool")?;
        anyhow::ensure!(pool.name == "report", "--report-pool must be named report");
        config.pools.retain(|p| p.name != "report");
        config.pools.push(pool);
    }
    // Peers (and the page, for failover) learn the public address.
    config.advertise_http = config.advertise_http.or(Some(args.app.app));
    let parts = Arc::new(NodeParts::default());
    let builder = Drove::builder(config.clone())
        .child_with({
            let parts = parts.clone();
            move |s| Tracker::new(s.cache(), s.pubsub(), parts)
        })
        .handler(ExpireReport)
        .supervisor(|b| b.placement(download::ByUser));
    if drove::parent().is_some() {
        // A report runner: the same binary, without the web endpoints
        // (Dragonfly's Parent.get/0); it ends when its pool is done with it.
        let drove = builder.start().await?;
        drove.run_until_signal().await?;
        return Ok(());
    }
    let config_http = config.http;
    let secret = drove::cookie_file::read(&args.app.secret_file)
        .context("reading the session secret (--secret-file)")?;
    let guard = args.admin.guard()?;
    let admin_listener = drove_admin::bind(config.http).await?;
    let app_listener = drove_admin::bind(args.app.app).await?;
    let drove = builder.start().await?;
    if let Some(report) = drove.pool("report") {
        let _ = parts.pool.set(report);
    }
    if let Some(events) = drove.events() {
        let _ = parts.events.set(events.clone());
    }
    let app = App {
        drove: drove.clone(),
        config: AppConfig {
            steps: args.app.steps,
            step_ms: args.app.step_ms,
            chunk_bytes,
            report_ttl_ms: args.app.report_ttl_ms,
            reports_per_client: args.app.client_reports.max(1),
        },
    };
    // The public port serves the app and nothing else; the admin API has
    // a listener of its own.
    let routes = web::router(WebState {
        app,
        sessions: Sessions::new(&secret),
        limits: ClientLimits::new(limits::Limits {
            requests_per_sec: args.app.client_rps,
            starts_per_min: args.app.client_starts_per_min,
            streams: args.app.client_streams,
        }),
        proxies: std::sync::Arc::new(proxy::TrustedProxies(args.app.trusted_proxy.clone())),
    })
    .fallback(web::not_found)
    .method_not_allowed_fallback(web::method_not_allowed);
    let admin = drove_admin::router(&drove, guard).await;
    tracing::info!(app = %args.app.app, admin = %config_http, "serving the download manager");
    drove_admin::serve(
        &drove,
        vec![(app_listener, routes), (admin_listener, admin)],
    )
    .await?;
    Ok(())
}

async fn run_demo(demo: DemoCli) -> anyhow::Result<()> {
    let DemoCli {
        nodes,
        base_port,
        base_http,
        base_admin,
        trusted_proxy,
    } = demo;
    let exe = std::env::current_exe().context("locating the download-manager binary")?;
    if std::env::var_os("RUST_LOG").is_none() {
        // Keep the terminal for the URLs and the story of each download.
        std::env::set_var(
            "RUST_LOG",
            "warn,ractor_cluster=error,download_manager::tracker=info",
        );
    }
    // One cookie, one session secret and one job store per run, in files
    // only this user can read, shared with every node started here.
    let dir = std::env::temp_dir().join(format!("download-manager-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("making the demo's secrets directory")?;
    let cookie_file = dir.join("cookie");
    let secret_file = dir.join("session-secret");
    drove::cookie_file::read_or_create(&cookie_file)?;
    drove::cookie_file::read_or_create(&secret_file)?;
    // The nodes share one job store (events: the reports' expiries).
    let mut store = std::ffi::OsString::from("sqlite:");
    store.push(dir.join("jobs.sqlite3"));
    let mut command: Vec<std::ffi::OsString> = vec![
        "--cookie-file".into(),
        cookie_file.into_os_string(),
        "--secret-file".into(),
        secret_file.into_os_string(),
        "--jobs".into(),
        store,
    ];
    if let Some(proxies) = trusted_proxy {
        command.extend(["--trusted-proxy".into(), proxies.into()]);
    }
    let app_addr = |i: u16| format!("127.0.0.1:{}", base_http + i);
    let cluster = LocalCluster::start(&exe, &command, nodes, base_port, base_admin, &|i| {
        vec!["--app".into(), app_addr(i).into()]
    })?;
    cluster.wait_formed().await?;
    println!("The download manager runs on a {nodes}-node drove cluster:");
    for (i, pid) in (0..nodes).zip(cluster.pids()) {
        println!(
            "  n{}: http://{}/   (pid {pid}; admin API on {})",
            i + 1,
            app_addr(i),
            cluster.https[usize::from(i)]
        );
    }
    println!(
        "Open one, generate a report, and `kill -9` the pid of the node that runs its \
         tracker, then of the one serving the page: the page carries on. \
         Ctrl-C stops the cluster."
    );
    LocalCluster::wait_for_stop_signal()
        .await
        .context("waiting for Ctrl-C")?;
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
