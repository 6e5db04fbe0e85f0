//! The runner side: what a node booted with `DROVE_PARENT_FILE` runs. The
//! runner service (`drove.runner`) executes calls from the function table
//! under their deadlines, cancels them on request, keeps placed children,
//! and decides when the process ends: its parent down or gone, its parent
//! unreachable within boot_timeout, its stdin closed (the parent process
//! died), a shrink it agreed to, or its single use done. So no runner
//! outlives its parent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::task::AbortHandle;

use drove_runtime::{
    Actor, ActorAddr, ActorError, Context, Handle, MembershipEvent, Node, NodeId, Reply,
};

use crate::error::RemoteError;
use crate::parent::ParentInfo;
use crate::protocol::{Invoke, ParentMsg, RunnerMsg, POOLS_SERVICE, RUNNER_SERVICE};
use crate::remote::{build_id, check_table, functions, Ctx};

type Extension = Option<Arc<dyn std::any::Any + Send + Sync>>;

/// An idle check by pool name, registered by the pools this process
/// defines (a runner runs the same code, so it knows them).
pub type IdleCheck = Arc<dyn Fn() -> bool + Send + Sync>;

struct Shared {
    node: Node,
    info: ParentInfo,
    extension: Extension,
    calls: Mutex<HashMap<(NodeId, u64), AbortHandle>>,
    /// Placed children by local id, with the node that placed each.
    children: Mutex<HashMap<u64, NodeId>>,
    active: AtomicUsize,
    stopping: AtomicBool,
    single_use: bool,
    idle_check: Option<IdleCheck>,
}

/// Starts the runner service on `node` and the watchers that end this
/// process; says hello to the parent once it is reachable.
pub(crate) async fn start_runner(
    node: &Node,
    info: ParentInfo,
    extension: Extension,
    idle_check: Option<IdleCheck>,
) -> Result<(), drove_runtime::SpawnError> {
    check_table();
    let shared = Arc::new(Shared {
        node: node.clone(),
        single_use: info.single_use,
        info,
        extension,
        calls: Mutex::new(HashMap::new()),
        children: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        idle_check,
    });
    let hook = Arc::downgrade(&shared);
    node.on_actor_stopped(Box::new(move |id, _| {
        if let Some(shared) = hook.upgrade() {
            shared.child_stopped(id);
        }
    }));
    node.spawn_named(RUNNER_SERVICE, RunnerService(shared.clone()), ())
        .await?;
    tokio::spawn(shared.clone().watch_parent());
    if shared.info.watch_stdin {
        tokio::spawn(shared.clone().watch_stdin());
    }
    Ok(())
}

