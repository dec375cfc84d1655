//! Is the bus up, and in what state? A socket on the served interface that
//! receives only bus-state error frames and watches the interface come and
//! go, for the log.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use super::port::{open_error, PortSlot, Reopen};
use super::time::Now;
use crate::busstate::{state_from_error_frame, BusState, STATE_ERRORS};
use crate::can::{CanOptions, CanPort, OpenError, ReadError};
use crate::error::Error;
use crate::filter::Filters;
use crate::limits::CAN_BATCH;
use crate::sys::{self, CanBatch};
use crate::time::Stamp;

/// A change of the bus state, and when the kernel received the error
/// frame that announced it (zero: unknown).
pub type Change = (BusState, Stamp);

fn monitor_options() -> CanOptions {
    CanOptions {
        filters: Filters::Nothing,
        error_mask: STATE_ERRORS,
    }
}

/// The bus-state monitor.
pub struct Monitor {
    port: PortSlot,
    down: bool,
    state: Option<BusState>,
}

impl Monitor {
    /// Opens the monitor on `name`; a missing interface is fatal unless
    /// `wait` (`--wait`) says to wait for it.
    pub fn open(name: &str, wait: bool) -> Result<Monitor, Error> {
        let now = Instant::now();
        let (port, down) = match CanPort::open(name, &monitor_options()) {
            Ok(p) => {
                let down = !sys::if_is_up(p.fd(), name).unwrap_or(true);
                let mut port = PortSlot::holding(p);
                if down {
                    log::warn!(
                        "{name}: interface is down; frames from TCP are dropped until it is up"
                    );
                    port.look_again(now);
                }
                (port, down)
            }
            Err(OpenError::NoSuchInterface) if wait => {
                log::warn!("{name}: no such interface yet; waiting for it (--wait)");
                (PortSlot::absent_until(now), false)
            }
            Err(e) => return Err(open_error(name, e)),
        };
        Ok(Monitor {
            port,
            down,
            state: None,
        })
    }

    /// The socket's descriptor, for poll, while the interface is there.
    pub fn fd(&self) -> Option<RawFd> {
        self.port.port().map(CanPort::fd)
    }

    /// When the monitor has work (reopen, or see whether it is up).
    pub fn retry_at(&self) -> Option<Instant> {
        self.port.retry_at()
    }

    /// True if [`on_due`](Self::on_due) has work now.
    pub fn due(&self, now: &Now) -> bool {
        self.port.due(now)
    }

    /// Reads bus-state frames (or the pending error) and logs changes;
    /// returns the last change, for version 2 peers.
    pub fn on_readable(
        &mut self,
        name: &str,
        batch: &mut CanBatch,
        revents: i16,
        now: &Now,
    ) -> Option<Change> {
        let mut change = None;
        let port = self.port.port_mut()?;
        let result = if revents & libc::POLLERR != 0 {
            port.take_error().map_or(Ok((0, 0)), Err)
        } else {
            port.recv(batch, CAN_BATCH)
        };
        match result {
            Ok((n, _)) => {
                for i in 0..n {
                    let frame = &batch.frames[i][..batch.lens[i]];
                    if let Some(state) = state_from_error_frame(frame) {
                        if self.saw(name, state) {
                            change = Some((state, batch.stamps[i]));
                        }
                    }
                }
            }
            Err(ReadError::Down) => {
                if !self.down {
                    log::warn!(
                        "{name}: interface is down; frames from TCP are dropped until it is up"
                    );
                    self.down = true;
                }
                self.port.look_again(now.get());
            }
            Err(ReadError::Gone) => {
                log::warn!("{name}: interface disappeared; waiting for it to come back");
                self.port.lost(now.get());
                self.down = true;
            }
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(ReadError::Io(e)) => log::warn!("{name}: {e}"),
        }
        change
    }

    /// True if `state` is a change.
    fn saw(&mut self, name: &str, state: BusState) -> bool {
        if self.state == Some(state) {
            return false;
        }
        self.state = Some(state);
        match state {
            BusState::ErrorActive => log::info!("{name}: bus state {state}"),
            _ => log::warn!("{name}: bus state {state}"),
        }
        true
    }

    /// Reopens a vanished interface, or checks whether a down one is up.
    pub fn on_due(&mut self, name: &str, now: &Now) {
        match self.port.on_due(name, &monitor_options(), now) {
            Reopen::Absent => return,
            // Waited for at start-up (--wait): the first socket is open.
            Reopen::Reopened => crate::can::log_receive_queue(name),
            Reopen::Present => {}
        }
        let Some(port) = self.port.port() else {
            return;
        };
        if sys::if_is_up(port.fd(), name).unwrap_or(false) {
            if self.down {
                log::info!("{name}: interface is up");
                self.down = false;
                self.state = None;
            }
        } else {
            self.port.look_again(now.get());
        }
    }
}
