//! The registry's conflict rule on the simulation floor: nodes register
//! the same names on both sides of partitions, through loss, reordering,
//! crashes and freezes, each refusing a name it sees taken (as
//! `Registry::register` does) and dropping its own registrations that
//! lose (as the registry's observer does). The invariants:
//!
//! - **one winner, everywhere**, after the network heals: every name has
//!   exactly one live registration on every replica, the same one;
//! - **the earliest wins**: no surviving registration is later than
//!   another that was dropped for losing to it... checked as: the winner
//!   is the earliest live registration each replica ever saw survive;
//! - **every loser is told**: each registration that lost was dropped by
//!   its own node.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use drove_registry::schema::{losers, winner, RegValue, RegistrySchema};
use drove_replication::{Channel, Outgoing, ReplMsg, ReplicationConfig};
use drove_runtime::NodeId;
use drove_sim::{run_seeds, Failure, Faults, NetConfig, Sim, Wake};

mod common;
use common::Replicas;
use rand::Rng;

const NODES: usize = 3;
const NAMES: usize = 4;
const STEP_MS: u64 = 5;
const CHAOS_MS: u64 = 2000;
const HEAL_MS: u64 = 4000;
const TICK_MS: u64 = 100;
const EPOCH_MS: u64 = 1_700_000_000_000;

type Msg = ReplMsg<RegistrySchema>;

fn name(k: usize) -> Arc<str> {
    Arc::from(format!("name{k}").as_str())
}

