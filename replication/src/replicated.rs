//! [`Replicated`]: a [`Channel`] on a drove node. The channel decides; this
//! does the I/O: it feeds the channel the node's membership events, its
//! peers' messages and a tick every `anti_entropy_interval`, and sends what
//! the channel answers.
//!
//! Every send happens under the channel's lock, in the order the channel
//! gave, so each peer receives this node's messages in the order they were
//! made (the transport keeps per-peer FIFO order): no delta can fall
//! between the chunks of a partition snapshot. What a peer's full link
//! refuses waits in that peer's outbox, in the same order.
//!
//! One service per channel (the registry, the cache...), each a local actor
//! named `drove.repl.<channel>` on every node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use drove_runtime::{
    Actor, ActorError, Context, Handle, MembershipEvent, Node, NodeId, SendError, SpawnError,
};

use crate::channel::{Channel, Lost, LostHook, Outgoing};
use crate::config::ReplicationConfig;
use crate::hlc::Hlc;
use crate::observer::{Change, Observer, Picker};
use crate::outbox::{Outbox, OUTBOX_PUMP_EVERY};
use crate::schema::{ReplMsg, Schema, SchemaReplica};
use crate::writer::Writer;

/// A failed send is repaired after this wait, doubling up to
/// [`REPAIR_MAX_WAIT`], at most [`REPAIR_TRIES`] times (about a minute);
/// after that the anti-entropy rounds still repair it.
const REPAIR_FIRST_WAIT: Duration = Duration::from_millis(20);
const REPAIR_MAX_WAIT: Duration = Duration::from_secs(2);
const REPAIR_TRIES: u32 = 40;

/// How to repair a peer's copy after a send to it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Repair {
    /// Offer this node's digest again: the peer asks for the partition if
    /// its copy differs (a lost delta or digest).
    Digest,
    /// Stream the whole partition again (a lost chunk of a resync).
    Snapshot,
}

/// A snapshot of one channel's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplStats {
    /// Delta messages sent to peers.
    pub deltas_sent: u64,
    /// Delta messages received.
    pub deltas_received: u64,
    /// Anti-entropy rounds run (digests sent to all peers).
    pub anti_entropy_rounds: u64,
    /// Partition resyncs received.
    pub syncs_received: u64,
    /// Messages that could not be sent (each is repaired).
    pub send_failures: u64,
    /// Repairs sent after a failed send.
    pub resends: u64,
    /// Peers' stamps too far ahead to move this node's clock.
    pub stamps_too_far_ahead: u64,
}

/// The channel and the handles of its peers' services, under one lock.
/// A B-tree: a handful of peers, found by comparing short names, which is
/// cheaper than hashing them on every send.
struct Locked<S: Schema> {
    channel: Channel<S>,
    handles: BTreeMap<NodeId, Handle<ReplMsg<S>>>,
    /// Peers with a repair under way, and what it sends.
    repairing: BTreeMap<NodeId, Repair>,
    /// Messages waiting for room on a peer's link, by peer.
    outboxes: BTreeMap<NodeId, Outbox<ReplMsg<S>>>,
}

/// This channel's counters in the node's metrics.
struct Counters {
    /// Failed sends by reason: the peer's link is not up (routine while a
    /// member comes up), it is overloaded, the message does not encode
    /// within the frame limit, other.
    send_failures: [Arc<AtomicU64>; 4],
    resends: Arc<AtomicU64>,
    too_far_ahead: Arc<AtomicU64>,
}

