//! A pool's counters, rendered for Prometheus with a `pool` label.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one pool. Times are summaries (`_sum` in seconds and
/// `_count`).
#[derive(Debug, Default)]
pub struct PoolMetrics {
    boots: AtomicU64,
    boot_failures: AtomicU64,
    boot_us: AtomicU64,
    booted: AtomicU64,
    calls: AtomicU64,
    call_failures: AtomicU64,
    call_us: AtomicU64,
    timeouts: AtomicU64,
    queue_us: AtomicU64,
    queued: AtomicU64,
}

fn add(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl PoolMetrics {
    pub(crate) fn boot_started(&self) {
        add(&self.boots, 1);
    }

    pub(crate) fn boot_failed(&self) {
        add(&self.boot_failures, 1);
    }

    pub(crate) fn booted(&self, took: Duration) {
        add(&self.booted, 1);
        add(&self.boot_us, took.as_micros() as u64);
    }

    pub(crate) fn waited(&self, took: Duration) {
        add(&self.queued, 1);
        add(&self.queue_us, took.as_micros() as u64);
    }

    pub(crate) fn called(&self, took: Duration, ok: bool, timed_out: bool) {
        add(&self.calls, 1);
        add(&self.call_us, took.as_micros() as u64);
        if !ok {
            add(&self.call_failures, 1);
        }
        if timed_out {
            add(&self.timeouts, 1);
        }
    }

    /// Boots started so far.
    pub fn boots(&self) -> u64 {
        get(&self.boots)
    }

    /// Calls finished so far (failed ones included).
    pub fn calls(&self) -> u64 {
        get(&self.calls)
    }

    /// Callers that waited for a slot so far, and their total wait.
    pub fn queue_wait(&self) -> (u64, Duration) {
        (
            get(&self.queued),
            Duration::from_micros(get(&self.queue_us)),
        )
    }

    /// Appends this pool's lines; `runners` is (state, count) pairs.
    pub fn render(&self, pool: &str, runners: &[(&str, usize)], waiting: usize, out: &mut String) {
        let l = format!("pool=\"{pool}\"");
        for (state, n) in runners {
            let _ = writeln!(out, "drove_pool_runners{{{l},state=\"{state}\"}} {n}");
        }
        let secs = |us: u64| us as f64 / 1e6;
        let lines = [
            ("drove_pool_waiting", waiting as f64),
            ("drove_pool_boots_total", get(&self.boots) as f64),
            (
                "drove_pool_boot_failures_total",
                get(&self.boot_failures) as f64,
            ),
            ("drove_pool_boot_seconds_sum", secs(get(&self.boot_us))),
            ("drove_pool_boot_seconds_count", get(&self.booted) as f64),
            ("drove_pool_calls_total", get(&self.calls) as f64),
            (
                "drove_pool_call_failures_total",
                get(&self.call_failures) as f64,
            ),
            ("drove_pool_timeouts_total", get(&self.timeouts) as f64),
            ("drove_pool_call_seconds_sum", secs(get(&self.call_us))),
            ("drove_pool_call_seconds_count", get(&self.calls) as f64),
            (
                "drove_pool_queue_wait_seconds_sum",
                secs(get(&self.queue_us)),
            ),
            (
                "drove_pool_queue_wait_seconds_count",
                get(&self.queued) as f64,
            ),
        ];
        for (name, value) in lines {
            let _ = writeln!(out, "{name}{{{l}}} {value}");
        }
    }
}
