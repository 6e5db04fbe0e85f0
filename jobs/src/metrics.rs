//! Job counters by queue, rendered for Prometheus: runs by outcome, run
//! duration and fetch latency as histograms, args sizes, and the store's
//! counts by state (refreshed by the heartbeat).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::store::QueueInfo;

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{bound}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default, Clone)]
struct QueueMetrics {
    outcomes: BTreeMap<&'static str, u64>,
    duration: Histogram,
    fetch: Histogram,
    fetched: u64,
    args_bytes: u64,
    enqueued: u64,
}

/// One node's job counters.
#[derive(Debug, Default)]
pub struct JobMetrics {
    queues: Mutex<BTreeMap<String, QueueMetrics>>,
    counts: Mutex<Vec<QueueInfo>>,
}

/// How a run ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Retried,
    Dead,
    /// Put off by the worker ([`JobError::Snooze`](crate::JobError::Snooze)).
    Snoozed,
    /// Cancelled, rescued elsewhere, or refused by the store's fence.
    Lost,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Retried => "retried",
            Outcome::Dead => "dead",
            Outcome::Snoozed => "snoozed",
            Outcome::Lost => "lost",
        }
    }
}

impl JobMetrics {
    fn with(&self, queue: &str, f: impl FnOnce(&mut QueueMetrics)) {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        f(queues.entry(queue.to_owned()).or_default());
    }

    pub(crate) fn enqueued(&self, queue: &str, args_bytes: usize) {
        self.with(queue, |m| {
            m.enqueued += 1;
            m.args_bytes += args_bytes as u64;
        });
    }

    pub(crate) fn fetched(&self, queue: &str, jobs: usize, took: Duration) {
        self.with(queue, |m| {
            m.fetch.observe(took.as_secs_f64());
            m.fetched += jobs as u64;
        });
    }

    pub(crate) fn ran(&self, queue: &str, outcome: Outcome, took: Option<Duration>) {
        self.with(queue, |m| {
            *m.outcomes.entry(outcome.label()).or_default() += 1;
            if let Some(took) = took {
                m.duration.observe(took.as_secs_f64());
            }
        });
    }

    pub(crate) fn set_counts(&self, counts: Vec<QueueInfo>) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }

    /// Runs that ended with `outcome` on this node, all queues.
    pub fn outcome_total(&self, outcome: &str) -> u64 {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .values()
            .map(|m| m.outcomes.get(outcome).copied().unwrap_or(0))
            .sum()
    }

    /// Prometheus text.
    pub fn render(&self, node: &str) -> String {
        let mut out = String::new();
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let node = escape(node);
        for (queue, m) in &queues {
            let labels = format!("node=\"{node}\",queue=\"{}\"", escape(queue));
            let _ = writeln!(out, "drove_jobs_enqueued_total{{{labels}}} {}", m.enqueued);
            let _ = writeln!(
                out,
                "drove_jobs_args_bytes_total{{{labels}}} {}",
                m.args_bytes
            );
            let _ = writeln!(out, "drove_jobs_fetched_total{{{labels}}} {}", m.fetched);
            for (outcome, n) in &m.outcomes {
                let _ = writeln!(
                    out,
                    "drove_jobs_runs_total{{{labels},outcome=\"{outcome}\"}} {n}"
                );
            }
            m.duration
                .render(&mut out, "drove_jobs_duration_seconds", &labels);
            m.fetch
                .render(&mut out, "drove_jobs_fetch_seconds", &labels);
        }
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for info in counts {
            for (state, n) in &info.counts {
                let _ = writeln!(
                    out,
                    "drove_jobs_state{{node=\"{node}\",queue=\"{}\",state=\"{state}\"}} {n}",
                    escape(&info.queue)
                );
            }
        }
        out
    }
}

/// A label value as Prometheus text needs it (queue names come from users).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