impl Counters {
    fn new(node: &Node, channel: &'static str) -> Self {
        let m = node.metrics();
        let labels = [("channel", channel)];
        let failure = |reason: &str| {
            m.counter(
                "drove_repl_send_failures_total",
                "Replication messages that could not be sent to a peer, by reason (each is repaired by a resend).",
                &[("channel", channel), ("reason", reason)],
            )
        };
        Counters {
            send_failures: [
                failure("unreachable"),
                failure("overloaded"),
                failure("encode"),
                failure("other"),
            ],
            resends: m.counter(
                "drove_repl_resends_total",
                "Digests or partitions sent again to a peer after a failed send.",
                &labels,
            ),
            too_far_ahead: m.counter(
                "drove_repl_stamps_too_far_ahead_total",
                "Peers' stamps further ahead of this node's clock than the maximum offset; kept, without moving the clock.",
                &labels,
            ),
        }
    }
}

struct Shared<S: Schema> {
    node: Node,
    name: String,
    interval: Duration,
    locked: Mutex<Locked<S>>,
    deltas_sent: AtomicU64,
    counters: Counters,
    /// When a failed send was last logged as a warning (ms).
    warned_at: AtomicU64,
}

/// A running replication service: cheap to clone.
pub struct Replicated<S: Schema> {
    shared: Arc<Shared<S>>,
}

impl<S: Schema> Clone for Replicated<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Schema> std::fmt::Debug for Replicated<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Replicated")
            .field(&self.lock().channel)
            .finish()
    }
}

/// Sets up a channel's observers and subscriptions, then starts it, so
/// that no change is missed between the start and the first listener.
pub struct ReplicatedBuilder<S: Schema> {
    node: Node,
    config: ReplicationConfig,
    observers: Vec<Box<dyn Observer<S>>>,
    on_lost: Option<LostHook<S>>,
}

