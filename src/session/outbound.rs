//! From the bus to TCP: a frame queued in the agreed version's message, in
//! version 2 with its stamps and after the loss notice it must follow.

use super::*;

impl Session {
    /// Output a frame from the bus may need: the frame message, and in
    /// version 2 the loss notice that must go first.
    // Inline: asked before every read of the bus.
    #[inline]
    pub(super) fn frame_room(&self) -> usize {
        if self.v2 {
            v2::MAX_STAMPED_MESSAGE + v2::NOTICE_MESSAGE
        } else {
            wire::MAX_DATA_MESSAGE
        }
    }

    /// A frame of `len` bytes and `trailer` bytes behind it were pushed
    /// last: converts it to wire layout where it lies, and counts it.
    pub(super) fn queued(&mut self, len: usize, trailer: usize, stamp: Stamp) {
        let queued = self.io.tx.data_mut();
        let at = queued.len() - trailer - len;
        let wire_frame = &mut queued[at..at + len];
        wire::swap_layout(wire_frame);
        if let Some(log) = self.log.as_deref_mut() {
            log.frame(stamp.micros().unwrap_or_else(wall_us), wire_frame, true);
        }
        self.io.counters.to_tcp += 1;
        if log::log_enabled!(log::Level::Trace) {
            log::trace!("{}: can->tcp {}", self.peer, FrameText(wire_frame));
        }
    }

    /// Queues a frame as version 2's `t`, after the loss notice it may owe.
    // Inline: once per frame towards TCP. The rare cases, a loss notice and
    // a hardware stamp, are calls of their own, so that they cost the
    // common case no registers (measured: 91 -> 67 instructions a frame).
    #[inline]
    pub(super) fn queue_stamped(&mut self, frame: &[u8], stamp: Stamp) -> bool {
        // A zero stamp (a socket without SO_TIMESTAMP) goes as 0, "none".
        let us = stamp.sec as u64 * 1_000_000 + u64::from(stamp.usec);
        if self.notices.loss_due(&self.io.counters) && !self.tell_loss(frame.len(), us) {
            return false;
        }
        if stamp.hw_ns != 0 {
            return self.queue_hw_stamped(frame, stamp, us);
        }
        let end = HEADER_LEN + frame.len();
        let Some(msg) = self.io.tx.append(end + v2::KERNEL_STAMP_LEN) else {
            return false;
        };
        msg[..HEADER_LEN].copy_from_slice(&v2::stamped_header(frame.len(), false));
        msg[HEADER_LEN..end].copy_from_slice(frame);
        msg[end..].copy_from_slice(&v2::stamp_bytes(us));
        self.queued(frame.len(), v2::KERNEL_STAMP_LEN, stamp);
        true
    }

    /// Queues a `t` with both stamps.
    #[cold]
    pub(super) fn queue_hw_stamped(&mut self, frame: &[u8], stamp: Stamp, us: u64) -> bool {
        let end = HEADER_LEN + frame.len();
        let trailer = v2::KERNEL_STAMP_LEN + v2::HW_STAMP_LEN;
        let Some(msg) = self.io.tx.append(end + trailer) else {
            return false;
        };
        msg[..HEADER_LEN].copy_from_slice(&v2::stamped_header(frame.len(), true));
        msg[HEADER_LEN..end].copy_from_slice(frame);
        let kernel_end = end + v2::KERNEL_STAMP_LEN;
        msg[end..kernel_end].copy_from_slice(&v2::stamp_bytes(us));
        msg[kernel_end..].copy_from_slice(&v2::stamp_bytes(stamp.hw_ns));
        self.queued(frame.len(), trailer, stamp);
        true
    }

    /// Queues the loss notice owed before a frame of `len` bytes received
    /// at `us`: false if the two do not fit together.
    #[cold]
    pub(super) fn tell_loss(&mut self, len: usize, us: u64) -> bool {
        let room = v2::NOTICE_MESSAGE + v2::MAX_STAMPED_MESSAGE - wire::CANFD_MTU + len;
        if self.io.tx.free() < room {
            return false;
        }
        self.notices.kernel_loss_seen(us);
        self.notices.flush(&mut self.io.tx, &self.io.counters, true);
        true
    }
}
