//! [`Caretaker`]: when a node tends the shared store, as a pure state
//! machine with time as an input. It decides which consumers' jobs to
//! rescue (members declared down or gone, this node's earlier
//! incarnations), retries a rescue that failed with a doubling wait, and
//! paces the heartbeat: renew the leases held every beat, sweep expired
//! leases and refresh the counts every fourth, prune old jobs every 120th.
//!
//! The shell (`jobs.rs`) carries out each [`Chore`] against the store,
//! feeds rescue results back, and sleeps until [`Caretaker::next_wake`]
//! or the next membership event; nothing in here sleeps or does I/O.

use std::collections::BTreeMap;

/// Tries of one rescue before it is left to the expired-lease sweep.
pub const RESCUE_TRIES: u32 = 8;

/// The first wait before a failed rescue is tried again, ms (doubling).
const RESCUE_FIRST_WAIT_MS: u64 = 50;

/// Beats between sweeps of expired leases (and count refreshes).
const SWEEP_EVERY: u64 = 4;

/// Beats between prunes of old jobs.
const PRUNE_EVERY: u64 = 120;

/// One thing to do against the store now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chore {
    /// Hand back everything this consumer holds; report the outcome with
    /// [`Caretaker::rescued`].
    Rescue(String),
    /// Renew the leases of the jobs this node runs.
    Renew,
    /// Hand back attempts whose lease ran out, and refresh the counts.
    Sweep,
    /// Delete finished and dead jobs past their keep.
    Prune,
}

/// A rescue waiting for its time, or out with the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rescue {
    /// Tries made so far.
    tries: u32,
    /// When to try next, ms; `None` while a try is out.
    at: Option<u64>,
}

/// The schedule of one node's store chores.
#[derive(Debug)]
pub struct Caretaker {
    period_ms: u64,
    next_beat: u64,
    beats: u64,
    rescues: BTreeMap<String, Rescue>,
}

impl Caretaker {
    /// A caretaker at `now_ms` that beats every `period_ms` (at least 10).
    pub fn new(now_ms: u64, period_ms: u64) -> Self {
        let period_ms = period_ms.max(10);
        Caretaker {
            period_ms,
            next_beat: now_ms + period_ms,
            beats: 0,
            rescues: BTreeMap::new(),
        }
    }

    /// At start: the consumers that hold jobs in the store. Those of this
    /// node's earlier incarnations (its name, another incarnation) are
    /// rescued.
    pub fn started(&mut self, now_ms: u64, me: &str, node_name: &str, holders: &[String]) {
        let prefix = format!("{node_name}#");
        for c in holders {
            if c.starts_with(&prefix) && c != me {
                self.gone(now_ms, c);
            }
        }
    }

    /// Membership says `consumer`'s node is down or gone (or it is this
    /// node's own old incarnation after a rejoin): rescue its jobs now.
    pub fn gone(&mut self, now_ms: u64, consumer: &str) {
        self.rescues
            .entry(consumer.to_string())
            .and_modify(|r| {
                if r.at.is_some() {
                    r.at = Some(now_ms);
                }
            })
            .or_insert(Rescue {
                tries: 0,
                at: Some(now_ms),
            });
    }

    /// The outcome of a [`Chore::Rescue`]. A failure is tried again after
    /// a doubling wait; returns `false` once the tries run out (the
    /// expired-lease sweep is the backstop then).
    pub fn rescued(&mut self, now_ms: u64, consumer: &str, ok: bool) -> bool {
        let Some(r) = self.rescues.get_mut(consumer).filter(|r| r.at.is_none()) else {
            return true;
        };
        if ok || r.tries >= RESCUE_TRIES {
            self.rescues.remove(consumer);
            return ok;
        }
        let wait = RESCUE_FIRST_WAIT_MS << r.tries.saturating_sub(1).min(16);
        r.at = Some(now_ms + wait);
        true
    }

    /// The chores due at `now_ms`, in order.
    pub fn due(&mut self, now_ms: u64) -> Vec<Chore> {
        let mut chores = Vec::new();
        for (consumer, r) in &mut self.rescues {
            if r.at.is_some_and(|at| at <= now_ms) {
                r.at = None;
                r.tries += 1;
                chores.push(Chore::Rescue(consumer.clone()));
            }
        }
        if now_ms >= self.next_beat {
            self.beats += 1;
            // A late wake (the node was frozen) beats once, not once per
            // missed period.
            self.next_beat = (self.next_beat + self.period_ms).max(now_ms + 1);
            chores.push(Chore::Renew);
            if self.beats.is_multiple_of(SWEEP_EVERY) {
                chores.push(Chore::Sweep);
            }
            if self.beats.is_multiple_of(PRUNE_EVERY) {
                chores.push(Chore::Prune);
            }
        }
        chores
    }

