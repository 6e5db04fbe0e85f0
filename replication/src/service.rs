//! The replication service: ships a [`Replica`]'s changes between nodes.
//!
//! - A local write is applied to the local replica at once (read your own
//!   writes) and pushed as a delta to every peer in the same step.
//! - Every `anti_entropy_interval`, and when a peer comes up, each node
//!   sends the digest of its own partition to its peers; a peer whose copy
//!   differs asks for the partition, which the owner streams in chunks and
//!   the peer swaps in whole.
//! - When a member goes down or leaves, every node purges its partition.
//! - When this node rejoins as a new incarnation, it purges its old one.
//!
//! One service per channel (the registry, the cache...), each a local actor
//! named `drove.repl.<channel>` on every node.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use drove_runtime::{
    Actor, ActorError, Context, Handle, MemberStatus, MembershipEvent, Message, Node, NodeId,
    SpawnError,
};

use crate::hlc::{Clock, Hlc};
use crate::replica::{Digest, Op, Replica};
use crate::writer::Writer;

/// The types of one replicated channel.
pub trait Schema: Send + Sync + 'static {
    /// The channel's name; the service is the local actor
    /// `drove.repl.<CHANNEL>` on every node.
    const CHANNEL: &'static str;
    /// The wire tag of this channel's messages.
    const TAG: &'static str;
    /// Keys.
    type Key: Clone + Eq + Hash + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Values.
    type Value: Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// The ops of one channel.
pub type SchemaOp<S> = Op<<S as Schema>::Key, <S as Schema>::Value>;

/// The replica of one channel.
pub type SchemaReplica<S> = Replica<<S as Schema>::Key, <S as Schema>::Value>;

/// Messages between the services of one channel.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub enum ReplMsg<S: Schema> {
    /// Writes by `owner`, in order.
    Delta {
        /// The writer.
        owner: NodeId,
        /// Its ops.
        ops: Vec<SchemaOp<S>>,
    },
    /// `owner`'s digest of its own partition.
    Digest {
        /// The owner.
        owner: NodeId,
        /// Its digest.
        digest: Digest,
    },
    /// Please stream your partition to `requester`.
    SyncRequest {
        /// Who asks.
        requester: NodeId,
    },
    /// One chunk of `owner`'s partition; `first` starts a replacement and
    /// `last` ends it.
    Sync {
        /// The owner.
        owner: NodeId,
        /// Live slots as Put ops.
        ops: Vec<SchemaOp<S>>,
        /// The first chunk.
        first: bool,
        /// The last chunk.
        last: bool,
    },
}

impl<S: Schema> Message for ReplMsg<S> {
    const TAG: &'static str = S::TAG;
}

/// What changed in the replica, for the layer above.
#[derive(Debug)]
pub enum Change<'a, K, V> {
    /// An op was applied (from this node or a peer).
    Applied {
        /// Its writer.
        owner: &'a NodeId,
        /// The op.
        op: &'a Op<K, V>,
    },
    /// Every slot of `owner` went: here they are, as (key, value), `None`
    /// for tombstones.
    Purged {
        /// The owner whose slots went.
        owner: &'a NodeId,
        /// Its slots as they were.
        slots: &'a [(K, Option<V>)],
        /// `true` when the owner is gone (down, left, or this node's old
        /// incarnation); `false` when its partition is being replaced by a
        /// resync and its slots come right back.
        departed: bool,
    },
}

/// Told about every change, with the replica as it is after it. Called with
/// the replica locked: do not call back into the service.
pub trait Observer<S: Schema>: Send + Sync + 'static {
    /// One change.
    fn changed(
        &self,
        replica: &SchemaReplica<S>,
        me: &NodeId,
        change: Change<'_, S::Key, S::Value>,
    );
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// How often owners send their digest to every peer.
    pub anti_entropy_interval: Duration,
    /// Ops per partition chunk.
    pub chunk: usize,
    /// How long tombstones are kept.
    pub tombstone_ttl: Duration,
    /// Added to the wall clock (to test clock skew).
    pub clock_offset_ms: i64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            anti_entropy_interval: Duration::from_secs(1),
            chunk: 2000,
            tombstone_ttl: Duration::from_secs(60),
            clock_offset_ms: 0,
        }
    }
}

