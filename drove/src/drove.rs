//! [`Drove`]: one running node with every service; [`DroveBuilder`], how it
//! starts (the app's child types and strategies, then one `start`);
//! [`Shutdown`], how it stops.

use tokio::signal::unix::{signal, SignalKind};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drove_cache::Cache;
use drove_discovery::DiscoveryTask;
use drove_events::{Events, Handler, Handlers};
use drove_jobs::{BatchWorker, CronJob, Jobs, JobsBuilder, Worker};
use drove_pool::{parent_from_env, Home, ParentInfo, Pool, PoolBuilder, Pools};
use drove_pubsub::PubSub;
use drove_registry::Registry;
use drove_runtime::Node;
use drove_supervisor::{builtin, Child, Supervisor, SupervisorBuilder};

use crate::config::Config;
use crate::error::DroveError;

/// The services a child type may need when it is declared
/// ([`DroveBuilder::child_with`]): everything but the supervisor, which
/// starts after the declarations.
#[derive(Clone, Debug)]
pub struct Services {
    node: Node,
    registry: Registry,
    pubsub: PubSub,
    cache: Cache,
}

impl Services {
    pub(crate) fn new(node: Node, registry: Registry, pubsub: PubSub, cache: Cache) -> Self {
        Services {
            node,
            registry,
            pubsub,
            cache,
        }
    }

    /// The runtime node: spawn, cast, call, membership.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The global registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Cluster pub/sub.
    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// The replicated cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

/// A running node with every service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Drove {
    services: Services,
    supervisor: Supervisor,
    pools: Pools,
    jobs: Option<(Jobs, Events)>,
    /// Finding other nodes (`Config::discovery`); stops with the last clone.
    discovery: Option<Arc<DiscoveryTask>>,
    /// Set when [`Drove::shutdown`] begins.
    stopping: Arc<AtomicBool>,
}

/// How a node stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Hand the supervised children, with their state, to the other nodes,
    /// then leave (what SIGTERM does).
    Handoff,
    /// Leave at once; the others restart the children as after a crash,
    /// from their last checkpoints (what SIGINT does: the whole cluster is
    /// going).
    Leave,
}

impl Drove {
    /// A builder for a node with this configuration.
    pub fn builder(config: Config) -> DroveBuilder {
        DroveBuilder::new(config)
    }

    pub(crate) fn new(
        services: Services,
        supervisor: Supervisor,
        pools: Pools,
        jobs: Option<(Jobs, Events)>,
        discovery: Option<Arc<DiscoveryTask>>,
    ) -> Self {
        Drove {
            services,
            supervisor,
            pools,
            jobs,
            discovery,
            stopping: Arc::default(),
        }
    }

    /// Whether this node has begun to shut down (readiness probes fail from
    /// then on, so no new traffic is sent its way while it hands over).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// This node's runner pools.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The runner pool named `name`.
    pub fn pool(&self, name: &str) -> Option<Pool> {
        self.pools.get(name)
    }

    /// Starts a runner pool on this node.
    pub fn add_pool(&self, pool: PoolBuilder) -> Result<Pool, DroveError> {
        self.pools.add(pool).map_err(DroveError::Pools)
    }

    /// The runtime node: spawn, cast, call, membership.
    pub fn node(&self) -> &Node {
        self.services.node()
    }

    /// The global registry.
    pub fn registry(&self) -> &Registry {
        self.services.registry()
    }

    /// The distributed supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Cluster pub/sub.
    pub fn pubsub(&self) -> &PubSub {
        self.services.pubsub()
    }

    /// The replicated cache.
    pub fn cache(&self) -> &Cache {
        self.services.cache()
    }

    /// Every service but the supervisor.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The job system (none on a pool's runner).
    pub fn jobs(&self) -> Option<&Jobs> {
        self.jobs.as_ref().map(|(jobs, _)| jobs)
    }

    /// Durable events (none on a pool's runner).
    pub fn events(&self) -> Option<&Events> {
        self.jobs.as_ref().map(|(_, events)| events)
    }

    /// Leaves the cluster, handing the children over first if asked.
    /// Running jobs get their grace first; what is still running after
    /// it goes back to the store for another node.
    pub async fn shutdown(&self, how: Shutdown) {
        self.stopping.store(true, Ordering::Release);
        if let Some((jobs, _)) = &self.jobs {
            jobs.shutdown().await;
        }
        self.pools.shutdown().await;
        if how == Shutdown::Handoff {
            let handed = self.supervisor.handoff().await;
            tracing::info!(handed, "children handed to other nodes");
        }
        if let Some(discovery) = &self.discovery {
            discovery.stop();
        }
        self.node().leave().await;
    }

