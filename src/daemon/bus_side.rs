//! How does a connection read its bus? The one CAN socket of a connection,
//! of either protocol: read frames while its peer has room for them, say why
//! a read failed, count what the kernel dropped. A [`BusSide`] does the
//! reading; the session it reads for is an [`Outbox`].

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use super::port::PortSlot;
use super::time::Now;
use crate::can::ReadError;
use crate::counters::{Counters, RateLimit};
use crate::limits::READS_PER_WAKEUP;
use crate::sys::CanBatch;

/// Where frames read from the bus go: a session's output to its peer.
pub trait Outbox {
    /// Frames that fit in the output now (the CAN socket is not read
    /// beyond: back-pressure).
    fn room(&self) -> usize;
    /// Queues one frame read at `stamp` (seconds, microseconds; zero
    /// without `SO_TIMESTAMP`).
    fn queue(&mut self, frame: &[u8], stamp: (i64, u32));
    /// The session's counters.
    fn counters(&mut self) -> &mut Counters;
}

/// A connection's CAN socket (which may vanish) and its drop warnings.
pub struct BusSide {
    /// The socket, or when to look for the interface again.
    pub can: PortSlot,
    overflow_warn: RateLimit,
}

impl BusSide {
    /// A side on `can`.
    pub fn new(can: PortSlot) -> BusSide {
        BusSide {
            can,
            overflow_warn: RateLimit::default(),
        }
    }

    /// The CAN socket is ready: reads frames into `out` while it has room.
    pub fn on_readable(
        &mut self,
        revents: i16,
        out: &mut impl Outbox,
        ctx: (SocketAddr, &Now, &str),
        batch: &mut CanBatch,
    ) {
        let (peer, now, canif) = ctx;
        let Some(port) = self.can.port_mut() else {
            return;
        };
        if revents & libc::POLLERR != 0 {
            // Reading the pending error clears it; otherwise poll repeats it.
            if let Some(e) = port.take_error() {
                self.read_error(e, peer, now, canif);
                return;
            }
        }
        if revents & libc::POLLIN == 0 {
            return;
        }
        for _ in 0..READS_PER_WAKEUP {
            let Some(port) = self.can.port_mut() else {
                break;
            };
            let room = out.room();
            if room == 0 {
                break;
            }
            match port.recv(batch, room) {
                Ok((n, overflow)) => {
                    // Only a drop needs the time (a clock read is a
                    // system call where the vDSO has no clock source).
                    if overflow > 0 {
                        self.kernel_dropped(overflow, out, (peer, now.get(), canif));
                    }
                    for i in 0..n {
                        out.queue(&batch.frames[i][..batch.lens[i]], batch.stamps[i]);
                    }
                    if n < room {
                        break;
                    }
                }
                Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.read_error(e, peer, now, canif);
                    break;
                }
            }
        }
    }

    fn read_error(&mut self, e: ReadError, peer: SocketAddr, now: &Now, canif: &str) {
        match e {
            // The monitor logs the interface state once for everyone.
            ReadError::Down => log::debug!("{peer}: {canif} is down"),
            ReadError::Gone => {
                log::info!("{peer}: {canif} disappeared; will reopen it when it is back");
                self.can.lost(now.get());
            }
            ReadError::Io(e) => log::warn!("{peer}: reading {canif}: {e}"),
        }
    }

    /// Asks the kernel for drops it has not yet reported with a frame.
    pub fn poll_kernel_drops(&mut self, out: &mut impl Outbox, ctx: (SocketAddr, Instant, &str)) {
        if let Some(port) = self.can.port_mut() {
            let dropped = port.new_drops();
            self.kernel_dropped(dropped, out, ctx);
        }
    }

    /// Counts frames the kernel dropped on our CAN socket, with a
    /// rate-limited warning: the peer is not keeping up with the bus.
    fn kernel_dropped(
        &mut self,
        dropped: u32,
        out: &mut impl Outbox,
        (peer, now, canif): (SocketAddr, Instant, &str),
    ) {
        if dropped == 0 {
            return;
        }
        out.counters().drop_kernel_overflow += u64::from(dropped);
        if let Some(s) = self.overflow_warn.allow(now) {
            log::warn!(
                "{peer}: kernel dropped {dropped} frames from {canif}: peer is not keeping up ({s} similar warnings suppressed)"
            );
        }
    }
}
