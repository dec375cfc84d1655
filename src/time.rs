//! What time is it, and when was a frame received? The time vocabulary every
//! floor shares: the [`Clock`] a pure state machine is handed (so tests
//! drive it), the sooner of two deadlines, and the kernel's receive
//! [`Stamp`]. Nothing here reads a clock.

use std::time::Instant;

/// Where a state machine gets the time: passed in, so tests drive it and
/// the event loop reads the clock only when a path needs it.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;
}

impl Clock for Instant {
    fn now(&self) -> Instant {
        *self
    }
}

/// A clock for tests that counts how often it is read, so a test can show
/// that a path reads no clock.
#[cfg(test)]
pub struct Counted<'a>(pub Instant, pub &'a core::cell::Cell<u32>);

#[cfg(test)]
impl Clock for Counted<'_> {
    fn now(&self) -> Instant {
        self.1.set(self.1.get() + 1);
        self.0
    }
}

/// The sooner of two optional deadlines (or the shorter of two waits).
pub fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A kernel receive time, as `SO_TIMESTAMP` gives it (the realtime clock);
/// zero for a read without one. With it, the driver's hardware receive time
/// where it gives one (`SO_TIMESTAMPING`), zero otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Microseconds, 0..1_000_000.
    pub usec: u32,
    /// The hardware stamp in nanoseconds on the driver's clock (not
    /// necessarily the epoch's); 0: none, as on vcan.
    pub hw_ns: u64,
}

impl Stamp {
    /// A kernel stamp without a hardware one.
    pub const fn kernel(sec: i64, usec: u32) -> Stamp {
        Stamp {
            sec,
            usec,
            hw_ns: 0,
        }
    }

    /// The stamp in microseconds; `None` for zero, a read without one.
    // Inline: called on every read, from other modules.
    #[inline]
    pub fn micros(self) -> Option<u64> {
        (self.sec != 0 || self.usec != 0)
            .then(|| self.sec as u64 * 1_000_000 + u64::from(self.usec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_deadline_is_the_sooner_and_none_is_no_deadline() {
        let t = Instant::now();
        let later = t + Duration::from_millis(1);
        assert_eq!(earliest(Some(later), Some(t)), Some(t));
        assert_eq!(earliest(None, Some(t)), Some(t));
        assert_eq!(earliest(Some(t), None), Some(t));
        assert_eq!(earliest::<Instant>(None, None), None);
    }

    #[test]
    fn a_zero_stamp_is_a_read_without_one() {
        assert_eq!(Stamp::default().micros(), None);
        assert_eq!(Stamp::kernel(2, 5).micros(), Some(2_000_005));
        assert_eq!(Stamp::kernel(0, 1).micros(), Some(1));
    }
}
