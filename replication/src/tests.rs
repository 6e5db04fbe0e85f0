//! Properties of the replica: merge is a join (commutative, associative,
//! idempotent), and any delivery of deltas (reordered, duplicated, dropped)
//! converges after one anti-entropy round.

use proptest::prelude::*;

use drove_runtime::{Incarnation, NodeId};

use crate::hlc::Hlc;
use crate::replica::{Op, Replica};

type R = Replica<u8, u64>;

fn owner(i: u8) -> NodeId {
    NodeId::new(format!("n{i}"), Incarnation(u64::from(i) * 7 + 1))
}

/// A raw op: (owner, key, lineage, stamp, is_put). The value is derived
/// from the slot and stamp, as a single writer would make it.
fn raw_op() -> impl Strategy<Value = (u8, u8, u8, u16, bool)> {
    (0u8..3, 0u8..6, 0u8..3, 0u16..50, any::<bool>())
}

fn to_op((_, key, lineage, stamp, put): (u8, u8, u8, u16, bool)) -> Op<u8, u64> {
    let lineage = Hlc(u64::from(lineage));
    // One writer never reuses a stamp: the stamp decides put or remove.
    let stamp = Hlc(lineage.0 * 1000 + u64::from(stamp) * 2 + u64::from(put));
    if put {
        Op::Put {
            key,
            lineage,
            stamp,
            value: stamp.0 * 31 + u64::from(key),
        }
    } else {
        Op::Remove {
            key,
            lineage,
            stamp,
        }
    }
}

fn replica_from(ops: &[(u8, u8, u8, u16, bool)]) -> R {
    let mut r = R::new();
    for &raw in ops {
        r.apply(&owner(raw.0), to_op(raw));
    }
    r
}

fn merged(a: &R, b: &R) -> R {
    let mut m = a.clone();
    m.merge(b);
    m
}

fn live(r: &R) -> Vec<(u8, NodeId, Hlc, Hlc, Option<u64>)> {
    r.canonical()
        .into_iter()
        .filter(|s| s.4.is_some())
        .collect()
}

