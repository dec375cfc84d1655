//! What may a CAN device be asked, and what does it answer? The vocabulary
//! between the session (which decides what goes to the bus) and the CAN port
//! (which writes it), kept below both so that neither imports the other, as
//! smoltcp's `phy` sits under its `iface`.

/// Result of handing one frame to the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanTx {
    /// Written.
    Sent,
    /// The queue is full (ENOBUFS / EAGAIN): retry the same frame later.
    Busy,
    /// The interface will never take this frame (e.g. EINVAL for FD on a
    /// classic interface).
    Refused,
    /// The interface is down or gone.
    Down,
}

/// Where frames from TCP go: the CAN socket in the daemon, a fake in tests.
pub trait CanSink {
    /// Writes one frame in host layout.
    fn send(&mut self, frame: &[u8]) -> CanTx;

    /// True if no real bus is behind this sink (vcan, vxcan): the only place
    /// an error frame from TCP may be written, to show a remote bus's errors
    /// to local tools.
    fn is_virtual(&self) -> bool {
        false
    }

    /// Writes frames in order until one is not taken. Returns how many were
    /// written and what happened to the next one: [`CanTx::Sent`] only when
    /// all were written, otherwise the reason the first one left was not.
    /// A sink that stopped short always knows why, so the caller never has
    /// to guess whether asking again would help.
    fn send_batch(&mut self, frames: &[&[u8]]) -> (usize, CanTx) {
        for (i, f) in frames.iter().enumerate() {
            match self.send(f) {
                CanTx::Sent => {}
                other => return (i, other),
            }
        }
        (frames.len(), CanTx::Sent)
    }
}

/// Jobs the kernel's broadcast manager carries out on its own (a `CAN_BCM`
/// socket in the daemon, a fake in tests): socketcand's cyclic sends
/// (`add`/`update`/`delete`) and receive jobs (`filter`/`subscribe`/
/// `unsubscribe`). Closing the socket ends every job it set up.
pub trait CyclicSink {
    /// Sends `frame` (host layout, classic) every `interval`, starting now,
    /// replacing any job for its ID; `None` replaces only the content and
    /// keeps the job's timer.
    fn setup(&mut self, frame: &[u8], interval: Option<std::time::Duration>)
        -> std::io::Result<()>;

    /// Stops the job for `can_id` (with `CAN_EFF_FLAG` for an extended ID).
    fn delete(&mut self, can_id: u32) -> std::io::Result<()>;

    /// Passes frames of `can_id` back through the socket, at most one per
    /// `throttle`: every one when `mask` is `None`, else (`mask` a classic
    /// frame in host layout whose data bytes are the mask) only those whose
    /// masked bytes changed. Replaces any receive job for the ID.
    fn rx_setup(
        &mut self,
        can_id: u32,
        throttle: std::time::Duration,
        mask: Option<&[u8]>,
    ) -> std::io::Result<()>;

    /// Ends the receive job for `can_id`.
    fn rx_delete(&mut self, can_id: u32) -> std::io::Result<()>;

    /// Ends every job, cyclic sends and receive jobs alike.
    fn end_all(&mut self);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` frames, then answers `then`.
    struct Queue {
        room: usize,
        then: CanTx,
    }

    impl CanSink for Queue {
        fn send(&mut self, _frame: &[u8]) -> CanTx {
            if self.room == 0 {
                return self.then;
            }
            self.room -= 1;
            CanTx::Sent
        }
    }

    #[test]
    fn a_batch_that_stops_short_says_why() {
        let f = [0u8; 16];
        let frames = [&f[..]; 5];
        let mut q = Queue {
            room: 2,
            then: CanTx::Busy,
        };
        assert_eq!(q.send_batch(&frames), (2, CanTx::Busy));
        let mut q = Queue {
            room: 9,
            then: CanTx::Down,
        };
        assert_eq!(q.send_batch(&frames), (5, CanTx::Sent));
    }
}
