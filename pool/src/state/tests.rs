//! The pool's laws, over random sequences of events.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn limits(min: usize, max: usize, conc: usize, single_use: bool) -> Limits {
    Limits {
        min,
        max,
        max_concurrency: conc,
        single_use,
        idle_ms: 1_000,
        min_idle_ms: None,
        max_limit: 8,
        max_booting: 3,
    }
}

/// A pool and what its actions did, driven like the pool task drives it.
struct Harness {
    state: PoolState,
    now: u64,
    assigned: Vec<WaiterId>,
    holding: Vec<(WaiterId, RunnerId)>,
    uses: BTreeMap<RunnerId, u64>,
    stopping: BTreeSet<RunnerId>,
    next_waiter: WaiterId,
}

impl Harness {
    fn new(limits: Limits) -> Self {
        Harness {
            state: PoolState::new(limits),
            now: 0,
            assigned: Vec::new(),
            holding: Vec::new(),
            uses: BTreeMap::new(),
            stopping: BTreeSet::new(),
            next_waiter: 1,
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Assign { waiter, runner } => {
                    self.assigned.push(waiter);
                    self.holding.push((waiter, runner));
                    *self.uses.entry(runner).or_default() += 1;
                }
                Action::Stop(runner) => {
                    self.stopping.insert(runner);
                }
                Action::Boot(_) | Action::Fail { .. } => {}
            }
            self.check();
        }
    }

    fn check(&self) {
        let l = self.state.limits();
        assert!(
            self.state.runners.len() + self.state.booting.len() <= l.max.max(self.was_max()),
            "above max"
        );
        assert!(
            self.state.booting.len() <= l.max_booting,
            "too many booting at once"
        );
        for r in self.state.runners.values() {
            assert!(r.busy <= l.max_concurrency, "slot overbooked");
        }
        if l.single_use {
            assert!(
                self.uses.values().all(|&n| n <= 1),
                "a single-use runner served twice"
            );
        }
    }

    fn was_max(&self) -> usize {
        self.state.limits().max
    }

    fn call(&mut self, deadline_in: u64) {
        let w = self.next_waiter;
        self.next_waiter += 1;
        let a = self.state.request(w, self.now, self.now + deadline_in);
        self.apply(a);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Call,
    Release(usize),
    BootOk,
    BootFail,
    StopDone,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Call),
        3 => (0usize..64).prop_map(Op::Release),
        3 => Just(Op::BootOk),
        1 => Just(Op::BootFail),
        2 => Just(Op::StopDone),
        2 => (1u64..2_000).prop_map(Op::Advance),
    ]
}

fn run(h: &mut Harness, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Call => h.call(5_000),
            Op::Release(i) if !h.holding.is_empty() => {
                let (_, runner) = h.holding.remove(i % h.holding.len());
                let a = h.state.release(runner, h.now);
                h.apply(a);
            }
            Op::BootOk => {
                if let Some(&id) = h.state.booting.iter().next() {
                    let a = h.state.booted(id, h.now);
                    h.apply(a);
                }
            }
            Op::BootFail => {
                if let Some(&id) = h.state.booting.iter().next() {
                    let a = h.state.boot_failed(id, h.now, "no".into());
                    h.apply(a);
                }
            }
            Op::StopDone => {
                if let Some(id) = h.stopping.pop_first() {
                    h.holding.retain(|&(_, r)| r != id);
                    let a = h.state.gone(id, h.now);
                    h.apply(a);
                }
            }
            Op::Advance(ms) => {
                h.now += ms;
                let a = h.state.tick(h.now);
                h.apply(a);
            }
            Op::Release(_) => {}
        }
    }
}

proptest! {
    /// FLAME #64: never more runners than max, whatever the burst.
    #[test]
    fn never_above_max_nor_overbooked(
        max in 1usize..5, conc in 1usize..4, single in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut h = Harness::new(limits(0, max, conc, single));
        run(&mut h, &ops);
    }

    /// Waiters with the same deadline are served in the order they came.
    #[test]
    fn callers_are_served_first_come_first_served(
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut h = Harness::new(limits(0, 2, 2, false));
        run(&mut h, &ops);
        let mut sorted = h.assigned.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, h.assigned);
    }

    /// FLAME #60: with boots succeeding, runners that are ready or booting
    /// never stay below min, single_use or not.
    #[test]
    fn min_is_kept(
        min in 1usize..3, single in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        let ops: Vec<Op> = ops.into_iter().filter(|o| !matches!(o, Op::BootFail)).collect();
        let mut h = Harness::new(limits(min, min + 2, 2, single));
        let a = h.state.tick(0);
        h.apply(a);
        run(&mut h, &ops);
        prop_assert!(h.state.live() >= min || h.state.total() >= h.state.limits().max);
    }
}

