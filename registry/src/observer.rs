//! Turns replica changes into registry events, and finds registrations of
//! this node that lost their name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use drove_replication::{Change, Observer, Op, SchemaReplica};
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

    fn resolve_conflicts(&self, replica: &SchemaReplica<RegistrySchema>, me: &NodeId, name: &Arc<str>) {
        let Some(w) = winner(replica, name).and_then(|w| slot_addr(&w)) else {
            return;
        };
        for loser in losers(replica, name) {
            let Some(loser_addr) = slot_addr(&loser) else { continue };
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
            Change::Purged { owner, keys } => {
                for key in keys {
                    if owner == me {
                        let _ = self.evictions.send(Eviction {
                            name: key.clone(),
                            winner: winner(replica, key).and_then(|w| slot_addr(&w)),
                            reason: "this node was declared down and rejoined; its names were dropped",
                        });
                    }
                    self.after_removal(replica, key);
                }
            }
        }
    }
}
