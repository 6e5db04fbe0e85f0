//! Remote casts and calls between two processes: drove against raw
//! ractor_cluster. Each side of each engine runs in its own process, so the
//! engines never share ractor's process-wide registry.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use drove_runtime::echo::{EchoMsg, ECHO_NAME};
use drove_runtime::{Handle, NodeConfig, SendError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, RactorClusterMessage};
use serde::{Deserialize, Serialize};

use crate::stats::{percentile, Killed};

const RAW_GROUP: &str = "bench.raw";
const COOKIE: &str = "bench-cookie";

/// What a client process reports.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ClientResult {
    /// Casts per second, counted at the receiver.
    pub casts_per_sec: f64,
    /// Call round trip, median, microseconds.
    pub call_p50_us: f64,
    /// Call round trip, 99th percentile, microseconds.
    pub call_p99_us: f64,
}

#[derive(RactorClusterMessage)]
enum RawMsg {
    Inc(u8),
    #[rpc]
    Get(RpcReplyPort<u64>),
}

struct RawCounter;

impl Actor for RawCounter {
    type Msg = RawMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<RawMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<RawMsg>,
        msg: RawMsg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RawMsg::Inc(_) => *n += 1,
            RawMsg::Get(port) => {
                let _ = port.send(*n);
            }
        }
        Ok(())
    }
}

async fn start_raw_server(
    listen: std::net::SocketAddr,
    name: &str,
) -> anyhow::Result<ActorRef<ractor_cluster::NodeServerMessage>> {
    let server = NodeServer::new(
        listen.port(),
        COOKIE.into(),
        name.into(),
        listen.ip().to_string(),
        None,
        None,
    )
    .with_listen_addr(listen.ip());
    let (server, _) = Actor::spawn(None, server, ()).await?;
    Ok(server)
}

/// `serve-raw`: a ractor_cluster node with one counter, until killed.
pub(crate) async fn serve_raw(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let _server = start_raw_server(listen, "raw-server").await?;
    let (counter, _) = Actor::spawn(None, RawCounter, ()).await?;
    ractor::pg::join(RAW_GROUP.to_string(), vec![counter.get_cell()]);
    std::future::pending::<()>().await;
    Ok(())
}

