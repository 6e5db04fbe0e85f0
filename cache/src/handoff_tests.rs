//! Copies changing hands, deterministically: cache channels (the cache's
//! own loss hook and tidying) on a simulated network where every link is
//! FIFO but links race each other, nodes depart one after another and
//! each survivor hears of a departure at its own time. A value once seen
//! on a node must stay visible there through all of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use proptest::prelude::*;

use drove_replication::{Channel, Outgoing, ReplMsg, ReplicationConfig};
use drove_runtime::{Incarnation, NodeId};

use crate::cache::{adopt, tidy_slot, Counters};
use crate::schema::{tidy, visible, CacheData, CacheSchema, CacheValue, Tidy};

const KEYS: usize = 6;
const EPOCH_MS: u64 = 1_700_000_000_000;

/// The writer first, then survivors whose names sort in every order
/// against each other (runner-like names sort after their parent's).
const NAMES: [&str; 6] = ["w", "n1", "n2", "n2.r1", "n3", "n3.r1"];

enum Event {
    Msg(ReplMsg<CacheSchema>),
    Gone(NodeId),
}

struct World {
    ids: Vec<NodeId>,
    nodes: Vec<Option<Channel<CacheSchema>>>,
    /// FIFO per (from, to); a departure notice rides its own queue per
    /// receiver.
    links: BTreeMap<(usize, usize), VecDeque<ReplMsg<CacheSchema>>>,
    notices: BTreeMap<usize, VecDeque<NodeId>>,
    /// What each node has shown for each key (the writer's only value).
    seen: Vec<[bool; KEYS]>,
    now: u64,
    rng: u64,
}

fn key(k: usize) -> Arc<str> {
    Arc::from(format!("k{k}").as_str())
}

