//! [`Sessions`]: the transport sessions the cluster driver accepted, at most
//! one per peer name, and [`SessionPeers`], the part a dialer can read.
//!
//! A dialer must stop once its peer has a session, not only once the link
//! is built: the link waits for the peer's grant, and a slow peer (a busy
//! or just-booted process) takes a while to send it. Dialing again meanwhile
//! opens a second session, ractor_cluster's election closes one of the two
//! as a duplicate, and if that is the one this node accepted, its close
//! reads as the peer crashing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ractor::ActorRef;
use ractor_cluster::NodeSessionMessage;

use drove_membership::NodeId;

/// One accepted session.
pub(crate) struct Session {
    /// ractor_cluster's id of the session's node.
    pub(crate) cluster_node: u64,
    /// The session actor (stopping it closes the connection).
    pub(crate) actor: ActorRef<NodeSessionMessage>,
}

/// The driver's accepted sessions; the driver alone changes them.
#[derive(Default)]
pub(crate) struct Sessions {
    by_peer: HashMap<NodeId, Session>,
    peers: SessionPeers,
}

/// Which peers have a session, shared with dialing tasks.
#[derive(Clone, Default)]
pub(crate) struct SessionPeers(Arc<Mutex<HashSet<NodeId>>>);

impl SessionPeers {
    /// Whether `peer` has an accepted session.
    pub(crate) fn has(&self, peer: &NodeId) -> bool {
        self.lock().contains(peer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<NodeId>> {
        // The set stays consistent under a panic elsewhere: one insert or
        // remove at a time.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Sessions {
    /// What dialers read.
    pub(crate) fn peers(&self) -> SessionPeers {
        self.peers.clone()
    }

    /// The session of `peer`, if accepted.
    pub(crate) fn get(&self, peer: &NodeId) -> Option<&Session> {
        self.by_peer.get(peer)
    }

    /// Whether any incarnation named `name` has a session.
    pub(crate) fn has_name(&self, name: &str) -> bool {
        self.by_peer.keys().any(|id| id.name == name)
    }

    /// Whether `peer` has a session.
    pub(crate) fn contains(&self, peer: &NodeId) -> bool {
        self.by_peer.contains_key(peer)
    }

    /// Accepts `session` for `peer`.
    pub(crate) fn insert(&mut self, peer: NodeId, session: Session) {
        self.peers.lock().insert(peer.clone());
        self.by_peer.insert(peer, session);
    }

    /// Forgets the session of `peer`.
    pub(crate) fn remove(&mut self, peer: &NodeId) -> Option<Session> {
        self.peers.lock().remove(peer);
        self.by_peer.remove(peer)
    }

    /// Forgets every session, answering them.
    pub(crate) fn drain(&mut self) -> Vec<Session> {
        self.peers.lock().clear();
        self.by_peer.drain().map(|(_, s)| s).collect()
    }
}
