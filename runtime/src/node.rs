//! The node: its identity, its actors, and typed messaging to any actor in
//! the cluster.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;

use drove_membership::{Incarnation, Member, MemberInfo, MembershipEvent, MembershipView, NodeId};

use crate::actor::{Actor, ExitReason, NameConflict, Shell, ShellArgs, ShellMsg, SystemMsg};
use crate::calls::{PendingCalls, ReplyPayload};
use crate::error::{CallError, DeliveryError, SendError, SpawnError};
use crate::handle::{Handle, LocalRef};
use crate::link::Link;
use crate::local::{LocalActors, TypedMailbox};
use crate::message::{Message, Reply, ReplyValue};
use crate::metrics::Metrics;
use crate::wire::{self, FrameHeader};

/// How a node starts. `NodeConfig::new("n1")` runs alone on the defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's name (`[A-Za-z0-9_.-]`, at most 64 bytes).
    pub name: String,
    /// The cluster address: TCP for the transport, UDP for gossip.
    pub listen: SocketAddr,
    /// Other nodes' `listen` addresses (`host:port`), tried until one answers.
    pub seeds: Vec<String>,
    /// The shared secret; nodes with different cookies never mix.
    pub cookie: String,
    /// The admin HTTP address this node advertises to others.
    pub http: String,
    /// How often gossip runs.
    pub gossip_interval: Duration,
    /// The phi-accrual threshold: silence longer than this many mean
    /// heartbeat intervals declares a node down.
    pub phi_threshold: f64,
    /// How long down declarations and dead nodes stay in gossip.
    pub tombstone_ttl: Duration,
    /// See `ViewConfig::concurrent_window_ms` in drove-membership.
    pub concurrent_window: Duration,
}

impl NodeConfig {
    /// Defaults: listen on 127.0.0.1:4370, HTTP 127.0.0.1:8370, no seeds,
    /// cookie "drove", gossip every 200 ms, phi threshold 8.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 4370)),
            seeds: Vec::new(),
            cookie: "drove".to_string(),
            http: "127.0.0.1:8370".to_string(),
            gossip_interval: Duration::from_millis(200),
            phi_threshold: 8.0,
            tombstone_ttl: Duration::from_secs(3600),
            concurrent_window: Duration::from_secs(2),
        }
    }
}

/// Requests from anywhere in the runtime to the cluster driver task.
pub(crate) enum Control {
    LeaveAnnounced(NodeId),
    LinkReady {
        peer: NodeId,
        cluster_node: u64,
        inbox: ractor::ActorRef<Vec<u8>>,
    },
    Leave(oneshot::Sender<()>),
}

pub(crate) struct NodeInner {
    pub(crate) config: NodeConfig,
    pub(crate) incarnation: AtomicU64,
    pub(crate) local: LocalActors,
    next_local_id: AtomicU64,
    next_call: AtomicU64,
    pub(crate) calls: PendingCalls,
    pub(crate) links: RwLock<HashMap<String, Arc<Link>>>,
    pub(crate) view: Mutex<MembershipView>,
    pub(crate) events: broadcast::Sender<MembershipEvent>,
    pub(crate) metrics: Metrics,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    stop_hooks: RwLock<Vec<StopHook>>,
    /// When the driver last found that this process had been frozen.
    pub(crate) woke_at: Mutex<Option<std::time::Instant>>,
}

/// Called with the local id of every actor that stops on this node, and why.
pub type StopHook = Box<dyn Fn(u64, &ExitReason) + Send + Sync>;

/// A running drove node. Cheap to clone; all clones are the same node.
///
/// One process is one node: ractor's registry and process groups are
/// process-wide, and so is the inbox this node advertises.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.id())
    }
}

impl Node {
    pub(crate) fn new_inner(
        config: NodeConfig,
        me: MemberInfo,
        view: MembershipView,
        control: mpsc::UnboundedSender<Control>,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        Node {
            inner: Arc::new(NodeInner {
                incarnation: AtomicU64::new(me.id.incarnation.0),
                config,
                local: LocalActors::default(),
                next_local_id: AtomicU64::new(1),
                next_call: AtomicU64::new(1),
                calls: PendingCalls::default(),
                links: RwLock::new(HashMap::new()),
                view: Mutex::new(view),
                events,
                metrics: Metrics::default(),
                control,
                stop_hooks: RwLock::new(Vec::new()),
                woke_at: Mutex::new(None),
            }),
        }
    }

