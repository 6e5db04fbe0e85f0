//! [`Replicated`]: a [`Channel`] on a drove node. The channel decides; this
//! does the I/O: it feeds the channel the node's membership events, its
//! peers' messages and a tick every `anti_entropy_interval`, and sends what
//! the channel answers.
//!
//! Every send happens under the channel's lock, in the order the channel
//! gave, so each peer receives this node's messages in the order they were
//! made (the transport keeps per-peer FIFO order): no delta can fall
//! between the chunks of a partition snapshot.
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
    Actor, ActorError, Context, Handle, MembershipEvent, Node, NodeId, SpawnError,
};

use crate::channel::{Channel, Outgoing};
use crate::config::ReplicationConfig;
use crate::hlc::Hlc;
use crate::observer::{Change, Observer, Picker};
use crate::schema::{ReplMsg, Schema, SchemaReplica};
use crate::writer::Writer;

/// How often, and how many times, a new peer is offered this node's digest
/// while its link is not up yet.
const OFFER_RETRY: Duration = Duration::from_millis(20);
const OFFER_TRIES: u32 = 100;

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
}

/// The channel and the handles of its peers' services, under one lock.
/// A B-tree: a handful of peers, found by comparing short names, which is
/// cheaper than hashing them on every send.
struct Locked<S: Schema> {
    channel: Channel<S>,
    handles: BTreeMap<NodeId, Handle<ReplMsg<S>>>,
}

struct Shared<S: Schema> {
    node: Node,
    name: String,
    interval: Duration,
    locked: Mutex<Locked<S>>,
    deltas_sent: AtomicU64,
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
        let channel = Channel::new(node.id(), &self.config, self.observers);
        let shared = Arc::new(Shared {
            name: format!("drove.repl.{}", S::CHANNEL),
            interval: self.config.anti_entropy_interval,
            locked: Mutex::new(Locked {
                channel,
                handles: BTreeMap::new(),
            }),
            deltas_sent: AtomicU64::new(0),
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
        ReplStats {
            deltas_sent: self.shared.deltas_sent.load(Ordering::Relaxed),
            deltas_received: counters.deltas_received,
            anti_entropy_rounds: counters.anti_entropy_rounds,
            syncs_received: counters.syncs_received,
        }
    }

    /// The node the service runs on.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// Sends `out` in order. After a failed send to a peer, the rest of
    /// this batch to that peer is dropped (anti-entropy repairs it), so a
    /// peer never gets a later part of a batch without an earlier one.
    /// Returns whether everything was sent.
    fn send(&self, locked: &mut Locked<S>, out: Vec<Outgoing<S>>) -> bool {
        let mut failed: Vec<Arc<NodeId>> = Vec::new();
        for Outgoing { to, msg } in out {
            if failed.contains(&to) {
                continue;
            }
            let is_delta = matches!(msg, ReplMsg::Delta { .. });
            let sent = match locked.handles.get(&*to) {
                Some(handle) => self.shared.node.cast(handle, msg).is_ok(),
                None => {
                    let handle = Handle::named((*to).clone(), self.shared.name.clone());
                    let sent = self.shared.node.cast(&handle, msg).is_ok();
                    locked.handles.insert((*to).clone(), handle);
                    sent
                }
            };
            if sent {
                if is_delta {
                    self.shared.deltas_sent.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                failed.push(to);
            }
        }
        failed.is_empty()
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
                let peer = info.id;
                let sent = {
                    let mut locked = self.lock();
                    let out = locked.channel.peer_up(peer.clone());
                    self.send(&mut locked, out)
                };
                if !sent {
                    // The member is up before its link is: offer the digest
                    // again until the link takes it.
                    tokio::spawn(self.clone().offer_digest(peer));
                }
            }
            MembershipEvent::NodeDown(id) | MembershipEvent::NodeLeft(id) => {
                let mut locked = self.lock();
                locked.handles.remove(&id);
                locked.channel.peer_gone(&id);
            }
            MembershipEvent::Rejoined { old, new } => {
                let mut locked = self.lock();
                locked.handles.clear();
                locked.channel.rejoined(&old, new);
            }
            MembershipEvent::NodeLeaving(_) => {}
        }
    }

    async fn offer_digest(self, peer: NodeId) {
        for _ in 0..OFFER_TRIES {
            tokio::time::sleep(OFFER_RETRY).await;
            let mut locked = self.lock();
            let Some(offer) = locked.channel.digest_for(&peer) else {
                return;
            };
            if self.send(&mut locked, vec![offer]) {
                return;
            }
        }
    }

    fn handle_msg(&self, msg: ReplMsg<S>) {
        let mut locked = self.lock();
        let out = locked.channel.handle(msg, wall_ms());
        self.send(&mut locked, out);
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
