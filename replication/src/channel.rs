//! [`Channel`]: the replication logic of one channel on one node, as a
//! sans-IO state machine. Inputs are local writes, messages from peers,
//! membership changes and the passing of time (`now_ms`, wall-clock
//! milliseconds, always given by the caller); outputs are the messages to
//! send ([`Outgoing`]), in the order they must be sent. The service
//! ([`Replicated`](crate::Replicated)) does the I/O; the simulation tests
//! drive it over a lossy network.
//!
//! - A local write is applied at once (read your own writes) and becomes
//!   one delta to every peer.
//! - [`tick`](Channel::tick) sends this node's digest to every peer, drops
//!   tombstones past their time, and forgets unanswered sync requests.
//! - A digest that differs from this node's copy asks the owner for its
//!   partition, which it streams in chunks; the last chunk replaces the
//!   copy whole.
//! - A peer that goes down or leaves has its partition purged for good; a
//!   rejoin purges this node's old incarnation and relearns the rest.
//! - A layer that must not lose values with their holder installs a loss
//!   hook ([`Channel::set_on_lost`]): it is handed the slots a departed
//!   owner held, and the live slots a peer removed, and writes in the same
//!   step, before any read can see them gone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use drove_runtime::NodeId;

use crate::chunks::{split, ChunkLimits};
use crate::config::ReplicationConfig;
use crate::hlc::{Clock, Hlc};
use crate::observer::{Change, Observer};
use crate::replica::{Op, PurgedSlot, Replica};
use crate::schema::{ReplMsg, Schema, SchemaOp, SchemaReplica};
use crate::writer::Writer;

/// One message to send, to the channel's service on node `to` (shared, so
/// a delta to every peer does not copy their names).
#[derive(Debug)]
pub struct Outgoing<S: Schema> {
    /// The receiving node.
    pub to: Arc<NodeId>,
    /// The message.
    pub msg: ReplMsg<S>,
}

/// What a channel has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelCounters {
    /// Delta messages received.
    pub deltas_received: u64,
    /// Anti-entropy rounds run (digests sent to all peers).
    pub anti_entropy_rounds: u64,
    /// Partition resyncs received.
    pub syncs_received: u64,
    /// Stamps from peers too far ahead of this node's wall clock to move
    /// its clock (see [`Clock::observe`]).
    pub stamps_too_far_ahead: u64,
}

/// Why a channel handed slots to its loss hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Their owner went down or left (or is this node's old incarnation):
    /// every slot it held, tombstones included.
    Departed,
    /// Their owner removed them (a delta, or a resync that no longer has
    /// them): each was live here until then.
    Removed,
}

/// Slots this node no longer holds, as handed to the loss hook.
#[derive(Debug)]
pub struct Lost<'a, K, V> {
    /// The owner they belonged to.
    pub owner: &'a NodeId,
    /// The slots as they were.
    pub slots: &'a [PurgedSlot<K, V>],
    /// Why they went.
    pub cause: Loss,
}

/// What a channel writes when slots are lost, in the step that lost them
/// (see [`Channel::set_on_lost`]).
pub type LostHook<S> = Box<
    dyn Fn(&mut Writer<'_, S>, Lost<'_, <S as Schema>::Key, <S as Schema>::Value>) + Send + Sync,
>;

/// How often one owner's stamps too far ahead are logged, at most.
const AHEAD_LOG_EVERY_MS: u64 = 10_000;

/// The replication state machine of one channel on one node.
pub struct Channel<S: Schema> {
    me: NodeId,
    replica: SchemaReplica<S>,
    clock: Clock,
    peers: BTreeSet<Arc<NodeId>>,
    /// Chunks of a partition resync, until its last chunk.
    staging: HashMap<NodeId, Vec<SchemaOp<S>>>,
    /// Owners asked for their partition, and when (ms).
    requested: HashMap<NodeId, u64>,
    limits: ChunkLimits,
    tombstone_ttl_ms: u64,
    /// When each owner's stamps too far ahead were last logged (ms).
    ahead_logged: HashMap<NodeId, u64>,
    /// How long an unanswered sync request blocks asking again.
    patience_ms: u64,
    observers: Vec<Box<dyn Observer<S>>>,
    on_lost: Option<LostHook<S>>,
    counters: ChannelCounters,
}

impl<S: Schema> std::fmt::Debug for Channel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("channel", &S::CHANNEL)
            .field("me", &self.me)
            .field("peers", &self.peers)
            .field("keys", &self.replica.key_count())
            .finish()
    }
}

