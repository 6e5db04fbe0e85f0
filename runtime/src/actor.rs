//! drove's actor API, on ractor.
//!
//! A drove actor is a ractor actor in a *shell*: the shell registers it in
//! the node's local table (so messages from other nodes find it), gives it a
//! [`Context`], and removes it from the table when it stops. Only the node's
//! inbox is visible to ractor_cluster; user actors never are, so the
//! transport's per-actor-per-peer proxies do not grow with user actors.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use std::sync::Arc;

use ractor::{ActorProcessingErr, ActorRef};

use crate::addr::{ActorAddr, LocalRef};
use crate::error::{CallError, SendError, SpawnError};
use crate::handle::Handle;
use crate::lifecycle::{ConflictAction, ExitReason, NameConflict};
use crate::mailbox::{ShellMsg, SystemMsg, TypedMailbox};
use crate::message::{Message, Reply, ReplyValue};
use crate::node::{BeforeInit, Node, Spawn, SpawnOptions};

/// The error an actor's callbacks return; it stops the actor.
pub type ActorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A drove actor. `init` builds the state, `handle` takes one message at a
/// time, `stopped` runs when the actor stops for any reason.
pub trait Actor: Send + Sync + Sized + 'static {
    /// The messages it takes (local or from any node).
    type Msg: Message;
    /// Its state, owned by the actor's task.
    type State: Send + 'static;
    /// What `init` receives.
    type Args: Send + 'static;

    /// Builds the initial state. An error fails the spawn.
    fn init(
        &self,
        ctx: &Context<Self>,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::State, ActorError>> + Send;

    /// Handles one message. An error stops the actor.
    fn handle(
        &self,
        ctx: &Context<Self>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorError>> + Send;

    /// Another actor won a global name this actor held (after a conflict,
    /// or because this node was quarantined and dropped its names). The
    /// default stops the actor, as a process that lost its name would be.
    fn name_conflict(
        &self,
        ctx: &Context<Self>,
        state: &mut Self::State,
        notice: NameConflict,
    ) -> impl Future<Output = ConflictAction> + Send {
        let _ = (ctx, state, notice);
        async { ConflictAction::Stop }
    }

    /// Runs once when the actor stops.
    fn stopped(
        &self,
        ctx: &Context<Self>,
        state: &mut Self::State,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, state);
        async {}
    }
}

/// What an actor knows about itself and its node. Later layers extend it
/// (checkpoints, name-conflict notices).
pub struct Context<A: Actor> {
    node: Node,
    myself: Handle<A::Msg>,
    extension: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl<A: Actor> Context<A> {
    /// The node this actor runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// This actor's handle, to hand to others.
    pub fn myself(&self) -> &Handle<A::Msg> {
        &self.myself
    }

    /// What the spawner attached with [`Node::spawn_with`], if
    /// it is a `T` (the supervisor attaches the child's identity, for
    /// checkpoints).
    pub fn extension<T: std::any::Any>(&self) -> Option<&T> {
        self.extension.as_ref()?.downcast_ref::<T>()
    }

    /// Casts to any actor, on any node.
    pub fn cast<M: Message>(&self, to: &Handle<M>, msg: M) -> Result<(), SendError> {
        self.node.cast(to, msg)
    }

    /// Answers a call.
    pub fn reply<R: ReplyValue>(&self, reply: Reply<R>, value: R) -> Result<(), SendError> {
        self.node.reply(reply, value)
    }

    /// Calls any actor, on any node.
    pub async fn call<M: Message, R: ReplyValue>(
        &self,
        to: &Handle<M>,
        make: impl FnOnce(Reply<R>) -> M,
        timeout: std::time::Duration,
    ) -> Result<R, CallError> {
        self.node.call(to, make, timeout).await
    }

    /// Stops this actor after the current message.
    pub fn stop(&self) {
        if let Some(a) = self.myself.local_actor() {
            a.stop(None);
        }
    }
}

impl<A: Actor> Spawn for A {
    type Msg = A::Msg;
    type Args = A::Args;

