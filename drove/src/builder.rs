//! [`DroveBuilder`]: the app's child types and supervisor strategies, then
//! one `start` for the node and every service.

use drove_cache::Cache;
use drove_pubsub::PubSub;
use drove_registry::Registry;
use drove_runtime::Node;
use drove_supervisor::{builtin, Child, Supervisor, SupervisorBuilder};

use crate::config::Config;
use crate::drove::{Drove, Services};
use crate::error::DroveError;

/// One step of declaring the supervisor, run once the services it may
/// need exist.
type Declare = Box<dyn FnOnce(SupervisorBuilder, &Services) -> SupervisorBuilder + Send>;

/// Builds a [`Drove`]: made by [`Drove::builder`].
pub struct DroveBuilder {
    config: Config,
    builtins: bool,
    declare: Vec<Declare>,
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

    /// Without the built-in `ticker` and `echo` child types (on by
    /// default, as `drove node` has them).
    pub fn without_builtins(mut self) -> Self {
        self.builtins = false;
        self
    }

    /// Starts the node (it joins its seeds in the background), then the
    /// registry, pub/sub, the cache and the supervisor.
    pub async fn start(self) -> Result<Drove, DroveError> {
        self.config.validate()?;
        let node = Node::start(self.config.node_config())
            .await
            .map_err(DroveError::Node)?;
        let registry = Registry::start(&node).await.map_err(DroveError::Registry)?;
        let pubsub = PubSub::start(&node).await.map_err(DroveError::PubSub)?;
        let cache = Cache::start_with(&node, self.config.cache_config())
            .await
            .map_err(DroveError::Cache)?;
        let services = Services::new(node, registry, pubsub, cache);
        let mut builder = Supervisor::builder(services.node(), services.registry())
            .redistribution(self.config.redistribution);
        if let Some(quorum) = self.config.quorum_config() {
            builder = builder.quorum(quorum);
        }
        if self.builtins {
            builder = builtin::with_builtins(builder);
        }
        for declare in self.declare {
            builder = declare(builder, &services);
        }
        let supervisor = builder.start().await.map_err(DroveError::Supervisor)?;
        Ok(Drove::new(services, supervisor))
    }
}
