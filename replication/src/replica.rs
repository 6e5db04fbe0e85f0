//! The replicated map: a pure data structure.
//!
//! Every entry (a *slot*) belongs to one owner node (name + incarnation) and
//! one *lineage* (the stamp of the write that created it), and only its
//! owner writes it. So the map is a union of single-writer partitions, one
//! per owner, and merging two replicas is a per-slot maximum by stamp: a
//! join-semilattice (commutative, associative, idempotent). Deletions are
//! tombstones (slots without a value) until garbage-collected.
//!
//! Repair is by owner: an owner's digest (live count and an order-free hash)
//! tells a replica whether its copy of that owner's partition is exact; if
//! not, the owner streams its partition and the replica replaces its copy.
//! Slots of an owner that is down or left are purged by every replica on its
//! own, and that owner (incarnation) is never accepted again.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use drove_runtime::NodeId;

use crate::hlc::Hlc;

/// One write, as shipped between replicas. `lineage` identifies the slot
/// among the owner's slots for the same key; `stamp` orders its versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op<K, V> {
    /// The slot now holds `value`.
    Put {
        /// The user key.
        key: K,
        /// The slot's creation stamp.
        lineage: Hlc,
        /// This version's stamp.
        stamp: Hlc,
        /// The value.
        value: V,
    },
    /// The slot is deleted (a tombstone at `stamp`).
    Remove {
        /// The user key.
        key: K,
        /// The slot's creation stamp.
        lineage: Hlc,
        /// The deletion's stamp.
        stamp: Hlc,
    },
}

impl<K, V> Op<K, V> {
    /// The key this op writes.
    pub fn key(&self) -> &K {
        match self {
            Op::Put { key, .. } | Op::Remove { key, .. } => key,
        }
    }
}

/// A digest of one owner's live slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// How many live slots.
    pub live: u64,
    /// XOR of a hash of every live slot's (key, lineage, stamp).
    pub hash: u64,
}

/// One slot as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot<V> {
    owner: u32,
    lineage: Hlc,
    stamp: Hlc,
    value: Option<V>,
}

/// A slot of an owner that was purged (see [`Replica::purge_owner`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgedSlot<K, V> {
    /// Its key.
    pub key: K,
    /// Its value; `None` for a tombstone.
    pub value: Option<V>,
    /// The stamp of its last version: what the owner last wrote there.
    pub stamp: Hlc,
}

/// A slot as read: its owner resolved.
#[derive(Debug, PartialEq, Eq)]
pub struct SlotRef<'a, V> {
    /// The owner node.
    pub owner: &'a NodeId,
    /// The slot's creation stamp.
    pub lineage: Hlc,
    /// The stamp of its current version.
    pub stamp: Hlc,
    /// The value; `None` for a tombstone.
    pub value: Option<&'a V>,
}

