//! When may a side that frames keep waking wait before reading again?
//! Adaptive coalescing, as network cards moderate interrupts: while frames
//! arrive faster than [`COALESCE_RATE`], a side that a wake-up brought only
//! a few frames is left unread for a short, bounded time, so that its next
//! read takes many frames in one system call. The frames that woke it are
//! handled at once, and below the rate nothing waits: an isolated frame is
//! never delayed.
//!
//! Pure: the caller tells when frames arrived (kernel receive stamps, or the
//! loop's clock) and asks how long to wait; it does the waiting.

use std::cell::Cell;
use std::time::Duration;

use crate::limits::{CAN_BATCH, COALESCE_FEW, COALESCE_RATE};

/// The spacing of frames that counts as fast: 500 µs at 2,000 frames/s.
const FAST_GAP_US: u64 = 1_000_000 / COALESCE_RATE;

/// One gap counts for at most this much in the estimate, so a stream that
/// resumes after a silence is recognised within a few wake-ups.
const MAX_SAMPLE_US: u64 = 4 * FAST_GAP_US;

/// Which side of a connection coalesces: it decides when a wait pays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Side {
    /// A CAN socket: a bus delivers frames one at a time, so while they
    /// come fast a wait gathers them.
    #[default]
    Can,
    /// A TCP stream: what a peer sends. A peer that coalesces sends batches
    /// already, one per wait of its own; waiting for its next one would add
    /// its interval to the latency and gather nothing more (measured: at
    /// 5 kfps it woke the client more often, not less). So a TCP side waits
    /// only while wake-ups come within twice its wait of each other: a peer
    /// that sends frame by frame (the Python reference, or a tcpcan with
    /// `--latency-budget 0`). Twice, so that the wait's own length, which
    /// spaces the next wake-up, does not end the waiting.
    Tcp,
}

/// One side's coalescing: its budget, the smoothed spacing of its frames,
/// and the wait it asked for and the loop has not yet taken.
#[derive(Debug, Default)]
pub struct Coalesce {
    budget_us: u64,
    side: Side,
    last_us: Option<u64>,
    gap_us: Option<u64>,
    hold: Cell<Option<Duration>>,
}

impl Coalesce {
    /// Coalescing of `side`'s reads within `budget` (zero: never wait).
    pub fn new(budget: Duration, side: Side) -> Coalesce {
        Coalesce {
            budget_us: budget.as_micros() as u64,
            side,
            ..Coalesce::default()
        }
    }

    /// True unless the budget is zero.
    pub fn is_on(&self) -> bool {
        self.budget_us > 0
    }

    /// A wake-up took `frames` frames, the last of them received at `at_us`
    /// microseconds (on any steady clock; `None` if unknown, which is not
    /// measured). Decides whether the next poll leaves this side unread, and
    /// for how long: the budget, or less if a batch fills sooner.
    // Inline: called on every wake-up of a side, from another module.
    #[inline]
    pub fn after_wake(&mut self, frames: usize, at_us: Option<u64>) -> Option<Duration> {
        self.hold.set(None);
        let (true, Some(at_us)) = (self.is_on() && frames > 0, at_us) else {
            return None;
        };
        let since = at_us.saturating_sub(self.last_us.replace(at_us)?);
        let sample = (since / frames as u64).min(MAX_SAMPLE_US);
        let gap = self.gap_us.map_or(sample, |g| (3 * g + sample) / 4);
        self.gap_us = Some(gap);
        if frames > COALESCE_FEW || gap >= FAST_GAP_US {
            return None;
        }
        if self.side == Side::Tcp && since >= 2 * self.budget_us {
            return None;
        }
        let wait = (gap * CAN_BATCH as u64).clamp(1, self.budget_us);
        let wait = Duration::from_micros(wait);
        self.hold.set(Some(wait));
        Some(wait)
    }

