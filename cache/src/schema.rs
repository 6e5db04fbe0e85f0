//! What the cache replicates, and which write a key shows.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use drove_replication::{Hlc, PurgedSlot, Schema, SchemaReplica, SlotRef};

/// The cache's replication channel.
#[derive(Debug)]
pub struct CacheSchema;

impl Schema for CacheSchema {
    const CHANNEL: &'static str = "cache";
    const TAG: &'static str = "drove.cache.v1";
    type Key = Arc<str>;
    type Value = CacheValue;

    /// The key, the value's JSON and its writer's name: what a copy holds
    /// that grows with use.
    fn weight(key: &Arc<str>, value: &CacheValue) -> usize {
        weight(key, value)
    }
}

/// What one copy of `key` weighs: the key, the value's JSON and its
/// writer's name.
pub(crate) fn weight(key: &str, value: &CacheValue) -> usize {
    let data = match &value.data {
        CacheData::Live { json, .. } => json.len(),
        CacheData::Deleted => 0,
    };
    key.len() + value.writer.len() + data
}

/// One node's copy of a key: a write, with the stamp and writer that
/// order it. A copy outlives its writer: when a node departs, the
/// survivors adopt its latest writes into their own slots (see
/// [`adoptable`]), keeping the original stamp and writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheValue {
    /// The hybrid-logical-clock stamp of the write.
    pub written: Hlc,
    /// The node that made the write (`name#incarnation`).
    pub writer: Arc<str>,
    /// What was written.
    pub data: CacheData,
}

/// What a write wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheData {
    /// A value, JSON text, valid until `expires_at_ms` (cluster time, ms
    /// since the Unix epoch) if set.
    Live {
        /// The value as JSON text.
        json: Arc<str>,
        /// The deadline, part of the replicated value so every node expires
        /// the entry at the same cluster time.
        expires_at_ms: Option<u64>,
    },
    /// A deletion, which hides older writes.
    Deleted,
}

impl CacheValue {
    /// Whether the value is live at cluster time `now_ms`.
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        match &self.data {
            CacheData::Live { expires_at_ms, .. } => expires_at_ms.is_none_or(|t| now_ms < t),
            CacheData::Deleted => false,
        }
    }

    /// The order of writes: stamp, then writer.
    fn order(&self) -> (Hlc, &str) {
        (self.written, &self.writer)
    }
}

/// The copy a key shows: the last write (by stamp, then writer); among
/// identical copies held by several nodes, the one of the greatest owner.
pub fn latest<'a>(
    replica: &'a SchemaReplica<CacheSchema>,
    key: &str,
) -> Option<SlotRef<'a, CacheValue>> {
    replica
        .slots(key)
        .filter(|s| s.value.is_some())
        .max_by(|a, b| {
            let (x, y) = (
                a.value.map(CacheValue::order),
                b.value.map(CacheValue::order),
            );
            x.cmp(&y).then_with(|| a.owner.cmp(b.owner))
        })
}

/// The live value of `key` at cluster time `now_ms`: (copy, JSON, deadline).
pub fn visible<'a>(
    replica: &'a SchemaReplica<CacheSchema>,
    key: &str,
    now_ms: u64,
) -> Option<(SlotRef<'a, CacheValue>, &'a Arc<str>, Option<u64>)> {
    let slot = latest(replica, key)?;
    let value = slot.value?;
    match &value.data {
        CacheData::Live {
            json,
            expires_at_ms,
        } if value.is_live_at(now_ms) => Some((slot, json, *expires_at_ms)),
        _ => None,
    }
}

/// Of the copies a departed node held, those this node must adopt: each
/// one newer than every copy still held for its key. Every survivor
/// adopts the same ones; the duplicates then tidy away.
pub fn adoptable(
    replica: &SchemaReplica<CacheSchema>,
    departed: &[PurgedSlot<Arc<str>, CacheValue>],
) -> Vec<(Arc<str>, CacheValue)> {
    departed
        .iter()
        .filter_map(|PurgedSlot { key, value, .. }| {
            let value = value.as_ref()?;
            let newer = latest(replica, key)
                .and_then(|l| l.value)
                .is_none_or(|l| value.order() > l.order());
            newer.then(|| (key.clone(), value.clone()))
        })
        .collect()
}

