//! The node: its identity, its actors, and typed messaging to any actor in
//! the cluster.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;

use drove_membership::{
    Incarnation, Member, MemberInfo, MemberStatus, MembershipEvent, MembershipView, NodeId,
};

use crate::addr::{ActorAddr, LocalRef};
use crate::calls::{PendingCalls, ReplyPayload};
use crate::error::{CallError, DeliveryError, SendError, SpawnError};
use crate::grants::{AckDue, Grants};
use crate::handle::Handle;
use crate::lifecycle::{ExitReason, NameConflict};
use crate::link::{Link, Links};
use crate::local_actors::LocalActors;
use crate::mailbox::{ShellMsg, SystemMsg, TypedMailbox};
use crate::message::{Message, Reply, ReplyValue};
use crate::metrics::Metrics;
use crate::reach::Reachability;
use crate::wire::{self, FrameHeader};

/// How long a call waits for the link to a member that is up but not yet
/// linked (see `Node::await_link`).
const LINK_WAIT: Duration = Duration::from_secs(2);

/// Requests from anywhere in the runtime to the cluster driver task.
/// The most addresses one [`Node::introduce`] call offers gossip to.
pub const MAX_INTRODUCED: usize = 256;

pub(crate) enum Control {
    LeaveAnnounced(NodeId),
    LinkReady {
        peer: NodeId,
        cluster_node: u64,
        inbox: ractor::ActorRef<Vec<u8>>,
    },
    Leave(oneshot::Sender<()>),
    /// Gossip of this incarnation stopped by itself.
    GossipDied(u64, String),
    /// A batch claiming to come from `peer` granted this node `token`.
    Granted {
        peer: NodeId,
        token: u128,
    },
    /// Addresses a discovery strategy found: gossip is offered to those
    /// that are not members yet.
    Introduce(Vec<std::net::SocketAddr>),
}

struct NodeInner {
    name: String,
    incarnation: AtomicU64,
    local: LocalActors,
    next_local_id: AtomicU64,
    calls: PendingCalls,
    grants: Grants,
    links: Links,
    reach: Reachability,
    view: Mutex<MembershipView>,
    events: broadcast::Sender<MembershipEvent>,
    metrics: Metrics,
    control: mpsc::UnboundedSender<Control>,
    stop_hooks: RwLock<Vec<StopHook>>,
    /// When the driver last found that this process had been frozen.
    woke_at: Mutex<Option<Instant>>,
}

/// Runs in a new actor's task with its address, after the actor is
/// reachable and before its `init`: if it fails, `init` never runs and the
/// spawn fails with its reason.
pub type BeforeInit =
    Box<dyn FnOnce(ActorAddr) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

/// How [`Spawn::spawn_on`] starts an actor: under a local name, with an
/// extension for its context, after a step of the spawner's.
#[derive(Default)]
pub struct SpawnOptions {
    /// A local name, reachable as `Handle::named(node, name)`.
    pub name: Option<String>,
    /// What [`crate::Context::extension`] hands the actor.
    pub extension: Option<Arc<dyn Any + Send + Sync>>,
    /// A step before `init`, such as taking a global name, so an actor
    /// that may not run never runs its `init` (whose effects could not be
    /// taken back).
    pub before_init: Option<BeforeInit>,
}

/// What [`Node::spawn`] starts. The runtime implements it for every
/// [`Actor`](crate::Actor); there is no need to implement it by hand.
pub trait Spawn: Send + Sized + 'static {
    /// The messages it takes.
    type Msg: Message;
    /// What it starts from.
    type Args: Send + 'static;

    /// Starts it on `node`.
    fn spawn_on(
        self,
        node: &Node,
        args: Self::Args,
        options: SpawnOptions,
    ) -> impl Future<Output = Result<Handle<Self::Msg>, SpawnError>> + Send;
}

/// Called with the local id of every actor that stops on this node, and why.
pub type StopHook = Box<dyn Fn(u64, &ExitReason) + Send + Sync>;

/// A running drove node. Cheap to clone; all clones are the same node.
///
/// One process is one node: ractor's registry and process groups are
/// process-wide, and so is the inbox this node advertises.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.id())
    }
}

