//! [`Config`]: everything a node needs to start, as plain data that serde
//! fills from a TOML file or from `DROVE_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use drove_cache::CacheConfig;
use drove_discovery::DiscoverySpec;
use drove_events::EventsConfig;
use drove_jobs::JobsConfig;
use drove_pool::{BackendKind, PoolConfig};
use drove_runtime::tls::{Tls, TlsFiles};
use drove_runtime::NodeConfig;
use drove_supervisor::{QuorumConfig, Redistribution};

use crate::cookie_file::{self, CookieFileError};

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not describe a config.
    #[error("parsing the TOML config")]
    Toml(#[source] toml::de::Error),
    /// A `DROVE_*` variable does not parse.
    #[error("reading DROVE_* environment variables")]
    Env(#[source] envy::Error),
    /// `DROVE_JOBS` is not a job store address.
    #[error("DROVE_JOBS: {0}")]
    JobStore(String),
    /// A value that parses but cannot be used.
    #[error("invalid config: {0}")]
    Invalid(&'static str),
    /// The cookie file cannot be used.
    #[error("no usable cookie")]
    Cookie(#[source] CookieFileError),
    /// A pool's options are refused.
    #[error("pool options")]
    Pool(#[source] drove_pool::PoolConfigError),
    /// The TLS files cannot be used.
    #[error("TLS files")]
    Tls(#[source] drove_runtime::tls::TlsError),
}

/// A node's configuration. Every field has a default except `name`;
/// field names are the TOML keys, and `DROVE_` plus the upper-cased name
/// is the environment variable (`gossip_ms` is `DROVE_GOSSIP_MS`; lists
/// such as `seeds` are comma-separated there).
///
/// ```
/// let config = drove::Config::from_toml(r#"
///     name = "n2"
///     listen = "127.0.0.1:4371"
///     seeds = ["127.0.0.1:4370"]
///     quorum = 3
/// "#)?;
/// assert_eq!(config.seeds.len(), 1);
/// # Ok::<(), drove::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The node's name (`[A-Za-z0-9_.-]`, at most 64 bytes).
    pub name: String,
    /// The cluster address: TCP for the transport, UDP for gossip.
    pub listen: SocketAddr,
    /// Other nodes' `listen` addresses, tried until one answers. Seeds may
    /// be down at start: the node runs alone and merges later.
    pub seeds: Vec<String>,
    /// How else this node finds the others (`static`: the seeds only;
    /// `mdns`; `dns:NAME[:PORT]`; `dns:_service._proto.NAME` for SRV).
    /// Discovery only adds seeds: a found node still needs the cookie.
    pub discovery: DiscoverySpec,
    /// How often discovery polls (DNS) or queries (mDNS), milliseconds
    /// (at least 100).
    pub discovery_ms: u64,
    /// The shared secret; nodes with different cookies never mix. Prefer
    /// `cookie_file`: a cookie given on a command line shows in `ps`.
    pub cookie: Option<String>,
    /// A file holding the cookie, readable by its owner only. With neither
    /// this nor `cookie`, `~/.drove.cookie` (made with a random cookie and
    /// mode 0600 if missing).
    pub cookie_file: Option<PathBuf>,
    /// This node's certificate (PEM), for mutual TLS between nodes; with
    /// `tls_key` and `tls_ca`, or none of the three (plaintext).
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The cluster CA's certificate (PEM): peers must hold one it signed.
    pub tls_ca: Option<PathBuf>,
    /// The admin HTTP address; advertised to the other nodes unless
    /// `advertise_http` is set.
    pub http: SocketAddr,
    /// The HTTP address other nodes learn for this one, when it is not
    /// `http` (an app that serves its public pages elsewhere).
    pub advertise_http: Option<SocketAddr>,
    /// Gossip interval, milliseconds (at least 10).
    pub gossip_ms: u64,
    /// Phi-accrual threshold of the failure detector.
    #[serde(alias = "phi_threshold")]
    pub phi: f64,
    /// Quorum placement: a side without a strict majority of this many
    /// nodes runs no children (0: the largest membership seen). Off when
    /// absent.
    pub quorum: Option<usize>,
    /// With `quorum`: how long the majority waits after a down declaration
    /// before failing children over, milliseconds.
    pub fencing_ms: u64,
    /// What running children do when a node joins.
    pub redistribution: Redistribution,
    /// Shifts this node's clock for the replicated cache (to test skew).
    pub clock_offset_ms: i64,
    /// The bytes the replicated cache may hold on this node before it
    /// refuses writes (see `drove_cache::CacheConfig::max_bytes`).
    pub cache_max_bytes: usize,
    /// Runner pools this node starts (TOML `[[pools]]`; not read from
    /// the environment).
    pub pools: Vec<PoolConfig>,
    /// Durable jobs: the store (TOML `[jobs] store = "redis://..."`, or
    /// `DROVE_JOBS`), pipelines (`[[jobs.pipelines]]`), retries, leases.
    pub jobs: JobsConfig,
    /// Durable events (TOML `[events]`): the listener, demand, payload
    /// limit, retries.
    pub events: EventsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 4370)),
            seeds: Vec::new(),
            discovery: DiscoverySpec::Static,
            discovery_ms: 5000,
            cookie: None,
            cookie_file: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            http: SocketAddr::from(([127, 0, 0, 1], 8370)),
            advertise_http: None,
            gossip_ms: 200,
            phi: 8.0,
            quorum: None,
            fencing_ms: 2000,
            redistribution: Redistribution::Passive,
            clock_offset_ms: 0,
            cache_max_bytes: drove_cache::DEFAULT_MAX_BYTES,
            pools: Vec::new(),
            jobs: JobsConfig::default(),
            events: EventsConfig::default(),
        }
    }
}