proptest! {
    #[test]
    fn merge_is_commutative(a in prop::collection::vec(raw_op(), 0..40), b in prop::collection::vec(raw_op(), 0..40)) {
        let (a, b) = (replica_from(&a), replica_from(&b));
        prop_assert_eq!(merged(&a, &b).canonical(), merged(&b, &a).canonical());
    }

    #[test]
    fn merge_is_associative(
        a in prop::collection::vec(raw_op(), 0..30),
        b in prop::collection::vec(raw_op(), 0..30),
        c in prop::collection::vec(raw_op(), 0..30),
    ) {
        let (a, b, c) = (replica_from(&a), replica_from(&b), replica_from(&c));
        prop_assert_eq!(merged(&merged(&a, &b), &c).canonical(), merged(&a, &merged(&b, &c)).canonical());
    }

    #[test]
    fn merge_is_idempotent(a in prop::collection::vec(raw_op(), 0..40)) {
        let a = replica_from(&a);
        prop_assert_eq!(merged(&a, &a).canonical(), a.canonical());
    }

    /// Owners write their own slots; a replica gets their ops shuffled,
    /// duplicated and partly dropped; one anti-entropy round (digest check,
    /// then the owner's partition if it differs) makes it exact.
    #[test]
    fn any_delivery_converges_after_anti_entropy(
        writes in prop::collection::vec(raw_op(), 1..60),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..120),
        drop_mask in prop::collection::vec(any::<bool>(), 120),
    ) {
        // The owners' own replicas: ops applied in stamp order.
        let mut sorted = writes.clone();
        sorted.sort_by_key(|w| (w.2, w.3));
        let mut owners = [R::new(), R::new(), R::new()];
        let mut ops = Vec::new();
        for raw in sorted {
            let op = to_op(raw);
            owners[raw.0 as usize].apply(&owner(raw.0), op.clone());
            ops.push((raw.0, op));
        }
        // Delivery: picked in random order, with repeats, some dropped.
        let mut replica = R::new();
        for (i, pick) in order.iter().enumerate() {
            if drop_mask[i % drop_mask.len()] {
                continue;
            }
            let (o, op) = &ops[pick.index(ops.len())];
            replica.apply(&owner(*o), op.clone());
        }
        for o in 0..3u8 {
            let id = owner(o);
            if replica.digest(&id) != owners[o as usize].digest(&id) {
                let all: Vec<_> = owners[o as usize].partition_ops(&id);
                replica.replace_partition(&id, all);
            }
        }
        let mut expected = Vec::new();
        for o in 0..3u8 {
            expected.extend(live(&owners[o as usize]));
        }
        expected.sort();
        prop_assert_eq!(live(&replica), expected);
    }

    /// The weight a replica keeps equals the weight of its live slots,
    /// whatever was applied, purged and collected.
    #[test]
    fn kept_weight_is_the_live_slots_weight(
        ops in prop::collection::vec(raw_op(), 0..60),
        purge in 0u8..4,
        gc in 0u64..60_000,
    ) {
        fn weigh(k: &u8, v: &u64) -> usize { usize::from(*k) + (*v % 97) as usize }
        let mut r = R::weighed(weigh);
        for &raw in &ops {
            r.apply(&owner(raw.0), to_op(raw));
        }
        r.purge_owner(&owner(purge), true);
        r.gc_tombstones(Hlc(gc));
        let want: usize = r.canonical().iter().filter_map(|s| s.4.map(|v| weigh(&s.0, &v))).sum();
        prop_assert_eq!(r.bytes(), want);
    }

    /// The counts kept as slots change (live keys, live slots, tombstones)
    /// equal a scan's, and collecting by the tombstone queue drops exactly
    /// the tombstones a scan finds older than the horizon, whatever was
    /// applied, purged, resynced and collected, in any order.
    #[test]
    fn kept_counts_and_collection_match_a_scan(
        ops in prop::collection::vec(raw_op(), 0..80),
        later in prop::collection::vec(raw_op(), 0..40),
        purge in 0u8..4,
        gcs in prop::collection::vec(0u64..3_000, 0..3),
    ) {
        let mut r = replica_from(&ops);
        for gc in &gcs {
            let before: Vec<_> = r
                .canonical()
                .into_iter()
                .filter(|s| s.4.is_some() || s.3 >= Hlc(*gc))
                .collect();
            r.gc_tombstones(Hlc(*gc));
            prop_assert_eq!(r.canonical(), before);
        }
        r.purge_owner(&owner(purge), false);
        for &raw in &later {
            r.apply(&owner(raw.0), to_op(raw));
        }
        r.gc_tombstones(Hlc(gcs.first().copied().unwrap_or(0)));
        let all = r.canonical();
        let mut live_keys: Vec<u8> = all.iter().filter(|s| s.4.is_some()).map(|s| s.0).collect();
        live_keys.dedup();
        prop_assert_eq!(r.live_key_count(), live_keys.len());
        prop_assert_eq!(r.live_slot_count(), all.iter().filter(|s| s.4.is_some()).count());
        prop_assert_eq!(r.tombstone_count(), all.iter().filter(|s| s.4.is_none()).count());
        prop_assert!(all.iter().all(|s| s.4.is_some() || s.3 >= Hlc(gcs.first().copied().unwrap_or(0))));
    }

    /// A purged owner's slots never come back.
    #[test]
    fn purged_owner_stays_out(a in prop::collection::vec(raw_op(), 0..40), later in prop::collection::vec(raw_op(), 0..40)) {
        let mut r = replica_from(&a);
        r.purge_owner(&owner(1), true);
        for raw in later {
            r.apply(&owner(raw.0), to_op(raw));
        }
        prop_assert!(r.canonical().iter().all(|s| s.1 != owner(1)));
        prop_assert_eq!(r.digest(&owner(1)).live, 0);
    }
}

#[test]
fn digest_tracks_live_slots() {
    let mut r = R::new();
    let o = owner(0);
    let put = |stamp| Op::Put {
        key: 1,
        lineage: Hlc(1),
        stamp: Hlc(stamp),
        value: stamp,
    };
    r.apply(&o, put(1));
    let d1 = r.digest(&o);
    assert_eq!(d1.live, 1);
    r.apply(&o, put(2));
    assert_eq!(r.digest(&o).live, 1);
    assert_ne!(r.digest(&o), d1);
    r.apply(
        &o,
        Op::Remove {
            key: 1,
            lineage: Hlc(1),
            stamp: Hlc(3),
        },
    );
    assert_eq!(r.digest(&o).live, 0);
    assert_eq!(r.tombstone_count(), 1);
    r.gc_tombstones(Hlc(10));
    assert_eq!(r.tombstone_count(), 0);
    assert_eq!(r.key_count(), 0);
}
