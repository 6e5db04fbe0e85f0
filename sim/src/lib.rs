//! drove's simulation floor: the distributed decisions of every crate
//! (replication, the supervisor's decider, the registry's conflicts, the
//! jobs rescue) run here as pure state machines over one seeded world, so
//! a race is found by a seed in CI and replayed exactly, instead of by
//! luck in a multi-process test.
//!
//! A scenario drives its nodes' state machines; this crate supplies what
//! happens between them:
//!
//! - [`net`]: one network model. Each message may be lost, duplicated,
//!   delayed (and so reordered), or kept in order per link
//!   ([`NetConfig::fifo`]); partitions cut links both ways or one way and
//!   heal; what crosses a cut link is dropped, and what was sent to an
//!   incarnation that has since crashed is never delivered to its
//!   successor.
//! - [`life`]: each node's life: running, crashed (it comes back as a new
//!   incarnation), or frozen (the SIGSTOP of a simulated node: it handles
//!   nothing while time passes, its inbox fills, and it wakes with a stale
//!   view).
//! - [`faults`]: what a run went through, so a scenario can show it
//!   exercised every fault it claims.
//! - [`trace`]: the last steps of a run, printed with its seed when an
//!   invariant fails.
//! - [`seeds`]: runs a scenario over many seeds, prints
//!   `scenario NAME: N seeds ok, faults: ...`, and replays one seed with
//!   `DROVE_SIM_SEED=S` (`DROVE_SIM_SEEDS=N` changes how many run).
//! - [`Sim`] ties them together around one seeded random source and a
//!   clock in milliseconds: time is an input of every state machine, so a
//!   run of simulated minutes takes milliseconds.
//!
//! The scenarios are this crate's tests (`cargo test --release -p
//! drove-sim`); each names the invariants it checks:
//!
//! - `tests/replication.rs`: replicas converge, purged owners stay out,
//!   reads see their writes;
//! - `tests/registry.rs`: every name ends with one winner, the same on
//!   every replica, and every loser is told;
//! - `tests/jobs_rescue.rs`: against the real SQLite store and each node's
//!   real `drove_jobs::caretaker::Caretaker`, no job's completion is
//!   accepted twice and none is lost through crashes, freezes past the
//!   lease and false downs.
//!
//! The cache's handoff scenario runs on this floor too, inside
//! `drove-cache` (`handoff_tests`), since it drives the cache's private
//! loss hook and tidying: no node stops showing a value it showed while
//! copies change hands.
//!
//! # Layout
//!
//! Bottom up: [`faults`], [`trace`], [`life`], [`net`] (uses `life` to
//! know who is running), [`seeds`] (uses `faults` and `trace`), then
//! [`Sim`] here.

pub mod faults;
pub mod life;
pub mod net;
pub mod seeds;
pub mod trace;

use rand::rngs::StdRng;
use rand::SeedableRng;

pub use faults::Faults;
pub use life::{Life, Lives, Wake};
pub use net::{Delivery, NetConfig, Network};
pub use seeds::{regression, run_seeds, Failure};
pub use trace::Trace;

/// Node indexes in a simulation are plain numbers, `0..n`.
pub type NodeIx = usize;

/// One simulated world: a seeded random source, a clock, the network, the
/// nodes' lives, the faults so far and a trace of the last steps.
#[derive(Debug)]
pub struct Sim<M> {
    /// Every random choice of the run comes from here, so the seed replays it.
    pub rng: StdRng,
    now_ms: u64,
    /// Messages in flight and the links' cuts.
    pub net: Network<M>,
    /// Which nodes run, and which incarnation.
    pub lives: Lives,
    /// What the run went through.
    pub faults: Faults,
    /// The last steps, for a failure's report.
    pub trace: Trace,
}

impl<M: Clone> Sim<M> {
    /// A world of `nodes` running nodes (incarnation 1 each) at time 0.
    pub fn new(seed: u64, nodes: usize, net: NetConfig) -> Self {
        Sim {
            rng: StdRng::seed_from_u64(seed),
            now_ms: 0,
            net: Network::new(net),
            lives: Lives::new(nodes),
            faults: Faults::default(),
            trace: Trace::default(),
        }
    }

    /// Simulated milliseconds since the start.
    pub fn now(&self) -> u64 {
        self.now_ms
    }

    /// Moves the clock on by `ms`.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// Sends `msg` from `from` to `to` (whichever incarnation `to` runs
    /// now), subject to the network's faults.
    pub fn send(&mut self, from: NodeIx, to: NodeIx, msg: M) {
        let incarnation = self.lives.incarnation(to);
        self.net.send(
            &mut self.rng,
            &mut self.faults,
            self.now_ms,
            from,
            (to, incarnation),
            msg,
        );
    }

    /// The next message due by now to a running node, if any. Messages to
    /// a frozen node wait for it; those to an incarnation that crashed are
    /// dropped; those crossing a cut link are dropped.
    pub fn deliver(&mut self) -> Option<Delivery<M>> {
        self.net
            .next_due(self.now_ms, &self.lives, &mut self.faults)
    }

    /// Crashes node `i` until `now + down_ms`: it comes back then, from
    /// [`Lives::wake_due`], as a new incarnation.
    pub fn crash(&mut self, i: NodeIx, down_ms: u64) {
        if self.lives.crash(i, self.now_ms + down_ms) {
            self.faults.note("crash");
            self.trace.note(self.now_ms, format!("n{i} crashed"));
        }
    }

    /// Freezes node `i` for `ms`: it handles nothing meanwhile.
    pub fn freeze(&mut self, i: NodeIx, ms: u64) {
        if self.lives.freeze(i, self.now_ms + ms) {
            self.faults.note("freeze");
            self.trace
                .note(self.now_ms, format!("n{i} frozen for {ms} ms"));
        }
    }

    /// Nodes whose crash or freeze ends by now, woken.
    pub fn wake_due(&mut self) -> Vec<(NodeIx, Wake)> {
        let woken = self.lives.wake_due(self.now_ms);
        for (i, w) in &woken {
            self.trace.note(self.now_ms, format!("n{i} {w:?}"));
        }
        woken
    }

    /// Notes a step in the trace.
    pub fn note(&mut self, what: impl Into<String>) {
        self.trace.note(self.now_ms, what.into());
    }

    /// A failure at this step: `message`, with the trace so far.
    pub fn fail(&self, message: impl Into<String>) -> Failure {
        Failure {
            at_ms: self.now_ms,
            message: message.into(),
            trace: self.trace.lines(),
        }
    }
}
