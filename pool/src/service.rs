//! [`Pools`]: the pools a node runs, by name, and the pools service
//! (`drove.pools`) that passes runners' messages to their pool.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use drove_runtime::{Actor, ActorError, Context, Node, SpawnError};

use crate::error::PoolConfigError;
use crate::parent::{parent, ParentInfo};
use crate::pool::{Pool, PoolBuilder};
use crate::protocol::{ParentMsg, POOLS_SERVICE};
use crate::task::{Event, Home};

type Extension = Option<Arc<dyn Any + Send + Sync>>;

struct PoolsInner {
    node: Node,
    home: Home,
    extension: Extension,
    pools: RwLock<BTreeMap<String, Pool>>,
}

/// The pools of one node. Cheap to clone.
#[derive(Clone)]
pub struct Pools {
    inner: Arc<PoolsInner>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Why pools could not start.
#[derive(Debug, thiserror::Error)]
pub enum PoolsError {
    /// The pools service could not be spawned.
    #[error("starting the pools service")]
    Spawn(#[source] SpawnError),
    /// A pool's options are refused.
    #[error("pool options")]
    Config(#[source] PoolConfigError),
    /// Two pools with one name.
    #[error("two pools named {0:?}")]
    Duplicate(String),
    /// This runner could not start its runner service.
    #[error("starting the runner service")]
    Runner(#[source] SpawnError),
}

impl Pools {
    /// Starts the pools service on `node`. `home` is how runners reach
    /// this node; `extension` is what a function's `Ctx` carries.
    pub async fn start(node: &Node, home: Home, extension: Extension) -> Result<Pools, PoolsError> {
        crate::remote::check_table();
        let pools = Pools {
            inner: Arc::new(PoolsInner {
                node: node.clone(),
                home,
                extension,
                pools: RwLock::new(BTreeMap::new()),
            }),
        };
        node.spawn_named(POOLS_SERVICE, PoolsService(pools.clone()), ())
            .await
            .map_err(PoolsError::Spawn)?;
        Ok(pools)
    }

    /// Starts a pool (min forced to 0 if this process is a runner).
    pub fn add(&self, builder: PoolBuilder) -> Result<Pool, PoolsError> {
        let name = builder.config().name.clone();
        let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
        if pools.contains_key(&name) {
            return Err(PoolsError::Duplicate(name));
        }
        let pool = builder
            .start(
                &self.inner.node,
                self.inner.home.clone(),
                self.inner.extension.clone(),
                parent().is_some(),
            )
            .map_err(PoolsError::Config)?;
        pools.insert(name, pool.clone());
        Ok(pool)
    }

    /// Makes this process serve as the runner `info` describes (call once
    /// the pools the app defines are added: a pool's idle check comes from
    /// its local definition).
    pub async fn serve_as_runner(&self, info: ParentInfo) -> Result<(), PoolsError> {
        let idle_check = self.get(&info.pool).and_then(|p| p.idle_check());
        crate::runner::start_runner(
            &self.inner.node,
            info,
            self.inner.extension.clone(),
            idle_check,
        )
        .await
        .map_err(PoolsError::Runner)
    }

    /// The pool named `name`.
    pub fn get(&self, name: &str) -> Option<Pool> {
        self.inner
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every pool, by name.
    pub fn all(&self) -> Vec<Pool> {
        self.inner
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The pools' names.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Prometheus lines for every pool.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        for pool in self.all() {
            let s = pool.snapshot();
            let count = |state: &str| s.runners.iter().filter(|r| r.state == state).count();
            let runners = [
                ("booting", count("booting")),
                ("ready", count("ready")),
                ("draining", count("draining")),
            ];
            pool.metrics()
                .render(&pool.name(), &runners, s.waiting, &mut out);
        }
        out
    }

    /// Stops every pool's runners (they get their shutdown_timeout).
    pub async fn shutdown(&self) {
        for pool in self.all() {
            let (done, wait) = tokio::sync::oneshot::channel();
            if pool.shared.events.send(Event::Stop(done)).is_ok() {
                let _ = wait.await;
            }
        }
    }
}

/// Passes runners' messages to their pool.
struct PoolsService(Pools);

impl Actor for PoolsService {
    type Msg = ParentMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &self,
        _: &Context<Self>,
        msg: ParentMsg,
        _: &mut (),
    ) -> Result<(), ActorError> {
        let Some(pool) = self.0.get(msg.pool()) else {
            tracing::warn!(
                pool = msg.pool(),
                "message for a pool this node does not run"
            );
            return Ok(());
        };
        let event = match msg {
            ParentMsg::Hello {
                node,
                runner,
                secret,
                build,
                pid,
                ..
            } => Event::Hello {
                runner,
                node,
                secret,
                build,
                pid,
            },
            ParentMsg::ChildStopped { node, runner, .. } => Event::ChildStopped(runner, node),
            ParentMsg::Leaving {
                node,
                runner,
                reason,
                ..
            } => Event::Leaving(runner, node, reason),
        };
        let _ = pool.shared.events.send(event);
        Ok(())
    }
}
