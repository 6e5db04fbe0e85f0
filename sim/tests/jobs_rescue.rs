//! The jobs rescue rules on the simulation floor, against the real SQLite
//! store (in memory, its time given by the simulated clock) and each
//! node's real `Caretaker` (when to rescue, renew and sweep): three nodes
//! fetch jobs under leases, work on them for a while, renew their leases
//! on the caretaker's heartbeat and complete them; they crash (the
//! survivors' caretakers rescue the dead consumer's jobs once membership
//! declares it down), freeze past their leases (a caretaker's sweep of
//! expired leases hands their jobs back), and are wrongly declared down
//! (their jobs are rescued while they still work on them, and they go on
//! under a new consumer name). The invariants:
//!
//! - **fenced**, at every step: no job's completion is accepted twice; a
//!   completion is accepted only from the attempt and consumer that hold
//!   the job;
//! - **nothing lost**: once the faults stop, every job completes.

use std::collections::BTreeMap;

use drove_jobs::caretaker::{Caretaker, Chore};
use drove_jobs::job::{Attempt, JobId, JobState, NewJob};
use drove_jobs::sqlite::SqliteStore;
use drove_jobs::store::{FetchRequest, Fetched, JobStore, RescueReason};
use drove_sim::{run_seeds, Failure, Faults, NetConfig, Sim, Wake};
use rand::Rng;

const NODES: usize = 3;
const JOBS: usize = 8;
const STEP_MS: u64 = 10;
const LEASE_MS: u64 = 300;
const HEARTBEAT_MS: u64 = 100;
/// How often a node with room asks for a job (its pipeline's poll).
const POLL_MS: u64 = 50;
const CHAOS_MS: u64 = 3000;
const QUIET_MS: u64 = 20_000;
/// Simulated wall clock at the start, as the store sees it.
const EPOCH_MS: u64 = 1_700_000_000_000;

/// A job a node works on: the attempt it holds and when the work ends.
struct Work {
    attempt: Attempt,
    done_at: u64,
}

struct Node {
    consumer: String,
    held: Vec<Work>,
    /// When this node rescues, renews and sweeps.
    care: Caretaker,
}

struct World {
    sim: Sim<()>,
    rt: tokio::runtime::Runtime,
    store: SqliteStore,
    nodes: Vec<Node>,
    /// Completions the store accepted, per job.
    accepted: BTreeMap<JobId, u32>,
    /// Downs membership has still to declare: (when, node, its consumer).
    pending_downs: Vec<(u64, usize, String)>,
}

