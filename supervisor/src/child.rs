//! Typed children: the [`Child`] trait binds a child type's name, start
//! arguments, messages and checkpoint; [`TypedSpec`] is a spec for one
//! such type, built by [`ChildSpec::of`].
//!
//! On the wire a spec stays untyped ([`ChildSpec`]: type name and JSON
//! text), so nodes of other builds and `POST /api/children` keep working;
//! the types here encode and decode at the edges.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use drove_runtime::{Actor, Context, LocalRef, Node};

use crate::checkpoint::{checkpoint_json, ChildExt};
use crate::error::{chain, SupervisorError};
use crate::spec::{ChildSpec, Restart, StartInfo};

/// An actor the supervisor can place, restart and move between nodes.
///
/// The actor value itself is the factory: the builder keeps the one given
/// to [`SupervisorBuilder::child`](crate::SupervisorBuilder::child) and
/// clones it for every start, so it can hold handles to services (a cache,
/// pub/sub) that every instance uses.
pub trait Child: Actor + Clone {
    /// The type name every node declares this type under. Stable across
    /// releases: records in the replicated table name their type by it.
    const TYPE: &'static str;
    /// What a start carries (encoded as JSON in the replicated spec).
    type Start: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What the child saves with [`checkpoint`] and gets back on a restart.
    type Checkpoint: Serialize + DeserializeOwned + Send + 'static;

    /// The actor's init arguments for one start: the spec's arguments and
    /// the last checkpoint (`None` on a first start).
    fn init_args(&self, start: Started<Self>) -> Self::Args;
}

/// One start of a child of type `C`, decoded.
#[derive(Debug)]
pub struct Started<C: Child> {
    /// The child's id, stable across restarts and moves.
    pub id: String,
    /// How many times it was started before.
    pub restarts: u32,
    /// Its start arguments.
    pub args: C::Start,
    /// Its last checkpoint.
    pub checkpoint: Option<C::Checkpoint>,
}

impl<C: Child> Started<C> {
    /// Decodes the untyped start of a child.
    pub(crate) fn decode(info: StartInfo) -> Result<Self, SupervisorError> {
        let args = serde_json::from_str(&info.args).map_err(|source| SupervisorError::Args {
            type_name: C::TYPE,
            source,
        })?;
        let checkpoint = info
            .checkpoint
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|source| SupervisorError::BadCheckpoint {
                id: info.id.clone(),
                source,
            })?;
        Ok(Started {
            id: info.id,
            restarts: info.restarts,
            args,
            checkpoint,
        })
    }
}

/// Saves a supervised child's state: replicated at once, and handed back
/// through [`Started::checkpoint`] when the child starts again (after a
/// crash, on another node after a failover, or after a handoff).
pub fn checkpoint<C: Child>(
    ctx: &Context<C>,
    state: &C::Checkpoint,
) -> Result<(), SupervisorError> {
    let text = serde_json::to_string(state).map_err(SupervisorError::Checkpoint)?;
    checkpoint_json(ctx, text)
}

/// A spec for a child of type `C`: what
/// [`Supervisor::start_child`](crate::Supervisor::start_child) takes. Built by [`ChildSpec::of`];
/// permanent, with 3 restarts in 5 s, unless told otherwise.
#[derive(Debug)]
pub struct TypedSpec<C: Child> {
    args: C::Start,
    id: String,
    name: Option<String>,
    restart: Restart,
    max_restarts: u32,
    within: Duration,
    child: PhantomData<fn() -> C>,
}

impl ChildSpec {
    /// A spec for a child of type `C` started with `args`.
    pub fn of<C: Child>(args: C::Start) -> TypedSpec<C> {
        TypedSpec {
            args,
            id: String::new(),
            name: None,
            restart: Restart::Permanent,
            max_restarts: 3,
            within: Duration::from_secs(5),
            child: PhantomData,
        }
    }
}

impl<C: Child> TypedSpec<C> {
    /// A stable id (generated at start when not given).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// A global name the child holds in the registry while it runs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Restarted always: after a crash, a normal exit, or its node's death.
    pub fn permanent(self) -> Self {
        self.restart(Restart::Permanent)
    }

    /// Restarted after a crash or its node's death, not after a normal exit.
    pub fn transient(self) -> Self {
        self.restart(Restart::Transient)
    }

    /// Never restarted.
    pub fn temporary(self) -> Self {
        self.restart(Restart::Temporary)
    }

    /// The restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// At most `max_restarts` restarts `within` this long, then the child
    /// is given up.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// The untyped spec that is replicated.
    pub(crate) fn into_spec(self) -> Result<ChildSpec, SupervisorError> {
        let args = serde_json::to_string(&self.args).map_err(|source| SupervisorError::Args {
            type_name: C::TYPE,
            source,
        })?;
        Ok(ChildSpec {
            id: self.id,
            type_name: C::TYPE.to_string(),
            args,
            restart: self.restart,
            name: self.name,
            max_restarts: self.max_restarts,
            within_ms: u64::try_from(self.within.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds and spawns one child of a declared type; returns its local id.
/// The error is text: it answers a remote start.
pub(crate) type Factory =
    Arc<dyn Fn(Node, StartInfo, Arc<ChildExt>) -> BoxFuture<Result<u64, String>> + Send + Sync>;

/// The factory of child type `C`: decodes the start, clones `child`,
/// spawns it with the extension that lets it checkpoint.
pub(crate) fn factory<C: Child>(child: C) -> Factory {
    Arc::new(move |node: Node, info: StartInfo, ext: Arc<ChildExt>| {
        let child = child.clone();
        Box::pin(async move {
            let started = Started::<C>::decode(info).map_err(|e| chain(&e))?;
            let args = child.init_args(started);
            let handle = node
                .spawn_with_extension(child, args, ext)
                .await
                .map_err(|e| e.to_string())?;
            match handle.addr().local {
                LocalRef::Id(id) => Ok(id),
                LocalRef::Name(_) => Err("spawned actor has no id".to_string()),
            }
        }) as BoxFuture<Result<u64, String>>
    })
}
