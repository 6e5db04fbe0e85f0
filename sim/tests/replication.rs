//! The replication channel on the simulation floor: four replicas over a
//! network that loses, duplicates, delays and reorders messages and cuts
//! links (both ways or one way), while members crash and come back as new
//! incarnations, freeze, or are wrongly declared down and rejoin. Then the
//! network heals, and the invariants hold:
//!
//! - **converged**: every live replica holds exactly each live owner's own
//!   partition;
//! - **purged owners stay out**: no slot of a dead incarnation survives
//!   anywhere, whatever stale copies the network still delivers;
//! - **read your writes**, checked at every write: a write is visible on
//!   its node as soon as it returns.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drove_replication::{
    Channel, Hlc, Outgoing, ReplMsg, ReplicationConfig, Schema, SchemaReplica,
};
use drove_runtime::NodeId;
use drove_sim::{run_seeds, Failure, Faults, NetConfig, Sim, Wake};

mod common;
use common::Replicas;
use rand::Rng;

struct Table;

impl Schema for Table {
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

type Msg = ReplMsg<Table>;

struct World {
    sim: Sim<Msg>,
    /// Each node's running channel; `None` while crashed.
    replicas: Replicas<Table>,
    next_tick: Vec<u64>,
    partition_until: Option<u64>,
    /// Incarnations declared down: no replica may hold their slots.
    dead: BTreeSet<NodeId>,
}

impl World {
    fn new(seed: u64, net: NetConfig) -> Self {
        let mut sim = Sim::new(seed, NODES, net);
        let next_tick = (0..NODES)
            .map(|_| sim.rng.random_range(0..TICK_MS))
            .collect();
        let mut world = World {
            sim,
            replicas: Replicas::new(NODES, config()),
            next_tick,
            partition_until: None,
            dead: BTreeSet::new(),
        };
        for i in 0..NODES {
            world.boot(i);
        }
        world
    }

    fn wall(&self) -> u64 {
        EPOCH_MS + self.sim.now()
    }

    fn id(&self, i: usize) -> Option<NodeId> {
        self.replicas.id(i)
    }

    fn send(&mut self, from: usize, out: Vec<Outgoing<Table>>) {
        self.replicas.send(&mut self.sim, from, out);
    }

    fn boot(&mut self, i: usize) {
        self.replicas.boot(&mut self.sim, i);
    }

    /// Node `i` dies; membership declares it down everywhere.
    fn crash(&mut self, i: usize) {
        let down_ms = self.sim.rng.random_range(50..400);
        let wall = self.wall();
        if let Some(gone) = self.replicas.crash(&mut self.sim, i, down_ms, wall) {
            self.dead.insert(gone);
        }
    }

    /// Node `i` is wrongly declared down: it lives on, learns it, and
    /// rejoins as a new incarnation with the same channel.
    fn false_down(&mut self, i: usize) {
        let Some(old) = self.id(i) else { return };
        self.sim.faults.note("false_down");
        self.sim.note(format!("{old} wrongly declared down"));
        self.dead.insert(old.clone());
        let wall = self.wall();
        self.replicas.declare_down(&mut self.sim, &old, wall);
        self.sim.lives.rejoin(i);
        let new = Replicas::current_id(&self.sim, i);
        if let Some(c) = self.replicas.channels[i].as_mut() {
            c.rejoined(&old, new.clone(), wall);
        }
        for j in (0..NODES).filter(|&j| j != i) {
            let Some(other) = self.id(j) else { continue };
            let out = self.replicas.channels[i]
                .as_mut()
                .map(|c| c.peer_up(other))
                .unwrap_or_default();
            self.send(i, out);
            let back = self.replicas.channels[j]
                .as_mut()
                .map(|c| c.peer_up(new.clone()))
                .unwrap_or_default();
            self.send(j, back);
        }
    }

