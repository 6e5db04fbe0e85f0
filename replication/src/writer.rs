//! Local writes to a replicated channel: applied to the local replica and
//! recorded, so the service pushes them to the peers in one delta.

use crate::hlc::Hlc;
use crate::replica::Op;
use crate::service::{wall_ms, Change, Observer, Schema, SchemaOp, SchemaReplica, State};
use drove_runtime::NodeId;

/// Local writes, applied and recorded for the delta.
pub struct Writer<'a, S: Schema> {
    pub(crate) state: &'a mut State<S>,
    pub(crate) observer: &'a dyn Observer<S>,
    pub(crate) ops: Vec<SchemaOp<S>>,
}

impl<S: Schema> Writer<'_, S> {
    /// The replica as it is now, this write's earlier ops included.
    pub fn replica(&self) -> &SchemaReplica<S> {
        &self.state.replica
    }

    /// This node's identity.
    pub fn me(&self) -> &NodeId {
        &self.state.me
    }

    /// Writes `value` under `key`: into an existing slot of this node
    /// (`lineage` given) or a new one. Returns the slot's lineage.
    pub fn put(&mut self, key: S::Key, lineage: Option<Hlc>, value: S::Value) -> Hlc {
        let stamp = self.state.clock.tick(wall_ms());
        let lineage = lineage.unwrap_or(stamp);
        self.apply(Op::Put {
            key,
            lineage,
            stamp,
            value,
        });
        lineage
    }

    /// This node's clock now (see [`Clock::peek`]).
    pub fn now(&self) -> Hlc {
        self.state.clock.peek(wall_ms())
    }

    /// A fresh stamp from this node's clock, unique on this node and above
    /// every stamp it has made or seen (for values that carry their own
    /// write time).
    pub fn tick(&mut self) -> Hlc {
        self.state.clock.tick(wall_ms())
    }

    /// Deletes this node's slot `lineage` under `key`.
    pub fn remove(&mut self, key: S::Key, lineage: Hlc) {
        let stamp = self.state.clock.tick(wall_ms());
        self.apply(Op::Remove {
            key,
            lineage,
            stamp,
        });
    }

    fn apply(&mut self, op: SchemaOp<S>) {
        let me = self.state.me.clone();
        if self.state.replica.apply(&me, op.clone()) {
            self.observer.changed(
                &self.state.replica,
                &me,
                Change::Applied {
                    owner: &me,
                    op: &op,
                },
            );
            self.ops.push(op);
        }
    }
}
