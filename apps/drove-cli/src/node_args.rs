//! [`NodeArgs`]: the flags (and `DROVE_*` variables) of a node, turned
//! into a [`drove::Config`]. Precedence: a flag, then its variable, then
//! the `--config` file, then the default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use drove::supervisor::Redistribution;
use drove::{Config, ConfigError};

/// The flags (and environment variables) of a node.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// A TOML file with any of the settings below (flags and variables
    /// take precedence over it).
    #[arg(long, env = "DROVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The node's name (required, here or in the file).
    #[arg(long, env = "DROVE_NAME")]
    pub name: Option<String>,
    /// The cluster address (TCP transport, UDP gossip) [default: 127.0.0.1:4370].
    #[arg(long, env = "DROVE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Other nodes' --listen addresses, comma-separated.
    #[arg(long, env = "DROVE_SEEDS", value_delimiter = ',')]
    pub seeds: Option<Vec<String>>,
    /// How else to find the other nodes: `static` (the seeds only),
    /// `mdns` (LAN multicast; opt-in), `dns:NAME[:PORT]` (A/AAAA records
    /// polled) or `dns:_service._proto.NAME` (SRV records) [default: static].
    #[arg(long, env = "DROVE_DISCOVERY")]
    pub discovery: Option<drove::discovery::DiscoverySpec>,
    /// How often discovery polls DNS or queries mDNS, in milliseconds
    /// [default: 5000].
    #[arg(long, env = "DROVE_DISCOVERY_MS")]
    pub discovery_ms: Option<u64>,
    /// The shared secret of the cluster (it shows in `ps`: prefer
    /// --cookie-file).
    #[arg(long, env = "DROVE_COOKIE", hide_env_values = true)]
    pub cookie: Option<String>,
    /// A file holding the cookie, mode 0600 [default: ~/.drove.cookie,
    /// made with a random cookie if missing].
    #[arg(long, env = "DROVE_COOKIE_FILE")]
    pub cookie_file: Option<PathBuf>,
    /// This node's certificate (PEM) for mutual TLS between nodes (with
    /// --tls-key and --tls-ca; `drove certs` makes a development set).
    #[arg(long, env = "DROVE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "DROVE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The cluster CA's certificate (PEM).
    #[arg(long, env = "DROVE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// The admin HTTP address [default: 127.0.0.1:8370].
    #[arg(long, env = "DROVE_HTTP")]
    pub http: Option<SocketAddr>,
    /// Gossip interval in milliseconds [default: 200].
    #[arg(long, env = "DROVE_GOSSIP_MS")]
    pub gossip_ms: Option<u64>,
    /// Phi-accrual threshold of the failure detector [default: 8].
    #[arg(long, env = "DROVE_PHI")]
    pub phi_threshold: Option<f64>,
    /// Quorum placement: a side without a strict majority of this many
    /// nodes runs no children (0: the largest membership seen). Off when
    /// absent.
    #[arg(long, env = "DROVE_QUORUM")]
    pub quorum: Option<usize>,
    /// With --quorum: how long the majority waits after a down declaration
    /// before failing children over, so the minority has stopped them
    /// [default: 2000].
    #[arg(long, env = "DROVE_FENCING_MS")]
    pub fencing_ms: Option<u64>,
    /// When a node joins: `passive` leaves running children where they are
    /// (only new ones go there); `active` hands over each child whose
    /// placement moved to the new node [default: passive].
    #[arg(long, env = "DROVE_REDISTRIBUTION", value_parser = ["passive", "active"])]
    pub redistribution: Option<String>,
    /// Shifts this node's clock for the replicated cache by this many
    /// milliseconds (to test clock skew; see drove-cache's docs) [default: 0].
    #[arg(long, env = "DROVE_CLOCK_OFFSET_MS", allow_negative_numbers = true)]
    pub clock_offset_ms: Option<i64>,
    /// The bytes the replicated cache may hold on this node; writes past
    /// it are refused (507 over HTTP) [default: 536870912].
    #[arg(long, env = "DROVE_CACHE_MAX_BYTES")]
    pub cache_max_bytes: Option<usize>,
    /// A runner pool, `NAME:min=0,max=3,max_concurrency=2,idle_ms=3000,backend=process`
    /// (repeatable; replaces the file's pools). Keys: min, max,
    /// max_concurrency, single_use, timeout_ms, boot_timeout_ms,
    /// shutdown_timeout_ms, idle_ms, min_idle_ms, backend (local, process,
    /// exec); `exec=TEMPLATE` last.
    #[arg(long = "pool", value_name = "SPEC")]
    pub pools: Vec<drove::pool::PoolConfig>,
    /// The job store: `redis://HOST:PORT/DB` or `sqlite:PATH` (nodes on
    /// one machine may share the file) [default: sqlite:drove-jobs.sqlite3].
    #[arg(long, env = "DROVE_JOBS", value_name = "URL")]
    pub jobs: Option<drove::jobs::StoreUrl>,
    /// A job pipeline, `NAME:queue=Q,max_demand=N,batch=B,rate=COUNT/MS,rate_key=K`
    /// (repeatable; replaces the file's). A `default` pipeline on queue
    /// `default` always exists; naming one `default` reconfigures it.
    #[arg(long = "pipeline", value_name = "SPEC")]
    pub pipelines: Vec<drove::jobs::PipelineConfig>,
    /// Handle no events here (they are still signalled from here, and
    /// other nodes handle them).
    #[arg(long)]
    pub no_event_listener: bool,
    /// The event types the built-in `drove.record` handler records,
    /// comma-separated; `*` for all [default: *].
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    pub record_events: Option<Vec<String>>,
}