    /// When the next chore is due, ms.
    pub fn next_wake(&self) -> u64 {
        self.rescues
            .values()
            .filter_map(|r| r.at)
            .fold(self.next_beat, u64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn earlier_incarnations_and_gone_members_are_rescued_at_once() {
        let mut c = Caretaker::new(0, 500);
        c.started(
            0,
            "n1#0000000000000002",
            "n1",
            &[
                "n1#0000000000000001".into(),
                "n1#0000000000000002".into(),
                "n10#0000000000000001".into(),
                "n2#0000000000000001".into(),
            ],
        );
        c.gone(0, "n3#0000000000000001");
        assert_eq!(
            c.due(0),
            vec![
                Chore::Rescue("n1#0000000000000001".into()),
                Chore::Rescue("n3#0000000000000001".into()),
            ]
        );
        assert_eq!(c.due(1), vec![], "out with the shell: not again");
        assert!(c.rescued(2, "n1#0000000000000001", true));
        assert!(c.rescued(2, "n3#0000000000000001", true));
        assert_eq!(c.next_wake(), 500);
    }

    #[test]
    fn a_failed_rescue_is_tried_again_with_a_doubling_wait_then_left_to_the_sweep() {
        let mut c = Caretaker::new(0, 1_000_000);
        c.gone(0, "x");
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..RESCUE_TRIES {
            assert_eq!(c.due(now), vec![Chore::Rescue("x".into())]);
            let kept = c.rescued(now, "x", false);
            if !kept {
                break;
            }
            let next = c.next_wake();
            waits.push(next - now);
            now = next;
        }
        assert_eq!(waits, vec![50, 100, 200, 400, 800, 1600, 3200]);
        assert_eq!(c.next_wake(), 1_000_000, "given up");
    }

    #[test]
    fn the_heartbeat_renews_every_beat_sweeps_every_fourth_and_prunes_every_120th() {
        let mut c = Caretaker::new(0, 500);
        let mut renews = 0;
        let mut sweeps = 0;
        let mut prunes = 0;
        for beat in 1..=240u64 {
            assert_eq!(c.next_wake(), beat * 500);
            for chore in c.due(beat * 500) {
                match chore {
                    Chore::Renew => renews += 1,
                    Chore::Sweep => sweeps += 1,
                    Chore::Prune => prunes += 1,
                    Chore::Rescue(_) => unreachable!(),
                }
            }
        }
        assert_eq!((renews, sweeps, prunes), (240, 60, 2));
    }

    #[test]
    fn a_node_that_wakes_late_beats_once() {
        let mut c = Caretaker::new(0, 500);
        assert_eq!(c.due(60_000), vec![Chore::Renew]);
        assert!(c.due(60_000).is_empty());
        assert_eq!(c.next_wake(), 60_001);
    }

    proptest! {
        /// Whatever happens, a consumer's rescue is never out twice at
        /// once, and once the due chores are taken none is left due.
        #[test]
        fn one_try_at_a_time(steps in proptest::collection::vec((0u8..4, 0u8..3, 0u64..200), 1..200)) {
            let mut c = Caretaker::new(0, 100);
            let mut now = 0;
            let mut out: BTreeMap<String, u32> = BTreeMap::new();
            for (what, who, dt) in steps {
                now += dt;
                let consumer = format!("c{who}");
                match what {
                    0 => c.gone(now, &consumer),
                    1 if out.get(&consumer).copied().unwrap_or(0) > 0 => {
                        *out.entry(consumer.clone()).or_default() -= 1;
                        c.rescued(now, &consumer, dt % 2 == 0);
                    }
                    _ => {
                        for chore in c.due(now) {
                            if let Chore::Rescue(x) = chore {
                                let n = out.entry(x).or_default();
                                *n += 1;
                                prop_assert_eq!(*n, 1, "two tries out at once");
                            }
                        }
                        prop_assert!(c.next_wake() > now, "a chore due now was left behind");
                    }
                }
            }
        }
    }
}
