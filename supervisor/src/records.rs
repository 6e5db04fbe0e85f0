//! [`Records`]: the replicated table of child records. Each node owns the
//! slots of the children it runs; a child's record is the earliest slot
//! under its id ([`winner`]).

use std::sync::Arc;

use drove_replication::{Hlc, Replicated};
use drove_runtime::{ActorAddr, LocalRef, NodeId};

use crate::spec::{ChildInfo, ChildRecord, ChildrenSchema};
use crate::table::{handled_after, own_lineage, runs_elsewhere, winner};

/// The children table on this node. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Records {
    table: Replicated<ChildrenSchema>,
}

impl Records {
    pub(crate) fn new(table: Replicated<ChildrenSchema>) -> Self {
        Records { table }
    }

    /// Writes this node's record of a child (its own slot, kept across local
    /// restarts so a restart is an update, not a new registration).
    pub(crate) fn write(&self, id: &str, record: ChildRecord) {
        let id: Arc<str> = Arc::from(id);
        self.table.write(|w| {
            let lineage = own_lineage(w.replica(), w.me(), &id);
            w.put(id.clone(), lineage, record);
        });
    }

    /// This node's record of child `id`.
    pub(crate) fn mine(&self, id: &str) -> Option<ChildRecord> {
        self.table.read(|r, me| {
            r.slots(id)
                .find(|s| s.owner == me && s.value.is_some())
                .and_then(|s| s.value.cloned())
        })
    }

    /// Every record this node owns.
    pub(crate) fn all_mine(&self) -> Vec<ChildRecord> {
        self.table.read(|r, me| {
            r.keys()
                .flat_map(|k| r.slots(&**k))
                .filter(|s| s.owner == me)
                .filter_map(|s| s.value.cloned())
                .collect()
        })
    }

    /// Changes this node's record of child `id`, if it has one.
    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut ChildRecord)) {
        if let Some(mut record) = self.mine(id) {
            f(&mut record);
            self.write(id, record);
        }
    }

    /// Drops this node's record of child `id`.
    pub(crate) fn remove(&self, id: &str) {
        self.table.write(|w| {
            let key: Arc<str> = Arc::from(id);
            if let Some(lineage) = own_lineage(w.replica(), w.me(), &key) {
                w.remove(key, lineage);
            }
        });
    }

    /// The winning record of child `id` and its owner.
    pub(crate) fn winner(&self, id: &str) -> Option<(NodeId, ChildRecord)> {
        self.table
            .read(|r, _| winner(r, id).map(|(n, rec, _)| (n.clone(), rec.clone())))
    }

    /// Whether another node's record shows child `id` running (see
    /// [`runs_elsewhere`]).
    pub(crate) fn runs_elsewhere(&self, id: &str) -> bool {
        self.table.read(|r, me| runs_elsewhere(r, me, id))
    }

    /// Whether a live node handled child `id` since `stamp` (see
    /// [`handled_after`]).
    pub(crate) fn handled_after(&self, id: &str, stamp: Hlc) -> bool {
        self.table.read(|r, _| handled_after(r, id, stamp))
    }

    /// Where child `id` runs, by its winning record.
    pub(crate) fn winner_addr(&self, id: &str) -> Option<ActorAddr> {
        self.table.read(|r, _| {
            winner(r, id).and_then(|(node, rec, _)| {
                rec.local.map(|local| ActorAddr {
                    node: node.clone(),
                    local: LocalRef::Id(local),
                })
            })
        })
    }

    /// Every child in the cluster by its winning record, by id.
    pub(crate) fn all(&self) -> Vec<ChildInfo> {
        let mut out: Vec<ChildInfo> = self.table.read(|r, _| {
            r.keys()
                .filter_map(|k| winner(r, k).map(|(node, rec, _)| ChildInfo::of(node, rec)))
                .collect()
        });
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