/// Of the live slots `owner` removed, the copies this node must adopt: the
/// ones `owner` had adopted itself (their writer is another node), still
/// live at `now_ms`, and newer than every copy held here now. An owner
/// drops an adopted copy only when another node's copy shows it (see
/// [`tidy`]), or a newer write, or its deadline; when that copy is gone
/// here already (its holder departed, or never reached this node), this
/// node keeps the value instead of showing nothing.
pub fn orphaned(
    replica: &SchemaReplica<CacheSchema>,
    owner: &drove_runtime::NodeId,
    removed: &[PurgedSlot<Arc<str>, CacheValue>],
    now_ms: u64,
) -> Vec<(Arc<str>, CacheValue)> {
    let owner = owner.to_string();
    let copies: Vec<_> = removed
        .iter()
        .filter(|p| {
            p.value.as_ref().is_some_and(|v| {
                matches!(v.data, CacheData::Live { .. })
                    && v.is_live_at(now_ms)
                    && *v.writer != *owner
            })
        })
        .cloned()
        .collect();
    adoptable(replica, &copies)
}

/// Whether this node's slot of `key` holds another node's write (a copy
/// it adopted) rather than its own.
pub fn holds_a_copy(
    replica: &SchemaReplica<CacheSchema>,
    me: &drove_runtime::NodeId,
    key: &str,
) -> bool {
    let name = me.to_string();
    replica
        .slots(key)
        .any(|s| s.owner == me && s.value.is_some_and(|v| *v.writer != *name))
}

/// How long a slot shadowed by a newer write stays after that write (by
/// its stamp, in cluster ms). Its removal and the newer write travel on
/// different links; a peer that gets the removal first goes on showing
/// this slot's value, not nothing, while the newer write is on its way.
pub const SHADOW_GRACE_MS: u64 = 1_000;

/// What this node should do with its own slot of a key, to keep one copy
/// per key in the steady state without ever uncovering an older write.
#[derive(Debug, PartialEq, Eq)]
pub enum Tidy {
    /// Nothing.
    Keep,
    /// Nothing yet: look again at this cluster time (ms), once the newer
    /// write that shadows the slot is [`SHADOW_GRACE_MS`] old.
    Later(u64),
    /// Remove this node's slot.
    Remove(Hlc),
    /// Replace it by a deletion (it expired, but older writes held by
    /// other nodes are still around, which its removal would uncover).
    MarkDeleted(Hlc),
}

