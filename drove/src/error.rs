//! [`DroveError`]: why a node could not start or stop cleanly.

use crate::config::ConfigError;

/// Why a node could not start, or could not wait for its stop signal.
#[derive(Debug, thiserror::Error)]
pub enum DroveError {
    /// The configuration is not usable.
    #[error("bad configuration")]
    Config(#[from] ConfigError),
    /// The runtime node did not start.
    #[error("starting the node")]
    Node(#[source] drove_runtime::StartError),
    /// The registry did not start.
    #[error("starting the registry")]
    Registry(#[source] drove_runtime::SpawnError),
    /// Pub/sub did not start.
    #[error("starting pub/sub")]
    PubSub(#[source] drove_pubsub::PubSubError),
    /// The cache did not start.
    #[error("starting the cache")]
    Cache(#[source] drove_cache::CacheError),
    /// The supervisor did not start.
    #[error("starting the supervisor")]
    Supervisor(#[source] drove_supervisor::SupervisorError),
    /// The runner pools did not start.
    #[error("starting the runner pools")]
    Pools(#[source] drove_pool::PoolsError),
    /// The job system did not start.
    #[error("starting the job system")]
    Jobs(#[source] drove_jobs::JobsError),
    /// `DROVE_PARENT_FILE` is set but its file cannot be used.
    #[error("this process was started as a runner, but")]
    Parent(#[source] drove_pool::parent::ParentError),
    /// The discovery strategy could not start (no resolver configuration,
    /// no mDNS socket).
    #[error("starting discovery")]
    Discovery(#[source] drove_discovery::DiscoveryError),
    /// A runner found no free port on its parent's host.
    #[error("finding a port for this runner")]
    RunnerPort(#[source] std::io::Error),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers")]
    Signals(#[source] std::io::Error),
}
