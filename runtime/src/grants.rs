//! Tokens this node granted its peers: how a batch proves which session it
//! came from.
//!
//! ractor_cluster hands every batch to the one inbox without saying which
//! session carried it, and any peer may name any `from`. So when a link to
//! a peer comes up, this node draws a random token and sends it to that
//! peer over the peer's own session (the only session that reaches it; with
//! TLS, no one else can read it). The peer puts it in the header of every
//! batch it sends here; a batch whose token is not the one granted to its
//! `from` is dropped, except for the peer's own grant.
//!
//! A grant also counts the bytes handled from that peer's link, for flow
//! control: the peer may have [`crate::link::WINDOW`] bytes unacknowledged,
//! and this node acknowledges every [`ACK_EVERY`] bytes, and on the
//! driver's tick whatever is left.

use std::collections::HashMap;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use drove_membership::NodeId;

/// Bytes handled from a link before they are acknowledged at once, rather
/// than on the next tick: an eighth of the window, so a busy link never
/// waits on the tick.
pub(crate) const ACK_EVERY: u64 = crate::link::WINDOW / 8;

/// One peer's grant: its token, and the bytes handled from its link.
struct Grant {
    token: u128,
    received: u64,
    acked: u64,
}

/// An acknowledgement to send: to whom, for which link, and the count.
pub(crate) struct AckDue {
    pub(crate) peer: NodeId,
    pub(crate) token: u128,
    pub(crate) bytes: u64,
}

/// Tokens granted, by peer.
#[derive(Default)]
pub(crate) struct Grants {
    granted: Mutex<HashMap<NodeId, Grant>>,
}

impl Grants {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Grant>> {
        self.granted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh token for `peer`, replacing any earlier one.
    pub(crate) fn grant(&self, peer: &NodeId) -> u128 {
        let token = loop {
            let t: u128 = rand::random();
            if t != 0 {
                break t;
            }
        };
        let grant = Grant {
            token,
            received: 0,
            acked: 0,
        };
        self.lock().insert(peer.clone(), grant);
        token
    }

    /// Whether `token` is the one granted to `peer` (in constant time).
    pub(crate) fn verify(&self, peer: &NodeId, token: u128) -> bool {
        match self.lock().get(peer) {
            Some(g) => bool::from(g.token.to_le_bytes().ct_eq(&token.to_le_bytes())),
            None => false,
        }
    }

    /// Counts `len` bytes handled from `peer`'s link (a verified batch);
    /// an acknowledgement when [`ACK_EVERY`] bytes are unacknowledged.
    pub(crate) fn received(&self, peer: &NodeId, len: usize) -> Option<AckDue> {
        let mut granted = self.lock();
        let g = granted.get_mut(peer)?;
        g.received = g.received.saturating_add(len as u64);
        (g.received - g.acked >= ACK_EVERY).then(|| AckDue {
            peer: peer.clone(),
            token: g.token,
            bytes: g.received,
        })
    }

    /// Every acknowledgement owed: bytes handled and not yet acknowledged.
    pub(crate) fn acks_owed(&self) -> Vec<AckDue> {
        self.lock()
            .iter()
            .filter(|(_, g)| g.received > g.acked)
            .map(|(peer, g)| AckDue {
                peer: peer.clone(),
                token: g.token,
                bytes: g.received,
            })
            .collect()
    }

    /// Notes that `ack` went out (if the grant it counts for still stands).
    pub(crate) fn acked(&self, ack: &AckDue) {
        if let Some(g) = self.lock().get_mut(&ack.peer) {
            if g.token == ack.token {
                g.acked = g.acked.max(ack.bytes);
            }
        }
    }

    /// Forgets `peer`'s token (its link is gone).
    pub(crate) fn revoke(&self, peer: &NodeId) {
        self.lock().remove(peer);
    }

    /// Forgets every token (this node rejoined as a new incarnation).
    pub(crate) fn revoke_all(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drove_membership::Incarnation;

    #[test]
    fn only_the_granted_token_of_that_peer_verifies() {
        let g = Grants::default();
        let n2 = NodeId::new("n2", Incarnation(1));
        let n3 = NodeId::new("n3", Incarnation(1));
        let t2 = g.grant(&n2);
        let t3 = g.grant(&n3);
        assert!(g.verify(&n2, t2));
        assert!(!g.verify(&n2, t3), "n3's token does not make a batch n2's");
        assert!(!g.verify(&n2, 0));
        assert!(!g.verify(&NodeId::new("n2", Incarnation(2)), t2));
        let again = g.grant(&n2);
        assert!(!g.verify(&n2, t2) && g.verify(&n2, again));
        g.revoke(&n2);
        assert!(!g.verify(&n2, again));
        g.revoke_all();
        assert!(!g.verify(&n3, t3));
    }
}