impl Shared {
    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<(NodeId, u64), AbortHandle>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_children(&self) -> std::sync::MutexGuard<'_, HashMap<u64, NodeId>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parent(&self) -> Handle<ParentMsg> {
        Handle::named(self.info.parent.clone(), POOLS_SERVICE)
    }

    /// Waits for the parent, says hello, then exits when the parent goes.
    async fn watch_parent(self: Arc<Self>) {
        let mut events = self.node.subscribe();
        let boot_timeout = Duration::from_millis(self.info.boot_timeout_ms);
        let greeted = tokio::time::timeout(boot_timeout, async {
            while !self.try_hello() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if greeted.is_err() {
            tracing::error!(parent = %self.info.parent, "runner could not reach its parent within boot_timeout");
            self.exit(1, "parent unreachable").await;
            return;
        }
        loop {
            match events.recv().await {
                Ok(MembershipEvent::NodeDown(id) | MembershipEvent::NodeLeft(id))
                    if id == self.info.parent =>
                {
                    break
                }
                Ok(MembershipEvent::Rejoined { .. }) => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if !self.node.up_members().contains(&self.info.parent) {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        self.exit(0, "parent gone").await;
    }

    /// Says hello once the parent is up and linked; whether it did. A
    /// cast fails while the link to the parent is still forming.
    fn try_hello(&self) -> bool {
        if !self.node.up_members().contains(&self.info.parent) {
            return false;
        }
        let hello = ParentMsg::Hello {
            node: self.node.id(),
            pool: self.info.pool.clone(),
            runner: self.info.runner,
            secret: self.info.secret.clone(),
            build: build_id().to_string(),
            pid: std::process::id(),
        };
        match self.node.cast(&self.parent(), hello) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "hello not sent yet");
                false
            }
        }
    }

    /// A pipe from the parent process: its end means the parent is gone,
    /// even after a kill -9 that left no time to say so.
    async fn watch_stdin(self: Arc<Self>) {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        self.exit(0, "parent process gone (stdin closed)").await;
    }

    fn check(&self, call: &Invoke) -> Result<&'static crate::remote::FnEntry, RemoteError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(RemoteError::ShuttingDown);
        }
        // A call whose caller timed out may still be finishing here when
        // the pool hands its slot on: one over the limit is allowed for it.
        if self.active.load(Ordering::Acquire) > self.info.max_concurrency {
            return Err(RemoteError::Busy);
        }
        if call.build != build_id() {
            return Err(RemoteError::BuildMismatch {
                runner: build_id().to_string(),
                caller: call.build.clone(),
            });
        }
        functions()
            .get(call.function.as_str())
            .copied()
            .ok_or_else(|| RemoteError::UnknownFunction(call.function.clone()))
    }

    fn invoke(
        self: &Arc<Self>,
        call: Invoke,
        reply: Reply<Result<serde_bytes::ByteBuf, RemoteError>>,
    ) {
        let entry = match self.check(&call) {
            Ok(entry) => entry,
            Err(e) => {
                let _ = self.node.reply(reply, Err(e));
                return;
            }
        };
        let caller = reply.origin().clone();
        let key = (caller.clone(), call.call);
        let ctx = Ctx::new(self.node.clone(), self.extension.clone());
        let timeout_ms = call.timeout_ms;
        let run = (entry.invoke)(ctx, call.args);
        let shared = self.clone();
        let place = call.place;
        // Held while spawning, so the call's guard cannot remove its entry
        // before it is in the table.
        let mut calls = self.lock_calls();
        self.active.fetch_add(1, Ordering::AcqRel);
        let guard = CallGuard {
            shared: self.clone(),
            key: key.clone(),
            inner: None,
        };
        let task = tokio::spawn(async move {
            let mut guard = guard;
            let inner = tokio::spawn(run);
            guard.inner = Some(inner.abort_handle());
            let outcome = match tokio::time::timeout(Duration::from_millis(timeout_ms), inner).await
            {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(RemoteError::Panicked),
                Err(_) => Err(RemoteError::Timeout(timeout_ms)),
            };
            let outcome = match (outcome, place) {
                (Ok(bytes), true) => shared.keep_child(&bytes, caller).map(|()| bytes),
                (outcome, _) => outcome,
            };
            let _ = shared
                .node
                .reply(reply, outcome.map(serde_bytes::ByteBuf::from));
            drop(guard);
            shared.after_call().await;
        });
        calls.insert(key, task.abort_handle());
    }

    /// A placed child's handle came back: the runner holds its slot until
    /// it stops.
    fn keep_child(&self, bytes: &[u8], caller: NodeId) -> Result<(), RemoteError> {
        let addr: ActorAddr = crate::remote::decode(bytes).map_err(RemoteError::BadOutput)?;
        let id = self
            .node
            .local_id(&addr.local)
            .filter(|_| addr.node == self.node.id())
            .ok_or_else(|| {
                RemoteError::Failed("the placed child is not running on this runner".into())
            })?;
        self.active.fetch_add(1, Ordering::AcqRel);
        self.lock_children().insert(id, caller);
        Ok(())
    }

    fn child_stopped(self: &Arc<Self>, id: u64) {
        if self.lock_children().remove(&id).is_none() {
            return;
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
        let _ = self.node.cast(
            &self.parent(),
            ParentMsg::ChildStopped {
                node: self.node.id(),
                pool: self.info.pool.clone(),
                runner: self.info.runner,
            },
        );
        let shared = self.clone();
        tokio::spawn(async move { shared.after_call().await });
    }

    async fn after_call(self: Arc<Self>) {
        if self.single_use && self.active.load(Ordering::Acquire) == 0 {
            self.exit(0, "single use done").await;
        }
    }

    fn cancel(&self, caller: &NodeId, call: u64) {
        if let Some(task) = self.lock_calls().remove(&(caller.clone(), call)) {
            task.abort();
        }
    }

    fn stop_child(&self, caller: &NodeId, child: &ActorAddr) {
        let Some(id) = self.node.local_id(&child.local) else {
            return;
        };
        if self.lock_children().get(&id) == Some(caller) {
            self.node
                .stop_local(&Handle::<RunnerMsg>::from_addr(child.clone()));
        }
    }

    fn idle(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0
    }

    /// Ends the process: no new calls, placed children stopped, running
    /// calls given shutdown_timeout, then leave the cluster and exit.
    async fn exit(self: Arc<Self>, code: i32, why: &str) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(why, "runner stopping");
        let _ = self.node.cast(
            &self.parent(),
            ParentMsg::Leaving {
                node: self.node.id(),
                pool: self.info.pool.clone(),
                runner: self.info.runner,
                reason: why.to_string(),
            },
        );
        let children: Vec<u64> = self.lock_children().keys().copied().collect();
        for id in children {
            self.node
                .stop_local(&Handle::<RunnerMsg>::from_addr(ActorAddr {
                    node: self.node.id(),
                    local: drove_runtime::LocalRef::Id(id),
                }));
        }
        let grace = Duration::from_millis(self.info.shutdown_timeout_ms);
        let _ = tokio::time::timeout(grace, async {
            while !self.idle() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        for (_, task) in self.lock_calls().drain() {
            task.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.node.leave()).await;
        std::process::exit(code);
    }
}

/// Counts a call as running until its task ends, however it ends (an
/// abort drops the task's future and with it this guard).
struct CallGuard {
    shared: Arc<Shared>,
    key: (NodeId, u64),
    inner: Option<AbortHandle>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            inner.abort();
        }
        self.shared.lock_calls().remove(&self.key);
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The runner service actor: messages in, work on [`Shared`].
struct RunnerService(Arc<Shared>);

impl Actor for RunnerService {
    type Msg = RunnerMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: RunnerMsg,
        _: &mut (),
    ) -> Result<(), ActorError> {
        let shared = &self.0;
        match msg {
            RunnerMsg::Invoke(call, reply) => shared.invoke(call, reply),
            RunnerMsg::Cancel { caller, call } => shared.cancel(&caller, call),
            RunnerMsg::StopChild { caller, child } => shared.stop_child(&caller, &child),
            RunnerMsg::Shrink {
                caller,
                reply,
                force,
            } => {
                let from_parent = caller == shared.info.parent;
                let agree = from_parent
                    && (force
                        || (shared.idle()
                            && shared.idle_check.as_ref().is_none_or(|check| check())));
                let _ = ctx.reply(reply, agree);
                if agree {
                    tokio::spawn(shared.clone().exit(0, "stopped by its pool"));
                }
            }
        }
        Ok(())
    }
}
