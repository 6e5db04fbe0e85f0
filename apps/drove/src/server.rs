//! A full drove node as the `drove node` command runs it: the runtime with
//! the registry, the supervisor, pub/sub and the cache, their admin routes,
//! and the signal handling. Applications (such as the download-manager
//! demo) start the same node, add their actor types and routes, and serve.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use drove_cache::{Cache, CacheConfig};
use drove_pubsub::PubSub;
use drove_registry::Registry;
use drove_runtime::{Node, NodeConfig};
use drove_supervisor::{QuorumConfig, Redistribution, Supervisor, SupervisorBuilder};

/// Why a node could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The admin HTTP address could not be bound.
    #[error("binding --http {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A part of the node did not start.
    #[error("starting {what}: {reason}")]
    Start {
        /// Which part.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info, with the
/// transport's and gossip's chatter at warn).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ractor_cluster=warn,chitchat=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn start_err(what: &'static str) -> impl FnOnce(String) -> ServerError {
    move |reason| ServerError::Start { what, reason }
}

/// The flags (and environment variables) of a node.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// The node's name.
    #[arg(long, env = "DROVE_NAME")]
    pub name: String,
    /// The cluster address (TCP transport, UDP gossip).
    #[arg(long, env = "DROVE_LISTEN", default_value = "127.0.0.1:4370")]
    pub listen: SocketAddr,
    /// Other nodes' --listen addresses, comma-separated.
    #[arg(long, env = "DROVE_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// The shared secret of the cluster.
    #[arg(
        long,
        env = "DROVE_COOKIE",
        default_value = "drove",
        hide_env_values = true
    )]
    pub cookie: String,
    /// The admin HTTP address.
    #[arg(long, env = "DROVE_HTTP", default_value = "127.0.0.1:8370")]
    pub http: SocketAddr,
    /// Gossip interval in milliseconds.
    #[arg(long, env = "DROVE_GOSSIP_MS", default_value_t = 200)]
    pub gossip_ms: u64,
    /// Phi-accrual threshold of the failure detector.
    #[arg(long, env = "DROVE_PHI", default_value_t = 8.0)]
    pub phi_threshold: f64,
    /// Quorum placement: a side without a strict majority of this many
    /// nodes runs no children (0: the largest membership seen). Off when
    /// absent.
    #[arg(long, env = "DROVE_QUORUM")]
    pub quorum: Option<usize>,
    /// With --quorum: how long the majority waits after a down declaration
    /// before failing children over, so the minority has stopped them.
    #[arg(long, env = "DROVE_FENCING_MS", default_value_t = 2000)]
    pub fencing_ms: u64,
    /// When a node joins: `passive` leaves running children where they are
    /// (only new ones go there); `active` hands over each child whose
    /// placement moved to the new node.
    #[arg(long, env = "DROVE_REDISTRIBUTION", default_value = "passive", value_parser = ["passive", "active"])]
    pub redistribution: String,
    /// Shifts this node's clock for the replicated cache by this many
    /// milliseconds (to test clock skew; see drove-cache's docs).
    #[arg(
        long,
        env = "DROVE_CLOCK_OFFSET_MS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub clock_offset_ms: i64,
}

/// A running node with every service.
#[derive(Clone)]
pub struct Server {
    /// The runtime node.
    pub node: Node,
    /// The global registry.
    pub registry: Registry,
    /// The distributed supervisor.
    pub supervisor: Supervisor,
    /// Pub/sub.
    pub pubsub: PubSub,
    /// The replicated cache.
    pub cache: Cache,
}

impl Server {
    /// Starts the node and its services; `declare` adds actor types (and
    /// anything else) to the supervisor before it starts, and may hand
    /// pub/sub and the cache to them.
    pub async fn start(
        args: &NodeArgs,
        declare: impl FnOnce(SupervisorBuilder, &PubSub, &Cache) -> SupervisorBuilder,
    ) -> Result<Server, ServerError> {
        let mut config = NodeConfig::new(args.name.clone());
        config.listen = args.listen;
        config.seeds = args
            .seeds
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        config.cookie = args.cookie.clone();
        config.http = args.http.to_string();
        config.gossip_interval = Duration::from_millis(args.gossip_ms.max(10));
        config.phi_threshold = args.phi_threshold;
        let node = Node::start(config)
            .await
            .map_err(|e| start_err("the node")(e.to_string()))?;
        let registry = Registry::start(&node)
            .await
            .map_err(|e| start_err("the registry")(e.to_string()))?;
        let pubsub = PubSub::start(&node)
            .await
            .map_err(|e| start_err("pub/sub")(e.to_string()))?;
        let cache = Cache::start_with(
            &node,
            CacheConfig {
                clock_offset_ms: args.clock_offset_ms,
            },
        )
        .await
        .map_err(|e| start_err("the cache")(e.to_string()))?;
        let mut builder =
            drove_supervisor::builtin::with_builtins(Supervisor::builder(&node, &registry))
                .redistribution(match args.redistribution.as_str() {
                    "active" => Redistribution::Active,
                    _ => Redistribution::Passive,
                });
        if let Some(size) = args.quorum {
            builder = builder.quorum(QuorumConfig {
                size: (size > 0).then_some(size),
                fencing_margin: Duration::from_millis(args.fencing_ms),
            });
        }
        let supervisor = declare(builder, &pubsub, &cache)
            .start()
            .await
            .map_err(|e| start_err("the supervisor")(e.to_string()))?;
        Ok(Server {
            node,
            registry,
            supervisor,
            pubsub,
            cache,
        })
    }

    /// The admin API: cluster, metrics, registry, children, pub/sub, cache.
    pub fn admin_router(&self) -> axum::Router {
        let metrics: Vec<drove_admin::ExtraMetrics> = {
            let (registry, pubsub, cache) = (
                self.registry.clone(),
                self.pubsub.clone(),
                self.cache.clone(),
            );
            vec![
                Arc::new(move || registry.metrics_text()),
                Arc::new(move || pubsub.metrics_text()),
                Arc::new(move || cache.metrics_text()),
            ]
        };
        drove_admin::router(self.node.clone(), metrics)
            .merge(drove_registry::http::router(self.registry.clone()))
            .merge(drove_supervisor::http::router(self.supervisor.clone()))
            .merge(drove_pubsub::http::router(self.pubsub.clone()))
            .merge(drove_cache::http::router(self.cache.clone()))
    }

    /// Binds the HTTP address; done before [`Server::start`] so a port in
    /// use fails before the node joins the cluster.
    pub async fn bind(http: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
        tokio::net::TcpListener::bind(http)
            .await
            .map_err(|source| ServerError::Bind { addr: http, source })
    }

    /// Serves `app` until SIGTERM (hand the children over, then leave) or
    /// SIGINT (leave without handing over: the whole cluster is going).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        app: axum::Router,
    ) -> Result<(), ServerError> {
        let admin = tokio::spawn(async move { axum::serve(listener, app).await });
        let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
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
            let handed = self.supervisor.handoff().await;
            tracing::info!(handed, "children handed to other nodes");
        }
        self.node.leave().await;
        Ok(())
    }
}