/// FNV-1a as a `Hasher`: stable across builds and machines, unlike
/// `DefaultHasher`, so digests agree between nodes.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.0 == 0 {
            self.0 = 0xcbf2_9ce4_8422_2325;
        }
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn slot_hash<K: Hash>(key: &K, lineage: Hlc, stamp: Hlc) -> u64 {
    let mut h = Fnv::default();
    key.hash(&mut h);
    lineage.0.hash(&mut h);
    stamp.0.hash(&mut h);
    // Finalize (splitmix64) so XOR of many hashes stays well spread.
    let mut z = h.finish().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How many bytes one live slot holds, as a channel counts them.
pub type Weigh<K, V> = fn(&K, &V) -> usize;

/// A replica of the map.
#[derive(Clone, Debug)]
pub struct Replica<K, V> {
    owners: Vec<NodeId>,
    owner_index: HashMap<NodeId, u32>,
    entries: HashMap<K, SmallVec<[Slot<V>; 1]>>,
    digests: HashMap<u32, Digest>,
    dead: HashSet<NodeId>,
    tombstones: usize,
    /// Tombstones by stamp, for garbage collection without a scan: (stamp,
    /// sequence) to (key, owner, lineage). An entry whose slot changed
    /// since is skipped when its time comes.
    gc_queue: BTreeMap<(Hlc, u64), (K, u32, Hlc)>,
    gc_seq: u64,
    /// Keys with at least one live slot, kept as slots change (no scan).
    live_keys: usize,
    weigh: Weigh<K, V>,
    /// The weight of every live slot, kept as slots change (no scan).
    bytes: usize,
}

impl<K, V> Default for Replica<K, V> {
    fn default() -> Self {
        Self {
            owners: Vec::new(),
            owner_index: HashMap::new(),
            entries: HashMap::new(),
            digests: HashMap::new(),
            dead: HashSet::new(),
            tombstones: 0,
            gc_queue: BTreeMap::new(),
            gc_seq: 0,
            live_keys: 0,
            weigh: |_, _| 0,
            bytes: 0,
        }
    }
}

impl<K, V> Replica<K, V>
where
    K: Clone + Eq + Hash,
    V: Clone + PartialEq,
{
    /// An empty replica.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty replica that keeps the total of `weigh` over its live
    /// slots (see [`bytes`](Self::bytes)).
    pub fn weighed(weigh: Weigh<K, V>) -> Self {
        Self {
            weigh,
            ..Self::default()
        }
    }

    /// The total weight of the live slots (0 unless [`weighed`](Self::weighed)).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn owner_id(&mut self, owner: &NodeId) -> u32 {
        if let Some(&i) = self.owner_index.get(owner) {
            return i;
        }
        let i = self.owners.len() as u32;
        self.owners.push(owner.clone());
        self.owner_index.insert(owner.clone(), i);
        i
    }

    /// Every owner with slots in this replica.
    pub fn owners(&self) -> Vec<NodeId> {
        self.digests
            .keys()
            .map(|&o| self.owners[o as usize].clone())
            .collect()
    }

    /// Forgets which owners were refused (this node rejoined as a new
    /// incarnation, and learns the cluster afresh).
    pub fn forget_dead(&mut self) {
        self.dead.clear();
    }

    /// Whether slots of `owner` are refused (it is down or left).
    pub fn is_dead(&self, owner: &NodeId) -> bool {
        self.dead.contains(owner)
    }

    /// Applies one op written by `owner`. Returns whether anything changed.
    /// Ops from a dead owner, or older than what is held, change nothing.
    pub fn apply(&mut self, owner: &NodeId, op: Op<K, V>) -> bool {
        if self.dead.contains(owner) {
            return false;
        }
        let o = self.owner_id(owner);
        let (key, lineage, stamp, value) = match op {
            Op::Put {
                key,
                lineage,
                stamp,
                value,
            } => (key, lineage, stamp, Some(value)),
            Op::Remove {
                key,
                lineage,
                stamp,
            } => (key, lineage, stamp, None),
        };
        let digest = self.digests.entry(o).or_default();
        let slots = self.entries.entry(key.clone()).or_default();
        let had_live = slots.iter().any(|s| s.value.is_some());
        let tombstone = value.is_none();
        let changed = match slots
            .iter_mut()
            .find(|s| s.owner == o && s.lineage == lineage)
        {
            Some(slot) if slot.stamp >= stamp => false,
            Some(slot) => {
                if let Some(old) = &slot.value {
                    self.bytes = self.bytes.saturating_sub((self.weigh)(&key, old));
                }
                if let Some(new) = &value {
                    self.bytes = self.bytes.saturating_add((self.weigh)(&key, new));
                }
                if slot.value.is_some() {
                    digest.live -= 1;
                    digest.hash ^= slot_hash(&key, lineage, slot.stamp);
                } else {
                    self.tombstones -= 1;
                }
                if value.is_some() {
                    digest.live += 1;
                    digest.hash ^= slot_hash(&key, lineage, stamp);
                } else {
                    self.tombstones += 1;
                }
                slot.stamp = stamp;
                slot.value = value;
                true
            }
            None => {
                if let Some(new) = &value {
                    self.bytes = self.bytes.saturating_add((self.weigh)(&key, new));
                }
                if value.is_some() {
                    digest.live += 1;
                    digest.hash ^= slot_hash(&key, lineage, stamp);
                } else {
                    self.tombstones += 1;
                }
                slots.push(Slot {
                    owner: o,
                    lineage,
                    stamp,
                    value,
                });
                true
            }
        };
        if changed {
            let has_live = slots.iter().any(|s| s.value.is_some());
            self.live_keys = self.live_keys + usize::from(has_live) - usize::from(had_live);
            if tombstone {
                self.gc_seq += 1;
                self.gc_queue
                    .insert((stamp, self.gc_seq), (key, o, lineage));
            }
        }
        changed
    }

    /// The slots held for `key`, live and tombstones, in no given order.
    pub fn slots<Q>(&self, key: &Q) -> impl Iterator<Item = SlotRef<'_, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries
            .get(key)
            .into_iter()
            .flatten()
            .map(|s| SlotRef {
                owner: &self.owners[s.owner as usize],
                lineage: s.lineage,
                stamp: s.stamp,
                value: s.value.as_ref(),
            })
    }

    /// Every key with at least one slot.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    /// How many keys have at least one slot (live or tombstone).
    pub fn key_count(&self) -> usize {
        self.entries.len()
    }

    /// How many tombstones are held.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones
    }

    /// How many keys have at least one live slot (counted as slots
    /// change, not by a scan).
    pub fn live_key_count(&self) -> usize {
        self.live_keys
    }

    /// How many live slots are held, over every owner (from the digests,
    /// not by a scan).
    pub fn live_slot_count(&self) -> usize {
        self.digests.values().map(|d| d.live as usize).sum()
    }

    /// The digest of `owner`'s live slots in this replica.
    pub fn digest(&self, owner: &NodeId) -> Digest {
        self.owner_index
            .get(owner)
            .and_then(|o| self.digests.get(o))
            .copied()
            .unwrap_or_default()
    }

    /// `owner`'s live slots as Put ops.
    pub fn partition_ops(&self, owner: &NodeId) -> Vec<Op<K, V>> {
        let Some(&o) = self.owner_index.get(owner) else {
            return Vec::new();
        };
        let mut ops = Vec::new();
        for (key, slots) in &self.entries {
            for s in slots.iter().filter(|s| s.owner == o) {
                if let Some(value) = &s.value {
                    ops.push(Op::Put {
                        key: key.clone(),
                        lineage: s.lineage,
                        stamp: s.stamp,
                        value: value.clone(),
                    });
                }
            }
        }
        // In an order that is the same in every process (the map's is not),
        // so a seeded simulation replays exactly.
        ops.sort_by_cached_key(|op| match op {
            Op::Put {
                key,
                lineage,
                stamp,
                ..
            } => slot_hash(key, *lineage, *stamp),
            Op::Remove {
                key,
                lineage,
                stamp,
            } => slot_hash(key, *lineage, *stamp),
        });
        ops
    }

    /// Drops every slot of `owner` (live and tombstones) and returns them.
    /// With `forever`, the owner is refused from now on.
    pub fn purge_owner(&mut self, owner: &NodeId, forever: bool) -> Vec<PurgedSlot<K, V>> {
        if forever {
            self.dead.insert(owner.clone());
        }
        let Some(&o) = self.owner_index.get(owner) else {
            return Vec::new();
        };
        let mut purged = Vec::new();
        let mut tombstones = 0;
        let mut bytes = 0usize;
        let mut emptied = 0usize;
        let weigh = self.weigh;
        self.entries.retain(|key, slots| {
            let had_live = slots.iter().any(|s| s.value.is_some());
            slots.retain(|s| {
                if s.owner != o {
                    return true;
                }
                match &s.value {
                    Some(v) => bytes = bytes.saturating_add(weigh(key, v)),
                    None => tombstones += 1,
                }
                purged.push(PurgedSlot {
                    key: key.clone(),
                    value: s.value.clone(),
                    stamp: s.stamp,
                });
                false
            });
            emptied += usize::from(had_live && !slots.iter().any(|s| s.value.is_some()));
            !slots.is_empty()
        });
        self.tombstones -= tombstones;
        self.live_keys -= emptied;
        self.bytes = self.bytes.saturating_sub(bytes);
        self.digests.remove(&o);
        purged.sort_by_cached_key(|p| slot_hash(&p.key, p.stamp, p.stamp));
        purged
    }

    /// Replaces `owner`'s partition with `ops` (the owner's own copy, as
    /// streamed by anti-entropy). Returns the keys whose slots changed.
    pub fn replace_partition(&mut self, owner: &NodeId, ops: Vec<Op<K, V>>) -> Vec<K> {
        if self.dead.contains(owner) {
            return Vec::new();
        }
        let mut touched: HashSet<K> = self
            .purge_owner(owner, false)
            .into_iter()
            .map(|p| p.key)
            .collect();
        for op in ops {
            touched.insert(op.key().clone());
            self.apply(owner, op);
        }
        let mut touched: Vec<K> = touched.into_iter().collect();
        touched.sort_by_cached_key(|k| slot_hash(k, Hlc(0), Hlc(0)));
        touched
    }

    /// Drops tombstones older than `before`, keeping the map small. A
    /// replica that still holds the deleted version is repaired by its
    /// owner's digest. Takes time in the tombstones dropped, not in the
    /// size of the map.
    pub fn gc_tombstones(&mut self, before: Hlc) {
        let mut dropped = 0;
        while let Some(due) = self.gc_queue.first_entry() {
            if due.key().0 >= before {
                break;
            }
            let (key, o, lineage) = due.remove();
            let Some(slots) = self.entries.get_mut(&key) else {
                continue;
            };
            let held = slots.len();
            slots.retain(|s| {
                !(s.owner == o && s.lineage == lineage && s.value.is_none() && s.stamp < before)
            });
            dropped += held - slots.len();
            if slots.is_empty() {
                self.entries.remove(&key);
            }
        }
        self.tombstones -= dropped;
    }

    /// State-based merge: the per-slot maximum of both replicas.
    pub fn merge(&mut self, other: &Replica<K, V>) {
        for dead in &other.dead {
            self.purge_owner(dead, true);
        }
        for (key, slots) in &other.entries {
            for s in slots {
                let owner = other.owners[s.owner as usize].clone();
                let op = match &s.value {
                    Some(v) => Op::Put {
                        key: key.clone(),
                        lineage: s.lineage,
                        stamp: s.stamp,
                        value: v.clone(),
                    },
                    None => Op::Remove {
                        key: key.clone(),
                        lineage: s.lineage,
                        stamp: s.stamp,
                    },
                };
                self.apply(&owner, op);
            }
        }
    }

    /// Every slot as (key, owner, lineage, stamp, value), sorted, for
    /// comparing replicas in tests.
    pub fn canonical(&self) -> Vec<(K, NodeId, Hlc, Hlc, Option<V>)>
    where
        K: Ord,
        V: Ord,
    {
        let mut all: Vec<_> = self
            .entries
            .iter()
            .flat_map(|(k, slots)| {
                slots.iter().map(move |s| {
                    (
                        k.clone(),
                        self.owners[s.owner as usize].clone(),
                        s.lineage,
                        s.stamp,
                        s.value.clone(),
                    )
                })
            })
            .collect();
        all.sort();
        all
    }
}
