//! Retry backoff: exponential from `min` to `max`, with ±10 % jitter so
//! failing jobs do not retry in lockstep. (Flume's is linear although its
//! README says exponential.)

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When failed jobs try again, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// The wait after the first failure, in ms.
    pub min_ms: u64,
    /// The longest wait, in ms.
    pub max_ms: u64,
    /// Retries after the first attempt before a job goes dead (a job may
    /// set its own).
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min_ms: 500,
            max_ms: 600_000,
            max_retries: 5,
        }
    }
}

impl Backoff {
    /// The wait before the attempt after failed attempt `attempt` (1 is
    /// the first), for a jitter draw `unit` in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(62);
        let base = self
            .min_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_ms.max(self.min_ms));
        let jitter = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
        Duration::from_millis((base as f64 * jitter) as u64)
    }

    /// [`Backoff::delay`] with a random draw.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_from_min_to_max() {
        let b = Backoff {
            min_ms: 100,
            max_ms: 1000,
            max_retries: 5,
        };
        let ms = |a| b.delay(a, 0.5).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5), ms(9)],
            [100, 200, 400, 800, 1000, 1000]
        );
    }

    proptest! {
        #[test]
        fn grows_until_the_cap_whatever_the_jitter(
            min in 1u64..10_000, factor in 2u64..1000, attempt in 1u32..200, u1 in 0.0f64..1.0, u2 in 0.0f64..1.0
        ) {
            let b = Backoff { min_ms: min, max_ms: min * factor, max_retries: 5 };
            let (now, next) = (b.delay(attempt, u1), b.delay(attempt + 1, u2));
            let cap = Duration::from_millis(b.max_ms);
            prop_assert!(now <= cap.mul_f64(1.1) + Duration::from_millis(1));
            if b.delay(attempt + 1, 0.5) < cap {
                prop_assert!(next > now);
            }
        }
    }
}