    async fn spawn_on(
        self,
        node: &Node,
        args: A::Args,
        options: SpawnOptions,
    ) -> Result<Handle<A::Msg>, SpawnError> {
        let local_id = node.next_local_id();
        let shell = Shell {
            actor: self,
            node: node.clone(),
        };
        let shell_args = ShellArgs {
            args,
            local_id,
            name: options.name,
            extension: options.extension,
            before_init: options.before_init,
        };
        match ractor::Actor::spawn(None, shell, shell_args).await {
            Ok((actor, _)) => Ok(Handle::local(
                ActorAddr {
                    node: node.id(),
                    local: LocalRef::Id(local_id),
                },
                actor,
            )),
            Err(e) => Err(SpawnError::Start(e)),
        }
    }
}

/// The ractor actor that runs a drove actor.
struct Shell<A: Actor> {
    actor: A,
    node: Node,
}

struct ShellArgs<A: Actor> {
    args: A::Args,
    local_id: u64,
    name: Option<String>,
    extension: Option<Arc<dyn std::any::Any + Send + Sync>>,
    before_init: Option<BeforeInit>,
}

struct ShellState<A: Actor> {
    ctx: Context<A>,
    state: Option<A::State>,
    local_id: u64,
    name: Option<String>,
    failure: Option<String>,
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

impl<A: Actor> ractor::Actor for Shell<A> {
    type Msg = ShellMsg<A::Msg>;
    type State = ShellState<A>;
    type Arguments = ShellArgs<A>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ShellArgs<A>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let addr = ActorAddr {
            node: self.node.id(),
            local: LocalRef::Id(args.local_id),
        };
        let mailbox = Arc::new(TypedMailbox::<A::Msg>::new(myself.clone()));
        self.node
            .local()
            .insert(args.local_id, args.name.as_deref(), mailbox)?;
        if let Some(before_init) = args.before_init {
            if let Err(reason) = before_init(addr.clone()).await {
                self.node
                    .local()
                    .remove(args.local_id, args.name.as_deref());
                return Err(reason.into());
            }
        }
        let ctx = Context {
            node: self.node.clone(),
            myself: Handle::local(addr, myself),
            extension: args.extension,
        };
        match self.actor.init(&ctx, args.args).await {
            Ok(state) => Ok(ShellState {
                ctx,
                state: Some(state),
                local_id: args.local_id,
                name: args.name,
                failure: None,
            }),
            Err(e) => {
                self.node
                    .local()
                    .remove(args.local_id, args.name.as_deref());
                Err(e)
            }
        }
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(s) = state.state.as_mut() else {
            return Ok(());
        };
        match msg {
            ShellMsg::User(m) => {
                // A failing or panicking handler stops the actor through
                // `stop`, not by returning the error: ractor skips
                // `post_stop` on errors, and the node must always learn
                // that an actor is gone (its table entry, its names).
                let handled = AssertUnwindSafe(self.actor.handle(&state.ctx, m, s))
                    .catch_unwind()
                    .await;
                let failure = match handled {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => e.to_string(),
                    Err(panic) => format!("panicked: {}", panic_message(panic)),
                };
                tracing::warn!(actor = %state.ctx.myself, error = %failure, "actor failed; stopping it");
                state.failure = Some(failure.clone());
                myself.stop(Some(failure));
                Ok(())
            }
            ShellMsg::System(SystemMsg::NameConflict(notice)) => {
                tracing::info!(actor = %state.ctx.myself, name = %notice.name, reason = %notice.reason, "lost a global name");
                if self.actor.name_conflict(&state.ctx, s, *notice).await == ConflictAction::Stop {
                    state.ctx.stop();
                }
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.node
            .local()
            .remove(state.local_id, state.name.as_deref());
        let reason = match state.failure.take() {
            Some(f) => ExitReason::Failed(f),
            None => ExitReason::Normal,
        };
        self.node.actor_stopped(state.local_id, &reason);
        if let Some(mut s) = state.state.take() {
            self.actor.stopped(&state.ctx, &mut s).await;
        }
        Ok(())
    }
}
