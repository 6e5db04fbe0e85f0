//! Rate-limited warnings: a flood of refused connections or datagrams makes
//! a counter and one log line per interval, never a line per event, so an
//! attacker cannot fill a disk through the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a [`Throttled`] warning may be written.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Counts events of one kind and writes at most one warning per
/// [`LOG_INTERVAL`], saying how many happened since the last one.
#[derive(Debug)]
pub struct Throttled {
    what: &'static str,
    since_last: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Throttled {
    /// A throttle for events described by `what` ("cluster connections
    /// refused", say).
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            since_last: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// Counts one event; writes a warning if none was written in the last
    /// interval. `detail` describes this event (the first of the interval
    /// is the one shown).
    pub fn note(&self, detail: impl std::fmt::Display) {
        let n = self.since_last.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < LOG_INTERVAL) {
            return;
        }
        *last = Some(now);
        self.since_last.fetch_sub(n, Ordering::Relaxed);
        tracing::warn!(
            events = n,
            "{} ({n} since the last line; one line per {} s at most): {detail}",
            self.what,
            LOG_INTERVAL.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_line() {
        let t = Throttled::new("test events");
        for i in 0..10_000 {
            t.note(i);
        }
        // The first event logged; the rest wait for the next interval.
        assert_eq!(t.since_last.load(Ordering::Relaxed), 9_999);
    }
}
