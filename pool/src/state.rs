//! The pool's decisions as a pure state machine: which runner takes a
//! caller, when to boot, when to shrink, who waits. No clocks or I/O: time
//! comes in as milliseconds and decisions go out as [`Action`]s, so the
//! laws (never above max, FIFO, min kept) are property-tested.
//!
//! Placement: the least-loaded ready runner under max_concurrency takes the
//! oldest waiter. Otherwise a runner boots if runners (draining and booting
//! ones included) are below max and the boots under way cannot cover the
//! waiters, unless a failed boot set a backoff, and at most `max_booting`
//! boot at once. Otherwise the caller waits in FIFO order until its
//! deadline.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A runner's number within its pool.
pub type RunnerId = u64;

/// A waiting caller's number.
pub type WaiterId = u64;

/// The limits a pool runs under (changeable at run time: [`PoolState::set_bounds`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Runners kept at all times.
    pub min: usize,
    /// Runners at most, booting and draining ones included.
    pub max: usize,
    /// Slots per runner.
    pub max_concurrency: usize,
    /// A runner takes one caller, then stops.
    pub single_use: bool,
    /// Idle time after which a runner above `min` stops.
    pub idle_ms: u64,
    /// Idle time after which a runner within `min` stops; never if `None`.
    pub min_idle_ms: Option<u64>,
    /// The highest `max` that [`PoolState::set_bounds`] takes.
    pub max_limit: usize,
    /// Runners booting at once at most: a min raised to the ceiling boots
    /// this many at a time, not all together.
    pub max_booting: usize,
}

/// Whether a runner takes callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunnerState {
    /// Up, taking callers up to max_concurrency.
    Ready,
    /// Told to stop; takes no one new.
    Draining,
}

/// What the pool should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Boot a runner under this id.
    Boot(RunnerId),
    /// Give a slot on `runner` to `waiter`.
    Assign {
        /// The caller.
        waiter: WaiterId,
        /// The runner.
        runner: RunnerId,
    },
    /// Tell `waiter` it gets no slot.
    Fail {
        /// The caller.
        waiter: WaiterId,
        /// Why.
        reason: Refusal,
    },
    /// Stop `runner` (idle, or done with its single use). An idle stop may
    /// be refused by the runner's idle check: [`PoolState::stop_refused`].
    Stop(RunnerId),
}

/// Why a waiter gets no slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its deadline passed.
    Deadline,
    /// Boots fail and no runner exists to wait for; the last failure.
    BootFailed(String),
}

#[derive(Clone, Debug)]
struct Runner {
    busy: usize,
    state: RunnerState,
    idle_since: u64,
    served: u64,
}

/// One runner as [`PoolState::runners`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerView {
    /// Its id.
    pub id: RunnerId,
    /// Slots in use.
    pub busy: usize,
    /// Ready or draining.
    pub state: RunnerState,
}

/// The pool's bookkeeping.
#[derive(Clone, Debug)]
pub struct PoolState {
    limits: Limits,
    runners: BTreeMap<RunnerId, Runner>,
    booting: BTreeSet<RunnerId>,
    waiting: VecDeque<(WaiterId, u64)>,
    next_runner: RunnerId,
    failures: u32,
    retry_at: u64,
    last_failure: Option<String>,
}

/// The first backoff after a failed boot; it doubles per failure.
const BACKOFF_MS: u64 = 200;
/// The longest backoff.
const MAX_BACKOFF_MS: u64 = 10_000;

impl PoolState {
    /// An empty pool.
    pub fn new(limits: Limits) -> Self {
        PoolState {
            limits,
            runners: BTreeMap::new(),
            booting: BTreeSet::new(),
            waiting: VecDeque::new(),
            next_runner: 1,
            failures: 0,
            retry_at: 0,
            last_failure: None,
        }
    }

    /// The current limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The runners that are up (ready or draining).
    pub fn runners(&self) -> Vec<RunnerView> {
        self.runners
            .iter()
            .map(|(&id, r)| RunnerView {
                id,
                busy: r.busy,
                state: r.state,
            })
            .collect()
    }

    /// Runners booting.
    pub fn booting(&self) -> usize {
        self.booting.len()
    }

    /// Callers waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Whether `runner` is up or booting.
    pub fn knows(&self, runner: RunnerId) -> bool {
        self.runners.contains_key(&runner) || self.booting.contains(&runner)
    }

    /// Whether `runner` is booting.
    pub fn is_booting(&self, runner: RunnerId) -> bool {
        self.booting.contains(&runner)
    }

    /// A caller wants a slot until `deadline`.
    pub fn request(&mut self, waiter: WaiterId, now: u64, deadline: u64) -> Vec<Action> {
        self.waiting.push_back((waiter, deadline));
        self.step(now)
    }

    /// A slot on `runner` is free again.
    pub fn release(&mut self, runner: RunnerId, now: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(r) = self.runners.get_mut(&runner) {
            r.busy = r.busy.saturating_sub(1);
            if r.busy == 0 {
                r.idle_since = now;
                if self.limits.single_use && r.state == RunnerState::Ready {
                    r.state = RunnerState::Draining;
                    actions.push(Action::Stop(runner));
                }
            }
        }
        actions.extend(self.step(now));
        actions
    }

    /// `runner` booted and joined.
    pub fn booted(&mut self, runner: RunnerId, now: u64) -> Vec<Action> {
        if !self.booting.remove(&runner) {
            return Vec::new();
        }
        self.failures = 0;
        self.last_failure = None;
        self.runners.insert(
            runner,
            Runner {
                busy: 0,
                state: RunnerState::Ready,
                idle_since: now,
                served: 0,
            },
        );
        self.step(now)
    }