/// Counters of one channel.
#[derive(Debug, Default)]
pub struct ReplMetrics {
    /// Delta messages sent to peers.
    pub deltas_sent: AtomicU64,
    /// Delta messages received.
    pub deltas_received: AtomicU64,
    /// Anti-entropy rounds run (digests sent to all peers).
    pub anti_entropy_rounds: AtomicU64,
    /// Partition resyncs received.
    pub syncs_received: AtomicU64,
}

pub(crate) struct State<S: Schema> {
    pub(crate) me: NodeId,
    pub(crate) replica: SchemaReplica<S>,
    pub(crate) clock: Clock,
    peers: HashMap<NodeId, Handle<ReplMsg<S>>>,
    staging: HashMap<NodeId, Vec<SchemaOp<S>>>,
    requested: HashMap<NodeId, Instant>,
}

struct Shared<S: Schema> {
    node: Node,
    config: ReplicationConfig,
    state: Mutex<State<S>>,
    observer: Box<dyn Observer<S>>,
    metrics: ReplMetrics,
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

pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn service_name<S: Schema>() -> String {
    format!("drove.repl.{}", S::CHANNEL)
}

impl<S: Schema> Replicated<S> {
    /// Starts the channel's service on `node`.
    pub async fn start(
        node: &Node,
        config: ReplicationConfig,
        observer: Box<dyn Observer<S>>,
    ) -> Result<Self, SpawnError> {
        let shared = Arc::new(Shared {
            node: node.clone(),
            state: Mutex::new(State {
                me: node.id(),
                replica: Replica::new(),
                clock: Clock::with_offset(config.clock_offset_ms),
                peers: HashMap::new(),
                staging: HashMap::new(),
                requested: HashMap::new(),
            }),
            config,
            observer,
            metrics: ReplMetrics::default(),
        });
        let events = node.subscribe();
        let service = Replicated { shared };
        node.spawn_named(&service_name::<S>(), ReplActor(service.clone()), ())
            .await?;
        {
            let mut state = service.lock();
            for m in node.members() {
                if m.status == MemberStatus::Up && m.info.id != state.me {
                    state.peers.insert(
                        m.info.id.clone(),
                        Handle::named(m.info.id, service_name::<S>()),
                    );
                }
            }
        }
        tokio::spawn(service.clone().run(events));
        Ok(service)
    }

    fn lock(&self) -> MutexGuard<'_, State<S>> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the local replica.
    pub fn read<R>(&self, f: impl FnOnce(&SchemaReplica<S>, &NodeId) -> R) -> R {
        let state = self.lock();
        f(&state.replica, &state.me)
    }

    /// This node's clock now: never behind a stamp it made or saw, so a
    /// write from a node whose clock runs ahead is not in this node's
    /// future (see [`Clock::peek`]).
    pub fn now(&self) -> Hlc {
        self.lock().clock.peek(wall_ms())
    }