impl<S: Schema> Channel<S> {
    /// An empty channel for node `me`, telling `observers` of every change.
    pub fn new(
        me: NodeId,
        config: &ReplicationConfig,
        observers: Vec<Box<dyn Observer<S>>>,
    ) -> Self {
        Channel {
            me,
            replica: Replica::weighed(S::weight),
            clock: Clock::new(config.clock_offset_ms, config.max_clock_offset_ms),
            peers: BTreeSet::new(),
            staging: HashMap::new(),
            requested: HashMap::new(),
            limits: ChunkLimits {
                max_ops: config.chunk.max(1),
                max_bytes: config.chunk_bytes.max(1),
            },
            ahead_logged: HashMap::new(),
            tombstone_ttl_ms: u64::try_from(config.tombstone_ttl.as_millis()).unwrap_or(u64::MAX),
            patience_ms: u64::try_from((config.anti_entropy_interval * 10).as_millis())
                .unwrap_or(u64::MAX),
            observers,
            on_lost: None,
            counters: ChannelCounters::default(),
        }
    }

    /// Installs the loss hook: handed the slots of an owner that departed
    /// and the live slots a peer removed, it writes in the same step, so
    /// no read finds a value gone that the hook keeps (the cache adopts
    /// its copies this way). Its writes go out with the step's messages.
    pub fn set_on_lost(
        &mut self,
        hook: impl Fn(&mut Writer<'_, S>, Lost<'_, S::Key, S::Value>) + Send + Sync + 'static,
    ) {
        self.on_lost = Some(Box::new(hook));
    }

    /// This node's identity (its current incarnation).
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// The local replica.
    pub fn replica(&self) -> &SchemaReplica<S> {
        &self.replica
    }

    /// Whether `node` is a peer (an up member other than this node).
    pub fn is_peer(&self, node: &NodeId) -> bool {
        self.peers.contains(node)
    }

    /// What the channel has done so far.
    pub fn counters(&self) -> ChannelCounters {
        self.counters
    }

    /// This node's clock at wall time `now_ms`: never behind a stamp it
    /// made or saw (see [`Clock::peek`]).
    pub fn now(&self, now_ms: u64) -> Hlc {
        self.clock.peek(now_ms)
    }

    /// Writes to the local replica; the ops become deltas to every peer (one,
    /// unless they exceed a message's limits).
    pub fn write<R>(
        &mut self,
        now_ms: u64,
        f: impl FnOnce(&mut Writer<'_, S>) -> R,
    ) -> (R, Vec<Outgoing<S>>) {
        let mut writer = Writer::new(
            &self.me,
            &mut self.replica,
            &mut self.clock,
            &self.observers,
            now_ms,
        );
        let result = f(&mut writer);
        let ops = writer.into_ops();
        if ops.is_empty() {
            return (result, Vec::new());
        }
        if self.peers.is_empty() {
            return (result, Vec::new());
        }
        let runs = split(ops, self.limits);
        let mut out = Vec::with_capacity(self.peers.len() * runs.len());
        let mut runs = Some(runs);
        let n = self.peers.len();
        for (i, peer) in self.peers.iter().enumerate() {
            // The last peer takes the ops; the others get copies.
            let mine = if i + 1 == n {
                runs.take().unwrap_or_default()
            } else {
                runs.clone().unwrap_or_default()
            };
            for ops in mine {
                out.push(Outgoing {
                    to: peer.clone(),
                    msg: ReplMsg::Delta {
                        owner: self.me.clone(),
                        ops,
                    },
                });
            }
        }
        (result, out)
    }

    /// `peer` is up: it gets deltas from now on, and this node's digest at
    /// once, so it converges without waiting for the next tick.
    pub fn peer_up(&mut self, peer: NodeId) -> Vec<Outgoing<S>> {
        if peer == self.me {
            return Vec::new();
        }
        self.peers.insert(Arc::new(peer.clone()));
        self.digest_for(&peer).into_iter().collect()
    }

    /// This node's digest for `peer`, if it is a peer (to offer it again
    /// when the first offer could not be sent).
    pub fn digest_for(&self, peer: &NodeId) -> Option<Outgoing<S>> {
        self.peers.get(peer).map(|to| Outgoing {
            to: to.clone(),
            msg: ReplMsg::Digest {
                owner: self.me.clone(),
                digest: self.replica.digest(&self.me),
            },
        })
    }

    /// `peer` went down or left at wall time `now_ms`: its partition goes,
    /// for good. Returns what the loss hook wrote, for the peers.
    pub fn peer_gone(&mut self, peer: &NodeId, now_ms: u64) -> Vec<Outgoing<S>> {
        self.peers.remove(peer);
        let purged = self.purge(peer, true, true);
        self.lost(peer, &purged, Loss::Departed, now_ms)
    }

    /// The up members other than this node are exactly `up` (after this
    /// node missed membership events).
    pub fn set_peers(&mut self, up: impl IntoIterator<Item = NodeId>) {
        let me = self.me.clone();
        self.peers = up.into_iter().filter(|p| *p != me).map(Arc::new).collect();
    }

    /// This node rejoined as incarnation `new`. The old incarnation's view
    /// is not to be trusted (it may have declared live nodes down): drop
    /// everything and learn the cluster afresh. Only the loss of this
    /// node's own slots is news; the others' slots come back by
    /// anti-entropy, so their removal is not reported as if their owners
    /// died.
    /// The loss hook gets the old incarnation's slots at wall time
    /// `now_ms`; what it writes reaches the peers by anti-entropy, as this
    /// node has none until they are up again.
    pub fn rejoined(&mut self, old: &NodeId, new: NodeId, now_ms: u64) {
        self.peers.clear();
        let mine = self.purge(old, true, true);
        for owner in self.replica.owners() {
            self.purge(&owner, false, false);
        }
        self.replica.forget_dead();
        self.staging.clear();
        self.requested.clear();
        self.me = new;
        let out = self.lost(old, &mine, Loss::Departed, now_ms);
        debug_assert!(out.is_empty(), "a rejoined node has no peers yet");
    }

    /// Runs the loss hook, if any, on `slots` of `owner`; returns its
    /// writes' messages.
    fn lost(
        &mut self,
        owner: &NodeId,
        slots: &[PurgedSlot<S::Key, S::Value>],
        cause: Loss,
        now_ms: u64,
    ) -> Vec<Outgoing<S>> {
        if slots.is_empty() {
            return Vec::new();
        }
        let Some(hook) = self.on_lost.take() else {
            return Vec::new();
        };
        let lost = Lost {
            owner,
            slots,
            cause,
        };
        let ((), out) = self.write(now_ms, |w| hook(w, lost));
        self.on_lost = Some(hook);
        out
    }

    /// One anti-entropy round at wall time `now_ms`: this node's digest to
    /// every peer; tombstones past their time dropped; sync requests that
    /// were never answered forgotten, so they are asked again.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Outgoing<S>> {
        let digest = self.replica.digest(&self.me);
        let out = self
            .peers
            .iter()
            .map(|peer| Outgoing {
                to: peer.clone(),
                msg: ReplMsg::Digest {
                    owner: self.me.clone(),
                    digest,
                },
            })
            .collect();
        let horizon = Hlc::new(now_ms.saturating_sub(self.tombstone_ttl_ms), 0);
        self.replica.gc_tombstones(horizon);
        let patience = self.patience_ms;
        self.requested
            .retain(|_, at| now_ms.saturating_sub(*at) < patience);
        self.counters.anti_entropy_rounds += 1;
        out
    }