#[test]
fn grows_past_one_runner_under_concurrent_load() {
    // FLAME #56: a second caller beyond the first runner's slots boots a
    // second runner instead of waiting.
    let mut h = Harness::new(limits(0, 3, 1, false));
    h.call(5_000);
    h.call(5_000);
    assert_eq!(h.state.booting(), 2);
    let a = h.state.booted(1, 0);
    h.apply(a);
    let a = h.state.booted(2, 0);
    h.apply(a);
    assert_eq!(h.assigned, vec![1, 2]);
    let runners: BTreeSet<RunnerId> = h.holding.iter().map(|&(_, r)| r).collect();
    assert_eq!(runners.len(), 2);
}

#[test]
fn idle_runners_shrink_to_min_and_min_runners_stay() {
    let mut h = Harness::new(limits(1, 3, 1, false));
    let a = h.state.tick(0);
    assert_eq!(a, vec![Action::Boot(1)]);
    let a = h.state.booted(1, 0);
    h.apply(a);
    h.call(5_000);
    h.call(5_000);
    let a = h.state.booted(2, 0);
    h.apply(a);
    for (_, runner) in std::mem::take(&mut h.holding) {
        let a = h.state.release(runner, 10);
        h.apply(a);
    }
    let a = h.state.tick(500);
    assert!(a.is_empty(), "nothing idles down before idle_ms: {a:?}");
    let a = h.state.tick(1_010);
    assert_eq!(a.iter().filter(|a| matches!(a, Action::Stop(_))).count(), 1);
    let a = h.state.tick(100_000);
    assert!(a.is_empty(), "the min runner stays: {a:?}");
}

#[test]
fn a_failed_boot_fails_waiters_and_backs_off() {
    let mut h = Harness::new(limits(0, 2, 1, false));
    h.call(60_000);
    let a = h.state.boot_failed(1, 0, "exit status 127".into());
    assert!(a.contains(&Action::Fail {
        waiter: 1,
        reason: Refusal::BootFailed("exit status 127".into())
    }));
    h.call(60_000);
    assert_eq!(h.state.booting(), 0, "no boot during the backoff");
    let a = h.state.tick(BACKOFF_MS);
    assert_eq!(a, vec![Action::Boot(2)]);
}

#[test]
fn a_waiter_past_its_deadline_fails() {
    let mut h = Harness::new(limits(0, 1, 1, false));
    h.call(100);
    let a = h.state.tick(100);
    assert_eq!(
        a,
        vec![Action::Fail {
            waiter: 1,
            reason: Refusal::Deadline
        }]
    );
}

/// One request that raises min to the ceiling boots a few at a time, and
/// no request may raise max past the ceiling.
#[test]
fn bounds_have_a_ceiling_and_boots_a_rate() {
    let mut h = Harness::new(limits(0, 1, 1, false));
    assert!(h.state.set_bounds(200, 200, 0).is_err());
    assert!(h.state.set_bounds(9, 9, 0).is_err());
    assert_eq!(h.state.limits().max, 1);
    let actions = h.state.set_bounds(8, 8, 0).expect("within the ceiling");
    h.apply(actions);
    assert_eq!(h.state.booting(), 3, "three boots at a time");
    let first = *h.state.booting.iter().next().expect("one booting");
    let actions = h.state.booted(first, 1);
    h.apply(actions);
    assert_eq!(
        h.state.booting(),
        3,
        "a ready runner makes room for the next boot"
    );
    assert_eq!(h.state.total(), 4, "one ready, three booting");
}

#[test]
fn lowering_max_drains_idle_runners_above_it() {
    let mut h = Harness::new(limits(2, 2, 1, false));
    let a = h.state.tick(0);
    h.apply(a);
    let a = h.state.booted(1, 0);
    h.apply(a);
    let a = h.state.booted(2, 0);
    h.apply(a);
    let a = h.state.set_bounds(0, 1, 1).unwrap();
    assert_eq!(a.iter().filter(|a| matches!(a, Action::Stop(_))).count(), 1);
    let a = h.state.tick(2);
    assert!(
        a.is_empty(),
        "the runner within max stays while the other drains: {a:?}"
    );
    assert!(h.state.set_bounds(2, 1, 1).is_err());
}
