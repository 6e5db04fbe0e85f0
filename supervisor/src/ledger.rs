//! [`Ledger`]: the children this node runs now, by id and by local actor
//! id, those it is starting, and their recent restarts. Plain data;
//! `LocalChildren` keeps it behind a lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The children this node runs, by id and by local actor id.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    by_id: HashMap<String, LocalChild>,
    by_local: HashMap<u64, String>,
    /// Children whose start is under way (see [`Ledger::claim`]).
    starting: HashSet<String>,
    restart_times: HashMap<String, VecDeque<Instant>>,
}

/// One child in the ledger.
#[derive(Debug)]
struct LocalChild {
    local: u64,
    /// Stopped on purpose: its stop is not a crash to restart.
    terminating: bool,
}

/// What [`Ledger::claim`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The start may go ahead; it ends with `insert` or `release`.
    Claimed,
    /// The child runs here already, as this local actor.
    Running(u64),
    /// Another start of the child is under way here.
    Starting,
}

impl Ledger {
    /// Claims the start of child `id`, so that two starts of one child on
    /// this node (a failover and an adoption another node sent, say) never
    /// run it twice.
    pub(crate) fn claim(&mut self, id: &str) -> Claim {
        if let Some(c) = self.by_id.get(id).filter(|c| !c.terminating) {
            return Claim::Running(c.local);
        }
        if !self.starting.insert(id.to_string()) {
            return Claim::Starting;
        }
        Claim::Claimed
    }

    /// A claimed start of `id` failed.
    pub(crate) fn release(&mut self, id: &str) {
        self.starting.remove(id);
    }

    /// Child `id` runs here as local actor `local` (ending its claim).
    pub(crate) fn insert(&mut self, id: &str, local: u64) {
        self.starting.remove(id);
        self.by_local.insert(local, id.to_string());
        self.by_id.insert(
            id.to_string(),
            LocalChild {
                local,
                terminating: false,
            },
        );
    }

    /// Marks child `id` as stopped on purpose; its local actor id, if it
    /// runs here.
    pub(crate) fn terminate(&mut self, id: &str) -> Option<u64> {
        self.by_id.get_mut(id).map(|c| {
            c.terminating = true;
            c.local
        })
    }

    /// Marks every child as stopped on purpose; their ids and actors.
    pub(crate) fn terminate_all(&mut self) -> Vec<(String, u64)> {
        self.by_id
            .iter_mut()
            .map(|(id, c)| {
                c.terminating = true;
                (id.clone(), c.local)
            })
            .collect()
    }

    /// Local actor `local` stopped: forgets it; its child id and whether it
    /// was stopped on purpose, if it was a child.
    pub(crate) fn stopped(&mut self, local: u64) -> Option<(String, bool)> {
        let id = self.by_local.remove(&local)?;
        // A copy being stopped may outlive the start of its successor:
        // only its own entry goes.
        let terminating = match self.by_id.get(&id) {
            Some(c) if c.local == local => self.by_id.remove(&id).is_some_and(|c| c.terminating),
            _ => true,
        };
        Some((id, terminating))
    }

    /// The children here and their local actor ids.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&str, u64)> {
        self.by_id.iter().map(|(id, c)| (id.as_str(), c.local))
    }

    /// The ids of the children here that are not being stopped.
    pub(crate) fn running(&self) -> Vec<String> {
        self.by_id
            .iter()
            .filter(|(_, c)| !c.terminating)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many children run here.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Counts a restart of `id` against at most `max` within `within`;
    /// false when that is exceeded.
    pub(crate) fn may_restart(&mut self, id: &str, max: u32, within: Duration) -> bool {
        let times = self.restart_times.entry(id.to_string()).or_default();
        times.retain(|t| t.elapsed() < within);
        let ok = times.len() < max as usize;
        if ok {
            times.push_back(Instant::now());
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_on_purpose_is_told_apart_from_a_crash() {
        let mut l = Ledger::default();
        l.insert("a", 1);
        l.insert("b", 2);
        assert_eq!(l.terminate("a"), Some(1));
        assert_eq!(l.running(), vec!["b".to_string()]);
        assert_eq!(l.stopped(1), Some(("a".to_string(), true)));
        assert_eq!(l.stopped(2), Some(("b".to_string(), false)));
        assert_eq!(l.stopped(3), None);
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn a_child_is_started_once_at_a_time() {
        let mut l = Ledger::default();
        assert_eq!(l.claim("a"), Claim::Claimed);
        assert_eq!(l.claim("a"), Claim::Starting);
        l.release("a");
        assert_eq!(l.claim("a"), Claim::Claimed);
        l.insert("a", 7);
        assert_eq!(l.claim("a"), Claim::Running(7));
        l.terminate("a");
        assert_eq!(
            l.claim("a"),
            Claim::Claimed,
            "a copy being stopped does not count"
        );
    }

    #[test]
    fn the_stop_of_an_old_copy_leaves_its_successor() {
        let mut l = Ledger::default();
        l.insert("a", 1);
        l.terminate("a");
        assert_eq!(l.claim("a"), Claim::Claimed);
        l.insert("a", 2);
        assert_eq!(l.stopped(1), Some(("a".to_string(), true)));
        assert_eq!(l.running(), vec!["a".to_string()]);
        assert_eq!(l.stopped(2), Some(("a".to_string(), false)));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn intensity_allows_max_restarts_within_the_window() {
        let mut l = Ledger::default();
        let window = Duration::from_secs(60);
        assert!(l.may_restart("a", 2, window));
        assert!(l.may_restart("a", 2, window));
        assert!(!l.may_restart("a", 2, window));
        assert!(l.may_restart("b", 2, window), "counted per child");
        assert!(l.may_restart("c", 1, Duration::ZERO));
        assert!(l.may_restart("c", 1, Duration::ZERO), "old restarts expire");
    }
}