    /// A message from a peer, at wall time `now_ms`.
    pub fn handle(&mut self, msg: ReplMsg<S>, now_ms: u64) -> Vec<Outgoing<S>> {
        match msg {
            ReplMsg::Delta { owner, ops } => {
                self.counters.deltas_received += 1;
                if owner == self.me {
                    return Vec::new();
                }
                let mut removed = Vec::new();
                for op in ops {
                    if let Some(slot) = self.apply_remote(&owner, op, now_ms) {
                        removed.push(slot);
                    }
                }
                self.lost(&owner, &removed, Loss::Removed, now_ms)
            }
            ReplMsg::Digest { owner, digest } => {
                if owner == self.me
                    || self.replica.is_dead(&owner)
                    || self.replica.digest(&owner) == digest
                    || self.requested.contains_key(&owner)
                {
                    return Vec::new();
                }
                self.requested.insert(owner.clone(), now_ms);
                vec![Outgoing {
                    to: Arc::new(owner),
                    msg: ReplMsg::SyncRequest {
                        requester: self.me.clone(),
                    },
                }]
            }
            ReplMsg::SyncRequest { requester } => self.snapshot_to(Arc::new(requester)),
            ReplMsg::Sync {
                owner,
                ops,
                first,
                last,
            } => self.on_sync(owner, ops, first, last, now_ms),
        }
    }

    /// This node's whole partition for `peer`, if it is a peer (to send it
    /// again when a chunk could not be sent).
    pub fn snapshot_for(&self, peer: &NodeId) -> Vec<Outgoing<S>> {
        match self.peers.get(peer) {
            Some(to) => self.snapshot_to(to.clone()),
            None => Vec::new(),
        }
    }

    /// A request this node sent to `owner` was lost: ask again at its next
    /// digest instead of waiting out the request's patience.
    pub fn request_lost(&mut self, owner: &NodeId) {
        self.requested.remove(owner);
    }

