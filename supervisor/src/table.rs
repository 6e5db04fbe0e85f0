//! The children table's rules, pure: which record of a child wins, whether
//! a live node handled a child since a stamp, and what a change of the
//! table means for this node ([`TableEvent`]): a dead node's orphans, its
//! own old incarnation's after a rejoin, or a duplicate copy. The
//! supervisor's shell and the simulation floor both read the table
//! through these.

use std::sync::Arc;

use drove_replication::{Change, Hlc, Op, PurgedSlot, SchemaReplica};
use drove_runtime::NodeId;

use crate::spec::{ChildRecord, ChildrenSchema};

/// A child record whose owner is gone from the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Orphan {
    /// The node that ran it.
    pub owner: NodeId,
    /// Its last record there.
    pub record: ChildRecord,
    /// The stamp of that record: a slot of the child written or dropped
    /// later than this came from a node that handled it since.
    pub stamp: Hlc,
}

/// What a change of the children table means for this node.
#[derive(Clone, Debug, PartialEq)]
pub enum TableEvent {
    /// A node was declared down (or left) with these children.
    Failover(Vec<Orphan>),
    /// This node was declared down and came back as a new incarnation;
    /// the records of its old incarnation.
    Rejoined(Vec<Orphan>),
    /// Another node runs this child too, and its start was earlier.
    Duplicate(String),
}

/// The winning record of a child: the earliest slot, then by owner.
pub fn winner<'a>(
    r: &'a SchemaReplica<ChildrenSchema>,
    id: &str,
) -> Option<(&'a NodeId, &'a ChildRecord, Hlc)> {
    r.slots(id)
        .filter_map(|s| s.value.map(|v| (s.owner, v, s.lineage)))
        .min_by(|a, b| (a.2, a.0).cmp(&(b.2, b.0)))
}

/// Whether some node holds a record of child `id`, or wrote or dropped one
/// later than `stamp`: a live node runs it, finished it, or stopped it on
/// purpose since then (a terminated child leaves a tombstone for a while,
/// so a watch does not start it again).
pub fn handled_after(r: &SchemaReplica<ChildrenSchema>, id: &str, stamp: Hlc) -> bool {
    r.slots(id).any(|s| s.value.is_some() || s.stamp > stamp)
}

/// The lineage of `me`'s live record of child `id`, if it holds one: a
/// write under it updates that record, and a removal drops it.
pub fn own_lineage(r: &SchemaReplica<ChildrenSchema>, me: &NodeId, id: &str) -> Option<Hlc> {
    r.slots(id)
        .find(|s| s.owner == me && s.value.is_some())
        .map(|s| s.lineage)
}

/// Whether a node other than `me` holds a record of child `id` that shows
/// it running.
pub fn runs_elsewhere(r: &SchemaReplica<ChildrenSchema>, me: &NodeId, id: &str) -> bool {
    r.slots(id).any(|s| {
        s.owner != me
            && s.value
                .is_some_and(|v| v.status == crate::spec::ChildStatus::Running)
    })
}

fn orphans_of(owner: &NodeId, slots: &[PurgedSlot<Arc<str>, ChildRecord>]) -> Vec<Orphan> {
    slots
        .iter()
        .filter_map(|s| {
            s.value.clone().map(|record| Orphan {
                owner: owner.clone(),
                record,
                stamp: s.stamp,
            })
        })
        .collect()
}

/// What a change of the children table means for node `me`, if anything
/// (run under the table's lock, with the table after the change).
pub fn table_event(
    replica: &SchemaReplica<ChildrenSchema>,
    me: &NodeId,
    change: Change<'_, Arc<str>, ChildRecord>,
) -> Option<TableEvent> {
    match change {
        Change::Purged {
            departed: false, ..
        } => None,
        Change::Purged { owner, slots, .. } if owner == me => {
            Some(TableEvent::Rejoined(orphans_of(owner, slots)))
        }
        Change::Purged { owner, slots, .. } => {
            let records = orphans_of(owner, slots);
            (!records.is_empty()).then_some(TableEvent::Failover(records))
        }
        Change::Applied {
            owner,
            op: Op::Put { key, .. },
        } if owner != me => {
            // Another node runs a child this node also runs: the later
            // start gives way.
            let mine = replica
                .slots(&**key)
                .any(|s| s.owner == me && s.value.is_some());
            (mine && winner(replica, key).is_some_and(|(o, _, _)| o != me))
                .then(|| TableEvent::Duplicate(key.to_string()))
        }
        Change::Applied { .. } => None,
    }
}