    /// This node's current identity (the incarnation changes on a rejoin).
    pub fn id(&self) -> NodeId {
        NodeId::new(
            self.inner.config.name.clone(),
            Incarnation(self.inner.incarnation.load(Ordering::Acquire)),
        )
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The configuration it started with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    fn is_me(&self, node: &NodeId) -> bool {
        node.incarnation.0 == self.inner.incarnation.load(Ordering::Acquire)
            && node.name == self.inner.config.name
    }

    pub(crate) fn local(&self) -> &LocalActors {
        &self.inner.local
    }

    pub(crate) fn view(&self) -> std::sync::MutexGuard<'_, MembershipView> {
        self.inner.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The member table: this node first, then every other known
    /// incarnation's latest status.
    pub fn members(&self) -> Vec<Member> {
        self.view().members()
    }

    /// Membership events from now on (NodeUp, NodeDown, NodeLeaving,
    /// NodeLeft, Rejoined). A subscriber that lags more than 1024 events
    /// gets `RecvError::Lagged` and can re-read [`Node::members`].
    pub fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.inner.events.subscribe()
    }

    /// The node's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Prometheus text for `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.inner
            .metrics
            .render(self.name(), &self.members(), self.inner.local.len())
    }

    /// Spawns an actor on this node.
    pub async fn spawn<A: Actor>(
        &self,
        actor: A,
        args: A::Args,
    ) -> Result<Handle<A::Msg>, SpawnError> {
        self.spawn_inner(actor, args, None, None).await
    }

    /// Spawns an actor whose context carries `extension` (see
    /// [`crate::Context::extension`]).
    pub async fn spawn_with_extension<A: Actor>(
        &self,
        actor: A,
        args: A::Args,
        extension: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Result<Handle<A::Msg>, SpawnError> {
        self.spawn_inner(actor, args, None, Some(extension)).await
    }

    /// Spawns an actor under a local name, reachable from any node as
    /// `Handle::named(node_id, name)`.
    pub async fn spawn_named<A: Actor>(
        &self,
        name: &str,
        actor: A,
        args: A::Args,
    ) -> Result<Handle<A::Msg>, SpawnError> {
        self.spawn_inner(actor, args, Some(name.to_string()), None)
            .await
    }

    async fn spawn_inner<A: Actor>(
        &self,
        actor: A,
        args: A::Args,
        name: Option<String>,
        extension: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Result<Handle<A::Msg>, SpawnError> {
        if let Some(n) = &name {
            if self.inner.local.get(&LocalRef::Name(n.clone())).is_some() {
                return Err(SpawnError::NameTaken(n.clone()));
            }
        }
        let local_id = self.inner.next_local_id.fetch_add(1, Ordering::Relaxed);
        let shell = Shell {
            actor,
            node: self.clone(),
        };
        let shell_args = ShellArgs {
            args,
            local_id,
            name: name.clone(),
            extension,
        };
        match ractor::Actor::spawn(None, shell, shell_args).await {
            Ok((actor, _)) => Ok(Handle::local(
                crate::handle::ActorAddr {
                    node: self.id(),
                    local: LocalRef::Id(local_id),
                },
                actor,
            )),
            Err(e) => Err(SpawnError::Start(e.to_string())),
        }
    }

    /// Sends `msg` to the actor behind `to`, on this node or any other.
    /// Returns once the message is queued; delivery errors on a remote node
    /// are logged there (use [`Node::call`] to hear about them).
    pub fn cast<M: Message>(&self, to: &Handle<M>, msg: M) -> Result<(), SendError> {
        self.send(to, msg, None)
    }

    fn send<M: Message>(&self, to: &Handle<M>, msg: M, call: Option<u64>) -> Result<(), SendError> {
        let addr = to.addr();
        let no_actor = || DeliveryError::NoSuchActor(addr.local.to_string());
        // A handle minted here carries its actor: an incarnation check is
        // all that stands between a local cast and the mailbox.
        if let Some(actor) = &to.local {
            if addr.node.incarnation.0 == self.inner.incarnation.load(Ordering::Acquire) {
                return actor
                    .cast(ShellMsg::User(msg))
                    .map_err(|_| no_actor().into());
            }
        }
        if self.is_me(&addr.node) {
            let mailbox = self.inner.local.get(&addr.local).ok_or_else(no_actor)?;
            let typed = mailbox
                .as_any()
                .downcast_ref::<TypedMailbox<M>>()
                .ok_or_else(|| DeliveryError::WrongType {
                    actor: addr.local.to_string(),
                    expected: 0,
                    got: wire::tag_of(M::TAG),
                })?;
            return typed
                .actor()
                .cast(ShellMsg::User(msg))
                .map_err(|_| no_actor().into());
        }
        let link = self.link_to(&addr.node)?;
        let header = FrameHeader::Send {
            to: addr.local.clone(),
            tag: wire::tag_of(M::TAG),
            call,
        };
        link.push(&header, Some(&msg))
    }

    fn link_to(&self, node: &NodeId) -> Result<Arc<Link>, SendError> {
        let links = self.inner.links.read().unwrap_or_else(|p| p.into_inner());
        links
            .get(&node.name)
            .filter(|l| l.peer == *node)
            .cloned()
            .ok_or_else(|| SendError::NodeUnreachable(node.clone()))
    }

    /// Sends a request built around a reply token and waits for the answer.
    /// Returns an error, never hangs: on timeout, when the callee's node
    /// goes down, or when the request cannot be delivered.
    pub async fn call<M: Message, R: ReplyValue>(
        &self,
        to: &Handle<M>,
        make: impl FnOnce(Reply<R>) -> M,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let call = self.inner.next_call.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("call", %to, call, tag = M::TAG);
        async move {
            let rx = self.inner.calls.register(call, to.node().clone());
            let msg = make(Reply::new(self.id(), call));
            if let Err(e) = self.send(to, msg, Some(call)) {
                self.inner.calls.forget(call);
                return Err(e.into());
            }
            match tokio::time::timeout(timeout, rx).await {
                Err(_) => {
                    self.inner.calls.forget(call);
                    Err(CallError::Timeout(timeout))
                }
                Ok(Err(_)) => Err(CallError::NodeDown(to.node().clone())),
                Ok(Ok(ReplyPayload::Local(value))) => {
                    value.downcast::<R>().map(|v| *v).map_err(|_| {
                        CallError::Delivery(DeliveryError::ReplyDecode(
                            "local reply of another type".to_string(),
                        ))
                    })
                }
                Ok(Ok(ReplyPayload::Remote(bytes))) => wire::decode::<R>(&bytes, "reply")
                    .map_err(|e| CallError::Delivery(DeliveryError::ReplyDecode(e.to_string()))),
                Ok(Ok(ReplyPayload::Failed(e))) => Err(e),
            }
        }
        .instrument(span)
        .await
    }

    /// Answers a call, wherever the caller is.
    pub fn reply<R: ReplyValue>(&self, reply: Reply<R>, value: R) -> Result<(), SendError> {
        if self.is_me(&reply.origin) {
            self.inner
                .calls
                .complete(reply.call, ReplyPayload::Local(Box::new(value)));
            return Ok(());
        }
        let header = FrameHeader::Reply {
            call: reply.call,
            outcome: Ok(()),
        };
        self.link_to(&reply.origin)?.push(&header, Some(&value))
    }

    /// Whether this process woke from a freeze (SIGSTOP, a paused VM) within
    /// `within`: its own down declarations from then are suspect, as the
    /// others may have declared it down meanwhile.
    pub fn woke_within(&self, within: Duration) -> bool {
        self.inner
            .woke_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < within)
    }

    /// The local id of a live actor on this node, by id or local name.
    pub fn local_id(&self, local: &LocalRef) -> Option<u64> {
        self.inner.local.id_of(local)
    }

    /// Stops a local actor (after the message it is handling). Does
    /// nothing for a handle to another node or an actor already gone.
    pub fn stop_local<M>(&self, handle: &Handle<M>) {
        if !self.is_me(handle.node()) {
            return;
        }
        if let Some(mailbox) = self.inner.local.get(&handle.addr().local) {
            mailbox.stop();
        }
    }

    /// Runs `hook` with the local id of every actor that stops on this node,
    /// and why, whatever the reason (layers above use it to drop what the actor held,
    /// such as its global names, without a monitor per actor).
    pub fn on_actor_stopped(&self, hook: StopHook) {
        self.inner
            .stop_hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    pub(crate) fn actor_stopped(&self, local_id: u64, reason: &ExitReason) {
        for hook in self
            .inner
            .stop_hooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            hook(local_id, reason);
        }
    }

    /// Tells a local actor it lost a global name (see
    /// [`Actor::name_conflict`]).
    pub fn notify_name_conflict(
        &self,
        local_id: u64,
        notice: NameConflict,
    ) -> Result<(), DeliveryError> {
        let mailbox = self
            .inner
            .local
            .get(&LocalRef::Id(local_id))
            .ok_or_else(|| DeliveryError::NoSuchActor(LocalRef::Id(local_id).to_string()))?;
        mailbox.deliver_system(SystemMsg::NameConflict(notice))
    }

    /// Round trip to `node`'s echo service; the answer is how many
    /// `EchoMsg::Count` casts it has received.
    pub async fn ping(&self, node: &NodeId, timeout: Duration) -> Result<u64, CallError> {
        let echo = Handle::named(node.clone(), crate::echo::ECHO_NAME);
        self.call(&echo, crate::echo::EchoMsg::Ping, timeout).await
    }

    /// Sends raw bytes to a peer's inbox, bypassing the envelope encoder.
    /// For robustness tests of the envelope decoder; never needed otherwise.
    pub fn send_raw_batch(&self, peer: &NodeId, bytes: Vec<u8>) -> Result<(), SendError> {
        let link = self.link_to(peer)?;
        link.inbox
            .cast(bytes)
            .map_err(|_| SendError::NodeUnreachable(peer.clone()))
    }

    /// Leaves the cluster gracefully: peers see this node as leaving at
    /// once and as left when its connections close. Returns when done.
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.control.send(Control::Leave(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Handles one batch from a peer's link: called by the inbox actor.
    pub(crate) fn receive_batch(&self, bytes: &[u8]) {
        let metrics = &self.inner.metrics;
        let (header, frames) = match wire::open_batch(bytes) {
            Ok(v) => v,
            Err(e) => {
                metrics.bad_batches.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, len = bytes.len(), "dropping a batch that does not decode");
                return;
            }
        };
        let peer = metrics.peer(&header.from.name);
        peer.bytes_in
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let stale = header.to.0 != self.inner.incarnation.load(Ordering::Acquire);
        for frame in frames {
            peer.messages_in.fetch_add(1, Ordering::Relaxed);
            let (frame, payload) = match frame {
                Ok(f) => f,
                Err(e) => {
                    metrics.dropped_frames.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %header.from, error = %e, "dropping a frame that does not decode");
                    continue;
                }
            };
            match frame {
                FrameHeader::Send { to, tag, call } => {
                    let result = if stale {
                        Err(DeliveryError::StaleIncarnation(header.to.to_string()))
                    } else {
                        match self.inner.local.get(&to) {
                            Some(mailbox) => mailbox.deliver_encoded(tag, payload),
                            None => Err(DeliveryError::NoSuchActor(to.to_string())),
                        }
                    };
                    if let Err(error) = result {
                        metrics.dropped_frames.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(peer = %header.from, %to, %error, "message not delivered");
                        if let Some(call) = call {
                            self.reply_error(&header.from, call, error);
                        }
                    }
                }
                FrameHeader::Reply { call, outcome } => match outcome {
                    Ok(()) => {
                        self.inner
                            .calls
                            .complete(call, ReplyPayload::Remote(payload.to_vec()));
                    }
                    Err(e) => self.inner.calls.fail(call, e),
                },
                FrameHeader::Leaving => {
                    let _ = self
                        .inner
                        .control
                        .send(Control::LeaveAnnounced(header.from.clone()));
                }
            }
        }
    }

    fn reply_error(&self, to: &NodeId, call: u64, error: DeliveryError) {
        self.inner
            .metrics
            .failed_calls
            .fetch_add(1, Ordering::Relaxed);
        let header = FrameHeader::Reply {
            call,
            outcome: Err(error),
        };
        if let Ok(link) = self.link_to(to) {
            let _ = link.push::<()>(&header, None);
        }
    }
}
