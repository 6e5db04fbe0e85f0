//! [`Series`]: the last minutes of a node's rates, sampled from its
//! counters every [`SAMPLE_EVERY`], for the dashboard's charts. Pure state:
//! the caller reads the counters and the clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

/// How often the counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Samples the charts keep: five minutes.
pub const SAMPLES: usize = 150;

/// Lines the charts keep at most (pools come and go; their lines stay
/// until they age out).
pub const MAX_LINES: usize = 64;

/// One sample's reading of a counter or a gauge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A total that only grows: charted as its rate per second.
    Total(u64),
    /// A total of time spent over a total of events (a pool's queue wait):
    /// charted as the mean over the interval, in ms.
    MeanOf {
        /// Events so far.
        count: u64,
        /// Their time so far, in microseconds.
        micros: u64,
    },
    /// A value as it is.
    Gauge(f64),
}

/// Rates and gauges over the last samples: a fixed number of samples and
/// of lines.
#[derive(Debug)]
pub struct Series {
    samples: usize,
    max_lines: usize,
    at_ms: VecDeque<u64>,
    lines: BTreeMap<String, VecDeque<Option<f64>>>,
    last: BTreeMap<String, (u64, Reading)>,
}

/// The series as JSON: sample times and one array per line, aligned with
/// them (`null` where a line had no value).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesJson {
    /// Sample times, Unix ms.
    pub at_ms: Vec<u64>,
    /// Values by line name.
    pub lines: BTreeMap<String, Vec<Option<f64>>>,
}

impl Default for Series {
    /// The charts' series: [`SAMPLES`] samples of at most [`MAX_LINES`].
    fn default() -> Series {
        Series::new(SAMPLES, MAX_LINES)
    }
}

impl Series {
    /// A series that keeps `samples` samples (at least 2, to make a rate)
    /// of at most `max_lines` lines.
    pub fn new(samples: usize, max_lines: usize) -> Series {
        Series {
            samples: samples.max(2),
            max_lines,
            at_ms: VecDeque::new(),
            lines: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// Records one sample taken at `now_ms`.
    pub fn sample(&mut self, now_ms: u64, readings: Vec<(String, Reading)>) {
        if self.at_ms.len() == self.samples {
            self.at_ms.pop_front();
            for line in self.lines.values_mut() {
                line.pop_front();
            }
        }
        self.at_ms.push_back(now_ms);
        let width = self.at_ms.len();
        let mut read = std::collections::BTreeSet::new();
        for (name, reading) in readings {
            let value = self.value(&name, now_ms, reading);
            if !self.lines.contains_key(&name) && self.lines.len() >= self.max_lines {
                continue;
            }
            self.last.insert(name.clone(), (now_ms, reading));
            let line = self.lines.entry(name.clone()).or_default();
            line.resize(width - 1, None);
            line.push_back(value);
            read.insert(name);
        }
        // Lines not read this time get a gap; lines neither read nor
        // holding a value any more go.
        for line in self.lines.values_mut() {
            line.resize(width, None);
        }
        self.lines
            .retain(|name, line| read.contains(name) || line.iter().any(Option::is_some));
        let lines = &self.lines;
        self.last.retain(|name, _| lines.contains_key(name));
    }

    fn value(&self, name: &str, now_ms: u64, reading: Reading) -> Option<f64> {
        let previous = self.last.get(name);
        match (reading, previous) {
            (Reading::Gauge(v), _) => Some(v),
            (Reading::Total(total), Some(&(then, Reading::Total(before)))) => {
                let secs = now_ms.saturating_sub(then) as f64 / 1000.0;
                (secs > 0.0).then(|| total.saturating_sub(before) as f64 / secs)
            }
            (
                Reading::MeanOf { count, micros },
                Some(&(
                    _,
                    Reading::MeanOf {
                        count: c0,
                        micros: m0,
                    },
                )),
            ) => {
                let n = count.saturating_sub(c0);
                Some(if n == 0 {
                    0.0
                } else {
                    micros.saturating_sub(m0) as f64 / n as f64 / 1000.0
                })
            }
            _ => None,
        }
    }

    /// The latest rate or gauge of `name`, if it has one.
    pub fn latest(&self, name: &str) -> Option<f64> {
        self.lines
            .get(name)
            .and_then(|l| l.back().copied().flatten())
    }

    /// Every line, as JSON.
    pub fn json(&self) -> SeriesJson {
        SeriesJson {
            at_ms: self.at_ms.iter().copied().collect(),
            lines: self
                .lines
                .iter()
                .map(|(name, line)| (name.clone(), line.iter().copied().collect()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn totals_become_rates_and_means_become_ms() {
        let mut s = Series::default();
        s.sample(
            1_000,
            vec![
                ("calls".into(), Reading::Total(10)),
                (
                    "wait".into(),
                    Reading::MeanOf {
                        count: 1,
                        micros: 0,
                    },
                ),
            ],
        );
        assert_eq!(s.latest("calls"), None, "a first total has no rate yet");
        s.sample(
            3_000,
            vec![
                ("calls".into(), Reading::Total(30)),
                (
                    "wait".into(),
                    Reading::MeanOf {
                        count: 3,
                        micros: 8_000,
                    },
                ),
            ],
        );
        assert_eq!(s.latest("calls"), Some(10.0));
        assert_eq!(s.latest("wait"), Some(4.0));
        s.sample(5_000, vec![("calls".into(), Reading::Total(30))]);
        assert_eq!(s.latest("calls"), Some(0.0));
        assert_eq!(s.latest("wait"), None, "a line not read gets a gap");
        let json = s.json();
        assert_eq!(json.at_ms, vec![1_000, 3_000, 5_000]);
        assert_eq!(json.lines["calls"], vec![None, Some(10.0), Some(0.0)]);
        assert_eq!(json.lines["wait"], vec![None, Some(4.0), None]);
    }

    proptest! {
        /// However lines come and go, every line stays aligned with the
        /// sample times, and nothing grows past its bound.
        #[test]
        fn lines_stay_aligned_and_bounded(
            samples in proptest::collection::vec(
                proptest::collection::vec((0u8..80, 0u64..1_000), 0..8),
                0..400,
            ),
        ) {
            let mut s = Series::default();
            for (i, readings) in samples.iter().enumerate() {
                let readings = readings
                    .iter()
                    .map(|(line, v)| (format!("l{line}"), Reading::Total(*v)))
                    .collect();
                s.sample(i as u64 * 2_000, readings);
                let json = s.json();
                prop_assert!(json.at_ms.len() <= SAMPLES);
                prop_assert!(json.lines.len() <= MAX_LINES);
                for line in json.lines.values() {
                    prop_assert_eq!(line.len(), json.at_ms.len());
                }
            }
        }
    }
}
