//! Local writes to a replicated channel: applied to the local replica and
//! recorded, so the channel pushes them to the peers in one delta.

use drove_runtime::NodeId;

use crate::hlc::{Clock, Hlc};
use crate::observer::{Change, Observer};
use crate::replica::Op;
use crate::schema::{Schema, SchemaOp, SchemaReplica};

/// Local writes, applied and recorded for the delta. Every stamp it makes
/// comes from the channel's clock at the time the write was given.
pub struct Writer<'a, S: Schema> {
    me: &'a NodeId,
    replica: &'a mut SchemaReplica<S>,
    clock: &'a mut Clock,
    observers: &'a [Box<dyn Observer<S>>],
    now_ms: u64,
    ops: Vec<SchemaOp<S>>,
}

impl<'a, S: Schema> Writer<'a, S> {
    pub(crate) fn new(
        me: &'a NodeId,
        replica: &'a mut SchemaReplica<S>,
        clock: &'a mut Clock,
        observers: &'a [Box<dyn Observer<S>>],
        now_ms: u64,
    ) -> Self {
        Writer {
            me,
            replica,
            clock,
            observers,
            now_ms,
            ops: Vec::new(),
        }
    }

    /// The ops written, in order.
    pub(crate) fn into_ops(self) -> Vec<SchemaOp<S>> {
        self.ops
    }

    /// The replica as it is now, this write's earlier ops included.
    pub fn replica(&self) -> &SchemaReplica<S> {
        self.replica
    }

    /// This node's identity.
    pub fn me(&self) -> &NodeId {
        self.me
    }

    /// Writes `value` under `key`: into an existing slot of this node
    /// (`lineage` given) or a new one. Returns the slot's lineage.
    pub fn put(&mut self, key: S::Key, lineage: Option<Hlc>, value: S::Value) -> Hlc {
        let stamp = self.clock.tick(self.now_ms);
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
        self.clock.peek(self.now_ms)
    }

    /// A fresh stamp from this node's clock, unique on this node and above
    /// every stamp it has made or seen (for values that carry their own
    /// write time).
    pub fn tick(&mut self) -> Hlc {
        self.clock.tick(self.now_ms)
    }

    /// Deletes this node's slot `lineage` under `key`.
    pub fn remove(&mut self, key: S::Key, lineage: Hlc) {
        let stamp = self.clock.tick(self.now_ms);
        self.apply(Op::Remove {
            key,
            lineage,
            stamp,
        });
    }

    fn apply(&mut self, op: SchemaOp<S>) {
        if self.replica.apply(self.me, op.clone()) {
            for observer in self.observers {
                observer.changed(
                    self.replica,
                    self.me,
                    Change::Applied {
                        owner: self.me,
                        op: &op,
                    },
                );
            }
            self.ops.push(op);
        }
    }
}
