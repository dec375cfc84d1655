//! How much did a connection carry, and what did it drop and why? Its
//! traffic and drop counters, and a rate limiter for the warnings.

use core::fmt;
use std::time::Instant;

use crate::limits::WARN_INTERVAL;

/// Why a frame did not reach its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Malformed `d` payload (length, `len` field).
    Invalid,
    /// The interface refused the frame (e.g. CAN FD on a classic-only bus).
    Refused,
    /// The interface was down or absent.
    BusDown,
    /// The bus could not take it within `--tx-timeout`.
    Stale,
    /// `--read-only`: nothing from TCP goes to the bus.
    ReadOnly,
    /// An error frame arrived from TCP; error frames never go to a bus.
    ErrorFrame,
}

impl DropReason {
    /// Short name used in log lines.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Invalid => "invalid",
            DropReason::Refused => "refused by interface",
            DropReason::BusDown => "interface down",
            DropReason::Stale => "bus busy past --tx-timeout",
            DropReason::ReadOnly => "read-only",
            DropReason::ErrorFrame => "error frame from TCP",
        }
    }
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames written to the bus.
    pub to_can: u64,
    /// Frames sent to the TCP peer.
    pub to_tcp: u64,
    /// Bytes received from TCP.
    pub bytes_in: u64,
    /// Bytes sent on TCP.
    pub bytes_out: u64,
    /// Frames from TCP dropped as malformed.
    pub drop_invalid: u64,
    /// Frames from TCP the interface refused.
    pub drop_refused: u64,
    /// Frames from TCP dropped while the interface was down or absent.
    pub drop_bus_down: u64,
    /// Frames from TCP dropped after waiting `--tx-timeout` for the bus.
    pub drop_stale: u64,
    /// Frames from TCP dropped by `--read-only`.
    pub drop_read_only: u64,
    /// Error frames from TCP dropped.
    pub drop_error_frame: u64,
    /// Frames the kernel dropped because our CAN socket's queue was full
    /// (`SO_RXQ_OVFL`): the TCP peer did not keep up.
    pub drop_kernel_overflow: u64,
}

impl Counters {
    /// Counts one dropped frame.
    pub fn count_drop(&mut self, why: DropReason) {
        let c = match why {
            DropReason::Invalid => &mut self.drop_invalid,
            DropReason::Refused => &mut self.drop_refused,
            DropReason::BusDown => &mut self.drop_bus_down,
            DropReason::Stale => &mut self.drop_stale,
            DropReason::ReadOnly => &mut self.drop_read_only,
            DropReason::ErrorFrame => &mut self.drop_error_frame,
        };
        *c += 1;
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frames to_can={} to_tcp={} bytes in={} out={} dropped invalid={} refused={} \
             bus_down={} stale={} read_only={} error_frames={} kernel_overflow={}",
            self.to_can,
            self.to_tcp,
            self.bytes_in,
            self.bytes_out,
            self.drop_invalid,
            self.drop_refused,
            self.drop_bus_down,
            self.drop_stale,
            self.drop_read_only,
            self.drop_error_frame,
            self.drop_kernel_overflow,
        )
    }
}

/// Lets one warning through per [`WARN_INTERVAL`] and counts the rest, so a
/// misbehaving peer cannot flood the log (or a gateway's flash).
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// `Some(n)` if a warning may be logged now, `n` being how many were
    /// suppressed since the last one; `None` if this one is suppressed.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < WARN_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(core::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limit_lets_one_through_per_interval() {
        let t0 = Instant::now();
        let mut r = RateLimit::default();
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0 + Duration::from_millis(10)), None);
        assert_eq!(r.allow(t0 + Duration::from_millis(20)), None);
        assert_eq!(r.allow(t0 + WARN_INTERVAL), Some(2));
        assert_eq!(r.allow(t0 + WARN_INTERVAL), None);
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let mut c = Counters::default();
        c.count_drop(DropReason::Stale);
        c.count_drop(DropReason::Stale);
        c.count_drop(DropReason::ReadOnly);
        assert_eq!((c.drop_stale, c.drop_read_only, c.drop_invalid), (2, 1, 0));
        assert!(c.to_string().contains("stale=2"));
    }
}
