//! Turns replica changes into registry events, and finds registrations of
//! this node that lost their name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use drove_replication::{Change, Observer, Op, PurgedSlot, SchemaReplica};
use drove_runtime::{ActorAddr, NodeId};

use crate::schema::{addr, losers, slot_addr, winner, RegValue, RegistrySchema};

/// Something that happened to a name, anywhere in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryEvent {
    /// `name` now resolves to `addr`.
    Registered {
        /// The name.
        name: String,
        /// Its actor.
        addr: ActorAddr,
    },
    /// `name` resolves to nothing any more.
    Unregistered {
        /// The name.
        name: String,
    },
    /// Two registrations of `name` met; `winner` keeps it, `loser` is told.
    ConflictResolved {
        /// The name.
        name: String,
        /// The registration that keeps the name.
        winner: ActorAddr,
        /// The registration that lost it.
        loser: ActorAddr,
    },
}

/// A registration of this node that must go, and why.
#[derive(Debug)]
pub(crate) struct Eviction {
    pub(crate) name: Arc<str>,
    pub(crate) winner: Option<ActorAddr>,
    pub(crate) reason: &'static str,
}

pub(crate) struct RegObserver {
    pub(crate) events: broadcast::Sender<RegistryEvent>,
    pub(crate) evictions: mpsc::UnboundedSender<Eviction>,
    pub(crate) conflicts: Arc<AtomicU64>,
}

impl RegObserver {
    fn emit(&self, event: RegistryEvent) {
        let _ = self.events.send(event);
    }

    fn resolve_conflicts(
        &self,
        replica: &SchemaReplica<RegistrySchema>,
        me: &NodeId,
        name: &Arc<str>,
    ) {
        let Some(w) = winner(replica, name).and_then(|w| slot_addr(&w)) else {
            return;
        };
        for loser in losers(replica, name) {
            let Some(loser_addr) = slot_addr(&loser) else {
                continue;
            };
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            self.emit(RegistryEvent::ConflictResolved {
                name: name.to_string(),
                winner: w.clone(),
                loser: loser_addr,
            });
            if loser.owner == me {
                let _ = self.evictions.send(Eviction {
                    name: name.clone(),
                    winner: Some(w.clone()),
                    reason: "an earlier registration of the name won",
                });
            }
        }
    }

    fn after_removal(&self, replica: &SchemaReplica<RegistrySchema>, name: &Arc<str>) {
        match winner(replica, name).and_then(|w| slot_addr(&w)) {
            Some(addr) => self.emit(RegistryEvent::Registered {
                name: name.to_string(),
                addr,
            }),
            None => self.emit(RegistryEvent::Unregistered {
                name: name.to_string(),
            }),
        }
    }
}

impl Observer<RegistrySchema> for RegObserver {
    fn changed(
        &self,
        replica: &SchemaReplica<RegistrySchema>,
        me: &NodeId,
        change: Change<'_, Arc<str>, RegValue>,
    ) {
        match change {
            Change::Applied {
                owner,
                op:
                    Op::Put {
                        key,
                        lineage,
                        stamp,
                        value,
                    },
            } => {
                if lineage != stamp {
                    return; // a metadata update
                }
                let this = addr(owner, value);
                if winner(replica, key).and_then(|w| slot_addr(&w)) == Some(this.clone()) {
                    self.emit(RegistryEvent::Registered {
                        name: key.to_string(),
                        addr: this,
                    });
                }
                self.resolve_conflicts(replica, me, key);
            }
            Change::Applied {
                op: Op::Remove { key, .. },
                ..
            } => self.after_removal(replica, key),
            Change::Purged { owner, slots, .. } => {
                for PurgedSlot { key, .. } in slots {
                    if owner == me {
                        let _ = self.evictions.send(Eviction {
                            name: key.clone(),
                            winner: winner(replica, key).and_then(|w| slot_addr(&w)),
                            reason:
                                "this node was declared down and rejoined; its names were dropped",
                        });
                    }
                    self.after_removal(replica, key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drove_replication::{Hlc, Replica};
    use drove_runtime::Incarnation;

    fn node(name: &str) -> NodeId {
        NodeId::new(name, Incarnation(1))
    }

    fn put(key: &Arc<str>, lineage: u64, local: u64) -> Op<Arc<str>, RegValue> {
        Op::Put {
            key: key.clone(),
            lineage: Hlc(lineage),
            stamp: Hlc(lineage),
            value: RegValue { local, meta: None },
        }
    }

    /// Two registrations meet: the earliest wins on every node, whatever
    /// the order they arrive in, and only the loser's node evicts.
    #[test]
    fn earliest_registration_wins_and_loser_is_evicted() {
        let name: Arc<str> = Arc::from("svc");
        let (a, b) = (node("a"), node("b"));
        let early = put(&name, 5, 1);
        let late = put(&name, 9, 2);
        for (me, order) in [
            (&a, [(&a, &early), (&b, &late)]),
            (&b, [(&b, &late), (&a, &early)]),
        ] {
            let (events, mut rx) = broadcast::channel(16);
            let (evictions, mut ev_rx) = mpsc::unbounded_channel();
            let observer = RegObserver {
                events,
                evictions,
                conflicts: Arc::new(AtomicU64::new(0)),
            };
            let mut replica: Replica<Arc<str>, RegValue> = Replica::new();
            for (owner, op) in order {
                replica.apply(owner, op.clone());
                observer.changed(&replica, me, Change::Applied { owner, op });
            }
            let w = winner(&replica, &name).and_then(|s| slot_addr(&s));
            assert_eq!(
                w,
                Some(addr(
                    &a,
                    &RegValue {
                        local: 1,
                        meta: None
                    }
                ))
            );
            let mut conflicts = 0;
            while let Ok(e) = rx.try_recv() {
                if let RegistryEvent::ConflictResolved { winner, loser, .. } = e {
                    assert_eq!(winner.node, a);
                    assert_eq!(loser.node, b);
                    conflicts += 1;
                }
            }
            assert_eq!(conflicts, 1);
            let evicted = ev_rx.try_recv().is_ok();
            assert_eq!(evicted, *me == b, "only the loser's node evicts");
        }
    }

    /// Ties on the stamp are broken by node id.
    #[test]
    fn stamp_ties_break_by_node() {
        let name: Arc<str> = Arc::from("svc");
        let mut replica: Replica<Arc<str>, RegValue> = Replica::new();
        replica.apply(&node("zed"), put(&name, 5, 1));
        replica.apply(&node("amy"), put(&name, 5, 2));
        let w = winner(&replica, &name).map(|s| s.owner.clone());
        assert_eq!(w, Some(node("amy")));
        assert_eq!(losers(&replica, &name).len(), 1);
    }
}
