//! Hybrid logical clocks: wall-clock milliseconds in the high 48 bits, a
//! counter in the low 16, so stamps order like time but never repeat or go
//! backwards on one node.

use serde::{Deserialize, Serialize};

/// One hybrid-logical-clock timestamp.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc(pub u64);

impl Hlc {
    /// A stamp from milliseconds and a counter.
    pub fn new(ms: u64, counter: u16) -> Self {
        Hlc((ms << 16) | u64::from(counter))
    }

    /// The wall-clock part, in milliseconds since the Unix epoch.
    pub fn ms(self) -> u64 {
        self.0 >> 16
    }
}

/// A node's clock.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    last: Hlc,
    offset_ms: i64,
}

impl Clock {
    /// A clock whose wall time is shifted by `offset_ms` (to test skew).
    pub fn with_offset(offset_ms: i64) -> Self {
        Self {
            last: Hlc::default(),
            offset_ms,
        }
    }

    /// The next stamp, given the wall clock now: never below the last one.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        let wall = Hlc::new(wall_ms.saturating_add_signed(self.offset_ms), 0);
        self.last = if wall > self.last {
            wall
        } else {
            Hlc(self.last.0 + 1)
        };
        self.last
    }

    /// The clock's current time without moving it: the later of the wall
    /// clock and the last stamp made or seen.
    pub fn peek(&self, wall_ms: u64) -> Hlc {
        Hlc::new(wall_ms.saturating_add_signed(self.offset_ms), 0).max(self.last)
    }

    /// Moves the clock past a stamp seen from another node.
    pub fn observe(&mut self, seen: Hlc) {
        if seen > self.last {
            self.last = seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_if_wall_clock_stalls_or_goes_back() {
        let mut c = Clock::default();
        let a = c.tick(1000);
        let b = c.tick(1000);
        let d = c.tick(900);
        assert!(a < b && b < d);
        c.observe(Hlc::new(5000, 3));
        assert!(c.tick(1000) > Hlc::new(5000, 3));
        assert_eq!(Hlc::new(1234, 7).ms(), 1234);
    }
}
