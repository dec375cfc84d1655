//! How does a connection read its bus? The one CAN socket of a connection,
//! of either protocol: read frames while its peer has room for them, say why
//! a read failed, count what the kernel dropped, and under load leave the
//! socket unread for a moment so the next read takes many frames
//! ([`Coalesce`], timed by the kernel's receive stamps: no clock read). A
//! [`BusSide`] does the reading, for a session of either [`Protocol`].

use std::io;
use std::time::{Duration, Instant};

use super::poll_table::{PollTable, Slot};
use super::port::{PortSlot, Reopen};
use super::time::Now;
use crate::can::{CanOptions, ReadError};
use crate::coalesce::{Coalesce, Side};
use crate::counters::{Counters, RateLimit};
use crate::limits::READS_PER_WAKEUP;
use crate::peer::Peer;
use crate::protocol::Protocol;
use crate::sys::CanBatch;
use crate::time::Stamp;

/// A connection's CAN socket (which may vanish), its drop warnings and its
/// coalescing.
pub struct BusSide {
    /// The socket, or when to look for the interface again.
    pub can: PortSlot,
    overflow_warn: RateLimit,
    coalesce: Coalesce,
    /// The session shows each frame's receive time (socketcand's lines):
    /// stamps are asked for even when coalescing is off.
    stamped: bool,
}

impl BusSide {
    /// A side on `can`, coalescing reads within `budget` (zero: never);
    /// `stamped`: the session needs every frame's receive time.
    pub fn new(can: PortSlot, budget: Duration, stamped: bool) -> BusSide {
        let side = BusSide {
            can,
            overflow_warn: RateLimit::default(),
            coalesce: Coalesce::new(budget, Side::Can),
            stamped,
        };
        if let Err(e) = side.stamp_frames() {
            log::warn!("no receive timestamps on the CAN socket: {e}");
        }
        side
    }

    /// Coalescing is timed by receive stamps, and socketcand's lines show
    /// them: asks for them on a socket just opened. Without them a side is
    /// simply never left unread, and a line shows time zero.
    fn stamp_frames(&self) -> io::Result<()> {
        match self.can.port() {
            Some(p) if self.stamped || self.coalesce.is_on() => p.enable_timestamps(),
            _ => Ok(()),
        }
    }

    /// Timer work: looks for a vanished interface again. True if it is
    /// back, its new socket set up as the first was (the one reopen path
    /// of every connection, so no setting is forgotten on one of them).
    // Inline: asked every loop turn, and almost never due.
    #[inline]
    pub fn reopen_if_due(&mut self, canif: &str, opts: &CanOptions, now: &Now) -> bool {
        self.can.due(now) && self.reopen(canif, opts, now)
    }

    fn reopen(&mut self, canif: &str, opts: &CanOptions, now: &Now) -> bool {
        if self.can.on_due(canif, opts, now) != Reopen::Reopened {
            return false;
        }
        if let Err(e) = self.stamp_frames() {
            log::warn!("{canif}: no receive timestamps: {e}");
        }
        true
    }

    /// Adds the socket, as `slot`, waited on for `events` unless a
    /// coalescing wait leaves it unread this turn.
    pub fn register(&self, events: i16, slot: Slot, table: &mut PollTable) {
        let Some(p) = self.can.port() else {
            return;
        };
        // A coalescing wait is taken by this turn's poll, read or not.
        table.push_held(p.fd(), events, self.coalesce.take_hold(), slot);
    }

    /// The CAN socket is ready: reads frames into `out` while it has room.
    pub fn on_readable(
        &mut self,
        revents: i16,
        out: &mut impl Protocol,
        ctx: (Peer, &Now, &str),
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
        let (mut frames, mut last) = (0, Stamp::default());
        for _ in 0..READS_PER_WAKEUP {
            let Some(port) = self.can.port_mut() else {
                break;
            };
            // Frames that fit in the output now (the CAN socket is not
            // read beyond: back-pressure).
            let room = out.tx_room_frames();
            if room == 0 {
                break;
            }
            match port.recv(batch, room) {
                Ok((n, overflow)) => {
                    // Only a drop needs the time (a clock read is a
                    // system call where the vDSO has no clock source).
                    if overflow > 0 {
                        self.kernel_dropped(overflow, out.counters(), (peer, now.get(), canif));
                    }
                    for i in 0..n {
                        out.queue_frame(&batch.frames[i][..batch.lens[i]], batch.stamps[i]);
                    }
                    frames += n;
                    last = batch.stamps[n.saturating_sub(1)];
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
        // A zero stamp is a socket without SO_TIMESTAMP: not measured.
        self.coalesce.after_wake(frames, last.micros());
    }

    fn read_error(&mut self, e: ReadError, peer: Peer, now: &Now, canif: &str) {
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
    pub fn poll_kernel_drops(&mut self, out: &mut impl Protocol, ctx: (Peer, Instant, &str)) {
        if let Some(port) = self.can.port_mut() {
            let dropped = port.new_drops();
            self.kernel_dropped(dropped, out.counters(), ctx);
        }
    }

    /// Counts frames the kernel dropped on our CAN socket, with a
    /// rate-limited warning: the peer is not keeping up with the bus.
    fn kernel_dropped(
        &mut self,
        dropped: u32,
        counters: &mut Counters,
        (peer, now, canif): (Peer, Instant, &str),
    ) {
        if dropped == 0 {
            return;
        }
        counters.drop_kernel_overflow += u64::from(dropped);
        if let Some(s) = self.overflow_warn.allow(now) {
            log::warn!(
                "{peer}: kernel dropped {dropped} frames from {canif}: peer is not keeping up ({s} similar warnings suppressed)"
            );
        }
    }
}