/// Decides [`Tidy`] for this node's slot of `key`.
pub fn tidy(
    replica: &SchemaReplica<CacheSchema>,
    me: &drove_runtime::NodeId,
    key: &str,
    now_ms: u64,
) -> Tidy {
    let Some(mine) = replica
        .slots(key)
        .find(|s| s.owner == me && s.value.is_some())
    else {
        return Tidy::Keep;
    };
    let others = replica
        .slots(key)
        .filter(|s| s.owner != me && s.value.is_some())
        .count();
    let shown = latest(replica, key);
    let is_latest = shown.as_ref().is_some_and(|l| l.owner == me);
    let newer = shown
        .and_then(|l| l.value)
        .filter(|l| mine.value.is_none_or(|m| m.order() != l.order()));
    match mine.value {
        // Shadowed by a newer write: it can never show again, but peers
        // may not have that write yet.
        _ if !is_latest
            && newer.is_some_and(|l| l.written.ms().saturating_add(SHADOW_GRACE_MS) > now_ms) =>
        {
            Tidy::Later(newer.map_or(now_ms, |l| l.written.ms().saturating_add(SHADOW_GRACE_MS)))
        }
        // Shadowed long enough, or a copy of the same write that another
        // node keeps (a peer that lost that copy adopts this one when the
        // removal arrives, see `orphaned`).
        _ if !is_latest => Tidy::Remove(mine.lineage),
        Some(v) if matches!(v.data, CacheData::Deleted) && others == 0 => {
            Tidy::Remove(mine.lineage)
        }
        Some(v) if matches!(v.data, CacheData::Live { .. }) && !v.is_live_at(now_ms) => {
            if others == 0 {
                Tidy::Remove(mine.lineage)
            } else {
                Tidy::MarkDeleted(mine.lineage)
            }
        }
        _ => Tidy::Keep,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use drove_replication::{Op, Replica};
    use drove_runtime::{Incarnation, NodeId};

    use super::*;

    fn node(i: u8) -> NodeId {
        NodeId::new(format!("n{i}"), Incarnation(u64::from(i) + 1))
    }

    /// (writer, key, stamp, deleted)
    fn write() -> impl Strategy<Value = (u8, u8, u16, bool)> {
        (0u8..3, 0u8..4, 1u16..500, proptest::bool::weighted(0.2))
    }

    /// Each writer keeps one slot per key (lineage 1) and writes versions
    /// of it; stamps are unique per writer by construction.
    fn op((w, key, stamp, deleted): (u8, u8, u16, bool)) -> (NodeId, Op<Arc<str>, CacheValue>) {
        let data = if deleted {
            CacheData::Deleted
        } else {
            CacheData::Live {
                json: Arc::from(format!("\"{w}-{stamp}\"").as_str()),
                expires_at_ms: None,
            }
        };
        let written = Hlc(u64::from(stamp) * 4 + u64::from(w));
        let op = Op::Put {
            key: Arc::from(format!("k{key}").as_str()),
            lineage: Hlc(1),
            stamp: written,
            value: CacheValue {
                written,
                writer: Arc::from(node(w).to_string().as_str()),
                data,
            },
        };
        (node(w), op)
    }

    /// A writer that withdraws its slot (what `Cache::retract` writes)
    /// lets the other writers' latest value show again, where a deletion
    /// would hide it.
    #[test]
    fn a_withdrawn_slot_lets_an_older_write_show() {
        let mut r = Replica::new();
        for w in [(0, 0, 5, false), (1, 0, 9, false)] {
            let (owner, op) = op(w);
            r.apply(&owner, op);
        }
        assert_eq!(shown(&r, 0).as_deref(), Some("\"1-9\""));
        r.apply(
            &node(1),
            Op::Remove {
                key: Arc::from("k0"),
                lineage: Hlc(1),
                stamp: Hlc(10 * 4 + 1),
            },
        );
        assert_eq!(shown(&r, 0).as_deref(), Some("\"0-5\""));
        let (owner, hide) = op((1, 0, 11, true));
        r.apply(&owner, hide);
        assert_eq!(shown(&r, 0), None, "a deletion hides it");
    }

    /// A slot shadowed by a newer write stays until that write is
    /// [`SHADOW_GRACE_MS`] old; an identical copy goes at once.
    #[test]
    fn a_shadowed_slot_waits_out_the_grace() {
        let mut r = Replica::new();
        let (older, newer) = (op((0, 0, 5, false)), op((1, 0, 9, false)));
        r.apply(&older.0, older.1);
        r.apply(&newer.0, newer.1);
        assert_eq!(tidy(&r, &node(0), "k0", 0), Tidy::Later(SHADOW_GRACE_MS));
        assert_eq!(
            tidy(&r, &node(0), "k0", SHADOW_GRACE_MS),
            Tidy::Remove(Hlc(1))
        );
        assert_eq!(tidy(&r, &node(1), "k0", 0), Tidy::Keep);
        // Node 2 holds a copy of node 1's write: as good as node 1's.
        let Op::Put { value, .. } = op((1, 0, 9, false)).1 else {
            unreachable!()
        };
        r.apply(
            &node(2),
            Op::Put {
                key: Arc::from("k0"),
                lineage: Hlc(1),
                stamp: Hlc(77),
                value,
            },
        );
        assert_eq!(tidy(&r, &node(1), "k0", 0), Tidy::Remove(Hlc(1)));
    }

    /// One writer never makes two writes with the same stamp.
    fn unique_stamps(mut writes: Vec<(u8, u8, u16, bool)>) -> Vec<(u8, u8, u16, bool)> {
        let mut seen = std::collections::HashSet::new();
        writes.retain(|w| seen.insert((w.0, w.2)));
        writes
    }

    fn shown(r: &Replica<Arc<str>, CacheValue>, key: u8) -> Option<String> {
        visible(r, &format!("k{key}"), 0).map(|(_, json, _)| json.to_string())
    }

    proptest! {
        /// Every delivery order shows, for every key, the value of the write
        /// with the greatest stamp (or nothing if that write is a delete).
        #[test]
        fn any_delivery_order_shows_the_last_write(
            writes in proptest::collection::vec(write(), 1..40),
            seed in any::<u64>(),
        ) {
            let writes = unique_stamps(writes);
            let ops: Vec<_> = writes.iter().copied().map(op).collect();
            let mut in_order = Replica::new();
            for (o, op) in &ops {
                in_order.apply(o, op.clone());
            }
            let mut shuffled = ops.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut other = Replica::new();
            for (o, op) in shuffled.iter().chain(shuffled.iter()) {
                other.apply(o, op.clone());
            }
            for key in 0..4u8 {
                let expected = writes
                    .iter()
                    .filter(|w| w.1 == key)
                    .max_by_key(|w| u64::from(w.2) * 4 + u64::from(w.0))
                    .and_then(|w| (!w.3).then(|| format!("\"{}-{}\"", w.0, w.2)));
                prop_assert_eq!(shown(&in_order, key), expected.clone());
                prop_assert_eq!(shown(&other, key), expected);
            }
        }

        /// Tidying (each owner removing its shadowed or expired slots, or
        /// marking them deleted) never changes what a key shows.
        #[test]
        fn tidying_never_changes_what_shows(
            writes in proptest::collection::vec(write(), 1..40),
            late in any::<bool>(),
        ) {
            // Within the grace, or past it (the writes' stamps are at ms 0).
            let now = if late { SHADOW_GRACE_MS } else { 0 };
            let writes = unique_stamps(writes);
            let mut r = Replica::new();
            for (o, op) in writes.iter().copied().map(op) {
                r.apply(&o, op);
            }
            let before: Vec<_> = (0..4u8).map(|k| shown(&r, k)).collect();
            for w in 0..3u8 {
                let me = node(w);
                for key in 0..4u8 {
                    let k = format!("k{key}");
                    match tidy(&r, &me, &k, now) {
                        Tidy::Keep | Tidy::Later(_) => {}
                        Tidy::Remove(lineage) => {
                            r.apply(&me, Op::Remove { key: Arc::from(k.as_str()), lineage, stamp: Hlc(1_000_000) });
                        }
                        Tidy::MarkDeleted(lineage) => {
                            let value = CacheValue { written: Hlc(1_000_000), writer: Arc::from("x"), data: CacheData::Deleted };
                            r.apply(&me, Op::Put { key: Arc::from(k.as_str()), lineage, stamp: Hlc(1_000_000), value });
                        }
                    }
                }
            }
            let after: Vec<_> = (0..4u8).map(|k| shown(&r, k)).collect();
            prop_assert_eq!(before, after);
        }

        /// When a writer departs, the survivors adopting what [`adoptable`]
        /// names keeps every key showing what it showed.
        #[test]
        fn adopting_a_departed_writers_copies_keeps_what_shows(
            writes in proptest::collection::vec(write(), 1..40),
            gone in 0u8..3,
        ) {
            let writes = unique_stamps(writes);
            let mut r = Replica::new();
            for (o, op) in writes.iter().copied().map(op) {
                r.apply(&o, op);
            }
            let before: Vec<_> = (0..4u8).map(|k| shown(&r, k)).collect();
            let purged = r.purge_owner(&node(gone), true);
            let adopted = adoptable(&r, &purged);
            // Every survivor adopts the same copies into a slot of its own.
            for w in (0..3u8).filter(|w| *w != gone) {
                for (i, (key, value)) in adopted.iter().enumerate() {
                    let lineage = Hlc(10_000 + i as u64);
                    r.apply(&node(w), Op::Put { key: key.clone(), lineage, stamp: lineage, value: value.clone() });
                }
            }
            let after: Vec<_> = (0..4u8).map(|k| shown(&r, k)).collect();
            prop_assert_eq!(before, after);
        }
    }
}
