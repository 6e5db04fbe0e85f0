//! Event counters, rendered for Prometheus: signalled, handled, failed and
//! dead deliveries, and how late deliveries started after their due time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

const LATENESS_BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// One node's event counters.
#[derive(Debug, Default)]
pub struct EventMetrics {
    signalled: AtomicU64,
    direct: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    dead: AtomicU64,
    lateness: [AtomicU64; LATENESS_BUCKETS.len()],
    lateness_count: AtomicU64,
    lateness_sum_ms: AtomicU64,
}

impl EventMetrics {
    pub(crate) fn signalled(&self, direct: bool) {
        self.signalled.fetch_add(1, Ordering::Relaxed);
        if direct {
            self.direct.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn handled(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, dead: bool) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if dead {
            self.dead.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A delivery started `late_ms` after its event was due.
    pub(crate) fn started(&self, late_ms: u64) {
        let seconds = late_ms as f64 / 1000.0;
        for (i, bound) in LATENESS_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.lateness[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.lateness_count.fetch_add(1, Ordering::Relaxed);
        self.lateness_sum_ms.fetch_add(late_ms, Ordering::Relaxed);
    }

    /// Deliveries handled on this node.
    pub fn handled_total(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (name, help, value) in [
            (
                "drove_events_signalled_total",
                "Events signalled here (direct ones included).",
                get(&self.signalled),
            ),
            (
                "drove_events_direct_total",
                "Events signalled here in direct mode.",
                get(&self.direct),
            ),
            (
                "drove_events_handled_total",
                "Deliveries handled here.",
                get(&self.handled),
            ),
            (
                "drove_events_failed_total",
                "Delivery attempts that failed here.",
                get(&self.failed),
            ),
            (
                "drove_events_dead_total",
                "Deliveries dead-lettered here.",
                get(&self.dead),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let name = "drove_events_lateness_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How long after its due time a delivery started.\n# TYPE {name} histogram"
        );
        for (i, bound) in LATENESS_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                get(&self.lateness[i])
            );
        }
        let count = get(&self.lateness_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {count}",
            get(&self.lateness_sum_ms) as f64 / 1000.0
        );
        out
    }
}
