//! [`Placer`]: where children go on this node's view of the cluster: the
//! replicated table of declared types, the placement strategy, and the
//! quorum strategy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drove_replication::Replicated;
use drove_runtime::{MemberStatus, Node, NodeId};

use crate::placement::{Placement, Quorum};
use crate::spec::TypesSchema;

/// The key every node puts in the types table beside its types, so that a
/// member with no row is one whose declarations have not arrived yet, not
/// one that runs nothing. No child type has an empty name.
const PRESENT: &str = "";

/// How long a new start waits for the declarations of members it has not
/// heard from, before placing on what it knows.
const DECLARATIONS_WAIT: Duration = Duration::from_secs(2);

/// The quorum strategy's settings.
#[derive(Clone, Copy, Debug)]
pub struct QuorumConfig {
    /// The cluster size majorities are counted against; `None` for the
    /// largest membership seen.
    pub size: Option<usize>,
    /// How long after a node is declared down the majority waits before
    /// starting its children elsewhere, so the minority has stopped them.
    pub fencing_margin: Duration,
}

/// Placement on this node's view of the cluster.
pub(crate) struct Placer {
    node: Node,
    types: Replicated<TypesSchema>,
    placement: Box<dyn Placement>,
    quorum: Option<QuorumConfig>,
    quorum_state: Mutex<Quorum>,
}

impl std::fmt::Debug for Placer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placer")
            .field("node", &self.node.id())
            .field("quorum", &self.quorum)
            .finish_non_exhaustive()
    }
}

impl Placer {
    pub(crate) fn new(
        node: &Node,
        types: Replicated<TypesSchema>,
        placement: Box<dyn Placement>,
        quorum: Option<QuorumConfig>,
    ) -> Arc<Self> {
        Arc::new(Placer {
            node: node.clone(),
            types,
            placement,
            quorum,
            quorum_state: Mutex::new(Quorum::new(quorum.and_then(|q| q.size))),
        })
    }

    /// Says that this node runs `types`.
    pub(crate) fn declare(&self, types: &[Arc<str>]) {
        self.types.write(|w| {
            w.put(Arc::from(PRESENT), None, true);
            for t in types {
                w.put(t.clone(), None, true);
            }
        });
    }

    /// Up members that declared `type_name`, this node included; a member
    /// no transport session reaches (`unreachable`) is none.
    pub(crate) fn candidates(&self, type_name: &str) -> Vec<NodeId> {
        if type_name == PRESENT {
            return Vec::new();
        }
        let up = self.node.reachable_members();
        let mut c: Vec<NodeId> = self.types.read(|r, _| {
            r.slots(type_name)
                .filter(|s| s.value.is_some() && up.contains(s.owner))
                .map(|s| s.owner.clone())
                .collect()
        });
        c.sort();
        c.dedup();
        c
    }

    /// Whether the declarations of every reachable up member have arrived.
    fn knows_every_member(&self) -> bool {
        let up = self.node.reachable_members();
        self.types.read(|r, _| {
            up.iter()
                .all(|m| r.slots(PRESENT).any(|s| s.owner == m && s.value.is_some()))
        })
    }

    /// Waits, up to a bound, until the declarations of every reachable up
    /// member have arrived. Right after a node joins, a start placed on
    /// what this node knows would pick a node another member's view does
    /// not, and two starts of one name could land on two nodes.
    pub(crate) async fn await_declarations(&self) {
        let deadline = tokio::time::Instant::now() + DECLARATIONS_WAIT;
        while !self.knows_every_member() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The node that runs child `id` of type `type_name`, if any can.
    pub(crate) fn place(&self, id: &str, type_name: &str) -> Option<NodeId> {
        let candidates = self.candidates(type_name);
        self.placement.place(id, &candidates).cloned()
    }

    /// The node other than this one that would run child `id` (where it
    /// goes when this node leaves).
    pub(crate) fn place_elsewhere(&self, id: &str, type_name: &str) -> Option<NodeId> {
        let me = self.node.id();
        let candidates: Vec<NodeId> = self
            .candidates(type_name)
            .into_iter()
            .filter(|n| *n != me)
            .collect();
        self.placement.place(id, &candidates).cloned()
    }

    /// Whether this node may run children: always, unless the quorum
    /// strategy is on and this side of the cluster has no majority.
    pub(crate) fn has_quorum(&self) -> bool {
        if self.quorum.is_none() {
            return true;
        }
        let up = self
            .node
            .members()
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .count();
        let mut q = self.quorum_state.lock().unwrap_or_else(|p| p.into_inner());
        q.observe(up);
        q.has_quorum(up)
    }
}