impl Node {
    /// A node named by `me`, whose membership is `view` and whose driver
    /// takes `control` (made by the driver when it starts).
    pub(crate) fn new(
        me: &MemberInfo,
        view: MembershipView,
        control: mpsc::UnboundedSender<Control>,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        Node {
            inner: Arc::new(NodeInner {
                incarnation: AtomicU64::new(me.id.incarnation.0),
                name: me.id.name.clone(),
                local: LocalActors::default(),
                next_local_id: AtomicU64::new(1),
                calls: PendingCalls::default(),
                grants: Grants::default(),
                links: Links::default(),
                reach: Reachability::default(),
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
            self.inner.name.clone(),
            Incarnation(self.inner.incarnation.load(Ordering::Acquire)),
        )
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn is_me(&self, node: &NodeId) -> bool {
        node.incarnation.0 == self.inner.incarnation.load(Ordering::Acquire)
            && node.name == self.inner.name
    }

    pub(crate) fn local(&self) -> &LocalActors {
        &self.inner.local
    }

    pub(crate) fn view(&self) -> std::sync::MutexGuard<'_, MembershipView> {
        self.inner.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The links to peers.
    pub(crate) fn links(&self) -> &Links {
        &self.inner.links
    }

    pub(crate) fn reach(&self) -> &Reachability {
        &self.inner.reach
    }

    /// Why `member` is unreachable: up in gossip, but no transport session
    /// reached it within [`crate::reach::SESSION_DEADLINE`].
    pub fn unreachable_reason(&self, member: &NodeId) -> Option<String> {
        self.inner.reach.reason(member)
    }

    /// Whether this node is cut off (its sessions reach only a strict
    /// minority of the up members, itself counted), and its changes: such
    /// a node takes no jobs from the shared store. See [`crate::reach`].
    pub fn cut_off(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.reach.cut_off()
    }

    /// The members that are up and reachable over the transport, this node
    /// included: where work may be placed.
    pub fn reachable_members(&self) -> Vec<NodeId> {
        self.up_members()
            .into_iter()
            .filter(|m| !self.inner.reach.is_unreachable(m))
            .collect()
    }

    /// Calls waiting for replies.
    pub(crate) fn calls(&self) -> &PendingCalls {
        &self.inner.calls
    }

    /// Tells membership subscribers.
    pub(crate) fn emit(&self, event: MembershipEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Where requests for the driver go.
    pub(crate) fn control(&self) -> &mpsc::UnboundedSender<Control> {
        &self.inner.control
    }

    /// This node is now incarnation `incarnation` (after a rejoin).
    pub(crate) fn set_incarnation(&self, incarnation: Incarnation) {
        self.inner
            .incarnation
            .store(incarnation.0, Ordering::Release);
    }

    /// Records that this process woke from a freeze at `at` (or forgets it).
    pub(crate) fn set_woke_at(&self, at: Option<Instant>) {
        *self.inner.woke_at.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// The member table: this node first, then every other known
    /// incarnation's latest status.
    pub fn members(&self) -> Vec<Member> {
        self.view().members()
    }

    /// The members that are up, this node included.
    pub fn up_members(&self) -> Vec<NodeId> {
        self.members()
            .into_iter()
            .filter(|m| m.status == MemberStatus::Up)
            .map(|m| m.info.id)
            .collect()
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
    pub async fn spawn<A: Spawn>(
        &self,
        actor: A,
        args: A::Args,
    ) -> Result<Handle<A::Msg>, SpawnError> {
        actor.spawn_on(self, args, SpawnOptions::default()).await
    }

    /// Spawns an actor with `options` (an extension for its context, a
    /// step before its `init`).
    pub async fn spawn_with<A: Spawn>(
        &self,
        actor: A,
        args: A::Args,
        options: SpawnOptions,
    ) -> Result<Handle<A::Msg>, SpawnError> {
        actor.spawn_on(self, args, options).await
    }

    /// Spawns an actor under a local name, reachable from any node as
    /// `Handle::named(node_id, name)`.
    pub async fn spawn_named<A: Spawn>(
        &self,
        name: &str,
        actor: A,
        args: A::Args,
    ) -> Result<Handle<A::Msg>, SpawnError> {
        if self
            .inner
            .local
            .id_of(&LocalRef::Name(name.to_string()))
            .is_some()
        {
            return Err(SpawnError::NameTaken(name.to_string()));
        }
        let options = SpawnOptions {
            name: Some(name.to_string()),
            ..SpawnOptions::default()
        };
        actor.spawn_on(self, args, options).await
    }

    /// A fresh local actor id (never reused within this process).
    pub(crate) fn next_local_id(&self) -> u64 {
        self.inner.next_local_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `msg` to the actor behind `to`, on this node or any other.
    /// Returns once the message is queued; delivery errors on a remote node
    /// are logged there (use [`Node::call`] to hear about them).
    pub fn cast<M: Message>(&self, to: &Handle<M>, msg: M) -> Result<(), SendError> {
        self.send(to, msg, None)
    }

    /// As [`cast`](Self::cast), but a message for another node that could
    /// not be queued (its link is full, or not up) comes back with the
    /// error, to be sent again later: `Err((error, Some(msg)))`.
    pub fn try_cast<M: Message>(
        &self,
        to: &Handle<M>,
        msg: M,
    ) -> Result<(), (SendError, Option<M>)> {
        let addr = to.addr();
        if self.is_me(&addr.node) {
            return self.send(to, msg, None).map_err(|e| (e, None));
        }
        match self.push_remote(to, &msg, None) {
            Ok(()) => Ok(()),
            Err(e) => Err((e, Some(msg))),
        }
    }

    fn send<M: Message>(&self, to: &Handle<M>, msg: M, call: Option<u64>) -> Result<(), SendError> {
        let addr = to.addr();
        let no_actor = || DeliveryError::NoSuchActor(addr.local.to_string());
        // A handle minted here carries its actor: an incarnation check is
        // all that stands between a local cast and the mailbox.
        if let Some(actor) = to.local_actor() {
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
        self.push_remote(to, &msg, call)
    }

    /// Queues `msg` on the link to the node of `to`, another node.
    fn push_remote<M: Message>(
        &self,
        to: &Handle<M>,
        msg: &M,
        call: Option<u64>,
    ) -> Result<(), SendError> {
        let addr = to.addr();
        let header = FrameHeader::Send {
            to: addr.local.clone(),
            tag: wire::tag_of(M::TAG),
            call,
        };
        self.link_to(&addr.node)?.push(&header, Some(msg))
    }

    fn link_to(&self, node: &NodeId) -> Result<Arc<Link>, SendError> {
        self.inner
            .links
            .get(node)
            .ok_or_else(|| SendError::NodeUnreachable(node.clone()))
    }

    /// Sends a request built around a reply token and waits for the answer.
    /// Returns an error, never hangs: on timeout, when the callee's node
    /// goes down, or when the request cannot be delivered. To a member that
    /// is up but not linked yet, the request waits for the link first
    /// (within the timeout).
    pub async fn call<M: Message, R: ReplyValue>(
        &self,
        to: &Handle<M>,
        make: impl FnOnce(Reply<R>) -> M,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let span = tracing::debug_span!("call", %to, call = tracing::field::Empty, tag = M::TAG);
        async move {
            let deadline = Instant::now() + timeout;
            self.await_link(to.node(), timeout.min(LINK_WAIT)).await;
            let (call, rx) = self.inner.calls.register(to.node().clone());
            tracing::Span::current().record("call", call);
            let msg = make(Reply::new(self.id(), call));
            if let Err(e) = self.send(to, msg, Some(call)) {
                self.inner.calls.forget(call);
                return Err(e.into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx).await {
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

    /// Waits, up to `within`, while `node` is an up member that this node
    /// has no link to yet: just after a node joins, its link is built a
    /// moment after both sides see it up, and a call in that moment would
    /// fail although its answer is near.
    async fn await_link(&self, node: &NodeId, within: Duration) {
        if self.is_me(node) || self.inner.links.has(node) {
            return;
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline
            && !self.inner.links.has(node)
            && self.view().status_of(node) == Some(MemberStatus::Up)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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

    /// When this process last woke from a freeze (SIGSTOP, a paused VM), if
    /// it did: its own down declarations from shortly after are suspect, as
    /// the others may have declared it down meanwhile.
    pub fn woke_at(&self) -> Option<Instant> {
        *self.inner.woke_at.lock().unwrap_or_else(|p| p.into_inner())
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
    /// [`Actor::name_conflict`](crate::Actor::name_conflict)).
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
        mailbox.deliver_system(SystemMsg::NameConflict(Box::new(notice)))
    }

    /// The batch header this node's link to `peer` uses, token included:
    /// for robustness tests that build batches by hand.
    pub fn batch_header_for(&self, peer: &NodeId) -> Result<wire::BatchHeader, SendError> {
        Ok(self.link_to(peer)?.header().clone())
    }

    /// Sends raw bytes to a peer's inbox, bypassing the envelope encoder.
    /// For robustness tests of the envelope decoder; never needed otherwise.
    pub fn send_raw_batch(&self, peer: &NodeId, bytes: Vec<u8>) -> Result<(), SendError> {
        let link = self.link_to(peer)?;
        if link.send_raw(bytes) {
            Ok(())
        } else {
            Err(SendError::NodeUnreachable(peer.clone()))
        }
    }

    /// Offers gossip to cluster addresses found some other way than the
    /// seeds (DNS, mDNS): each one that is not this node and not yet a
    /// live member gets one gossip exchange, which is how a node joins.
    /// Authentication is unchanged: an address whose node has another
    /// cookie never answers. At most [`MAX_INTRODUCED`] addresses are
    /// taken per call. Returns false once the node has stopped.
    pub fn introduce(&self, addrs: impl IntoIterator<Item = std::net::SocketAddr>) -> bool {
        let addrs: Vec<_> = addrs.into_iter().take(MAX_INTRODUCED).collect();
        self.inner.control.send(Control::Introduce(addrs)).is_ok()
    }

    /// Leaves the cluster gracefully: peers see this node as leaving at
    /// once and as left when its connections close. Returns when done.
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.control.send(Control::Leave(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The tokens this node granted its peers.
    pub(crate) fn grants(&self) -> &Grants {
        &self.inner.grants
    }

    /// Sends every acknowledgement owed (the driver's tick): a sender whose
    /// last bytes fell short of `ACK_EVERY` still hears of them.
    pub(crate) fn send_owed_acks(&self) {
        for ack in self.inner.grants.acks_owed() {
            self.send_ack(ack);
        }
    }

    fn send_ack(&self, ack: AckDue) {
        // Without a link back yet, the tick tries again.
        if let Some(link) = self.inner.links.get(&ack.peer) {
            if link.send_ack(ack.token, ack.bytes) {
                self.inner.grants.acked(&ack);
            }
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
        let from = &header.from;
        let trusted = self.inner.grants.verify(from, header.token);
        let peer = metrics.peer(&from.name);
        if trusted {
            peer.bytes_in
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        // Acknowledgements travel in batches of their own, outside the
        // window: those are not counted (nor acknowledged back).
        let mut outside_window = false;
        let stale = header.to.0 != self.inner.incarnation.load(Ordering::Acquire);
        for frame in frames {
            let (frame, payload) = match frame {
                Ok(f) => f,
                Err(e) => {
                    metrics.dropped_frames.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %from, error = %e, "dropping a frame that does not decode");
                    continue;
                }
            };
            if let FrameHeader::Grant { token } = frame {
                if !stale {
                    let _ = self.inner.control.send(Control::Granted {
                        peer: from.clone(),
                        token,
                    });
                }
                continue;
            }
            if !trusted {
                // Not from the session `from` names: whoever sent it, it
                // must not act as `from`.
                metrics.spoofed_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(claimed = %from, "dropping a frame whose batch does not carry the token granted to its sender");
                continue;
            }
            peer.messages_in.fetch_add(1, Ordering::Relaxed);
            match frame {
                FrameHeader::Send { to, tag, call } => {
                    let result = if stale {
                        Err(DeliveryError::StaleIncarnation(header.to.to_string()))
                    } else {
                        match self.inner.local.get(&to) {
                            Some(mailbox) => mailbox.deliver_encoded(tag, payload, from),
                            None => Err(DeliveryError::NoSuchActor(to.to_string())),
                        }
                    };
                    if let Err(error) = result {
                        metrics.dropped_frames.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(peer = %from, %to, %error, "message not delivered");
                        if let Some(call) = call {
                            self.reply_error(from, call, error);
                        }
                    }
                }
                FrameHeader::Reply { call, outcome } => {
                    let payload = match outcome {
                        Ok(()) => ReplyPayload::Remote(payload.to_vec()),
                        Err(e) => ReplyPayload::Failed(CallError::Delivery(e)),
                    };
                    if !self.inner.calls.complete_from(call, from, payload) {
                        metrics.dropped_frames.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(peer = %from, call, "a reply for no call of this node to that peer");
                    }
                }
                FrameHeader::Leaving => {
                    let _ = self
                        .inner
                        .control
                        .send(Control::LeaveAnnounced(from.clone()));
                }
                FrameHeader::Ack { token, bytes } => {
                    outside_window = true;
                    if let Some(link) = self.inner.links.get(from) {
                        link.acknowledge(token, bytes);
                    }
                }
                FrameHeader::Grant { .. } => {}
            }
        }
        // Counted once handled, so the sender's window covers this inbox's
        // queue too.
        if trusted && !outside_window {
            if let Some(ack) = self.inner.grants.received(from, bytes.len()) {
                self.send_ack(ack);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::EchoMsg;
    use crate::link::tests::Collector;
    use drove_membership::{Announced, GossipNode, ViewConfig};
    use ractor::Actor;

    fn info(name: &str, incarnation: u64) -> MemberInfo {
        MemberInfo {
            id: NodeId::new(name, Incarnation(incarnation)),
            addr: format!("{name}:4370"),
            http: format!("{name}:8370"),
        }
    }

    /// Node n1, which sees n2 up and has no link to it yet.
    fn node_seeing_n2_up() -> Node {
        let mut view = MembershipView::new(info("n1", 1), ViewConfig::default());
        let n2 = GossipNode {
            info: info("n2", 2),
            announced: Announced::Up,
            live: true,
            declared_down: vec![],
        };
        view.observe(&[n2], 0);
        let (control, _) = mpsc::unbounded_channel();
        let node = Node::new(&info("n1", 1), view, control);
        assert_eq!(node.up_members().len(), 2);
        node
    }

    fn echo_on(node: &str, incarnation: u64) -> Handle<EchoMsg> {
        Handle::from_addr(ActorAddr {
            node: NodeId::new(node, Incarnation(incarnation)),
            local: LocalRef::Name("echo".to_string()),
        })
    }

    #[tokio::test]
    async fn a_call_to_an_up_member_waits_for_its_link() {
        let node = node_seeing_n2_up();
        let caller = node.clone();
        let call = tokio::spawn(async move {
            caller
                .call(&echo_on("n2", 2), EchoMsg::Ping, Duration::from_secs(1))
                .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (tx, mut batches) = mpsc::unbounded_channel();
        let (inbox, _) = match Actor::spawn(None, Collector, tx).await {
            Ok(spawned) => spawned,
            Err(e) => panic!("inbox: {e}"),
        };
        let link = match Link::new(
            node.id(),
            NodeId::new("n2", Incarnation(2)),
            7,
            inbox,
            Arc::default(),
        ) {
            Ok(link) => link,
            Err(e) => panic!("link: {e}"),
        };
        node.links().insert(link.clone());
        tokio::spawn(link.run());
        let sent = tokio::time::timeout(Duration::from_secs(1), batches.recv()).await;
        assert!(matches!(sent, Ok(Some(_))), "the call went out once linked");
        let answer = match call.await {
            Ok(answer) => answer,
            Err(e) => panic!("call task: {e}"),
        };
        assert!(matches!(answer, Err(CallError::Timeout(_))), "{answer:?}");
    }

    #[tokio::test]
    async fn a_call_to_a_node_that_is_not_up_fails_at_once() {
        let node = node_seeing_n2_up();
        let started = Instant::now();
        let answer = node
            .call(&echo_on("n3", 3), EchoMsg::Ping, Duration::from_secs(5))
            .await;
        assert!(
            matches!(answer, Err(CallError::Send(SendError::NodeUnreachable(_)))),
            "{answer:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