    /// The whole partition in one step, so no delta of this node falls
    /// between its chunks on the FIFO link; chunks cut by encoded size, so
    /// large values never make a frame too big.
    fn snapshot_to(&self, to: Arc<NodeId>) -> Vec<Outgoing<S>> {
        let mut chunks = split(self.replica.partition_ops(&self.me), self.limits);
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, ops)| Outgoing {
                to: to.clone(),
                msg: ReplMsg::Sync {
                    owner: self.me.clone(),
                    ops,
                    first: i == 0,
                    last: i + 1 == n,
                },
            })
            .collect()
    }

    /// Applies a peer's op; returns the live slot it removed, when there is
    /// a loss hook to hand it to.
    fn apply_remote(
        &mut self,
        owner: &NodeId,
        op: SchemaOp<S>,
        now_ms: u64,
    ) -> Option<PurgedSlot<S::Key, S::Value>> {
        let stamp = match &op {
            Op::Put { stamp, .. } | Op::Remove { stamp, .. } => *stamp,
        };
        if let Err(ahead) = self.clock.observe(stamp, now_ms) {
            self.stamp_too_far_ahead(owner, ahead.ahead_ms, now_ms);
        }
        let removed = match &op {
            Op::Remove { key, lineage, .. } if self.on_lost.is_some() => self
                .replica
                .slots(key)
                .find(|s| s.owner == owner && s.lineage == *lineage)
                .and_then(|s| {
                    s.value.map(|v| PurgedSlot {
                        key: key.clone(),
                        value: Some(v.clone()),
                        stamp: s.stamp,
                    })
                }),
            _ => None,
        };
        let applied = if self.observers.is_empty() {
            self.replica.apply(owner, op)
        } else {
            let applied = self.replica.apply(owner, op.clone());
            if applied {
                self.notify(Change::Applied { owner, op: &op });
            }
            applied
        };
        removed.filter(|_| applied)
    }

    /// Counts a stamp too far ahead and names its owner in the log, at most
    /// once per owner per [`AHEAD_LOG_EVERY_MS`].
    fn stamp_too_far_ahead(&mut self, owner: &NodeId, ahead_ms: u64, now_ms: u64) {
        self.counters.stamps_too_far_ahead += 1;
        let last = self.ahead_logged.get(owner).copied();
        if last.is_none_or(|at| now_ms.saturating_sub(at) >= AHEAD_LOG_EVERY_MS) {
            self.ahead_logged.insert(owner.clone(), now_ms);
            tracing::warn!(
                channel = S::CHANNEL,
                peer = %owner,
                ahead_ms,
                "a peer's stamp is too far ahead of this node's clock; kept, but the clock does not follow it (is the peer's clock wrong?)"
            );
        }
    }

    /// A chunk of `owner`'s partition; the last one replaces this node's
    /// copy whole. Returns what the loss hook wrote for the live slots the
    /// new copy no longer has.
    fn on_sync(
        &mut self,
        owner: NodeId,
        ops: Vec<SchemaOp<S>>,
        first: bool,
        last: bool,
        now_ms: u64,
    ) -> Vec<Outgoing<S>> {
        if owner == self.me || self.replica.is_dead(&owner) {
            return Vec::new();
        }
        if first {
            self.staging.insert(owner.clone(), Vec::new());
        }
        let Some(staged) = self.staging.get_mut(&owner) else {
            return Vec::new();
        };
        staged.extend(ops);
        if !last {
            return Vec::new();
        }
        let staged = self.staging.remove(&owner).unwrap_or_default();
        self.requested.remove(&owner);
        let purged = self.replica.purge_owner(&owner, false);
        if !purged.is_empty() {
            self.notify(Change::Purged {
                owner: &owner,
                slots: &purged,
                departed: false,
            });
        }
        for op in staged {
            self.apply_remote(&owner, op, now_ms);
        }
        self.counters.syncs_received += 1;
        if self.on_lost.is_none() {
            return Vec::new();
        }
        let gone: Vec<_> = purged
            .into_iter()
            .filter(|p| {
                p.value.is_some()
                    && !self
                        .replica
                        .slots(&p.key)
                        .any(|s| s.owner == &owner && s.value == p.value.as_ref())
            })
            .collect();
        self.lost(&owner, &gone, Loss::Removed, now_ms)
    }

    fn purge(
        &mut self,
        owner: &NodeId,
        forever: bool,
        notify: bool,
    ) -> Vec<PurgedSlot<S::Key, S::Value>> {
        let slots = self.replica.purge_owner(owner, forever);
        self.ahead_logged.remove(owner);
        self.staging.remove(owner);
        self.requested.remove(owner);
        if notify && !slots.is_empty() {
            self.notify(Change::Purged {
                owner,
                slots: &slots,
                departed: true,
            });
        }
        slots
    }

    fn notify(&self, change: Change<'_, S::Key, S::Value>) {
        for observer in &self.observers {
            observer.changed(&self.replica, &self.me, change);
        }
    }
}