    /// The wait asked for, once: the poll that takes it ends it.
    pub fn take_hold(&self) -> Option<Duration> {
        self.hold.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn us(n: u64) -> Option<u64> {
        Some(n)
    }

    /// Feeds one frame per wake-up every `gap_us`, `n` times; the last answer.
    fn steady(c: &mut Coalesce, start_us: u64, gap_us: u64, n: u64) -> Option<Duration> {
        let mut last = None;
        for i in 0..n {
            last = c.after_wake(1, us(start_us + i * gap_us));
        }
        last
    }

    #[test]
    fn the_first_frame_ever_is_read_at_once() {
        let mut c = Coalesce::new(MS, Side::Can);
        assert_eq!(c.after_wake(1, us(1_000)), None);
        assert_eq!(c.take_hold(), None);
    }

    #[test]
    fn a_steady_stream_below_the_rate_never_waits() {
        let mut c = Coalesce::new(MS, Side::Can);
        assert_eq!(steady(&mut c, 0, 1_000, 1_000), None, "1 kfps");
        let mut c = Coalesce::new(MS, Side::Can);
        assert_eq!(steady(&mut c, 0, 600, 1_000), None, "1.7 kfps");
    }

    #[test]
    fn a_stream_above_the_rate_waits_for_the_budget() {
        let mut c = Coalesce::new(MS, Side::Can);
        assert_eq!(steady(&mut c, 0, 200, 50), Some(MS), "5 kfps");
        assert_eq!(c.take_hold(), Some(MS));
        assert_eq!(c.take_hold(), None, "one poll takes the wait");
    }

    #[test]
    fn reads_after_a_wait_that_bring_a_few_frames_keep_waiting() {
        let mut c = Coalesce::new(MS, Side::Can);
        steady(&mut c, 0, 200, 50);
        // Five frames per millisecond: the pace the waits themselves set.
        for i in 1..100 {
            assert_eq!(c.after_wake(5, us(10_000 + i * 1_000)), Some(MS));
        }
    }

    #[test]
    fn a_wait_is_no_longer_than_a_batch_takes_to_fill() {
        let mut c = Coalesce::new(Duration::from_millis(50), Side::Can);
        let wait = steady(&mut c, 0, 100, 100).unwrap();
        assert_eq!(wait, Duration::from_micros(100 * CAN_BATCH as u64));
    }

    #[test]
    fn a_wake_that_took_many_frames_does_not_wait() {
        let mut c = Coalesce::new(MS, Side::Can);
        steady(&mut c, 0, 200, 50);
        assert_eq!(c.after_wake(COALESCE_FEW + 1, us(20_000)), None);
        assert_eq!(c.take_hold(), None);
    }

    #[test]
    fn a_tcp_side_waits_for_a_peer_sending_frame_by_frame() {
        let mut c = Coalesce::new(MS, Side::Tcp);
        assert_eq!(steady(&mut c, 0, 200, 50), Some(MS), "one frame per send");
        // Read after the wait: the next wake-up is a wait later.
        assert_eq!(c.after_wake(5, us(10_000 + 1_100)), Some(MS));
    }

    #[test]
    fn a_tcp_side_does_not_wait_for_a_peer_that_sends_batches() {
        let mut c = Coalesce::new(MS, Side::Tcp);
        // A coalescing peer's batches of ten, one per 2 ms wait of its own.
        for i in 1..20 {
            assert_eq!(c.after_wake(10, us(i * 2_100)), None, "batch {i}");
        }
        let mut can = Coalesce::new(MS, Side::Can);
        for i in 1..20 {
            can.after_wake(10, us(i * 2_100));
        }
        assert!(can.take_hold().is_some(), "a CAN side would wait");
    }

    #[test]
    fn an_isolated_frame_after_a_fast_stream_is_read_at_once() {
        let mut c = Coalesce::new(MS, Side::Can);
        steady(&mut c, 0, 200, 50);
        assert_eq!(c.after_wake(1, us(1_000_000)), None);
    }

    #[test]
    fn a_stream_that_slows_down_stops_waiting_within_a_few_frames() {
        let mut c = Coalesce::new(MS, Side::Can);
        steady(&mut c, 0, 200, 50);
        let waits = (1..=5)
            .filter(|i| c.after_wake(1, us(10_000 + i * 1_000)).is_some())
            .count();
        assert!(waits <= 2, "{waits} waits at 1 kfps");
        assert_eq!(c.after_wake(1, us(16_000)), None);
    }

    #[test]
    fn a_stream_that_resumes_after_silence_is_recognised_within_a_few_frames() {
        let mut c = Coalesce::new(MS, Side::Can);
        steady(&mut c, 0, 1_000, 10);
        assert_eq!(steady(&mut c, 60_000_000, 200, 8), Some(MS));
    }

    #[test]
    fn a_pair_of_close_frames_in_a_slow_stream_does_not_make_it_fast() {
        let mut c = Coalesce::new(MS, Side::Can);
        steady(&mut c, 0, 1_000, 100);
        assert_eq!(c.after_wake(1, us(99_050)), None);
        assert_eq!(c.after_wake(1, us(100_000)), None);
    }

    #[test]
    fn a_budget_of_zero_never_waits() {
        let mut c = Coalesce::new(Duration::ZERO, Side::Can);
        assert!(!c.is_on());
        assert_eq!(steady(&mut c, 0, 10, 1_000), None);
    }

    #[test]
    fn frames_without_a_time_are_not_measured() {
        let mut c = Coalesce::new(MS, Side::Can);
        steady(&mut c, 0, 200, 50);
        assert_eq!(c.after_wake(1, None), None);
        assert_eq!(
            c.after_wake(0, us(10_200)),
            None,
            "a wake-up without frames"
        );
    }
}