    /// Writes to the local replica and pushes the ops to every peer, in
    /// one step, so peers see this node's writes in the order it made them.
    pub fn write<R>(&self, f: impl FnOnce(&mut Writer<'_, S>) -> R) -> R {
        let mut state = self.lock();
        let mut writer = Writer {
            state: &mut state,
            observer: self.shared.observer.as_ref(),
            ops: Vec::new(),
        };
        let result = f(&mut writer);
        let ops = std::mem::take(&mut writer.ops);
        if !ops.is_empty() {
            self.push(&state, ops);
        }
        result
    }

    fn push(&self, state: &State<S>, ops: Vec<SchemaOp<S>>) {
        let n = state.peers.len();
        let mut ops = Some(ops);
        for (i, handle) in state.peers.values().enumerate() {
            let batch = if i + 1 == n {
                ops.take().unwrap_or_default()
            } else {
                ops.clone().unwrap_or_default()
            };
            let msg = ReplMsg::Delta {
                owner: state.me.clone(),
                ops: batch,
            };
            if self.shared.node.cast(handle, msg).is_ok() {
                self.shared
                    .metrics
                    .deltas_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The channel's counters.
    pub fn metrics(&self) -> &ReplMetrics {
        &self.shared.metrics
    }

    /// The node the service runs on.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    async fn run(self, mut events: tokio::sync::broadcast::Receiver<MembershipEvent>) {
        let mut tick = tokio::time::interval(self.shared.config.anti_entropy_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => self.on_membership(event),
                    Err(RecvError::Lagged(_)) => self.refresh_peers(),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => self.anti_entropy(),
            }
        }
    }

    fn refresh_peers(&self) {
        let members = self.shared.node.members();
        let mut state = self.lock();
        let me = state.me.clone();
        let up: HashSet<NodeId> = members
            .iter()
            .filter(|m| m.status == MemberStatus::Up && m.info.id != me)
            .map(|m| m.info.id.clone())
            .collect();
        state.peers.retain(|id, _| up.contains(id));
        for id in up {
            state
                .peers
                .entry(id.clone())
                .or_insert_with(|| Handle::named(id, service_name::<S>()));
        }
    }

    fn purge(&self, state: &mut State<S>, owner: &NodeId, forever: bool, notify: bool) {
        let slots = state.replica.purge_owner(owner, forever);
        state.staging.remove(owner);
        state.requested.remove(owner);
        if notify && !slots.is_empty() {
            self.shared.observer.changed(
                &state.replica,
                &state.me,
                Change::Purged {
                    owner,
                    slots: &slots,
                    departed: true,
                },
            );
        }
    }

    fn on_membership(&self, event: MembershipEvent) {
        match event {
            MembershipEvent::NodeUp(info) => {
                let handle: Handle<ReplMsg<S>> =
                    Handle::named(info.id.clone(), service_name::<S>());
                self.lock().peers.insert(info.id, handle.clone());
                // The member is up before its link is: offer it this node's
                // digest as soon as the link takes it, so a new node
                // converges without waiting for the next round.
                let service = self.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        let sent = {
                            let state = service.lock();
                            if !state.peers.contains_key(handle.node()) {
                                return;
                            }
                            let digest = ReplMsg::Digest {
                                owner: state.me.clone(),
                                digest: state.replica.digest(&state.me),
                            };
                            service.shared.node.cast(&handle, digest).is_ok()
                        };
                        if sent {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
            }
            MembershipEvent::NodeDown(id) | MembershipEvent::NodeLeft(id) => {
                let mut state = self.lock();
                state.peers.remove(&id);
                self.purge(&mut state, &id, true, true);
            }
            MembershipEvent::Rejoined { old, new } => {
                // The old incarnation's view is not to be trusted (it may
                // have declared live nodes down): drop everything and learn
                // the cluster afresh. Only the loss of this node's own slots
                // is news; the others' slots come back by anti-entropy, so
                // their removal is not reported as if their owners died.
                let mut state = self.lock();
                state.peers.clear();
                self.purge(&mut state, &old, true, true);
                for owner in state.replica.owners() {
                    self.purge(&mut state, &owner, false, false);
                }
                state.replica.forget_dead();
                state.staging.clear();
                state.requested.clear();
                state.me = new;
            }
            MembershipEvent::NodeLeaving(_) => {}
        }
    }

    fn anti_entropy(&self) {
        let mut state = self.lock();
        let digest = state.replica.digest(&state.me);
        for handle in state.peers.values() {
            let msg = ReplMsg::Digest {
                owner: state.me.clone(),
                digest,
            };
            let _ = self.shared.node.cast(handle, msg);
        }
        let ttl = self.shared.config.tombstone_ttl.as_millis() as u64;
        let horizon = Hlc::new(wall_ms().saturating_sub(ttl), 0);
        state.replica.gc_tombstones(horizon);
        // Forget requests that were never answered, so they are retried.
        let patience = self.shared.config.anti_entropy_interval * 10;
        state.requested.retain(|_, at| at.elapsed() < patience);
        self.shared
            .metrics
            .anti_entropy_rounds
            .fetch_add(1, Ordering::Relaxed);
    }

    fn handle_msg(&self, msg: ReplMsg<S>) {
        let mut state = self.lock();
        match msg {
            ReplMsg::Delta { owner, ops } => {
                self.shared
                    .metrics
                    .deltas_received
                    .fetch_add(1, Ordering::Relaxed);
                if owner == state.me {
                    return;
                }
                for op in ops {
                    let stamp = match &op {
                        Op::Put { stamp, .. } | Op::Remove { stamp, .. } => *stamp,
                    };
                    state.clock.observe(stamp);
                    if state.replica.apply(&owner, op.clone()) {
                        self.shared.observer.changed(
                            &state.replica,
                            &state.me,
                            Change::Applied {
                                owner: &owner,
                                op: &op,
                            },
                        );
                    }
                }
            }
            ReplMsg::Digest { owner, digest } => {
                if owner == state.me
                    || state.replica.is_dead(&owner)
                    || state.replica.digest(&owner) == digest
                    || state.requested.contains_key(&owner)
                {
                    return;
                }
                state.requested.insert(owner.clone(), Instant::now());
                let handle: Handle<ReplMsg<S>> = Handle::named(owner, service_name::<S>());
                let request = ReplMsg::SyncRequest {
                    requester: state.me.clone(),
                };
                let _ = self.shared.node.cast(&handle, request);
            }
            ReplMsg::SyncRequest { requester } => {
                let handle: Handle<ReplMsg<S>> = Handle::named(requester, service_name::<S>());
                let mut chunks = state
                    .replica
                    .partition_chunks(&state.me, self.shared.config.chunk);
                if chunks.is_empty() {
                    chunks.push(Vec::new());
                }
                let n = chunks.len();
                for (i, ops) in chunks.into_iter().enumerate() {
                    let msg = ReplMsg::Sync {
                        owner: state.me.clone(),
                        ops,
                        first: i == 0,
                        last: i + 1 == n,
                    };
                    if self.shared.node.cast(&handle, msg).is_err() {
                        break;
                    }
                }
            }
            ReplMsg::Sync {
                owner,
                ops,
                first,
                last,
            } => {
                if owner == state.me || state.replica.is_dead(&owner) {
                    return;
                }
                if first {
                    state.staging.insert(owner.clone(), Vec::new());
                }
                let Some(staged) = state.staging.get_mut(&owner) else {
                    return;
                };
                staged.extend(ops);
                if last {
                    let staged = state.staging.remove(&owner).unwrap_or_default();
                    for op in &staged {
                        if let Op::Put { stamp, .. } = op {
                            state.clock.observe(*stamp);
                        }
                    }
                    state.requested.remove(&owner);
                    self.replace(&mut state, &owner, staged);
                    self.shared
                        .metrics
                        .syncs_received
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn replace(&self, state: &mut State<S>, owner: &NodeId, staged: Vec<SchemaOp<S>>) {
        let purged = state.replica.purge_owner(owner, false);
        if !purged.is_empty() {
            self.shared.observer.changed(
                &state.replica,
                &state.me,
                Change::Purged {
                    owner,
                    slots: &purged,
                    departed: false,
                },
            );
        }
        for op in staged {
            if state.replica.apply(owner, op.clone()) {
                self.shared.observer.changed(
                    &state.replica,
                    &state.me,
                    Change::Applied { owner, op: &op },
                );
            }
        }
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