/// `client-raw`: casts and calls to the raw server's counter.
pub(crate) async fn client_raw(
    server_addr: String,
    casts: u64,
    calls: usize,
) -> anyhow::Result<ClientResult> {
    let ip = drove_tests::fresh_loopback_ip();
    let listen = format!("{ip}:{}", drove_tests::free_port(&ip)).parse()?;
    let server = start_raw_server(listen, "raw-client").await?;
    ractor_cluster::client_connect(&server, server_addr.as_str()).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let remote: ActorRef<RawMsg> = loop {
        let members = ractor::pg::get_members(&RAW_GROUP.to_string());
        if let Some(cell) = members.into_iter().find(|c| !c.get_id().is_local()) {
            break cell.into();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "raw server's counter never appeared"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let base = ractor::call_t!(remote, RawMsg::Get, 10_000)?;
    let start = Instant::now();
    for _ in 0..casts {
        remote.cast(RawMsg::Inc(1))?;
    }
    loop {
        let n = ractor::call_t!(remote, RawMsg::Get, 60_000)?;
        if n >= base + casts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let casts_per_sec = casts as f64 / start.elapsed().as_secs_f64();
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        ractor::call_t!(remote, RawMsg::Get, 10_000)?;
        samples.push(t.elapsed());
    }
    Ok(result(casts_per_sec, &samples))
}

fn result(casts_per_sec: f64, samples: &[Duration]) -> ClientResult {
    ClientResult {
        casts_per_sec,
        call_p50_us: percentile(samples, 50.0).as_secs_f64() * 1e6,
        call_p99_us: percentile(samples, 99.0).as_secs_f64() * 1e6,
    }
}

/// `client-drove`: joins the drove server as a node and measures.
/// With `tls_dir` (made by `drove certs`), over mutual TLS.
pub(crate) async fn client_drove(
    seed: String,
    casts: u64,
    calls: usize,
    tls_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<ClientResult> {
    let ip = drove_tests::fresh_loopback_ip();
    let mut config = NodeConfig::new("bench-client");
    config.listen = format!("{ip}:{}", drove_tests::free_port(&ip)).parse()?;
    config.seeds = vec![seed];
    config.cookie = COOKIE.to_string();
    if let Some(dir) = tls_dir {
        config.tls = Some(drove_runtime::tls::Tls::load(
            &drove_runtime::tls::TlsFiles {
                cert: dir.join("bench-client.pem"),
                key: dir.join("bench-client-key.pem"),
                ca: dir.join("ca.pem"),
            },
        )?);
    }
    let node = config.start().await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let server = loop {
        let found = node
            .members()
            .into_iter()
            .find(|m| m.info.id.name == "server")
            .map(|m| m.info.id);
        if let Some(id) = found {
            if drove_runtime::echo::ping(&node, &id, Duration::from_secs(1))
                .await
                .is_ok()
            {
                break id;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "drove server never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let echo: Handle<EchoMsg> = Handle::named(server.clone(), ECHO_NAME);
    let timeout = Duration::from_secs(60);
    let base = drove_runtime::echo::ping(&node, &server, timeout).await?;
    let start = Instant::now();
    for _ in 0..casts {
        loop {
            match node.cast(&echo, EchoMsg::Count) {
                Ok(()) => break,
                Err(SendError::Overloaded(_)) => {
                    tokio::time::sleep(Duration::from_micros(200)).await
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    loop {
        if drove_runtime::echo::ping(&node, &server, timeout).await? >= base + casts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let casts_per_sec = casts as f64 / start.elapsed().as_secs_f64();
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        drove_runtime::echo::ping(&node, &server, timeout).await?;
        samples.push(t.elapsed());
    }
    node.leave().await;
    Ok(result(casts_per_sec, &samples))
}

fn run_client(args: &[String]) -> anyhow::Result<ClientResult> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .context("running a bench client")?;
    anyhow::ensure!(out.status.success(), "bench client {args:?} failed");
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// One round of each engine: (raw, drove).
pub(crate) fn round(casts: u64, calls: usize) -> anyhow::Result<(ClientResult, ClientResult)> {
    let exe = std::env::current_exe()?;
    let ip = drove_tests::fresh_loopback_ip();
    let raw_addr = format!("{ip}:{}", drove_tests::free_port(&ip));
    let _raw_server = Killed(
        std::process::Command::new(&exe)
            .args(["serve-raw", "--listen", &raw_addr])
            .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(500));
    let raw = run_client(&[
        "client-raw".into(),
        "--server".into(),
        raw_addr,
        "--casts".into(),
        casts.to_string(),
        "--calls".into(),
        calls.to_string(),
    ])?;

    let drove = drove_round(casts, calls, None)?;
    Ok((raw, drove))
}

/// drove's remote round over mutual TLS (certificates from `drove certs`).
pub(crate) fn tls_round(casts: u64, calls: usize) -> anyhow::Result<ClientResult> {
    let dir = std::env::temp_dir().join(format!("drove-bench-tls-{}", std::process::id()));
    let made = std::process::Command::new(drove_tests::drove_bin())
        .args(["certs", "--nodes", "server,bench-client", "--out"])
        .arg(&dir)
        .output()
        .context("running drove certs")?;
    anyhow::ensure!(made.status.success(), "drove certs failed: {made:?}");
    let result = drove_round(casts, calls, Some(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn drove_round(
    casts: u64,
    calls: usize,
    tls_dir: Option<&std::path::Path>,
) -> anyhow::Result<ClientResult> {
    let ip = drove_tests::fresh_loopback_ip();
    let listen = format!("{ip}:{}", drove_tests::free_port(&ip));
    let http = format!("{ip}:{}", drove_tests::free_port(&ip));
    let mut server = std::process::Command::new(drove_tests::drove_bin());
    server
        .args([
            "node", "--name", "server", "--listen", &listen, "--http", &http, "--cookie", COOKIE,
        ])
        .env("RUST_LOG", "warn");
    let mut client: Vec<String> = vec![
        "client-drove".into(),
        "--seed".into(),
        listen,
        "--casts".into(),
        casts.to_string(),
        "--calls".into(),
        calls.to_string(),
    ];
    if let Some(dir) = tls_dir {
        server.arg("--tls-cert").arg(dir.join("server.pem"));
        server.arg("--tls-key").arg(dir.join("server-key.pem"));
        server.arg("--tls-ca").arg(dir.join("ca.pem"));
        client.push("--tls-dir".into());
        client.push(dir.to_string_lossy().into_owned());
    }
    let _drove_server = Killed(server.spawn()?);
    run_client(&client)
}
