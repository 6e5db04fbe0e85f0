//! Hybrid logical clocks: wall-clock milliseconds in the high 48 bits, a
//! counter in the low 16, so stamps order like time but never repeat or go
//! backwards on one node.
//!
//! A clock only follows stamps from other nodes up to a maximum offset
//! ahead of its own wall clock (500 ms by default, as CockroachDB). A stamp
//! further ahead comes from a node whose clock is wrong; following it would
//! move this node's time, and through it every node's, forward for good
//! (TTLs would expire at once everywhere). Such a stamp is still stored
//! with its write; it only does not move the clock. All arithmetic
//! saturates: the largest stamp stays the largest instead of wrapping.

use serde::{Deserialize, Serialize};

/// The largest wall-clock time a stamp holds (48 bits of milliseconds).
const MAX_MS: u64 = (1 << 48) - 1;

/// One hybrid-logical-clock timestamp.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc(pub u64);

impl Hlc {
    /// A stamp from milliseconds and a counter. Milliseconds past the 48
    /// bits a stamp holds (the year 10889) are held at the maximum.
    pub fn new(ms: u64, counter: u16) -> Self {
        Hlc((ms.min(MAX_MS) << 16) | u64::from(counter))
    }

    /// The wall-clock part, in milliseconds since the Unix epoch.
    pub fn ms(self) -> u64 {
        self.0 >> 16
    }
}

/// A remote stamp further ahead of this node's wall clock than the
/// maximum offset: it did not move the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooFarAhead {
    /// How far ahead of this node's wall clock the stamp was, in ms.
    pub ahead_ms: u64,
}

/// A node's clock.
#[derive(Clone, Debug)]
pub struct Clock {
    last: Hlc,
    offset_ms: i64,
    max_offset_ms: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new(0, DEFAULT_MAX_OFFSET_MS)
    }
}

/// The default of how far ahead of the wall clock a remote stamp may be.
pub const DEFAULT_MAX_OFFSET_MS: u64 = 500;

impl Clock {
    /// A clock whose wall time is shifted by `offset_ms` (to test skew),
    /// following remote stamps up to `max_offset_ms` ahead of it.
    pub fn new(offset_ms: i64, max_offset_ms: u64) -> Self {
        Self {
            last: Hlc::default(),
            offset_ms,
            max_offset_ms,
        }
    }

    fn wall(&self, wall_ms: u64) -> u64 {
        wall_ms.saturating_add_signed(self.offset_ms)
    }

    /// The next stamp, given the wall clock now: never below the last one.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        let wall = Hlc::new(self.wall(wall_ms), 0);
        self.last = if wall > self.last {
            wall
        } else {
            Hlc(self.last.0.saturating_add(1))
        };
        self.last
    }

    /// The clock's current time without moving it: the later of the wall
    /// clock and the last stamp made or seen.
    pub fn peek(&self, wall_ms: u64) -> Hlc {
        Hlc::new(self.wall(wall_ms), 0).max(self.last)
    }

    /// Moves the clock past a stamp seen from another node at wall time
    /// `wall_ms`, unless it is more than the maximum offset ahead.
    pub fn observe(&mut self, seen: Hlc, wall_ms: u64) -> Result<(), TooFarAhead> {
        let wall = self.wall(wall_ms);
        let limit = Hlc::new(wall.saturating_add(self.max_offset_ms), u16::MAX);
        if seen > limit {
            return Err(TooFarAhead {
                ahead_ms: seen.ms().saturating_sub(wall),
            });
        }
        if seen > self.last {
            self.last = seen;
        }
        Ok(())
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
        assert_eq!(c.observe(Hlc::new(1400, 3), 1000), Ok(()));
        assert!(c.tick(1000) > Hlc::new(1400, 3));
        assert_eq!(Hlc::new(1234, 7).ms(), 1234);
    }

    #[test]
    fn a_stamp_beyond_the_maximum_offset_does_not_move_the_clock() {
        let mut c = Clock::new(0, 500);
        assert_eq!(
            c.observe(Hlc::new(1000 + 3_600_000, 0), 1000),
            Err(TooFarAhead {
                ahead_ms: 3_600_000
            })
        );
        assert_eq!(c.peek(1000), Hlc::new(1000, 0));
        assert_eq!(c.observe(Hlc::new(1500, 9), 1000), Ok(()));
        assert_eq!(c.peek(1000), Hlc::new(1500, 9));
    }

    #[test]
    fn the_end_of_time_saturates_instead_of_wrapping() {
        let mut c = Clock::new(i64::MAX, u64::MAX);
        assert_eq!(c.tick(u64::MAX), Hlc::new(MAX_MS, 0));
        assert_eq!(c.observe(Hlc(u64::MAX), u64::MAX), Ok(()));
        assert_eq!(c.tick(u64::MAX), Hlc(u64::MAX));
        assert_eq!(c.tick(u64::MAX), Hlc(u64::MAX));
        assert_eq!(Hlc::new(u64::MAX, 1).ms(), MAX_MS);
    }
}
