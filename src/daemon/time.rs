//! When is it, and how long may poll sleep? The loop's one reading of the
//! clock per turn, and the arithmetic on deadlines.

use std::cell::Cell;
use std::time::Instant;

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
    use std::time::Duration;

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
