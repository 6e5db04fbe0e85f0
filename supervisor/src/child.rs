//! What a typed child uses at run time: [`checkpoint`] from inside it, and
//! the factory `LocalChildren` starts it with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use drove_runtime::{Context, LocalRef, Node, SpawnOptions};

use crate::checkpoints::checkpoint_json;
use drove_runtime::error::chain;

use crate::error::SupervisorError;
use crate::spec::{Child, StartInfo, Started};

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

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds and spawns one child of a declared type with the local children's spawn
/// options; returns its local id. The error is text: it answers a remote
/// start.
pub(crate) type Factory =
    Arc<dyn Fn(Node, StartInfo, SpawnOptions) -> BoxFuture<Result<u64, String>> + Send + Sync>;

/// The factory of child type `C`: decodes the start, clones `child`,
/// spawns it.
pub(crate) fn factory<C: Child>(child: C) -> Factory {
    Arc::new(move |node: Node, info: StartInfo, options: SpawnOptions| {
        let child = child.clone();
        Box::pin(async move {
            let started = Started::<C>::decode(info).map_err(|e| chain(&e))?;
            let args = child.init_args(started);
            let handle = node
                .spawn_with(child, args, options)
                .await
                .map_err(|e| e.to_string())?;
            match handle.addr().local {
                LocalRef::Id(id) => Ok(id),
                LocalRef::Name(_) => Err("spawned actor has no id".to_string()),
            }
        }) as BoxFuture<Result<u64, String>>
    })
}
