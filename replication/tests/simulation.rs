//! Deterministic simulation of the replication channel: N replicas over a
//! simulated network that, with seeded randomness, loses, duplicates,
//! delays (so reorders) and partitions messages, while members crash and
//! come back as new incarnations, or are wrongly declared down and rejoin.
//! Then the network heals and the checks run:
//!
//! - convergence: every live replica holds exactly each live owner's own
//!   partition;
//! - purged owners stay out: no slot of a dead incarnation survives
//!   anywhere, whatever stale copies the network still delivers;
//! - read your writes: a write is visible on its node as soon as it returns.
//!
//! Time is simulated (`now_ms` is an input of the channel), so a run of a
//! few simulated seconds takes microseconds. `DROVE_SIM_SEEDS=N` runs N
//! seeds (default 2000); a failure prints its seed, and
//! `DROVE_SIM_SEED=S` replays that one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use drove_replication::{
    Channel, Hlc, Outgoing, ReplMsg, ReplicationConfig, Schema, SchemaReplica,
};
use drove_runtime::{Incarnation, NodeId};

struct Sim;

impl Schema for Sim {
    const CHANNEL: &'static str = "sim";
    const TAG: &'static str = "drove.sim.v1";
    type Key = u8;
    type Value = u64;
}

const NODES: usize = 4;
const KEYS: u8 = 12;
const STEP_MS: u64 = 5;
const CHAOS_MS: u64 = 1500;
const HEAL_MS: u64 = 4000;
const TICK_MS: u64 = 100;
/// Simulated wall clock at the start: far from zero, like a real one.
const EPOCH_MS: u64 = 1_700_000_000_000;

fn config() -> ReplicationConfig {
    ReplicationConfig {
        anti_entropy_interval: Duration::from_millis(TICK_MS),
        // Small chunks, so resyncs span several messages.
        chunk: 3,
        tombstone_ttl: Duration::from_millis(2000),
        ..ReplicationConfig::default()
    }
}

/// One message in flight.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: u64,
    seq: u64,
    to: Arc<NodeId>,
    msg: Wire,
}

/// A message as bytes-free data the heap can order (by `at`, then `seq`).
struct Wire(ReplMsg<Sim>);

impl PartialEq for Wire {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Wire {}
impl PartialOrd for Wire {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wire {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

struct Node {
    name: String,
    /// The running channel; `None` while crashed.
    channel: Option<Channel<Sim>>,
    next_incarnation: u64,
    next_tick: u64,
    down_until: u64,
}

struct World {
    rng: StdRng,
    now: u64,
    seq: u64,
    nodes: Vec<Node>,
    net: BinaryHeap<Reverse<InFlight>>,
    /// Node indexes cut off from each other, until the given time.
    cut: Option<(BTreeSet<usize>, u64)>,
    chaos: bool,
    /// Incarnations declared down: no replica may hold their slots.
    dead: BTreeSet<NodeId>,
    faults: Faults,
}

/// What a run went through, so the test can show it exercised each fault.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    crashes: u64,
    false_downs: u64,
    partitions: u64,
    lost: u64,
    duplicated: u64,
    resyncs: u64,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let nodes = (0..NODES)
            .map(|i| Node {
                name: format!("n{i}"),
                channel: None,
                next_incarnation: 1,
                next_tick: rng.random_range(0..TICK_MS),
                down_until: 0,
            })
            .collect();
        let mut world = World {
            rng,
            now: 0,
            seq: 0,
            nodes,
            net: BinaryHeap::new(),
            cut: None,
            chaos: true,
            dead: BTreeSet::new(),
            faults: Faults::default(),
        };
        for i in 0..NODES {
            world.boot(i);
        }
        world
    }

    fn wall(&self) -> u64 {
        EPOCH_MS + self.now
    }

    fn id(&self, i: usize) -> Option<NodeId> {
        self.nodes[i].channel.as_ref().map(|c| c.me().clone())
    }

    fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.channel.as_ref().is_some_and(|c| c.me() == id))
    }

    /// Starts node `i` as a new incarnation; membership tells everyone.
    fn boot(&mut self, i: usize) {
        let inc = self.nodes[i].next_incarnation;
        self.nodes[i].next_incarnation += 1;
        let me = NodeId::new(self.nodes[i].name.clone(), Incarnation(inc));
        let mut channel = Channel::new(me.clone(), &config(), Vec::new());
        let mut out = Vec::new();
        for j in 0..NODES {
            if let Some(other) = self.id(j) {
                out.extend(channel.peer_up(other));
            }
        }
        self.nodes[i].channel = Some(channel);
        self.send(out);
        for j in 0..NODES {
            if j != i {
                if let Some(c) = self.nodes[j].channel.as_mut() {
                    let out = c.peer_up(me.clone());
                    self.send(out);
                }
            }
        }
    }

    /// Node `i` dies; membership declares it down everywhere.
    fn crash(&mut self, i: usize) {
        let Some(channel) = self.nodes[i].channel.take() else {
            return;
        };
        let gone = channel.me().clone();
        self.faults.crashes += 1;
        self.declare_down(&gone);
        self.nodes[i].down_until = self.now + self.rng.random_range(50..400);
    }

    /// Node `i` is wrongly declared down: it lives on, learns it, and
    /// rejoins as a new incarnation with the same channel.
    fn false_down(&mut self, i: usize) {
        let Some(old) = self.id(i) else { return };
        self.faults.false_downs += 1;
        self.declare_down(&old);
        let inc = self.nodes[i].next_incarnation;
        self.nodes[i].next_incarnation += 1;
        let new = NodeId::new(self.nodes[i].name.clone(), Incarnation(inc));
        let wall = self.wall();
        if let Some(c) = self.nodes[i].channel.as_mut() {
            c.rejoined(&old, new.clone(), wall);
        }
        for j in 0..NODES {
            let Some(other) = self.id(j).filter(|_| j != i) else {
                continue;
            };
            let out = self.nodes[i]
                .channel
                .as_mut()
                .map(|c| c.peer_up(other))
                .unwrap_or_default();
            self.send(out);
            let back = self.nodes[j]
                .channel
                .as_mut()
                .map(|c| c.peer_up(new.clone()))
                .unwrap_or_default();
            self.send(back);
        }
    }

    fn declare_down(&mut self, gone: &NodeId) {
        self.dead.insert(gone.clone());
        let wall = self.wall();
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let Some(c) = n.channel.as_mut() {
                if c.me() != gone {
                    out.extend(c.peer_gone(gone, wall));
                }
            }
        }
        self.send(out);
    }

    fn send(&mut self, out: Vec<Outgoing<Sim>>) {
        for Outgoing { to, msg } in out {
            let mut copies = 1;
            let mut delay = 1;
            if self.chaos {
                if self.rng.random_bool(0.1) {
                    self.faults.lost += 1;
                    continue;
                }
                if self.rng.random_bool(0.05) {
                    self.faults.duplicated += 1;
                    copies = 2;
                }
                delay = self.rng.random_range(1..60);
            }
            for _ in 0..copies {
                self.seq += 1;
                let at = self.now + delay + if copies > 1 { self.seq % 7 } else { 0 };
                self.net.push(Reverse(InFlight {
                    at,
                    seq: self.seq,
                    to: to.clone(),
                    msg: Wire(msg.clone()),
                }));
            }
        }
    }

    fn cut_off(&self, to: usize) -> bool {
        // A partition drops what crosses it: here, whatever reaches a
        // node of the cut side while it lasts (both directions are cut,
        // since replies to the cut side are dropped too).
        self.cut
            .as_ref()
            .is_some_and(|(side, until)| self.now < *until && side.contains(&to))
    }

    fn deliver(&mut self) {
        while self.net.peek().is_some_and(|Reverse(m)| m.at <= self.now) {
            let Some(Reverse(m)) = self.net.pop() else {
                break;
            };
            let Some(to) = self.index_of(&m.to) else {
                continue; // that incarnation is gone
            };
            if self.chaos && self.cut_off(to) {
                continue;
            }
            let wall = self.wall();
            let out = self.nodes[to]
                .channel
                .as_mut()
                .map(|c| c.handle(m.msg.0, wall))
                .unwrap_or_default();
            self.send(out);
        }
    }

    fn ticks(&mut self) {
        for i in 0..NODES {
            if self.now < self.nodes[i].next_tick {
                continue;
            }
            self.nodes[i].next_tick = self.now + TICK_MS;
            let wall = self.wall();
            let out = self.nodes[i]
                .channel
                .as_mut()
                .map(|c| c.tick(wall))
                .unwrap_or_default();
            self.send(out);
        }
    }

    /// A random write on a random live node, checked at once on that node.
    fn write(&mut self) -> Result<(), String> {
        let i = self.rng.random_range(0..NODES);
        let key = self.rng.random_range(0..KEYS);
        let remove = self.rng.random_bool(0.3);
        let value: u64 = self.rng.random();
        let wall = self.wall();
        let Some(c) = self.nodes[i].channel.as_mut() else {
            return Ok(());
        };
        let me = c.me().clone();
        let mine = |r: &SchemaReplica<Sim>| {
            r.slots(&key)
                .find(|s| *s.owner == me && s.value.is_some())
                .map(|s| (s.lineage, s.value.copied()))
        };
        let held = mine(c.replica()).map(|(lineage, _)| lineage);
        let (_, out) = c.write(wall, |w| match (remove, held) {
            (true, Some(lineage)) => w.remove(key, lineage),
            (true, None) => {}
            (false, lineage) => {
                w.put(key, lineage, value);
            }
        });
        let after = mine(c.replica());
        match (remove, held) {
            (true, Some(_)) if after.is_some() => {
                return Err(format!("{me}: removed key {key} still shows"))
            }
            (false, _) if after.map(|(_, v)| v) != Some(Some(value)) => {
                return Err(format!("{me}: wrote {value} to key {key}, reads {after:?}"))
            }
            _ => {}
        }
        self.send(out);
        Ok(())
    }

    fn chaos_step(&mut self) -> Result<(), String> {
        if self.rng.random_bool(0.4) {
            self.write()?;
        }
        let roll: f64 = self.rng.random();
        if roll < 0.004 {
            let i = self.rng.random_range(0..NODES);
            self.crash(i);
        } else if roll < 0.007 {
            let i = self.rng.random_range(0..NODES);
            self.false_down(i);
        } else if roll < 0.012 && self.cut.is_none() {
            let side: BTreeSet<usize> = (0..NODES).filter(|_| self.rng.random_bool(0.4)).collect();
            let until = self.now + self.rng.random_range(50..300);
            self.faults.partitions += 1;
            self.cut = Some((side, until));
        }
        if self
            .cut
            .as_ref()
            .is_some_and(|(_, until)| self.now >= *until)
        {
            self.cut = None;
        }
        Ok(())
    }

    fn reboot_due(&mut self) {
        for i in 0..NODES {
            if self.nodes[i].channel.is_none() && self.now >= self.nodes[i].down_until {
                self.boot(i);
            }
        }
    }

    fn run(&mut self) -> Result<(), String> {
        while self.now < CHAOS_MS {
            self.chaos_step()?;
            self.reboot_due();
            self.ticks();
            self.deliver();
            self.now += STEP_MS;
        }
        // Heal: every node up, no loss, no partition, FIFO links.
        self.chaos = false;
        self.cut = None;
        for i in 0..NODES {
            self.nodes[i].down_until = 0;
        }
        self.reboot_due();
        let end = self.now + HEAL_MS;
        while self.now < end {
            self.ticks();
            self.deliver();
            self.now += STEP_MS;
        }
        self.check()
    }

    /// Each owner's live slots, as (key, lineage, stamp, value).
    fn partition(r: &SchemaReplica<Sim>, owner: &NodeId) -> BTreeSet<(u8, Hlc, Hlc, u64)> {
        r.keys()
            .flat_map(|k| {
                r.slots(k)
                    .filter(|s| s.owner == owner)
                    .filter_map(|s| s.value.map(|v| (*k, s.lineage, s.stamp, *v)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        let live: Vec<&Channel<Sim>> = self
            .nodes
            .iter()
            .filter_map(|n| n.channel.as_ref())
            .collect();
        if live.len() != NODES {
            return Err("a node is still down after healing".into());
        }
        let owners: BTreeMap<&NodeId, BTreeSet<(u8, Hlc, Hlc, u64)>> = live
            .iter()
            .map(|c| (c.me(), Self::partition(c.replica(), c.me())))
            .collect();
        for c in &live {
            for (owner, truth) in &owners {
                let copy = Self::partition(c.replica(), owner);
                if copy != *truth {
                    return Err(format!(
                        "{} holds {} slots of {owner}, which holds {}: not converged",
                        c.me(),
                        copy.len(),
                        truth.len()
                    ));
                }
            }
            for dead in &self.dead {
                if c.replica()
                    .keys()
                    .any(|k| c.replica().slots(k).any(|s| s.owner == dead))
                {
                    return Err(format!("{} still holds slots of dead {dead}", c.me()));
                }
            }
            let unknown: Vec<NodeId> = c
                .replica()
                .owners()
                .into_iter()
                .filter(|o| !owners.contains_key(o))
                .filter(|o| !Self::partition(c.replica(), o).is_empty())
                .collect();
            if !unknown.is_empty() {
                return Err(format!("{} holds live slots of {unknown:?}", c.me()));
            }
        }
        Ok(())
    }
}

fn run_seed(seed: u64) -> Result<Faults, String> {
    let mut world = World::new(seed);
    world.run()?;
    world.faults.resyncs = world
        .nodes
        .iter()
        .filter_map(|n| n.channel.as_ref())
        .map(|c| c.counters().syncs_received)
        .sum();
    Ok(world.faults)
}

#[test]
fn replicas_converge_over_a_lossy_network_with_crashes_and_rejoins() {
    if let Some(seed) = std::env::var("DROVE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let seeds: u64 = std::env::var("DROVE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut total = Faults::default();
    let mut failures = Vec::new();
    for seed in 0..seeds {
        match run_seed(seed) {
            Ok(f) => {
                total.crashes += f.crashes;
                total.false_downs += f.false_downs;
                total.partitions += f.partitions;
                total.lost += f.lost;
                total.duplicated += f.duplicated;
                total.resyncs += f.resyncs;
            }
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    println!("{seeds} seeds went through {total:?}");
    if seeds >= 100 {
        assert!(
            total.crashes > 0
                && total.false_downs > 0
                && total.partitions > 0
                && total.lost > 0
                && total.duplicated > 0
                && total.resyncs > 0,
            "the simulation did not exercise every fault: {total:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed (replay one with DROVE_SIM_SEED=<seed>):\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The checks can fail: a write whose delta is lost shows as a replica
/// that has not converged, until anti-entropy repairs it.
#[test]
fn the_checks_notice_a_lost_delta_until_anti_entropy_repairs_it() {
    let mut world = World::new(7);
    world.chaos = false;
    for _ in 0..400 {
        world.ticks();
        world.deliver();
        world.now += STEP_MS;
    }
    assert_eq!(world.check(), Ok(()));
    let wall = world.wall();
    let lost = world.nodes[0]
        .channel
        .as_mut()
        .map(|c| c.write(wall, |w| w.put(0, None, 42)).1)
        .unwrap();
    assert_eq!(lost.len(), NODES - 1, "one delta per peer");
    assert!(world.check().is_err(), "the lost write must show");
    for _ in 0..400 {
        world.ticks();
        world.deliver();
        world.now += STEP_MS;
    }
    assert_eq!(world.check(), Ok(()));
}