impl NodeArgs {
    /// The config these flags describe, over the `--config` file if any.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        let a = self.clone();
        c.name = a.name.unwrap_or(c.name);
        c.listen = a.listen.unwrap_or(c.listen);
        c.seeds = a.seeds.unwrap_or(c.seeds);
        c.discovery = a.discovery.unwrap_or(c.discovery);
        c.discovery_ms = a.discovery_ms.unwrap_or(c.discovery_ms);
        c.cookie = a.cookie.or(c.cookie);
        c.cookie_file = a.cookie_file.or(c.cookie_file);
        c.tls_cert = a.tls_cert.or(c.tls_cert);
        c.tls_key = a.tls_key.or(c.tls_key);
        c.tls_ca = a.tls_ca.or(c.tls_ca);
        c.http = a.http.unwrap_or(c.http);
        c.gossip_ms = a.gossip_ms.unwrap_or(c.gossip_ms);
        c.phi = a.phi_threshold.unwrap_or(c.phi);
        c.quorum = a.quorum.or(c.quorum);
        c.fencing_ms = a.fencing_ms.unwrap_or(c.fencing_ms);
        c.clock_offset_ms = a.clock_offset_ms.unwrap_or(c.clock_offset_ms);
        c.cache_max_bytes = a.cache_max_bytes.unwrap_or(c.cache_max_bytes);
        c.redistribution = match a.redistribution.as_deref() {
            Some("active") => Redistribution::Active,
            Some(_) => Redistribution::Passive,
            None => c.redistribution,
        };
        if !a.pools.is_empty() {
            c.pools = a.pools;
        }
        if let Some(store) = a.jobs {
            c.jobs.store = store;
        }
        if !a.pipelines.is_empty() {
            c.jobs.pipelines = a.pipelines;
        }
        if a.no_event_listener {
            c.events.listener = false;
        }
        if let Some(types) = a.record_events {
            c.events.record_types = types;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        Cli::try_parse_from(std::iter::once("drove").chain(args.iter().copied()))
            .unwrap()
            .node
            .to_config()
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let path = std::env::temp_dir().join(format!("drove-args-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "name = \"from-file\"\ngossip_ms = 50\nquorum = 3\nredistribution = \"active\"\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let c = config(&["--config", file, "--name", "n7", "--fencing-ms", "900"]).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(c.name, "n7");
        assert_eq!(c.gossip_ms, 50);
        assert_eq!(c.quorum, Some(3));
        assert_eq!(c.fencing_ms, 900);
        assert_eq!(c.redistribution, Redistribution::Active);
        assert_eq!(c.cookie, None);
    }

    #[test]
    fn discovery_comes_from_the_flag_or_the_file() {
        let path = std::env::temp_dir().join(format!("drove-disc-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "name = \"n1\"\ndiscovery = \"dns:drove.lab:4370\"\ndiscovery_ms = 700\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let from_file = config(&["--config", file]).unwrap();
        let from_flag = config(&["--config", file, "--discovery", "mdns"]).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file.discovery.to_string(), "dns:drove.lab:4370");
        assert_eq!(from_file.discovery_ms, 700);
        assert_eq!(from_flag.discovery, drove::discovery::DiscoverySpec::Mdns);
        let bad = Cli::try_parse_from(["drove", "--name", "n1", "--discovery", "gossip"]);
        let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("unknown strategy"), "{err}");
    }

    #[test]
    fn pools_come_from_repeated_flags() {
        let c = config(&[
            "--name",
            "n1",
            "--pool",
            "a:max=3,backend=process",
            "--pool",
            "b:max=1",
        ])
        .unwrap();
        assert_eq!(c.pools.len(), 2);
        assert_eq!(c.pools[0].max, 3);
        let bad = Cli::try_parse_from(["drove", "--name", "n1", "--pool", "a:max=zero"]);
        assert!(bad.is_err(), "a bad pool spec is refused at parse time");
    }

    #[test]
    fn no_name_anywhere_and_a_missing_file_are_errors() {
        assert!(matches!(config(&[]), Err(ConfigError::Invalid(_))));
        assert!(matches!(
            config(&["--name", "n1", "--config", "/nonexistent/drove.toml"]),
            Err(ConfigError::Read { .. })
        ));
    }
}