impl World {
    fn new(seed: u64) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())?;
        let store = SqliteStore::open(":memory:").map_err(|e| e.to_string())?;
        let jobs: Vec<NewJob> = (0..JOBS)
            .map(|i| NewJob {
                queue: "q".into(),
                worker: "w".into(),
                args: format!("{i}"),
                priority: 0,
                max_retries: 1000,
                run_at_ms: EPOCH_MS,
                unique: None,
            })
            .collect();
        rt.block_on(store.enqueue(&jobs, EPOCH_MS))
            .map_err(|e| e.to_string())?;
        let nodes = (0..NODES)
            .map(|i| Node {
                consumer: format!("n{i}#1"),
                held: Vec::new(),
                care: Caretaker::new(EPOCH_MS + i as u64 * STEP_MS, HEARTBEAT_MS),
            })
            .collect();
        Ok(World {
            sim: Sim::new(seed, NODES, NetConfig::reliable()),
            rt,
            store,
            nodes,
            accepted: BTreeMap::new(),
            pending_downs: Vec::new(),
        })
    }

    fn wall(&self) -> u64 {
        EPOCH_MS + self.sim.now()
    }

    fn store_error(&self, what: &str, e: impl std::fmt::Display) -> Failure {
        self.sim.fail(format!("the store failed to {what}: {e}"))
    }

    /// Node `i` fetches one job when it holds fewer than two.
    fn fetch(&mut self, i: usize) -> Result<(), Failure> {
        if self.nodes[i].held.len() >= 2 {
            return Ok(());
        }
        let now = self.wall();
        let consumer = self.nodes[i].consumer.clone();
        let fetched = self.rt.block_on(self.store.fetch(FetchRequest {
            queue: "q",
            consumer: &consumer,
            limit: 1,
            now_ms: now,
            lease_until_ms: now + LEASE_MS,
            rate: None,
        }));
        let jobs = match fetched {
            Ok(Fetched::Jobs(jobs)) => jobs,
            Ok(other) => return Err(self.sim.fail(format!("fetch answered {other:?}"))),
            Err(e) => return Err(self.store_error("fetch", e)),
        };
        for job in jobs {
            let work_ms = self.sim.rng.random_range(50..500);
            self.sim.note(format!(
                "{consumer} takes job {} attempt {}",
                job.id, job.attempt
            ));
            self.nodes[i].held.push(Work {
                attempt: Attempt {
                    id: job.id,
                    attempt: job.attempt,
                },
                done_at: self.sim.now() + work_ms,
            });
        }
        Ok(())
    }

    /// Node `i` completes the work that is done.
    fn complete(&mut self, i: usize) -> Result<(), Failure> {
        let now = self.sim.now();
        let (done, rest): (Vec<Work>, Vec<Work>) = std::mem::take(&mut self.nodes[i].held)
            .into_iter()
            .partition(|w| w.done_at <= now);
        self.nodes[i].held = rest;
        if done.is_empty() {
            return Ok(());
        }
        let consumer = self.nodes[i].consumer.clone();
        let attempts: Vec<Attempt> = done.iter().map(|w| w.attempt).collect();
        let refused = self
            .rt
            .block_on(self.store.complete(&consumer, &attempts, self.wall()))
            .map_err(|e| self.store_error("complete", e))?;
        for a in attempts {
            if refused.contains(&a.id) {
                self.sim.faults.note("fenced");
                self.sim.note(format!(
                    "{consumer} completes job {} attempt {}: refused",
                    a.id, a.attempt
                ));
                continue;
            }
            self.sim.note(format!(
                "{consumer} completes job {} attempt {}",
                a.id, a.attempt
            ));
            let n = self.accepted.entry(a.id).or_default();
            *n += 1;
            if *n > 1 {
                return Err(self
                    .sim
                    .fail(format!("fenced: job {} completed {n} times", a.id)));
            }
        }
        Ok(())
    }

    /// Node `i`'s heartbeat: renews what it holds, drops what it lost.
    fn renew(&mut self, i: usize) -> Result<(), Failure> {
        if self.nodes[i].held.is_empty() {
            return Ok(());
        }
        let consumer = self.nodes[i].consumer.clone();
        let attempts: Vec<Attempt> = self.nodes[i].held.iter().map(|w| w.attempt).collect();
        let lost = self
            .rt
            .block_on(
                self.store
                    .renew(&consumer, &attempts, self.wall() + LEASE_MS),
            )
            .map_err(|e| self.store_error("renew", e))?;
        if !lost.is_empty() {
            self.sim.faults.note("lease_lost");
            self.sim
                .note(format!("{consumer} lost {lost:?}; stops their work"));
            self.nodes[i].held.retain(|w| !lost.contains(&w.attempt.id));
        }
        Ok(())
    }

    fn sweep(&mut self) -> Result<(), Failure> {
        let n = self
            .rt
            .block_on(self.store.rescue_expired(self.wall()))
            .map_err(|e| self.store_error("rescue expired leases", e))?;
        if n > 0 {
            self.sim.faults.note("lease_expired");
            self.sim.note(format!("{n} expired leases handed back"));
        }
        Ok(())
    }

    /// Hands back what `consumer` holds (a caretaker's rescue chore).
    fn rescue(&mut self, consumer: &str) -> Result<(), Failure> {
        let wall = self.wall();
        let n = self
            .rt
            .block_on(self.store.rescue(consumer, RescueReason::NodeDown, wall))
            .map_err(|e| self.store_error("rescue", e))?;
        self.sim.note(format!("{consumer}'s {n} jobs rescued"));
        Ok(())
    }

    /// Membership declares `consumer`'s node down: every other running
    /// node's caretaker hears it.
    fn declare_down(&mut self, consumer: &str, except: usize) {
        let wall = self.wall();
        for j in self.sim.lives.running() {
            if j != except {
                self.nodes[j].care.gone(wall, consumer);
            }
        }
    }

    /// Node `i` does the chores its caretaker has due.
    fn chores(&mut self, i: usize) -> Result<(), Failure> {
        let wall = self.wall();
        for chore in self.nodes[i].care.due(wall) {
            match chore {
                Chore::Rescue(consumer) => {
                    self.rescue(&consumer)?;
                    self.nodes[i].care.rescued(wall, &consumer, true);
                }
                Chore::Renew => self.renew(i)?,
                Chore::Sweep => self.sweep()?,
                Chore::Prune => {}
            }
        }
        Ok(())
    }

    fn chaos(&mut self) -> Result<(), Failure> {
        let i = self.sim.rng.random_range(0..NODES);
        let roll: f64 = self.sim.rng.random();
        if roll < 0.003 {
            let down_ms = self.sim.rng.random_range(100..800);
            if self.sim.lives.is_running(i) {
                self.nodes[i].held.clear();
                let detect = self.sim.now() + self.sim.rng.random_range(50..300);
                self.pending_downs
                    .push((detect, i, self.nodes[i].consumer.clone()));
                self.sim.crash(i, down_ms);
            }
        } else if roll < 0.006 {
            let ms = self.sim.rng.random_range(100..1500);
            self.sim.freeze(i, ms);
        } else if roll < 0.008 && self.sim.lives.is_running(i) {
            // Wrongly declared down: its jobs are rescued while it works
            // on them, and it goes on as a new incarnation (its own
            // caretaker rescues the old one too, as on a rejoin).
            self.sim.faults.note("false_down");
            let old = self.nodes[i].consumer.clone();
            self.sim.note(format!("{old} wrongly declared down"));
            self.declare_down(&old, i);
            let inc = self.sim.lives.rejoin(i);
            self.nodes[i].consumer = format!("n{i}#{inc}");
            let wall = self.wall();
            self.nodes[i].care.gone(wall, &old);
        }
        Ok(())
    }

    fn step(&mut self, chaos: bool) -> Result<(), Failure> {
        for (i, wake) in self.sim.wake_due() {
            if let Wake::Restarted { incarnation } = wake {
                // A new process: a new caretaker, which finds the jobs its
                // earlier incarnations still hold.
                let me = format!("n{i}#{incarnation}");
                let wall = self.wall();
                let holders = self
                    .rt
                    .block_on(self.store.consumers())
                    .map_err(|e| self.store_error("list consumers", e))?;
                let mut care = Caretaker::new(wall, HEARTBEAT_MS);
                care.started(wall, &me, &format!("n{i}"), &holders);
                self.nodes[i].care = care;
                self.nodes[i].consumer = me;
            }
        }
        if chaos {
            self.chaos()?;
        }
        let now = self.sim.now();
        let due: Vec<(u64, usize, String)> = self
            .pending_downs
            .iter()
            .filter(|(at, ..)| *at <= now)
            .cloned()
            .collect();
        self.pending_downs.retain(|(at, ..)| *at > now);
        for (_, i, consumer) in due {
            self.sim.note(format!("{consumer} declared down"));
            self.declare_down(&consumer, i);
        }
        for i in self.sim.lives.running() {
            self.complete(i)?;
            self.chores(i)?;
            if now % POLL_MS == (i as u64 * STEP_MS) % POLL_MS {
                self.fetch(i)?;
            }
        }
        self.sim.advance(STEP_MS);
        Ok(())
    }

    fn run(&mut self) -> Result<(), Failure> {
        while self.sim.now() < CHAOS_MS {
            self.step(true)?;
        }
        let end = self.sim.now() + QUIET_MS;
        while self.sim.now() < end && self.accepted.len() < JOBS {
            self.step(false)?;
        }
        for id in 1..=JOBS as u64 {
            let job = self
                .rt
                .block_on(self.store.get(JobId(id)))
                .map_err(|e| self.store_error("read a job", e))?;
            let state = job.map(|j| j.state);
            if state != Some(JobState::Completed) || self.accepted.get(&JobId(id)) != Some(&1) {
                return Err(self.sim.fail(format!(
                    "nothing lost: job {id} is {state:?}, completed {:?} times",
                    self.accepted.get(&JobId(id))
                )));
            }
        }
        Ok(())
    }
}

