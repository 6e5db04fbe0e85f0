//! What the registry replicates, and who wins a name.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use drove_replication::{Hlc, Schema, SchemaReplica, SlotRef};
use drove_runtime::{ActorAddr, LocalRef, NodeId};

/// The registry's replication channel.
#[derive(Debug)]
pub struct RegistrySchema;

impl Schema for RegistrySchema {
    const CHANNEL: &'static str = "registry";
    const TAG: &'static str = "drove.registry.v1";
    type Key = Arc<str>;
    type Value = RegValue;
}

/// One registration: the actor's local id on the owner node (the owner is
/// the slot's owner, so it is not repeated) and optional metadata as JSON
/// text (wire-safe, unlike `serde_json::Value` through bincode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegValue {
    /// The actor's local id on its node.
    pub local: u64,
    /// Metadata, JSON text.
    pub meta: Option<Arc<str>>,
}

/// The winning registration of a name: the earliest registration (smallest
/// lineage stamp), ties broken by owner node id (name, then incarnation).
pub fn winner<'a>(
    replica: &'a SchemaReplica<RegistrySchema>,
    name: &str,
) -> Option<SlotRef<'a, RegValue>> {
    replica
        .slots(name)
        .filter(|s| s.value.is_some())
        .min_by(|a, b| (a.lineage, a.owner).cmp(&(b.lineage, b.owner)))
}

/// The live registrations of a name that lose to the winner.
pub fn losers<'a>(
    replica: &'a SchemaReplica<RegistrySchema>,
    name: &str,
) -> Vec<SlotRef<'a, RegValue>> {
    let Some(w) = winner(replica, name) else {
        return Vec::new();
    };
    let key = (w.lineage, w.owner.clone());
    replica
        .slots(name)
        .filter(|s| s.value.is_some() && (s.lineage, s.owner.clone()) != key)
        .collect()
}

pub(crate) fn addr(owner: &NodeId, value: &RegValue) -> ActorAddr {
    ActorAddr {
        node: owner.clone(),
        local: LocalRef::Id(value.local),
    }
}

pub(crate) fn slot_addr(slot: &SlotRef<'_, RegValue>) -> Option<ActorAddr> {
    slot.value.map(|v| addr(slot.owner, v))
}

/// This node's live slot for `name`, if it holds one: (lineage, value).
pub(crate) fn my_slot(
    replica: &SchemaReplica<RegistrySchema>,
    me: &NodeId,
    name: &str,
) -> Option<(Hlc, RegValue)> {
    replica
        .slots(name)
        .find(|s| s.owner == me && s.value.is_some())
        .and_then(|s| s.value.map(|v| (s.lineage, v.clone())))
}