/// The keys [`Config`] reads, to pick its variables out of the environment.
const KEYS: [&str; 19] = [
    "advertise_http",
    "name",
    "listen",
    "seeds",
    "discovery",
    "discovery_ms",
    "cookie",
    "cookie_file",
    "tls_cert",
    "tls_key",
    "tls_ca",
    "http",
    "gossip_ms",
    "phi",
    "quorum",
    "fencing_ms",
    "redistribution",
    "clock_offset_ms",
    "cache_max_bytes",
];

impl Config {
    /// The defaults, named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Config {
            name: name.into(),
            ..Config::default()
        }
    }

    /// A config from TOML text; absent keys take their defaults.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(ConfigError::Toml)
    }

    /// A config from a TOML file.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// A config from the `DROVE_*` variables of this process.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// A config from `DROVE_*` variables given as pairs; other variables
    /// (and `DROVE_*` ones that name no key) are ignored.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut jobs_store = None;
        let ours: Vec<(String, String)> = vars
            .into_iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("DROVE_")?.to_ascii_lowercase();
                if key == "jobs" {
                    jobs_store = Some(v);
                    return None;
                }
                KEYS.contains(&key.as_str()).then_some((key, v))
            })
            .collect();
        let mut config: Config = envy::from_iter(ours).map_err(ConfigError::Env)?;
        if let Some(store) = jobs_store {
            config.jobs.store = store.parse().map_err(ConfigError::JobStore)?;
        }
        Ok(config)
    }

    /// Checks what serde cannot: a name is given; the TLS files come
    /// together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::Invalid("name is empty"));
        }
        let tls = self.tls_files()?.is_some();
        for pool in &self.pools {
            pool.validate().map_err(ConfigError::Pool)?;
            if tls && pool.backend != BackendKind::Local {
                return Err(ConfigError::Invalid(
                    "runner pools that boot processes do not work with TLS yet: a runner has no certificate for its name",
                ));
            }
        }
        Ok(())
    }

    /// The TLS files, if TLS is on.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            })),
            (None, None, None) => Ok(None),
            _ => Err(ConfigError::Invalid(
                "tls_cert, tls_key and tls_ca go together",
            )),
        }
    }

    /// The cookie: `cookie`, else the one in `cookie_file`, else the one
    /// in `~/.drove.cookie` (made if missing).
    pub fn resolve_cookie(&self) -> Result<String, ConfigError> {
        if let Some(c) = &self.cookie {
            return Ok(c.clone());
        }
        let cookie = match &self.cookie_file {
            Some(path) => cookie_file::read(path),
            None => cookie_file::default_path().and_then(|p| cookie_file::read_or_create(&p)),
        };
        cookie.map_err(ConfigError::Cookie)
    }

    /// The runtime's part (this reads the cookie file, see
    /// [`Config::resolve_cookie`]).
    pub fn node_config(&self) -> Result<NodeConfig, ConfigError> {
        let mut node = NodeConfig::new(self.name.clone());
        node.listen = self.listen;
        node.seeds = self
            .seeds
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        node.cookie = self.resolve_cookie()?;
        node.http = self.advertise_http.unwrap_or(self.http).to_string();
        node.gossip_interval = Duration::from_millis(self.gossip_ms.max(10));
        node.phi_threshold = self.phi;
        node.tls = match self.tls_files()? {
            Some(files) => Some(Tls::load(&files).map_err(ConfigError::Tls)?),
            None => None,
        };
        Ok(node)
    }

    /// The cache's part.
    pub fn cache_config(&self) -> CacheConfig {
        CacheConfig {
            clock_offset_ms: self.clock_offset_ms,
            max_bytes: self.cache_max_bytes,
        }
    }

    /// The supervisor's quorum strategy, when on.
    pub fn quorum_config(&self) -> Option<QuorumConfig> {
        self.quorum.map(|size| QuorumConfig {
            size: (size > 0).then_some(size),
            fencing_margin: Duration::from_millis(self.fencing_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_fills_given_keys_and_defaults_the_rest() {
        let c = Config::from_toml(
            "name = \"n1\"\nseeds = [\"127.0.0.1:4370\"]\nredistribution = \"active\"\nquorum = 0\n",
        )
        .unwrap();
        assert_eq!(c.name, "n1");
        assert_eq!(c.seeds, vec!["127.0.0.1:4370".to_string()]);
        assert_eq!(c.redistribution, Redistribution::Active);
        assert_eq!(c.quorum_config().unwrap().size, None);
        assert_eq!(c.gossip_ms, 200);
    }

    #[test]
    fn toml_refuses_unknown_keys_and_bad_values() {
        assert!(matches!(
            Config::from_toml("name = \"n1\"\ngosip_ms = 5\n"),
            Err(ConfigError::Toml(_))
        ));
        assert!(matches!(
            Config::from_toml("listen = \"not an address\"\n"),
            Err(ConfigError::Toml(_))
        ));
        assert!(matches!(
            Config::from_toml("redistribution = \"sideways\"\n"),
            Err(ConfigError::Toml(_))
        ));
    }

    #[test]
    fn env_reads_drove_variables_only() {
        let vars = [
            ("DROVE_NAME", "n3"),
            ("DROVE_SEEDS", "127.0.0.1:4370,127.0.0.1:4371"),
            ("DROVE_GOSSIP_MS", "50"),
            ("DROVE_PHI", "10.5"),
            ("DROVE_QUORUM", "3"),
            ("DROVE_CLOCK_OFFSET_MS", "-400"),
            ("DROVE_BIN", "/elsewhere"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = Config::from_vars(vars).unwrap();
        assert_eq!(c.name, "n3");
        assert_eq!(c.seeds.len(), 2);
        assert_eq!(c.gossip_ms, 50);
        assert_eq!(c.phi, 10.5);
        assert_eq!(c.quorum, Some(3));
        assert_eq!(c.clock_offset_ms, -400);
        assert_eq!(
            c.node_config().unwrap().gossip_interval,
            Duration::from_millis(50)
        );
    }

    #[test]
    fn env_with_a_bad_number_is_an_error() {
        let vars = [("DROVE_GOSSIP_MS".to_string(), "soon".to_string())];
        assert!(matches!(Config::from_vars(vars), Err(ConfigError::Env(_))));
    }

    #[test]
    fn pools_come_from_toml_tables() {
        let c = Config::from_toml(
            r#"
            name = "n1"
            [[pools]]
            name = "ffmpeg"
            max = 3
            backend = "process"
            [[pools]]
            name = "remote"
            backend = { exec = "exec env {env} {exe} {args}" }
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.pools.len(), 2);
        assert_eq!(c.pools[0].backend, BackendKind::Process);
        assert_eq!(
            c.pools[1].backend,
            BackendKind::Exec("exec env {env} {exe} {args}".into())
        );
        let bad = Config::from_toml("name = \"n1\"\n[[pools]]\nname = \"p\"\nmax = 0\n").unwrap();
        assert!(matches!(bad.validate(), Err(ConfigError::Pool(_))));
    }

    #[test]
    fn a_config_needs_a_name() {
        assert!(Config::default().validate().is_err());
        assert!(Config::new("n1").validate().is_ok());
    }
}