    fn deliver(&mut self) {
        while let Some(d) = self.sim.deliver() {
            let wall = self.wall();
            let out = self.replicas.channels[d.to]
                .as_mut()
                .map(|c| c.handle(d.msg, wall))
                .unwrap_or_default();
            self.send(d.to, out);
        }
    }

    fn ticks(&mut self) {
        for i in self.sim.lives.running() {
            if self.sim.now() < self.next_tick[i] {
                continue;
            }
            self.next_tick[i] = self.sim.now() + TICK_MS;
            let wall = self.wall();
            let out = self.replicas.channels[i]
                .as_mut()
                .map(|c| c.tick(wall))
                .unwrap_or_default();
            self.send(i, out);
        }
    }

    /// A random write on a random running node, checked at once there.
    fn write(&mut self) -> Result<(), Failure> {
        let i = self.sim.rng.random_range(0..NODES);
        let key = self.sim.rng.random_range(0..KEYS);
        let remove = self.sim.rng.random_bool(0.3);
        let value: u64 = self.sim.rng.random();
        let wall = self.wall();
        if !self.sim.lives.is_running(i) {
            return Ok(());
        }
        let Some(c) = self.replicas.channels[i].as_mut() else {
            return Ok(());
        };
        let me = c.me().clone();
        let mine = |r: &SchemaReplica<Table>| {
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
        let broken = match (remove, held) {
            (true, Some(_)) if after.is_some() => {
                Some(format!("{me}: removed key {key} still shows"))
            }
            (false, _) if after.map(|(_, v)| v) != Some(Some(value)) => {
                Some(format!("{me}: wrote {value} to key {key}, reads {after:?}"))
            }
            _ => None,
        };
        if let Some(broken) = broken {
            return Err(self.sim.fail(format!("read your writes: {broken}")));
        }
        self.send(i, out);
        Ok(())
    }

    fn chaos_step(&mut self) -> Result<(), Failure> {
        if self.sim.rng.random_bool(0.4) {
            self.write()?;
        }
        let roll: f64 = self.sim.rng.random();
        let i = self.sim.rng.random_range(0..NODES);
        if roll < 0.004 {
            self.crash(i);
        } else if roll < 0.007 {
            self.false_down(i);
        } else if roll < 0.009 {
            let ms = self.sim.rng.random_range(50..400);
            self.sim.freeze(i, ms);
        } else if roll < 0.014 && self.partition_until.is_none() {
            let side: Vec<usize> = (0..NODES)
                .filter(|_| self.sim.rng.random_bool(0.4))
                .collect();
            let rest: Vec<usize> = (0..NODES).filter(|j| !side.contains(j)).collect();
            if side.is_empty() || rest.is_empty() {
                return Ok(());
            }
            if self.sim.rng.random_bool(0.3) {
                self.sim.net.cut_one_way(&side, &rest);
                self.sim.faults.note("one_way_cut");
                self.sim.note(format!("{side:?} cannot reach {rest:?}"));
            } else {
                self.sim.net.partition(&side, &rest);
                self.sim.faults.note("partition");
                self.sim.note(format!("{side:?} cut from {rest:?}"));
            }
            self.partition_until = Some(self.sim.now() + self.sim.rng.random_range(50..300));
        }
        if self
            .partition_until
            .is_some_and(|until| self.sim.now() >= until)
        {
            self.sim.net.heal();
            self.partition_until = None;
        }
        Ok(())
    }

    fn wake(&mut self) {
        for (i, wake) in self.sim.wake_due() {
            if let Wake::Restarted { .. } = wake {
                self.boot(i);
            }
        }
    }

    fn step(&mut self) {
        self.wake();
        self.ticks();
        self.deliver();
        self.sim.advance(STEP_MS);
    }

    fn run(&mut self) -> Result<(), Failure> {
        while self.sim.now() < CHAOS_MS {
            self.chaos_step()?;
            self.step();
        }
        // Heal: every node up, no loss, no cut, FIFO links.
        self.sim.net.set_config(NetConfig::reliable());
        self.sim.net.heal();
        self.partition_until = None;
        let end = self.sim.now() + HEAL_MS;
        while self.sim.now() < end {
            self.step();
        }
        self.check()
    }

    /// Each owner's live slots, as (key, lineage, stamp, value).
    fn partition(r: &SchemaReplica<Table>, owner: &NodeId) -> BTreeSet<(u8, Hlc, Hlc, u64)> {
        r.keys()
            .flat_map(|k| {
                r.slots(k)
                    .filter(|s| s.owner == owner)
                    .filter_map(|s| s.value.map(|v| (*k, s.lineage, s.stamp, *v)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn check(&self) -> Result<(), Failure> {
        let live: Vec<&Channel<Table>> = self.replicas.channels.iter().flatten().collect();
        if live.len() != NODES {
            return Err(self.sim.fail("a node is still down after healing"));
        }
        let owners: BTreeMap<&NodeId, BTreeSet<(u8, Hlc, Hlc, u64)>> = live
            .iter()
            .map(|c| (c.me(), Self::partition(c.replica(), c.me())))
            .collect();
        for c in &live {
            for (owner, truth) in &owners {
                let copy = Self::partition(c.replica(), owner);
                if copy != *truth {
                    return Err(self.sim.fail(format!(
                        "converged: {} holds {} slots of {owner}, which holds {}",
                        c.me(),
                        copy.len(),
                        truth.len()
                    )));
                }
            }
            for dead in &self.dead {
                if c.replica()
                    .keys()
                    .any(|k| c.replica().slots(k).any(|s| s.owner == dead))
                {
                    return Err(self.sim.fail(format!(
                        "purged owners stay out: {} still holds slots of dead {dead}",
                        c.me()
                    )));
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
                return Err(self.sim.fail(format!(
                    "purged owners stay out: {} holds live slots of {unknown:?}",
                    c.me()
                )));
            }
        }
        Ok(())
    }
}

fn run_seed(seed: u64) -> Result<Faults, Failure> {
    let mut world = World::new(seed, NetConfig::lossy());
    world.run()?;
    let resyncs: u64 = world
        .replicas
        .channels
        .iter()
        .flatten()
        .map(|c| c.counters().syncs_received)
        .sum();
    let mut faults = world.sim.faults;
    for _ in 0..resyncs.min(1) {
        faults.note("resync");
    }
    Ok(faults)
}

#[test]
fn replicas_converge_through_loss_crashes_freezes_and_cuts() {
    run_seeds(
        "replication",
        1000,
        &[
            "lost",
            "duplicated",
            "reordered",
            "crash",
            "freeze",
            "false_down",
            "partition",
            "one_way_cut",
            "cut",
            "resync",
        ],
        run_seed,
    );
}

/// The checks can fail: a write whose delta is lost shows as a replica
/// that has not converged, until anti-entropy repairs it.
#[test]
fn the_checks_notice_a_lost_delta_until_anti_entropy_repairs_it() {
    let mut world = World::new(7, NetConfig::reliable());
    for _ in 0..400 {
        world.step();
    }
    assert_eq!(world.check(), Ok(()));
    let wall = world.wall();
    let lost = world.replicas.channels[0]
        .as_mut()
        .map(|c| c.write(wall, |w| w.put(0, None, 42)).1)
        .unwrap_or_default();
    assert_eq!(lost.len(), NODES - 1, "one delta per peer");
    assert!(world.check().is_err(), "the lost write must show");
    for _ in 0..400 {
        world.step();
    }
    assert_eq!(world.check(), Ok(()));
}

/// A seed replays exactly: the same faults, the same trace.
#[test]
fn a_seed_replays_exactly() {
    for seed in 0..200 {
        let run = || {
            let mut world = World::new(seed, NetConfig::lossy());
            let outcome = world.run();
            (outcome, world.sim.faults, world.sim.trace.lines())
        };
        assert_eq!(run(), run(), "seed {seed} ran two ways");
    }
}