    /// Waits for SIGTERM (then hands the children over and leaves) or
    /// SIGINT (then leaves at once).
    pub async fn run_until_signal(&self) -> Result<(), DroveError> {
        let how = wait_for_signal().await?;
        self.shutdown(how).await;
        Ok(())
    }
}

/// Waits for SIGTERM or SIGINT and says how the node should stop.
pub async fn wait_for_signal() -> Result<Shutdown, DroveError> {
    let mut term = signal(SignalKind::terminate()).map_err(DroveError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DroveError::Signals)?;
    Ok(tokio::select! {
        _ = term.recv() => {
            tracing::info!("SIGTERM: handing children over, then leaving");
            Shutdown::Handoff
        }
        _ = int.recv() => {
            tracing::info!("SIGINT: leaving without handing children over");
            Shutdown::Leave
        }
    })
}

/// One step of declaring the supervisor, run once the services it may
/// need exist.
type Declare = Box<dyn FnOnce(SupervisorBuilder, &Services) -> SupervisorBuilder + Send>;

/// Builds a [`Drove`]: made by [`Drove::builder`].
pub struct DroveBuilder {
    config: Config,
    builtins: bool,
    declare: Vec<Declare>,
    pools: Vec<PoolBuilder>,
    jobs: Option<JobsBuilder>,
    handlers: Handlers,
}

impl std::fmt::Debug for DroveBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DroveBuilder")
            .field("config", &self.config)
            .field("builtins", &self.builtins)
            .field("declarations", &self.declare.len())
            .finish()
    }
}

impl DroveBuilder {
    pub(crate) fn new(config: Config) -> Self {
        DroveBuilder {
            config,
            builtins: true,
            declare: Vec::new(),
            pools: Vec::new(),
            jobs: None,
            handlers: Handlers::new(),
        }
    }

    /// Declares a child type this node runs; `child` is cloned for each
    /// start.
    pub fn child<C: Child>(self, child: C) -> Self {
        self.child_with(move |_| child)
    }

    /// Declares a child type whose value needs the node's services (a
    /// child that writes to the cache or publishes progress).
    pub fn child_with<C: Child>(
        mut self,
        make: impl FnOnce(&Services) -> C + Send + 'static,
    ) -> Self {
        self.declare.push(Box::new(move |builder, services| {
            builder.child(make(services))
        }));
        self
    }

    /// Anything else on the supervisor's builder (a custom placement).
    pub fn supervisor(
        mut self,
        tweak: impl FnOnce(SupervisorBuilder) -> SupervisorBuilder + Send + 'static,
    ) -> Self {
        self.declare
            .push(Box::new(move |builder, _| tweak(builder)));
        self
    }

    /// A runner pool this node starts (with those of [`Config::pools`]).
    pub fn pool(mut self, pool: PoolBuilder) -> Self {
        self.pools.push(pool);
        self
    }

    fn jobs_builder(&mut self) -> JobsBuilder {
        self.jobs
            .take()
            .unwrap_or_else(|| JobsBuilder::new(self.config.jobs.clone()))
    }

    /// A job worker this node runs (besides the built-in ones).
    pub fn worker<W: Worker>(mut self, worker: W) -> Self {
        self.jobs = Some(self.jobs_builder().worker(worker));
        self
    }

    /// A batch job worker this node runs.
    pub fn batch_worker<W: BatchWorker>(mut self, worker: W) -> Self {
        self.jobs = Some(self.jobs_builder().batch_worker(worker));
        self
    }

    /// A cron schedule this node keeps (every node that has it enqueues
    /// each tick; the store keeps one).
    pub fn cron(mut self, job: CronJob) -> Self {
        self.jobs = Some(self.jobs_builder().cron(job));
        self
    }

    /// An event handler this node runs (unless its listener is off: it
    /// still signals events then, and others handle them).
    pub fn handler<H: Handler>(mut self, handler: H) -> Self {
        self.handlers.add(handler);
        self
    }

    /// Without the built-in `ticker` and `echo` child types and the
    /// `drove.record` and `drove.flaky` event handlers (on by default, as
    /// `drove node` has them).
    pub fn without_builtins(mut self) -> Self {
        self.builtins = false;
        self
    }

