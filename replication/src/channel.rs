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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use drove_runtime::NodeId;

use crate::config::ReplicationConfig;
use crate::hlc::{Clock, Hlc};
use crate::observer::{Change, Observer};
use crate::replica::{Op, Replica};
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
}

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
    chunk: usize,
    tombstone_ttl_ms: u64,
    /// How long an unanswered sync request blocks asking again.
    patience_ms: u64,
    observers: Vec<Box<dyn Observer<S>>>,
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
            replica: Replica::new(),
            clock: Clock::with_offset(config.clock_offset_ms),
            peers: BTreeSet::new(),
            staging: HashMap::new(),
            requested: HashMap::new(),
            chunk: config.chunk.max(1),
            tombstone_ttl_ms: u64::try_from(config.tombstone_ttl.as_millis()).unwrap_or(u64::MAX),
            patience_ms: u64::try_from((config.anti_entropy_interval * 10).as_millis())
                .unwrap_or(u64::MAX),
            observers,
            counters: ChannelCounters::default(),
        }
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

    /// Writes to the local replica; the ops become one delta to every peer.
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
        let mut out = Vec::with_capacity(self.peers.len());
        let mut ops = Some(ops);
        let n = self.peers.len();
        for (i, peer) in self.peers.iter().enumerate() {
            let batch = if i + 1 == n {
                ops.take().unwrap_or_default()
            } else {
                ops.clone().unwrap_or_default()
            };
            out.push(Outgoing {
                to: peer.clone(),
                msg: ReplMsg::Delta {
                    owner: self.me.clone(),
                    ops: batch,
                },
            });
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

    /// `peer` went down or left: its partition goes, for good.
    pub fn peer_gone(&mut self, peer: &NodeId) {
        self.peers.remove(peer);
        self.purge(peer, true, true);
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
    pub fn rejoined(&mut self, old: &NodeId, new: NodeId) {
        self.peers.clear();
        self.purge(old, true, true);
        for owner in self.replica.owners() {
            self.purge(&owner, false, false);
        }
        self.replica.forget_dead();
        self.staging.clear();
        self.requested.clear();
        self.me = new;
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
                if owner != self.me {
                    for op in ops {
                        self.apply_remote(&owner, op);
                    }
                }
                Vec::new()
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
            ReplMsg::SyncRequest { requester } => {
                // The whole snapshot in one step, so no delta of this node
                // falls between its chunks on the FIFO link.
                let mut chunks = self.replica.partition_chunks(&self.me, self.chunk);
                if chunks.is_empty() {
                    chunks.push(Vec::new());
                }
                let n = chunks.len();
                let requester = Arc::new(requester);
                chunks
                    .into_iter()
                    .enumerate()
                    .map(|(i, ops)| Outgoing {
                        to: requester.clone(),
                        msg: ReplMsg::Sync {
                            owner: self.me.clone(),
                            ops,
                            first: i == 0,
                            last: i + 1 == n,
                        },
                    })
                    .collect()
            }
            ReplMsg::Sync {
                owner,
                ops,
                first,
                last,
            } => {
                self.on_sync(owner, ops, first, last);
                Vec::new()
            }
        }
    }

    fn apply_remote(&mut self, owner: &NodeId, op: SchemaOp<S>) {
        let stamp = match &op {
            Op::Put { stamp, .. } | Op::Remove { stamp, .. } => *stamp,
        };
        self.clock.observe(stamp);
        if self.observers.is_empty() {
            self.replica.apply(owner, op);
        } else if self.replica.apply(owner, op.clone()) {
            self.notify(Change::Applied { owner, op: &op });
        }
    }

    fn on_sync(&mut self, owner: NodeId, ops: Vec<SchemaOp<S>>, first: bool, last: bool) {
        if owner == self.me || self.replica.is_dead(&owner) {
            return;
        }
        if first {
            self.staging.insert(owner.clone(), Vec::new());
        }
        let Some(staged) = self.staging.get_mut(&owner) else {
            return;
        };
        staged.extend(ops);
        if !last {
            return;
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
            self.apply_remote(&owner, op);
        }
        self.counters.syncs_received += 1;
    }

    fn purge(&mut self, owner: &NodeId, forever: bool, notify: bool) {
        let slots = self.replica.purge_owner(owner, forever);
        self.staging.remove(owner);
        self.requested.remove(owner);
        if notify && !slots.is_empty() {
            self.notify(Change::Purged {
                owner,
                slots: &slots,
                departed: true,
            });
        }
    }

    fn notify(&self, change: Change<'_, S::Key, S::Value>) {
        for observer in &self.observers {
            observer.changed(&self.replica, &self.me, change);
        }
    }
}
