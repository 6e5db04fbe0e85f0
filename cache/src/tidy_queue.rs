//! [`TidyQueue`]: the keys the cache's housekeeping must look at, so a tidy
//! round takes time in the work to do, not in the size of the cache.
//!
//! A node tidies only its own slots, and a slot needs it only when:
//! - its deadline passes (indexed by deadline when this node writes it),
//!   or the grace of a newer write that shadows it
//!   ([`SHADOW_GRACE_MS`](crate::schema::SHADOW_GRACE_MS));
//! - a peer writes or drops the same key (this slot may now be shadowed,
//!   or be a deletion marker that hides nothing);
//! - this node writes a deletion marker, or a copy that is already
//!   shadowed (an adopted copy another survivor adopted first).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use drove_replication::{Change, Observer, Op, SchemaReplica};
use drove_runtime::NodeId;

use crate::schema::{latest, CacheData, CacheSchema, CacheValue};

#[derive(Default)]
struct Pending {
    /// Keys to look at in the next round.
    dirty: HashSet<Arc<str>>,
    /// (deadline in cluster ms, key) of this node's writes with a TTL, and
    /// of its shadowed slots waiting out their grace.
    deadlines: BTreeSet<(u64, Arc<str>)>,
}

/// The keys due for a tidy. Cheap to clone; every clone is the same queue.
#[derive(Clone, Default)]
pub(crate) struct TidyQueue {
    pending: Arc<Mutex<Pending>>,
}

impl TidyQueue {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the keys due at cluster time `now_ms`: the dirty ones and those
    /// whose deadline passed.
    pub(crate) fn take_due(&self, now_ms: u64) -> Vec<Arc<str>> {
        let mut pending = self.pending();
        // Due: deadlines at or before now (a value is live while now < deadline).
        let later = pending
            .deadlines
            .split_off(&(now_ms.saturating_add(1), Arc::from("")));
        let due = std::mem::replace(&mut pending.deadlines, later);
        let mut keys: HashSet<Arc<str>> = std::mem::take(&mut pending.dirty);
        keys.extend(due.into_iter().map(|(_, key)| key));
        keys.into_iter().collect()
    }

    /// Looks at each key again at its cluster time (ms).
    pub(crate) fn later(&self, keys: Vec<(u64, Arc<str>)>) {
        if keys.is_empty() {
            return;
        }
        self.pending().deadlines.extend(keys);
    }

    /// How many keys wait, dirty and by deadline.
    pub(crate) fn len(&self) -> usize {
        let pending = self.pending();
        pending.dirty.len() + pending.deadlines.len()
    }
}

/// Whether this node holds a live slot of `key`.
fn holds(replica: &SchemaReplica<CacheSchema>, me: &NodeId, key: &str) -> bool {
    replica
        .slots(key)
        .any(|s| s.owner == me && s.value.is_some())
}

impl Observer<CacheSchema> for TidyQueue {
    fn changed(
        &self,
        replica: &SchemaReplica<CacheSchema>,
        me: &NodeId,
        change: Change<'_, Arc<str>, CacheValue>,
    ) {
        match change {
            Change::Applied { owner, op } if owner == me => {
                let Op::Put { key, value, .. } = op else {
                    return;
                };
                let shadowed = latest(replica, key).is_some_and(|l| l.owner != me);
                match &value.data {
                    _ if shadowed => {
                        self.pending().dirty.insert(key.clone());
                    }
                    CacheData::Deleted => {
                        self.pending().dirty.insert(key.clone());
                    }
                    CacheData::Live {
                        expires_at_ms: Some(deadline),
                        ..
                    } => {
                        self.pending().deadlines.insert((*deadline, key.clone()));
                    }
                    CacheData::Live { .. } => {}
                }
            }
            Change::Applied { op, .. } => {
                if holds(replica, me, op.key()) {
                    self.pending().dirty.insert(op.key().clone());
                }
            }
            Change::Purged { owner, slots, .. } if owner != me => {
                let mut pending = self.pending();
                for slot in slots {
                    if holds(replica, me, &slot.key) {
                        pending.dirty.insert(slot.key.clone());
                    }
                }
            }
            Change::Purged { .. } => {}
        }
    }
}