struct World {
    sim: Sim<Msg>,
    replicas: Replicas<RegistrySchema>,
    next_local: u64,
    partition_until: Option<u64>,
    /// Registrations dropped for losing a conflict: (owner, local id).
    told: BTreeSet<(NodeId, u64)>,
    /// Whether nodes drop their losing registrations (off only to show
    /// that the checks notice when they do not).
    evicts: bool,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut world = World {
            sim: Sim::new(seed, NODES, NetConfig::lossy()),
            replicas: Replicas::new(
                NODES,
                ReplicationConfig {
                    anti_entropy_interval: Duration::from_millis(TICK_MS),
                    ..ReplicationConfig::default()
                },
            ),
            next_local: 1,
            partition_until: None,
            told: BTreeSet::new(),
            evicts: true,
        };
        for i in 0..NODES {
            world.boot(i);
        }
        world
    }

    fn wall(&self) -> u64 {
        EPOCH_MS + self.sim.now()
    }

    fn send(&mut self, from: usize, out: Vec<Outgoing<RegistrySchema>>) {
        self.replicas.send(&mut self.sim, from, out);
    }

    fn boot(&mut self, i: usize) {
        self.replicas.boot(&mut self.sim, i);
    }

    fn crash(&mut self, i: usize) {
        let down_ms = self.sim.rng.random_range(50..400);
        let wall = self.wall();
        self.replicas.crash(&mut self.sim, i, down_ms, wall);
    }

    /// Node `i` registers a random name, unless it sees it taken.
    fn register(&mut self, i: usize) {
        let k = self.sim.rng.random_range(0..NAMES);
        let local = self.next_local;
        self.next_local += 1;
        let wall = self.wall();
        let Some(c) = self.replicas.channels[i].as_mut() else {
            return;
        };
        if winner(c.replica(), &name(k)).is_some() {
            return;
        }
        let me = c.me().clone();
        let (_, out) = c.write(wall, |w| {
            w.put(name(k), None, RegValue { local, meta: None });
        });
        self.sim
            .note(format!("{me} registers name{k} as <{local}>"));
        self.send(i, out);
    }

    /// Node `i` drops its own registrations that lose, as the observer
    /// and the eviction task do.
    fn evict_losers(&mut self, i: usize) {
        if !self.evicts {
            return;
        }
        let wall = self.wall();
        let Some(c) = self.replicas.channels[i].as_mut() else {
            return;
        };
        let me = c.me().clone();
        let mut lost = Vec::new();
        for k in 0..NAMES {
            for l in losers(c.replica(), &name(k)) {
                if *l.owner == me {
                    if let Some(v) = l.value {
                        lost.push((name(k), l.lineage, v.local));
                    }
                }
            }
        }
        if lost.is_empty() {
            return;
        }
        let (_, out) = c.write(wall, |w| {
            for (key, lineage, _) in &lost {
                w.remove(key.clone(), *lineage);
            }
        });
        for (key, _, local) in lost {
            self.sim.faults.note("conflict");
            self.sim
                .note(format!("{me} drops its losing <{local}> of {key}"));
            self.told.insert((me.clone(), local));
        }
        self.send(i, out);
    }

    fn step(&mut self, chaos: bool) -> Result<(), Failure> {
        for (i, wake) in self.sim.wake_due() {
            if let Wake::Restarted { .. } = wake {
                self.boot(i);
            }
        }
        if chaos {
            let i = self.sim.rng.random_range(0..NODES);
            let roll: f64 = self.sim.rng.random();
            if roll < 0.05 && self.sim.lives.is_running(i) {
                self.register(i);
            } else if roll < 0.053 {
                self.crash(i);
            } else if roll < 0.056 {
                let ms = self.sim.rng.random_range(50..400);
                self.sim.freeze(i, ms);
            } else if roll < 0.07 && self.partition_until.is_none() {
                let side = vec![i];
                let rest: Vec<usize> = (0..NODES).filter(|&j| j != i).collect();
                self.sim.net.partition(&side, &rest);
                self.sim.faults.note("partition");
                self.sim.note(format!("n{i} cut from the others"));
                self.partition_until = Some(self.sim.now() + self.sim.rng.random_range(100..600));
            }
            if self.partition_until.is_some_and(|u| self.sim.now() >= u) {
                self.sim.net.heal();
                self.partition_until = None;
            }
        }
        let mut touched = BTreeSet::new();
        while let Some(d) = self.sim.deliver() {
            let wall = self.wall();
            let out = self.replicas.channels[d.to]
                .as_mut()
                .map(|c| c.handle(d.msg, wall))
                .unwrap_or_default();
            self.send(d.to, out);
            touched.insert(d.to);
        }
        for i in touched {
            self.evict_losers(i);
        }
        for i in self.sim.lives.running() {
            if (self.sim.now() / STEP_MS) % (TICK_MS / STEP_MS) == i as u64 {
                let wall = self.wall();
                let out = self.replicas.channels[i]
                    .as_mut()
                    .map(|c| c.tick(wall))
                    .unwrap_or_default();
                self.send(i, out);
            }
        }
        self.sim.advance(STEP_MS);
        Ok(())
    }

    fn check(&self) -> Result<(), Failure> {
        let live: Vec<&Channel<RegistrySchema>> = self.replicas.channels.iter().flatten().collect();
        for k in 0..NAMES {
            let key = name(k);
            let winners: Vec<Option<(NodeId, u64)>> = live
                .iter()
                .map(|c| {
                    winner(c.replica(), &key)
                        .and_then(|w| w.value.map(|v| (w.owner.clone(), v.local)))
                })
                .collect();
            if winners.windows(2).any(|w| w[0] != w[1]) {
                return Err(self.sim.fail(format!(
                    "one winner, everywhere: name{k} resolves to {winners:?}"
                )));
            }
            for c in &live {
                let alive = c
                    .replica()
                    .slots(&key)
                    .filter(|s| s.value.is_some())
                    .count();
                if alive > 1 {
                    return Err(self.sim.fail(format!(
                        "every loser is told: {} still holds {alive} registrations of name{k}",
                        c.me()
                    )));
                }
            }
            if let Some(Some(w)) = winners.first() {
                if self.told.contains(w) {
                    return Err(self.sim.fail(format!(
                        "the earliest wins: name{k}'s winner {w:?} was dropped as a loser"
                    )));
                }
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), Failure> {
        while self.sim.now() < CHAOS_MS {
            self.step(true)?;
        }
        self.sim.net.set_config(NetConfig::reliable());
        self.sim.net.heal();
        let end = self.sim.now() + HEAL_MS;
        while self.sim.now() < end {
            self.step(false)?;
        }
        self.check()
    }
}

#[test]
fn every_name_has_one_winner_after_conflicts() {
    run_seeds(
        "registry conflicts",
        1000,
        &[
            "conflict",
            "partition",
            "crash",
            "freeze",
            "lost",
            "reordered",
        ],
        |seed| {
            let mut world = World::new(seed);
            world.run()?;
            Ok::<Faults, Failure>(world.sim.faults)
        },
    );
}

/// The checks can fail: when nodes keep their losing registrations, a
/// name ends with two.
#[test]
fn the_checks_notice_a_loser_that_stays() {
    let kept = (0..50).any(|seed| {
        let mut world = World::new(seed);
        world.evicts = false;
        world.run().is_err()
    });
    assert!(
        kept,
        "no seed out of 50 left a losing registration in place"
    );
}

/// A seed replays exactly: the same faults, the same trace.
#[test]
fn a_seed_replays_exactly() {
    for seed in 0..200 {
        let run = || {
            let mut world = World::new(seed);
            let outcome = world.run();
            (outcome, world.sim.faults, world.sim.trace.lines())
        };
        assert_eq!(run(), run(), "seed {seed} ran two ways");
    }
}
