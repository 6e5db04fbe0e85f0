//! Which up members no transport session has reached: gossip can see a
//! member (it holds the cookie) that no session ever forms with (its
//! certificate is from another CA, its port is filtered). Such a member is
//! shown as `unreachable`, with the reason, and is no placement candidate.
//!
//! Pure bookkeeping with time as an input: the driver calls
//! `Reachability::observe` on every tick with the up members and which
//! of them have a link.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use drove_membership::NodeId;

/// How long an up member may go without a session before it is shown as
/// unreachable.
pub const SESSION_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    /// Up members without a link, since when.
    waiting: HashMap<NodeId, Instant>,
    /// Members past the deadline, with the reason.
    unreachable: HashMap<NodeId, String>,
    /// The last error dialling each member.
    dial_errors: HashMap<NodeId, String>,
}

/// The up members that have no session, and why.
#[derive(Default)]
pub(crate) struct Reachability {
    state: Mutex<State>,
}

impl Reachability {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the up members other than this node at `now`, with whether
    /// each has a link.
    pub(crate) fn observe(&self, peers: &[(NodeId, bool)], now: Instant) {
        let mut s = self.state();
        let s = &mut *s;
        s.waiting.retain(|id, _| peers.iter().any(|(p, _)| p == id));
        s.unreachable
            .retain(|id, _| peers.iter().any(|(p, linked)| p == id && !linked));
        s.dial_errors
            .retain(|id, _| peers.iter().any(|(p, _)| p == id));
        for (peer, linked) in peers {
            if *linked {
                s.waiting.remove(peer);
                s.dial_errors.remove(peer);
                continue;
            }
            let since = *s.waiting.entry(peer.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= SESSION_DEADLINE {
                let reason = s.dial_errors.get(peer).cloned().unwrap_or_else(|| {
                    format!(
                        "no transport session within {} s (its handshake failed or timed out)",
                        SESSION_DEADLINE.as_secs()
                    )
                });
                s.unreachable.insert(peer.clone(), reason);
            }
        }
    }

    /// Records why dialling `peer` failed.
    pub(crate) fn dial_failed(&self, peer: &NodeId, error: String) {
        self.state().dial_errors.insert(peer.clone(), error);
    }

    /// Why `peer` is unreachable, if it is.
    pub(crate) fn reason(&self, peer: &NodeId) -> Option<String> {
        self.state().unreachable.get(peer).cloned()
    }

    /// Whether `peer` is unreachable.
    pub(crate) fn is_unreachable(&self, peer: &NodeId) -> bool {
        self.state().unreachable.contains_key(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    #[test]
    fn a_member_without_a_session_turns_unreachable_at_the_deadline() {
        let r = Reachability::default();
        let t0 = Instant::now();
        let (a, b) = (id("a#0000000000000001"), id("b#0000000000000002"));
        r.observe(&[(a.clone(), true), (b.clone(), false)], t0);
        r.dial_failed(
            &b,
            "TLS refused: invalid peer certificate: UnknownIssuer".into(),
        );
        r.observe(
            &[(a.clone(), true), (b.clone(), false)],
            t0 + Duration::from_secs(4),
        );
        assert!(!r.is_unreachable(&b), "not before the deadline");
        r.observe(
            &[(a.clone(), true), (b.clone(), false)],
            t0 + SESSION_DEADLINE,
        );
        assert!(!r.is_unreachable(&a));
        assert_eq!(
            r.reason(&b).as_deref(),
            Some("TLS refused: invalid peer certificate: UnknownIssuer")
        );
        // A session forms: reachable again.
        r.observe(
            &[(a.clone(), true), (b.clone(), true)],
            t0 + Duration::from_secs(6),
        );
        assert!(!r.is_unreachable(&b));
        // It loses it: the clock starts again, with the generic reason.
        let t1 = t0 + Duration::from_secs(7);
        r.observe(&[(b.clone(), false)], t1);
        assert!(!r.is_unreachable(&b));
        r.observe(&[(b.clone(), false)], t1 + SESSION_DEADLINE);
        assert!(r
            .reason(&b)
            .is_some_and(|w| w.contains("no transport session")));
        // It goes down: forgotten.
        r.observe(&[], t1 + Duration::from_secs(10));
        assert!(!r.is_unreachable(&b));
    }
}
