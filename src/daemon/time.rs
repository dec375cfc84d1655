//! When is it, and how long may poll sleep? The loop's one reading of the
//! clock per turn, and the arithmetic on deadlines.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::limits::STAMP_MAPPING;
use crate::session::Clock;

/// The time, read from the clock at most once per loop turn and only when a
/// path needs it: where the vDSO has no clock source (UML, ARM boards without
/// the architected timer) every read is a system call.
#[derive(Default)]
pub struct Now(Cell<Option<Instant>>);

impl Now {
    /// The time of this turn, read now if no path needed it yet.
    pub fn get(&self) -> Instant {
        match self.0.get() {
            Some(t) => t,
            None => {
                let t = Instant::now();
                self.0.set(Some(t));
                t
            }
        }
    }

    /// True if `deadline` is set and has passed (reads the clock only then).
    pub fn reached(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|t| self.get() >= t)
    }
}

impl Clock for &Now {
    fn now(&self) -> Instant {
        self.get()
    }
}

/// Kernel receive stamps (the realtime clock, in microseconds) mapped onto
/// the loop's monotonic clock, so that a read is timed without reading the
/// clock. The mapping is one pair of readings, taken when a stamp needs it
/// and renewed after [`STAMP_MAPPING`] of stamps, or when the stamps go
/// back (the realtime clock was set back). The time of the renewing read
/// stands for its data's arrival: off by how late it was read, as a read
/// timed by the clock would be.
#[derive(Debug, Default)]
pub struct StampClock {
    base: Option<(Instant, u64)>,
}

impl StampClock {
    /// When data stamped `stamp_us` arrived, on the monotonic clock;
    /// `now` is called (the clock read) only to take or renew the mapping.
    pub fn at(&mut self, stamp_us: u64, now: impl FnOnce() -> Instant) -> Instant {
        if let Some((mono, real)) = self.base {
            let ahead = stamp_us.checked_sub(real);
            if let Some(us) = ahead.filter(|&us| us < STAMP_MAPPING.as_micros() as u64) {
                return mono + Duration::from_micros(us);
            }
        }
        let t = now();
        self.base = Some((t, stamp_us));
        t
    }
}

/// A receive stamp (seconds, microseconds) in microseconds; `None` for
/// zero, a read without one.
pub fn stamp_us((sec, usec): (i64, u32)) -> Option<u64> {
    ((sec, usec) != (0, 0)).then(|| sec as u64 * 1_000_000 + u64::from(usec))
}

/// Milliseconds from `now` until `t`, rounded up so we never wake early and spin.
pub fn ms_until(now: Instant, t: Instant) -> i32 {
    let d = t.saturating_duration_since(now);
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    ms.min(60_000) as i32
}

/// The sooner of two optional deadlines.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_timed_by_one_clock_reading_until_the_mapping_is_old() {
        let t = Instant::now();
        let mut c = StampClock::default();
        let reads = Cell::new(0);
        let clock = |at: Instant| {
            reads.set(reads.get() + 1);
            at
        };
        assert_eq!(
            c.at(5_000_000, || clock(t)),
            t,
            "the first stamp reads the clock"
        );
        let ms = Duration::from_millis(1);
        assert_eq!(c.at(5_001_000, || clock(t)), t + ms);
        assert_eq!(c.at(5_050_000, || clock(t)), t + 50 * ms);
        assert_eq!(reads.get(), 1, "one reading for both");
        let later = t + 200 * ms;
        let old = 5_000_000 + STAMP_MAPPING.as_micros() as u64;
        assert_eq!(c.at(old, || clock(later)), later, "renewed");
        assert_eq!(c.at(old + 1_000, || clock(later)), later + ms);
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn a_stamp_before_the_mapping_renews_it() {
        let t = Instant::now();
        let mut c = StampClock::default();
        c.at(100_000_000, || t);
        let later = t + Duration::from_millis(3);
        // The realtime clock was set back a minute.
        assert_eq!(c.at(40_003_000, || later), later);
        assert_eq!(
            c.at(40_004_000, || unreachable!()),
            later + Duration::from_millis(1)
        );
    }

    #[test]
    fn poll_never_wakes_before_the_deadline() {
        let t = Instant::now();
        assert_eq!(ms_until(t, t + Duration::from_micros(1)), 1);
        assert_eq!(ms_until(t, t + Duration::from_millis(7)), 7);
        assert_eq!(ms_until(t + Duration::from_secs(1), t), 0);
        assert_eq!(ms_until(t, t + Duration::from_secs(3600)), 60_000);
    }

    #[test]
    fn the_earliest_of_two_deadlines() {
        let t = Instant::now();
        let u = t + Duration::from_secs(1);
        assert_eq!(earliest(Some(u), Some(t)), Some(t));
        assert_eq!(earliest(None, Some(u)), Some(u));
        assert_eq!(earliest(None, None), None);
    }
}
