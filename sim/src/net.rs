//! [`Network`]: messages in flight between simulated nodes, and the cuts
//! between them.
//!
//! Each message sent may be lost, duplicated and delayed by a random time
//! within [`NetConfig::delay_ms`], so two messages on one link may arrive
//! out of order, unless the config keeps each link FIFO (as a TCP
//! connection does). A message is addressed to the incarnation its
//! destination runs when it is sent: if that node crashes meanwhile, the
//! message is dropped (its connection died), never handed to the next
//! incarnation. A message due at a frozen node waits until it thaws. A cut
//! link drops what is due on it while it is cut, as a partition does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::Rng;

use crate::faults::Faults;
use crate::life::{Life, Lives};

/// The faults of the network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetConfig {
    /// The chance that a message is lost.
    pub loss: f64,
    /// The chance that a message arrives twice.
    pub duplicate: f64,
    /// The delay of each message, a random number of ms in this range
    /// (both ends included).
    pub delay_ms: (u64, u64),
    /// Whether each link (from, to) delivers in the order it was sent.
    pub fifo: bool,
}

impl NetConfig {
    /// No loss, no duplication, 1 ms, in order: the healed network.
    pub fn reliable() -> Self {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            delay_ms: (1, 1),
            fifo: true,
        }
    }

    /// Links that lose 10 %, duplicate 5 % and delay 1-60 ms, in any
    /// order: a bad datagram network.
    pub fn lossy() -> Self {
        NetConfig {
            loss: 0.1,
            duplicate: 0.05,
            delay_ms: (1, 60),
            fifo: false,
        }
    }
}

/// A message handed to its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<M> {
    /// Who sent it.
    pub from: usize,
    /// Who gets it.
    pub to: usize,
    /// What it is.
    pub msg: M,
}

#[derive(Clone, Debug)]
struct InFlight<M> {
    from: usize,
    to: usize,
    incarnation: u64,
    msg: M,
}

/// The messages in flight, ordered by due time, and the cut links.
#[derive(Clone, Debug)]
pub struct Network<M> {
    config: NetConfig,
    /// By (due ms, sequence): the sequence keeps equal times in send order.
    queue: BTreeMap<(u64, u64), InFlight<M>>,
    seq: u64,
    /// The latest due time on each link, for FIFO links and for counting
    /// reorders.
    last_due: HashMap<(usize, usize), u64>,
    /// Links (from, to) that drop what is due on them.
    cut: BTreeSet<(usize, usize)>,
}

impl<M: Clone> Network<M> {
    /// An empty network with `config`.
    pub fn new(config: NetConfig) -> Self {
        Network {
            config,
            queue: BTreeMap::new(),
            seq: 0,
            last_due: HashMap::new(),
            cut: BTreeSet::new(),
        }
    }

    /// The faults now.
    pub fn config(&self) -> NetConfig {
        self.config
    }

