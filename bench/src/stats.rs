//! Percentiles and the result table.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `p`-th percentile (0..=100) of `samples`, by nearest rank.
pub(crate) fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values`.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Formats a duration in microseconds or milliseconds.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.0} us", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    }
}

/// Formats a rate.
pub(crate) fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2}M/s", per_sec / 1e6)
    } else {
        format!("{:.0}k/s", per_sec / 1e3)
    }
}

/// Wall-clock nanoseconds since the Unix epoch (processes of one machine
/// share the clock, so one-way latencies between them can be measured).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A child process, killed and reaped on drop.
pub(crate) struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