    /// Starts the node (it joins its seeds in the background), then the
    /// registry, pub/sub, the cache, the supervisor and the runner pools.
    ///
    /// In a process booted by a runner pool (`DROVE_PARENT_FILE` set) the node
    /// joins as that pool's runner instead: named by its parent, on a free
    /// port of the parent's host, with no child types declared.
    pub async fn start(self) -> Result<Drove, DroveError> {
        let parent = parent_from_env().map_err(DroveError::Parent)?;
        self.config.validate()?;
        let (node, config) = start_node(&self.config, parent.as_ref()).await?;
        // A runner knows its parent; only the app's nodes look for others.
        let discovery = match parent {
            Some(_) => None,
            None => Some(Arc::new(start_discovery(&node, &config)?)),
        };
        let registry = Registry::start(&node).await.map_err(DroveError::Registry)?;
        let pubsub = PubSub::start(&node).await.map_err(DroveError::PubSub)?;
        let cache = Cache::start_with(&node, config.cache_config())
            .await
            .map_err(DroveError::Cache)?;
        let services = Services::new(node, registry, pubsub, cache);
        let mut builder = SupervisorBuilder::new(services.node(), services.registry())
            .redistribution(config.redistribution);
        if let Some(quorum) = config.quorum_config() {
            builder = builder.quorum(quorum);
        }
        // A runner declares no child types, so no child is placed on it.
        if parent.is_none() {
            if self.builtins {
                builder = builtin::with_builtins(builder);
            }
            for declare in self.declare {
                builder = declare(builder, &services);
            }
        }
        let supervisor = builder.start().await.map_err(DroveError::Supervisor)?;
        let home = Home {
            addr: config.listen,
            cookie: Arc::from(config.resolve_cookie()?),
        };
        let pools = Pools::start(services.node(), home, Some(Arc::new(services.clone())))
            .await
            .map_err(DroveError::Pools)?;
        let from_config = config.pools.iter().cloned().map(PoolBuilder::new);
        for pool in from_config.chain(self.pools) {
            pools.add(pool).map_err(DroveError::Pools)?;
        }
        // A runner only serves its pool: jobs stay with the app's nodes.
        let jobs = match parent {
            Some(info) => {
                pools
                    .serve_as_runner(info)
                    .await
                    .map_err(DroveError::Pools)?;
                None
            }
            None => {
                let builder = match self.jobs {
                    Some(builder) => builder,
                    None => JobsBuilder::new(config.jobs.clone()),
                };
                let mut handlers = self.handlers;
                let ledger = self
                    .builtins
                    .then(|| drove_events::builtin::add_builtins(&mut handlers, &config.events));
                let (builder, events) =
                    drove_events::install(builder, handlers, &config.events, ledger);
                let extension: Arc<dyn std::any::Any + Send + Sync> = Arc::new(services.clone());
                let jobs = builder
                    .start(services.node(), Some(extension.clone()))
                    .await
                    .map_err(DroveError::Jobs)?;
                let events = events.start(jobs.clone(), Some(extension));
                Some((jobs, events))
            }
        };
        Ok(Drove::new(services, supervisor, pools, jobs, discovery))
    }
}

/// Runs the configured discovery strategy beside `node`.
fn start_discovery(node: &Node, config: &Config) -> Result<DiscoveryTask, DroveError> {
    let every = Duration::from_millis(config.discovery_ms.max(100));
    let strategy =
        drove_discovery::task::strategy(&config.discovery, config.listen, &config.seeds, every)
            .map_err(DroveError::Discovery)?;
    tracing::info!(discovery = %config.discovery, ?every, "discovery started");
    Ok(drove_discovery::spawn(node, strategy, every))
}

/// Starts the runtime node: as configured, or as a runner on a free port
/// (tried again on another port if one was taken meanwhile).
async fn start_node(
    config: &Config,
    parent: Option<&ParentInfo>,
) -> Result<(drove_runtime::Node, Config), DroveError> {
    let Some(info) = parent else {
        let node = config
            .node_config()?
            .start()
            .await
            .map_err(DroveError::Node)?;
        return Ok((node, config.clone()));
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let host = crate::runner_mode::runner_host(info);
        let port = crate::runner_mode::free_port(host).map_err(DroveError::RunnerPort)?;
        let runner = crate::runner_mode::runner_config(config, info, host, port);
        let mut node_config = runner.node_config()?;
        node_config.http = String::new();
        match node_config.start().await {
            Ok(node) => return Ok((node, runner)),
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, port, "runner port taken; trying another")
            }
            Err(e) => return Err(DroveError::Node(e)),
        }
    }
}