fn run_seed(seed: u64) -> Result<Faults, Failure> {
    let mut world = World::new(seed).map_err(|e| Failure {
        at_ms: 0,
        message: format!("setting up: {e}"),
        trace: Vec::new(),
    })?;
    world.run()?;
    Ok(world.sim.faults)
}

/// Every store call goes through the store's blocking pool, so a seed costs
/// milliseconds: the debug build (the workspace's CI run) takes fewer.
const SEEDS: u64 = if cfg!(debug_assertions) { 300 } else { 1000 };

#[test]
fn each_job_completes_once_through_crashes_freezes_and_false_downs() {
    run_seeds(
        "jobs rescue",
        SEEDS,
        &[
            "crash",
            "freeze",
            "false_down",
            "fenced",
            "lease_lost",
            "lease_expired",
        ],
        run_seed,
    );
}

/// The fence is live: a node that completes a job after it was rescued
/// from it is refused, and nothing is counted.
#[test]
fn a_rescued_attempt_cannot_complete() {
    let mut world = World::new(1).unwrap_or_else(|e| panic!("{e}"));
    world.fetch(0).unwrap_or_else(|f| panic!("{f}"));
    let consumer = world.nodes[0].consumer.clone();
    world.declare_down(&consumer, 0);
    world.chores(1).unwrap_or_else(|f| panic!("{f}"));
    world.nodes[0].held.iter_mut().for_each(|w| w.done_at = 0);
    world.complete(0).unwrap_or_else(|f| panic!("{f}"));
    assert!(world.accepted.is_empty());
    assert_eq!(world.sim.faults.count("fenced"), 1);
}

/// The checks can fail: a job whose completion was already counted, once
/// accepted again, fails the run.
#[test]
fn the_checks_notice_a_job_completed_twice() {
    let mut world = World::new(1).unwrap_or_else(|e| panic!("{e}"));
    world.fetch(0).unwrap_or_else(|f| panic!("{f}"));
    let id = world.nodes[0].held[0].attempt.id;
    world.accepted.insert(id, 1);
    world.nodes[0].held.iter_mut().for_each(|w| w.done_at = 0);
    let failed = world.complete(0).err().map(|f| f.message);
    assert_eq!(failed, Some(format!("fenced: job {id} completed 2 times")));
}
