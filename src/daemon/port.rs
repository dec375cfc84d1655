//! How is a CAN port held that may vanish? One slot, used by every
//! connection and by the bus monitor: the port while it is there, and when
//! to try opening it again while it is not.

use std::time::Instant;

use super::time::Now;
use crate::can::{CanOptions, CanPort, OpenError};
use crate::error::Error;
use crate::limits::RETRY_INTERVAL;

/// A fatal start-up error for interface `name`, from why opening it failed.
pub fn open_error(name: &str, e: OpenError) -> Error {
    match e {
        OpenError::NoSuchInterface => Error::NoSuchInterface(name.to_string()),
        OpenError::NotCan => Error::NotCan(name.to_string()),
        OpenError::NoCanSupport(what) => Error::NoCanSupport(name.to_string(), what),
        OpenError::Io(e) => Error::CanOpen(name.to_string(), e),
    }
}

/// What [`PortSlot::on_due`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// The port was there all along (the timer was for its owner).
    Present,
    /// The port was missing and is open again.
    Reopened,
    /// Still missing; another try is scheduled.
    Absent,
}

/// A CAN port that may be missing, and when to look again.
pub struct PortSlot {
    port: Option<CanPort>,
    retry_at: Option<Instant>,
}

impl PortSlot {
    /// A slot holding the result of opening: the port, or (with the reason)
    /// an empty slot that tries again after [`RETRY_INTERVAL`].
    pub fn opened(
        result: Result<CanPort, OpenError>,
        now: Instant,
    ) -> (PortSlot, Option<OpenError>) {
        match result {
            Ok(port) => (PortSlot::holding(port), None),
            Err(e) => (PortSlot::absent_until(now + RETRY_INTERVAL), Some(e)),
        }
    }

    /// A slot holding `port`, with no timer.
    pub fn holding(port: CanPort) -> PortSlot {
        PortSlot {
            port: Some(port),
            retry_at: None,
        }
    }

    /// An empty slot that tries to open at `t`.
    pub fn absent_until(t: Instant) -> PortSlot {
        PortSlot {
            port: None,
            retry_at: Some(t),
        }
    }

    /// The port, if it is there.
    pub fn port(&self) -> Option<&CanPort> {
        self.port.as_ref()
    }

    /// The port, if it is there, to read or write.
    pub fn port_mut(&mut self) -> Option<&mut CanPort> {
        self.port.as_mut()
    }

    /// The interface vanished: drop the socket, try again later.
    pub fn lost(&mut self, now: Instant) {
        self.port = None;
        self.retry_at = Some(now + RETRY_INTERVAL);
    }

    /// Asks to be woken after [`RETRY_INTERVAL`] (e.g. to see whether a down
    /// interface is up again).
    pub fn look_again(&mut self, now: Instant) {
        self.retry_at = Some(now + RETRY_INTERVAL);
    }

    /// When this slot has work.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// True if the timer has passed.
    pub fn due(&self, now: &Now) -> bool {
        now.reached(self.retry_at)
    }

    /// At the due time: clears the timer and reopens a missing port.
    pub fn on_due(&mut self, name: &str, opts: &CanOptions, now: &Now) -> Reopen {
        self.retry_at = None;
        if self.port.is_some() {
            return Reopen::Present;
        }
        match CanPort::open(name, opts) {
            Ok(p) => {
                self.port = Some(p);
                Reopen::Reopened
            }
            Err(_) => {
                self.look_again(now.get());
                Reopen::Absent
            }
        }
    }
}
