//! Which up members no transport session has reached: gossip can see a
//! member (it holds the cookie) that no session ever forms with (its
//! certificate is from another CA, its port is filtered). Such a member is
//! shown as `unreachable`, with the reason, and is no placement candidate.
//!
//! A node whose sessions reach only a strict minority of the up members
//! (itself counted) is *cut off*: it is most likely the one that is wrong
//! (its own certificate, its own filter), so it takes no work from the
//! shared job store until that changes. An even split cuts off no one.
//!
//! Pure bookkeeping with time as an input: the driver calls
//! `Reachability::observe` on every tick with the up members and which
//! of them have a link.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

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
pub(crate) struct Reachability {
    state: Mutex<State>,
    cut_off: watch::Sender<bool>,
}

impl Default for Reachability {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            cut_off: watch::channel(false).0,
        }
    }
}

/// Whether a node that reaches `reached` of its `peers` up peers is in a
/// strict minority, itself counted.
pub(crate) fn is_cut_off(peers: usize, reached: usize) -> bool {
    2 * (reached + 1) < peers + 1
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
        let reached = peers.len() - s.unreachable.len();
        self.cut_off
            .send_if_modified(|c| std::mem::replace(c, is_cut_off(peers.len(), reached)) != *c);
    }

    /// Whether this node is cut off now, and its changes.
    pub(crate) fn cut_off(&self) -> watch::Receiver<bool> {
        self.cut_off.subscribe()
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

    #[test]
    fn only_a_strict_minority_is_cut_off() {
        assert!(!is_cut_off(0, 0), "alone");
        assert!(!is_cut_off(1, 0), "two nodes cannot tell who is wrong");
        assert!(is_cut_off(2, 0), "one of three that reaches no one");
        assert!(!is_cut_off(2, 1));
        assert!(!is_cut_off(3, 1), "an even split");
        assert!(is_cut_off(4, 1), "two of five");
        assert!(!is_cut_off(4, 2));
    }

    #[test]
    fn a_node_that_reaches_no_one_of_three_turns_cut_off_and_back() {
        let r = Reachability::default();
        let watch = r.cut_off();
        let t0 = Instant::now();
        let (a, b) = (id("a#0000000000000001"), id("b#0000000000000002"));
        r.observe(&[(a.clone(), false), (b.clone(), false)], t0);
        assert!(!*watch.borrow(), "not before the deadline");
        r.observe(
            &[(a.clone(), false), (b.clone(), false)],
            t0 + SESSION_DEADLINE,
        );
        assert!(*watch.borrow());
        r.observe(
            &[(a.clone(), true), (b.clone(), false)],
            t0 + SESSION_DEADLINE,
        );
        assert!(!*watch.borrow(), "one session makes a majority of three");
    }
}