    /// Changes the faults (for messages sent from now on).
    pub fn set_config(&mut self, config: NetConfig) {
        self.config = config;
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Sends `msg` from `from` to `(node, incarnation)` at `now`.
    pub fn send(
        &mut self,
        rng: &mut StdRng,
        faults: &mut Faults,
        now: u64,
        from: usize,
        (to, incarnation): (usize, u64),
        msg: M,
    ) {
        let c = self.config;
        if c.loss > 0.0 && rng.random_bool(c.loss) {
            faults.note("lost");
            return;
        }
        let copies = if c.duplicate > 0.0 && rng.random_bool(c.duplicate) {
            faults.note("duplicated");
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut due = now + rng.random_range(c.delay_ms.0..=c.delay_ms.1.max(c.delay_ms.0));
            let last = self.last_due.entry((from, to)).or_insert(0);
            if c.fifo {
                due = due.max(*last);
            } else if due < *last {
                faults.note("reordered");
            }
            *last = (*last).max(due);
            self.seq += 1;
            self.queue.insert(
                (due, self.seq),
                InFlight {
                    from,
                    to,
                    incarnation,
                    msg: msg.clone(),
                },
            );
        }
    }

    /// Cuts every link between `a` and `b`, both ways.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Cuts the links from each of `from` to each of `to`, that way only.
    pub fn cut_one_way(&mut self, from: &[usize], to: &[usize]) {
        for &f in from {
            for &t in to {
                if f != t {
                    self.cut.insert((f, t));
                }
            }
        }
    }

    /// Whether the link from `from` to `to` is cut.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Drops every message in flight from `node`: what a crash loses with
    /// the send buffers of its process. Returns how many.
    pub fn drop_from(&mut self, node: usize) -> usize {
        let before = self.queue.len();
        self.queue.retain(|_, m| m.from != node);
        before - self.queue.len()
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// The next message due by `now` to a running node. Messages to a
    /// frozen node stay queued; those to a crashed node or an older
    /// incarnation, and those on a cut link, are dropped (and counted).
    pub fn next_due(
        &mut self,
        now: u64,
        lives: &Lives,
        faults: &mut Faults,
    ) -> Option<Delivery<M>> {
        let mut drop = Vec::new();
        let mut found = None;
        for (&key, m) in self.queue.range(..(now + 1, 0)) {
            match lives.life(m.to) {
                Life::Frozen { .. } => continue,
                Life::Crashed { .. } => drop.push((key, "to_dead")),
                Life::Running if lives.incarnation(m.to) != m.incarnation => {
                    drop.push((key, "to_dead"))
                }
                Life::Running if self.cut.contains(&(m.from, m.to)) => drop.push((key, "cut")),
                Life::Running => {
                    found = Some(key);
                    break;
                }
            }
        }
        for (key, why) in drop {
            self.queue.remove(&key);
            faults.note(why);
        }
        let m = self.queue.remove(&found?)?;
        Some(Delivery {
            from: m.from,
            to: m.to,
            msg: m.msg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn drain(net: &mut Network<u32>, now: u64, lives: &Lives, faults: &mut Faults) -> Vec<u32> {
        std::iter::from_fn(|| net.next_due(now, lives, faults).map(|d| d.msg)).collect()
    }

    #[test]
    fn fifo_links_keep_order_and_others_reorder() {
        let mut rng = StdRng::seed_from_u64(1);
        let lives = Lives::new(2);
        let mut faults = Faults::default();
        let fifo = NetConfig {
            delay_ms: (1, 50),
            ..NetConfig::reliable()
        };
        let mut net = Network::new(fifo);
        for i in 0..100 {
            net.send(&mut rng, &mut faults, 0, 0, (1, 1), i);
        }
        assert_eq!(
            drain(&mut net, 100, &lives, &mut faults),
            (0..100).collect::<Vec<_>>()
        );
        net.set_config(NetConfig {
            fifo: false,
            ..fifo
        });
        for i in 0..100 {
            net.send(&mut rng, &mut faults, 200, 0, (1, 1), i);
        }
        let got = drain(&mut net, 300, &lives, &mut faults);
        assert_eq!(got.len(), 100);
        assert_ne!(got, (0..100).collect::<Vec<_>>());
        assert!(faults.count("reordered") > 0);
    }

    #[test]
    fn frozen_nodes_wait_crashed_ones_lose_and_cuts_drop() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut lives = Lives::new(3);
        let mut faults = Faults::default();
        let mut net = Network::new(NetConfig::reliable());
        net.send(&mut rng, &mut faults, 0, 0, (1, 1), 1);
        net.send(&mut rng, &mut faults, 0, 0, (2, 1), 2);
        lives.freeze(1, 50);
        lives.crash(2, 10);
        assert_eq!(drain(&mut net, 5, &lives, &mut faults), Vec::<u32>::new());
        assert_eq!(faults.count("to_dead"), 1);
        lives.wake_due(50);
        assert_eq!(drain(&mut net, 50, &lives, &mut faults), vec![1]);
        // Sent to the old incarnation of a restarted node: never delivered.
        net.send(&mut rng, &mut faults, 50, 0, (2, 1), 3);
        assert_eq!(drain(&mut net, 60, &lives, &mut faults), Vec::<u32>::new());
        net.cut_one_way(&[0], &[1]);
        net.send(&mut rng, &mut faults, 60, 0, (1, 1), 4);
        net.send(&mut rng, &mut faults, 60, 1, (0, 1), 5);
        assert_eq!(drain(&mut net, 70, &lives, &mut faults), vec![5]);
        assert_eq!(faults.count("cut"), 1);
        net.heal();
        net.send(&mut rng, &mut faults, 70, 0, (1, 1), 6);
        assert_eq!(drain(&mut net, 80, &lives, &mut faults), vec![6]);
        net.send(&mut rng, &mut faults, 80, 0, (1, 1), 7);
        net.send(&mut rng, &mut faults, 80, 1, (0, 1), 8);
        assert_eq!(net.drop_from(0), 1);
        assert_eq!(drain(&mut net, 90, &lives, &mut faults), vec![8]);
    }

    #[test]
    fn a_lossy_network_loses_and_duplicates() {
        let mut rng = StdRng::seed_from_u64(3);
        let lives = Lives::new(2);
        let mut faults = Faults::default();
        let mut net = Network::new(NetConfig::lossy());
        for i in 0..1000 {
            net.send(&mut rng, &mut faults, 0, 0, (1, 1), i);
        }
        let got = drain(&mut net, 100, &lives, &mut faults);
        assert!(
            faults.count("lost") > 50 && faults.count("duplicated") > 20,
            "{faults}"
        );
        assert_eq!(
            got.len() as u64,
            1000 - faults.count("lost") + faults.count("duplicated")
        );
    }
}
