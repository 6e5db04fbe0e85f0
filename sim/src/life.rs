//! [`Lives`]: which simulated nodes run, which incarnation, and which are
//! crashed or frozen until when.

/// Where a node's life is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// It handles messages and timers.
    Running,
    /// Dead until then; it comes back as a new incarnation with nothing
    /// but what it had stored.
    Crashed {
        /// When it restarts, ms.
        until: u64,
    },
    /// Stopped (SIGSTOP) until then: its state stays, its inbox fills, and
    /// it wakes with the view it had.
    Frozen {
        /// When it wakes, ms.
        until: u64,
    },
}

/// How a node came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// After a crash, as this new incarnation.
    Restarted {
        /// Its new incarnation number.
        incarnation: u64,
    },
    /// After a freeze, as the same incarnation.
    Thawed,
}

/// Every node's life and incarnation (numbered from 1).
#[derive(Clone, Debug)]
pub struct Lives {
    nodes: Vec<(Life, u64)>,
}

impl Lives {
    /// `n` running nodes, incarnation 1 each.
    pub fn new(n: usize) -> Self {
        Lives {
            nodes: vec![(Life::Running, 1); n],
        }
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s life.
    pub fn life(&self, i: usize) -> Life {
        self.nodes[i].0
    }

    /// Node `i`'s current (or, while crashed, last) incarnation.
    pub fn incarnation(&self, i: usize) -> u64 {
        self.nodes[i].1
    }

    /// Whether node `i` handles messages now.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].0 == Life::Running
    }

    /// The running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .collect()
    }

    /// Crashes node `i` until `until`; false if it was crashed already.
    pub fn crash(&mut self, i: usize, until: u64) -> bool {
        if matches!(self.nodes[i].0, Life::Crashed { .. }) {
            return false;
        }
        self.nodes[i].0 = Life::Crashed { until };
        true
    }

    /// Freezes node `i` until `until`; false unless it was running.
    pub fn freeze(&mut self, i: usize, until: u64) -> bool {
        if !self.is_running(i) {
            return false;
        }
        self.nodes[i].0 = Life::Frozen { until };
        true
    }

    /// Node `i`, running, takes a new incarnation without dying (it was
    /// wrongly declared down and rejoins); returns it. Messages sent to the
    /// old one are no longer delivered.
    pub fn rejoin(&mut self, i: usize) -> u64 {
        self.nodes[i].1 += 1;
        self.nodes[i].1
    }

    /// Brings back every node whose crash or freeze ends by `now`.
    pub fn wake_due(&mut self, now: u64) -> Vec<(usize, Wake)> {
        let mut woken = Vec::new();
        for (i, (life, incarnation)) in self.nodes.iter_mut().enumerate() {
            match *life {
                Life::Crashed { until } if until <= now => {
                    *incarnation += 1;
                    *life = Life::Running;
                    woken.push((
                        i,
                        Wake::Restarted {
                            incarnation: *incarnation,
                        },
                    ));
                }
                Life::Frozen { until } if until <= now => {
                    *life = Life::Running;
                    woken.push((i, Wake::Thawed));
                }
                _ => {}
            }
        }
        woken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_comes_back_as_a_new_incarnation_and_a_freeze_as_the_same() {
        let mut l = Lives::new(3);
        assert!(l.crash(0, 100));
        assert!(!l.crash(0, 200), "already crashed");
        assert!(l.freeze(1, 50));
        assert!(!l.freeze(0, 50), "a crashed node does not freeze");
        assert_eq!(l.running(), vec![2]);
        assert_eq!(l.wake_due(49), vec![]);
        assert_eq!(l.wake_due(50), vec![(1, Wake::Thawed)]);
        assert_eq!(l.incarnation(1), 1);
        assert_eq!(
            l.wake_due(100),
            vec![(0, Wake::Restarted { incarnation: 2 })]
        );
        assert_eq!(l.running(), vec![0, 1, 2]);
        assert_eq!(l.rejoin(2), 2);
        assert!(l.is_running(2));
    }
}
