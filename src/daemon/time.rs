//! When is it, and how long may poll sleep? The loop's one reading of the
//! clock per turn, and the arithmetic on deadlines.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::limits::STAMP_MAPPING;
use crate::time::Clock;

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
/// clock. The mapping is one reading of both clocks together ([`clocks`]),
/// taken when a stamp needs it and renewed once the stamps pass it by
/// [`STAMP_MAPPING`], or when they go back (the realtime clock was set
/// back; the stamps of one TCP stream, read in order, never do otherwise).
/// It is exact whenever it is taken: a read whose data waited in the
/// kernel (a stalled desk's backlog) is mapped to when that data arrived,
/// not to when it was read, so how long it waited can be told.
#[derive(Debug, Default)]
pub struct StampClock {
    base: Option<(Instant, u64)>,
    last: u64,
}

impl StampClock {
    /// When data stamped `stamp_us` arrived, on the monotonic clock;
    /// `clocks` is called (both clocks read) only to take or renew the
    /// mapping.
    #[inline]
    pub fn at(&mut self, stamp_us: u64, clocks: impl FnOnce() -> (Instant, u64)) -> Instant {
        let back = stamp_us < self.last;
        self.last = stamp_us;
        let limit = STAMP_MAPPING.as_micros() as u64;
        match self.base {
            // Every read but one a second (or after a clock step).
            Some((mono, real)) if !back && stamp_us >= real && stamp_us - real < limit => {
                mono + Duration::from_micros(stamp_us - real)
            }
            Some((mono, real)) if !back && stamp_us < real => behind(mono, real - stamp_us),
            _ => self.renew(stamp_us, clocks()),
        }
    }

    /// Takes the mapping `(mono, real)` and maps `stamp_us` with it.
    #[cold]
    fn renew(&mut self, stamp_us: u64, (mono, real): (Instant, u64)) -> Instant {
        self.base = Some((mono, real));
        match real.checked_sub(stamp_us) {
            Some(us) => behind(mono, us),
            None => mono + Duration::from_micros(stamp_us - real),
        }
    }
}

/// `us` microseconds before `mono`: when data from before a reading of the
/// clocks arrived (it waited that long).
fn behind(mono: Instant, us: u64) -> Instant {
    mono.checked_sub(Duration::from_micros(us)).unwrap_or(mono)
}

/// The monotonic and the realtime clock (µs since the epoch), read
/// together: a mapping between the two for [`StampClock`].
pub fn clocks() -> (Instant, u64) {
    let mono = Instant::now();
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    (mono, real)
}

/// Milliseconds from `now` until `t`, rounded up so we never wake early and spin.
pub fn ms_until(now: Instant, t: Instant) -> i32 {
    let d = t.saturating_duration_since(now);
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    ms.min(60_000) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_timed_by_one_reading_of_both_clocks_until_the_mapping_is_old() {
        let t = Instant::now();
        let mut c = StampClock::default();
        let reads = Cell::new(0);
        let clocks = |at: Instant, real: u64| {
            reads.set(reads.get() + 1);
            (at, real)
        };
        assert_eq!(
            c.at(5_000_000, || clocks(t, 5_000_000)),
            t,
            "the first stamp reads the clocks"
        );
        let ms = Duration::from_millis(1);
        assert_eq!(c.at(5_001_000, || clocks(t, 0)), t + ms);
        assert_eq!(c.at(5_050_000, || clocks(t, 0)), t + 50 * ms);
        assert_eq!(reads.get(), 1, "one reading for both");
        let later = t + 2000 * ms;
        let old = 5_000_000 + STAMP_MAPPING.as_micros() as u64;
        assert_eq!(c.at(old, || clocks(later, old)), later, "renewed");
        assert_eq!(c.at(old + 1_000, || clocks(later, 0)), later + ms);
        assert_eq!(reads.get(), 2);
        // A stamp behind the mapping, but not behind the last one: data
        // that arrived before the clocks were read.
        let mut c = StampClock::default();
        assert_eq!(c.at(1_000_000, || (later, 3_000_000)), later - 2000 * ms);
        assert_eq!(c.at(1_500_000, || unreachable!()), later - 1500 * ms);
    }

    #[test]
    fn data_that_waited_is_mapped_to_its_arrival_not_its_read() {
        // A stalled desk reads data stamped 800 ms before the reading that
        // renews the mapping: it arrived 800 ms ago, and so did the next.
        let t = Instant::now() + Duration::from_secs(10);
        let mut c = StampClock::default();
        let ms = Duration::from_millis(1);
        assert_eq!(c.at(9_200_000, || (t, 10_000_000)), t - 800 * ms);
        assert_eq!(c.at(9_300_000, || unreachable!()), t - 700 * ms);
        assert_eq!(c.at(10_100_000, || unreachable!()), t + 100 * ms);
    }

    #[test]
    fn a_stamp_before_the_mapping_renews_it() {
        let t = Instant::now();
        let mut c = StampClock::default();
        c.at(100_000_000, || (t, 100_000_000));
        let later = t + Duration::from_millis(3);
        // The realtime clock was set back a minute.
        assert_eq!(c.at(40_003_000, || (later, 40_003_000)), later);
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
}