    /// Booting `runner` failed; boots back off, and if no runner exists
    /// to wait for, the waiters fail with `reason`.
    pub fn boot_failed(&mut self, runner: RunnerId, now: u64, reason: String) -> Vec<Action> {
        if !self.booting.remove(&runner) {
            return Vec::new();
        }
        self.failures = self.failures.saturating_add(1);
        let shift = self.failures.saturating_sub(1).min(16);
        self.retry_at = now.saturating_add((BACKOFF_MS << shift).min(MAX_BACKOFF_MS));
        let mut actions = Vec::new();
        if self.runners.is_empty() && self.booting.is_empty() {
            actions.extend(self.waiting.drain(..).map(|(waiter, _)| Action::Fail {
                waiter,
                reason: Refusal::BootFailed(reason.clone()),
            }));
        }
        self.last_failure = Some(reason);
        actions.extend(self.step(now));
        actions
    }

    /// The last boot failure, while boots back off.
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }

    /// `runner` is gone (stopped, died, left).
    pub fn gone(&mut self, runner: RunnerId, now: u64) -> Vec<Action> {
        let was_booting = self.booting.remove(&runner);
        if self.runners.remove(&runner).is_none() && !was_booting {
            return Vec::new();
        }
        self.step(now)
    }

    /// The runner's idle check said no: it stays.
    pub fn stop_refused(&mut self, runner: RunnerId, now: u64) -> Vec<Action> {
        if let Some(r) = self.runners.get_mut(&runner) {
            r.state = RunnerState::Ready;
            r.idle_since = now;
        }
        self.step(now)
    }

    /// Time passed: deadlines, idle runners, boots due after a backoff.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        self.step(now)
    }

    /// New bounds at run time. Runners above a lower max drain as they
    /// become idle rather than being cut off mid-call.
    pub fn set_bounds(
        &mut self,
        min: usize,
        max: usize,
        now: u64,
    ) -> Result<Vec<Action>, &'static str> {
        if max == 0 {
            return Err("max must be at least 1");
        }
        if min > max {
            return Err("min must not exceed max");
        }
        if max > self.limits.max_limit {
            return Err("max must not exceed the pool's max_limit");
        }
        self.limits.min = min;
        self.limits.max = max;
        Ok(self.step(now))
    }

    fn live(&self) -> usize {
        self.booting.len()
            + self
                .runners
                .values()
                .filter(|r| r.state == RunnerState::Ready)
                .count()
    }

    fn total(&self) -> usize {
        self.runners.len() + self.booting.len()
    }

    fn slots_per_runner(&self) -> usize {
        if self.limits.single_use {
            1
        } else {
            self.limits.max_concurrency
        }
    }

    fn step(&mut self, now: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        self.expire(now, &mut actions);
        self.serve(&mut actions);
        self.boot(now, &mut actions);
        self.shrink(now, &mut actions);
        actions
    }

    fn expire(&mut self, now: u64, actions: &mut Vec<Action>) {
        self.waiting.retain(|&(waiter, deadline)| {
            let late = deadline <= now;
            if late {
                actions.push(Action::Fail {
                    waiter,
                    reason: Refusal::Deadline,
                });
            }
            !late
        });
    }

    fn serve(&mut self, actions: &mut Vec<Action>) {
        while let Some(&(waiter, _)) = self.waiting.front() {
            let limits = &self.limits;
            let free = self
                .runners
                .iter_mut()
                .filter(|(_, r)| r.state == RunnerState::Ready && r.busy < limits.max_concurrency)
                .filter(|(_, r)| !limits.single_use || r.served == 0)
                .min_by_key(|(_, r)| r.busy);
            let Some((&runner, r)) = free else { break };
            r.busy += 1;
            r.served += 1;
            self.waiting.pop_front();
            actions.push(Action::Assign { waiter, runner });
        }
    }

    fn boot(&mut self, now: u64, actions: &mut Vec<Action>) {
        if now < self.retry_at {
            return;
        }
        loop {
            let coming = self.booting.len() * self.slots_per_runner();
            let wanted = self.waiting.len() > coming || self.live() < self.limits.min;
            if !wanted
                || self.total() >= self.limits.max
                || self.booting.len() >= self.limits.max_booting.max(1)
            {
                break;
            }
            let id = self.next_runner;
            self.next_runner += 1;
            self.booting.insert(id);
            actions.push(Action::Boot(id));
        }
    }

    fn shrink(&mut self, now: u64, actions: &mut Vec<Action>) {
        let mut live_ready = self
            .runners
            .values()
            .filter(|r| r.state == RunnerState::Ready)
            .count();
        // Draining runners are on their way out already.
        let mut over_max = (self.booting.len() + live_ready).saturating_sub(self.limits.max);
        let mut idle: Vec<(u64, RunnerId)> = self
            .runners
            .iter()
            .filter(|(_, r)| r.state == RunnerState::Ready && r.busy == 0)
            .map(|(&id, r)| (r.idle_since, id))
            .collect();
        idle.sort_unstable();
        for (since, id) in idle {
            let idle_for = now.saturating_sub(since);
            let stop = if over_max > 0 {
                over_max -= 1;
                true
            } else if live_ready > self.limits.min {
                idle_for >= self.limits.idle_ms
            } else {
                self.limits.min_idle_ms.is_some_and(|t| idle_for >= t)
            };
            if stop {
                if let Some(r) = self.runners.get_mut(&id) {
                    r.state = RunnerState::Draining;
                }
                live_ready -= 1;
                actions.push(Action::Stop(id));
            }
        }
    }
}

#[cfg(test)]
mod tests;