impl<S: Schema> std::fmt::Debug for ReplicatedBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedBuilder")
            .field("channel", &S::CHANNEL)
            .field("config", &self.config)
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl<S: Schema> ReplicatedBuilder<S> {
    /// Other tunables than the defaults.
    pub fn config(mut self, config: ReplicationConfig) -> Self {
        self.config = config;
        self
    }

    /// An observer, told of every change under the channel's lock.
    pub fn observe(mut self, observer: impl Observer<S>) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Writes made from lost slots: a departed owner's (a node down or
    /// left, or this node's own previous incarnation) and the live slots a
    /// peer removed, under the same lock as their loss: no read sees them
    /// gone before the writes are in (the cache adopts copies this way).
    /// See [`Channel::set_on_lost`].
    pub fn on_lost(
        mut self,
        hook: impl Fn(&mut Writer<'_, S>, Lost<'_, S::Key, S::Value>) + Send + Sync + 'static,
    ) -> Self {
        self.on_lost = Some(Box::new(hook));
        self
    }

    /// The events `pick` makes of the changes (it sees each change, with
    /// the replica after it, under the channel's lock, and returns an event
    /// or nothing), in order.
    pub fn subscribe<T, F>(&mut self, pick: F) -> mpsc::UnboundedReceiver<T>
    where
        T: Send + 'static,
        F: Fn(&SchemaReplica<S>, &NodeId, Change<'_, S::Key, S::Value>) -> Option<T>
            + Send
            + Sync
            + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        self.observers.push(Box::new(Picker::new(pick, tx)));
        rx
    }

    /// Starts the channel's service on the node.
    pub async fn start(self) -> Result<Replicated<S>, SpawnError> {
        let node = self.node;
        let mut channel = Channel::new(node.id(), &self.config, self.observers);
        if let Some(hook) = self.on_lost {
            channel.set_on_lost(hook);
        }
        let shared = Arc::new(Shared {
            name: format!("drove.repl.{}", S::CHANNEL),
            interval: self.config.anti_entropy_interval,
            locked: Mutex::new(Locked {
                channel,
                handles: BTreeMap::new(),
                repairing: BTreeMap::new(),
                outboxes: BTreeMap::new(),
            }),
            deltas_sent: AtomicU64::new(0),
            counters: Counters::new(&node, S::CHANNEL),
            warned_at: AtomicU64::new(0),
            node: node.clone(),
        });
        let events = node.subscribe();
        let service = Replicated { shared };
        node.spawn_named(&service.shared.name, ReplActor(service.clone()), ())
            .await?;
        service.refresh_peers();
        tokio::spawn(service.clone().run(events));
        Ok(service)
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl<S: Schema> Replicated<S> {
    /// A builder for the channel `S` on `node`.
    pub fn builder(node: &Node) -> ReplicatedBuilder<S> {
        ReplicatedBuilder {
            node: node.clone(),
            config: ReplicationConfig::default(),
            observers: Vec::new(),
            on_lost: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Locked<S>> {
        self.shared.locked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the local replica.
    pub fn read<R>(&self, f: impl FnOnce(&SchemaReplica<S>, &NodeId) -> R) -> R {
        let locked = self.lock();
        f(locked.channel.replica(), locked.channel.me())
    }

    /// This node's clock now: never behind a stamp it made or saw, so a
    /// write from a node whose clock runs ahead is not in this node's
    /// future (see [`Clock::peek`](crate::Clock::peek)).
    pub fn now(&self) -> Hlc {
        self.lock().channel.now(wall_ms())
    }

    /// Writes to the local replica and pushes the ops to every peer, in
    /// one step, so peers see this node's writes in the order it made them.
    pub fn write<R>(&self, f: impl FnOnce(&mut Writer<'_, S>) -> R) -> R {
        let mut locked = self.lock();
        let (result, out) = locked.channel.write(wall_ms(), f);
        self.send(&mut locked, out);
        result
    }

    /// The channel's counters.
    pub fn stats(&self) -> ReplStats {
        let counters = self.lock().channel.counters();
        let c = &self.shared.counters;
        ReplStats {
            deltas_sent: self.shared.deltas_sent.load(Ordering::Relaxed),
            deltas_received: counters.deltas_received,
            anti_entropy_rounds: counters.anti_entropy_rounds,
            syncs_received: counters.syncs_received,
            send_failures: c
                .send_failures
                .iter()
                .map(|f| f.load(Ordering::Relaxed))
                .sum(),
            resends: c.resends.load(Ordering::Relaxed),
            stamps_too_far_ahead: counters.stamps_too_far_ahead,
        }
    }

    /// The node the service runs on.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// Sends `out` in order. A message a peer's full link refuses waits in
    /// the peer's outbox, and so does everything after it to that peer
    /// until the outbox is empty. After any other failed send to a peer,
    /// the rest of this batch to that peer is dropped, so a peer never gets
    /// a later part of a batch without an earlier one; the failure is
    /// counted, logged, and repaired by a resend with backoff (see
    /// [`Repair`]). Returns whether everything was sent or queued.
    fn send(&self, locked: &mut Locked<S>, out: Vec<Outgoing<S>>) -> bool {
        let mut failed: Vec<Arc<NodeId>> = Vec::new();
        for Outgoing { to, msg } in out {
            if failed.contains(&to) {
                continue;
            }
            if let Some(outbox) = locked.outboxes.get_mut(&*to) {
                if !outbox.push(msg) {
                    self.drop_outbox(locked, &to);
                    failed.push(to);
                }
                continue;
            }
            let repair = match &msg {
                ReplMsg::Sync { .. } => Some(Repair::Snapshot),
                ReplMsg::Delta { .. } | ReplMsg::Digest { .. } => Some(Repair::Digest),
                ReplMsg::SyncRequest { .. } => None,
            };
            let is_delta = matches!(msg, ReplMsg::Delta { .. });
            // Looked up before inserting: no clone of the peer's id per send.
            if !locked.handles.contains_key(&*to) {
                let handle = Handle::named((*to).clone(), self.shared.name.clone());
                locked.handles.insert((*to).clone(), handle);
            }
            let Some(handle) = locked.handles.get(&*to) else {
                continue;
            };
            match self.shared.node.try_cast(handle, msg) {
                Ok(()) => {
                    if is_delta {
                        self.shared.deltas_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err((SendError::Overloaded(_), Some(msg))) => {
                    tracing::debug!(channel = S::CHANNEL, peer = %to, "link full; holding what follows in order");
                    locked.outboxes.insert((*to).clone(), Outbox::new(msg));
                    tokio::spawn(self.clone().pump((*to).clone()));
                }
                Err((error, _)) => {
                    self.send_failed(&to, &error);
                    match repair {
                        Some(repair) => self.schedule_repair(locked, &to, repair),
                        // A lost request: ask again at the owner's next digest.
                        None => locked.channel.request_lost(&to),
                    }
                    failed.push(to);
                }
            }
        }
        failed.is_empty()
    }

    /// Sends what waits in `peer`'s outbox as its link drains, until it is
    /// empty, the peer is gone, or it stalls (then a resync repairs it).
    async fn pump(self, peer: NodeId) {
        loop {
            tokio::time::sleep(OUTBOX_PUMP_EVERY).await;
            let mut locked = self.lock();
            let Some(handle) = locked.handles.get(&peer).cloned() else {
                locked.outboxes.remove(&peer);
                return;
            };
            let Some(outbox) = locked.outboxes.get_mut(&peer) else {
                return;
            };
            while let Some(msg) = outbox.pop() {
                match self.shared.node.try_cast(&handle, msg) {
                    Ok(()) => outbox.sent_one(),
                    Err((SendError::Overloaded(_), Some(msg))) => {
                        outbox.put_back(msg);
                        break;
                    }
                    Err((error, _)) => {
                        // The peer is gone or its link went down; what is
                        // left is repaired as any failed send.
                        self.send_failed(&peer, &error);
                        self.drop_outbox(&mut locked, &peer);
                        return;
                    }
                }
            }
            let (empty, stalled) = (outbox.is_empty(), outbox.stalled());
            if empty {
                locked.outboxes.remove(&peer);
                return;
            }
            if stalled {
                self.drop_outbox(&mut locked, &peer);
                return;
            }
        }
    }

    /// Drops `peer`'s outbox (full, stalled, or its link failed): counted
    /// as a failed send and repaired by a fresh resync, which queues behind
    /// nothing.
    fn drop_outbox(&self, locked: &mut Locked<S>, peer: &NodeId) {
        locked.outboxes.remove(peer);
        self.shared.counters.send_failures[1].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(channel = S::CHANNEL, peer = %peer, "dropped what waited for a peer's full link; resyncing it");
        if locked.channel.is_peer(peer) {
            self.schedule_repair(locked, peer, Repair::Snapshot);
        }
    }

    /// Counts a failed send, and logs it: as a warning at most once a
    /// second, and at debug level for a peer whose link is not up yet (a
    /// member that just came up), which is routine.
    fn send_failed(&self, to: &NodeId, error: &SendError) {
        let reason = match error {
            SendError::NodeUnreachable(_) => 0,
            SendError::Overloaded(_) => 1,
            SendError::Wire(_) => 2,
            SendError::Delivery(_) => 3,
        };
        self.shared.counters.send_failures[reason].fetch_add(1, Ordering::Relaxed);
        let now = wall_ms();
        let last = self.shared.warned_at.load(Ordering::Relaxed);
        let routine = matches!(error, SendError::NodeUnreachable(_));
        if !routine && now.saturating_sub(last) >= 1000 {
            self.shared.warned_at.store(now, Ordering::Relaxed);
            tracing::warn!(channel = S::CHANNEL, peer = %to, %error, "replication send failed; resending");
        } else {
            tracing::debug!(channel = S::CHANNEL, peer = %to, %error, "replication send failed; resending");
        }
    }

    /// Starts a repair of `peer`'s copy, or widens the one under way.
    fn schedule_repair(&self, locked: &mut Locked<S>, peer: &NodeId, repair: Repair) {
        match locked.repairing.get_mut(peer) {
            Some(under_way) => *under_way = (*under_way).max(repair),
            None => {
                locked.repairing.insert(peer.clone(), repair);
                tokio::spawn(self.clone().repair(peer.clone()));
            }
        }
    }

    /// Sends `peer` what its repair needs, with backoff, until a send goes
    /// through, the peer is gone, or the tries run out.
    async fn repair(self, peer: NodeId) {
        let mut wait = REPAIR_FIRST_WAIT;
        for _ in 0..REPAIR_TRIES {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(REPAIR_MAX_WAIT);
            let mut locked = self.lock();
            let Some(repair) = locked.repairing.get(&peer).copied() else {
                return;
            };
            if !locked.channel.is_peer(&peer) {
                locked.repairing.remove(&peer);
                return;
            }
            let out = match repair {
                Repair::Digest => locked.channel.digest_for(&peer).into_iter().collect(),
                Repair::Snapshot => locked.channel.snapshot_for(&peer),
            };
            self.shared.counters.resends.fetch_add(1, Ordering::Relaxed);
            // A resend that fails again finds its repair registered and
            // only widens it; this loop goes on with it.
            if self.send(&mut locked, out) {
                locked.repairing.remove(&peer);
                return;
            }
        }
        self.lock().repairing.remove(&peer);
        tracing::warn!(channel = S::CHANNEL, peer = %peer, "gave up resending to a peer; anti-entropy rounds go on");
    }

    async fn run(self, mut events: tokio::sync::broadcast::Receiver<MembershipEvent>) {
        let mut tick = tokio::time::interval(self.shared.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => self.on_membership(event),
                    Err(RecvError::Lagged(_)) => self.refresh_peers(),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let mut locked = self.lock();
                    let out = locked.channel.tick(wall_ms());
                    self.send(&mut locked, out);
                }
            }
        }
    }

    fn refresh_peers(&self) {
        let up = self.shared.node.up_members();
        let mut locked = self.lock();
        locked.handles.retain(|id, _| up.contains(id));
        locked.channel.set_peers(up);
    }

    fn on_membership(&self, event: MembershipEvent) {
        match event {
            MembershipEvent::NodeUp(info) => {
                // A member may be up before its link is: the failed offer
                // is repaired once the link takes it.
                let mut locked = self.lock();
                let out = locked.channel.peer_up(info.id);
                self.send(&mut locked, out);
            }
            MembershipEvent::NodeDown(id) | MembershipEvent::NodeLeft(id) => {
                let mut locked = self.lock();
                locked.handles.remove(&id);
                locked.repairing.remove(&id);
                locked.outboxes.remove(&id);
                let out = locked.channel.peer_gone(&id, wall_ms());
                self.send(&mut locked, out);
            }
            MembershipEvent::Rejoined { old, new } => {
                let mut locked = self.lock();
                locked.handles.clear();
                locked.repairing.clear();
                locked.outboxes.clear();
                locked.channel.rejoined(&old, new, wall_ms());
            }
            MembershipEvent::NodeLeaving(_) => {}
        }
    }

    fn handle_msg(&self, msg: ReplMsg<S>) {
        let mut locked = self.lock();
        let out = locked.channel.handle(msg, wall_ms());
        self.send(&mut locked, out);
        self.shared.counters.too_far_ahead.store(
            locked.channel.counters().stamps_too_far_ahead,
            Ordering::Relaxed,
        );
    }
}

struct ReplActor<S: Schema>(Replicated<S>);

impl<S: Schema> Actor for ReplActor<S> {
    type Msg = ReplMsg<S>;
    type State = ();
    type Args = ();

    async fn init(&self, _ctx: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &self,
        _ctx: &Context<Self>,
        msg: ReplMsg<S>,
        _: &mut (),
    ) -> Result<(), ActorError> {
        self.0.handle_msg(msg);
        Ok(())
    }
}