impl World {
    fn new(seed: u64) -> Self {
        let ids: Vec<NodeId> = NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| NodeId::new(*n, Incarnation(i as u64 + 1)))
            .collect();
        let counters = Arc::new(Counters::default());
        let mut nodes: Vec<Option<Channel<CacheSchema>>> = ids
            .iter()
            .map(|id| {
                let mut c = Channel::new(id.clone(), &ReplicationConfig::default(), Vec::new());
                let counters = counters.clone();
                c.set_on_lost(move |w, lost| adopt(w, lost, &counters));
                Some(c)
            })
            .collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            if let Some(c) = node.as_mut() {
                for (j, id) in ids.iter().enumerate() {
                    if i != j {
                        c.peer_up(id.clone());
                    }
                }
            }
        }
        World {
            seen: vec![[false; KEYS]; ids.len()],
            ids,
            nodes,
            links: BTreeMap::new(),
            notices: BTreeMap::new(),
            now: 0,
            rng: seed | 1,
        }
    }

    fn random(&mut self, n: usize) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % n as u64) as usize
    }

    fn wall(&self) -> u64 {
        EPOCH_MS + self.now
    }

    fn index(&self, id: &NodeId) -> Option<usize> {
        self.ids.iter().position(|i| i == id)
    }

    fn send(&mut self, from: usize, out: Vec<Outgoing<CacheSchema>>) {
        for Outgoing { to, msg } in out {
            if let Some(to) = self.index(&to) {
                self.links.entry((from, to)).or_default().push_back(msg);
            }
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// Node `i` runs one event; returns what it sent.
    fn run(&mut self, i: usize, event: Event) {
        let wall = self.wall();
        let Some(c) = self.nodes[i].as_mut() else {
            return;
        };
        let out = match event {
            Event::Msg(msg) => c.handle(msg, wall),
            Event::Gone(id) => c.peer_gone(&id, wall),
        };
        self.send(i, out);
    }

    fn write_all(&mut self) {
        let wall = self.wall();
        let Some(c) = self.nodes[0].as_mut() else {
            return;
        };
        let ((), out) = c.write(wall, |w| {
            for k in 0..KEYS {
                let value = CacheValue {
                    written: w.tick(),
                    writer: Arc::from(w.me().to_string().as_str()),
                    data: CacheData::Live {
                        json: Arc::from(format!("\"v{k}\"").as_str()),
                        expires_at_ms: None,
                    },
                };
                w.put(key(k), None, value);
            }
        });
        self.send(0, out);
    }

    fn tidy(&mut self, i: usize) {
        let wall = self.wall();
        let Some(c) = self.nodes[i].as_mut() else {
            return;
        };
        let ((), out) = c.write(wall, |w| {
            for k in 0..KEYS {
                let key = key(k);
                let now = w.now().ms();
                let action = tidy(w.replica(), w.me(), &key, now);
                if action != Tidy::Keep {
                    tidy_slot(w, key, action);
                }
            }
        });
        self.send(i, out);
    }

    fn tick(&mut self, i: usize) {
        let wall = self.wall();
        if let Some(c) = self.nodes[i].as_mut() {
            let out = c.tick(wall);
            self.send(i, out);
        }
    }

    /// Node `i` crashes: its links go; every survivor will hear of it, each
    /// when its notice comes up.
    fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.links.retain(|(from, to), _| *from != i && *to != i);
        self.notices.remove(&i);
        let gone = self.ids[i].clone();
        for j in self.live() {
            self.notices.entry(j).or_default().push_back(gone.clone());
        }
    }

    /// Delivers the head of one random non-empty queue; false when all are
    /// empty.
    fn deliver_one(&mut self) -> bool {
        let mut queues: Vec<(usize, Option<(usize, usize)>)> = self
            .links
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(&(from, to), _)| (to, Some((from, to))))
            .collect();
        queues.extend(
            self.notices
                .iter()
                .filter(|(_, q)| !q.is_empty())
                .map(|(&to, _)| (to, None)),
        );
        if queues.is_empty() {
            return false;
        }
        let (to, link) = queues[self.random(queues.len())];
        let event = match link {
            Some(l) => self
                .links
                .get_mut(&l)
                .and_then(VecDeque::pop_front)
                .map(Event::Msg),
            None => self
                .notices
                .get_mut(&to)
                .and_then(VecDeque::pop_front)
                .map(Event::Gone),
        };
        if let Some(event) = event {
            self.run(to, event);
        }
        true
    }

    /// Every live node still shows every value it has shown.
    fn check(&mut self) -> Result<(), String> {
        let wall = self.wall();
        for i in self.live() {
            let Some(c) = self.nodes[i].as_ref() else {
                continue;
            };
            let now = c.now(wall).ms();
            for k in 0..KEYS {
                let shows = visible(c.replica(), &key(k), now)
                    .is_some_and(|(_, json, _)| **json == *format!("\"v{k}\""));
                if shows {
                    self.seen[i][k] = true;
                } else if self.seen[i][k] {
                    return Err(format!("{} lost k{k} at t={}", self.ids[i], self.now));
                }
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        self.now += 1;
        match self.random(20) {
            0..=13 => {
                self.deliver_one();
            }
            14..=16 => {
                let live = self.live();
                let i = live[self.random(live.len())];
                self.tidy(i);
            }
            17 => {
                let live = self.live();
                let i = live[self.random(live.len())];
                self.tick(i);
            }
            _ => {
                // Up to four crashes; two nodes always survive.
                let live = self.live();
                if live.len() > 2 {
                    let i = live[self.random(live.len())];
                    self.crash(i);
                }
            }
        }
        self.check()
    }

    /// Delivers and tidies until nothing moves; then every survivor holds
    /// the same table, one copy per key.
    fn settle(&mut self) -> Result<(), String> {
        for _ in 0..50 {
            while self.deliver_one() {
                self.check()?;
            }
            for i in self.live() {
                self.tidy(i);
            }
            if self.links.values().all(VecDeque::is_empty) {
                break;
            }
        }
        for i in self.live() {
            let Some(c) = self.nodes[i].as_ref() else {
                continue;
            };
            for k in 0..KEYS {
                let copies = c
                    .replica()
                    .slots(&key(k))
                    .filter(|s| s.value.is_some())
                    .count();
                if copies != 1 {
                    return Err(format!("{} holds {copies} copies of k{k}", self.ids[i]));
                }
            }
        }
        Ok(())
    }
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut world = World::new(seed);
    world.write_all();
    while world.deliver_one() {}
    world.check()?;
    // The writer goes first; the rest is random.
    world.crash(0);
    for _ in 0..600 {
        world.step()?;
    }
    world.settle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Through departures heard at different times and copies tidied on
    /// racing links, no node stops showing a value it showed, and the
    /// copies settle to one per key.
    #[test]
    fn a_value_never_goes_missing_as_copies_change_hands(seed in any::<u64>()) {
        prop_assert_eq!(run_seed(seed), Ok(()));
    }
}
