//! What does `--log FILE` write? Every frame a connection carried, as a
//! line of `candump -l`'s log format: `(sec.usec) canif ID#DATA`, FD as
//! `ID##<flags digit>DATA`, a remote request as `ID#R` (and its length
//! digit when it has one), an error frame with `CAN_ERR_FLAG` in its
//! 8-digit ID. A frame this side sent to its peer ends in ` T`, as
//! candump and python-can mark a host's own frames; one received from the
//! peer has no mark (received, for both), timed by the peer's bus stamp in
//! version 2. Lines are gathered in a fixed buffer the loop drains without
//! blocking; a line that does not fit is dropped and counted, never a
//! frame. No I/O here.

use core::fmt::{self, Write as _};

use libc::{CAN_EFF_MASK, CAN_SFF_MASK};

use crate::buf::ByteBuf;
use crate::limits::LOG_BUF;
use crate::wire::{Frame, CAN_EFF_FLAG, CAN_ERR_FLAG, CAN_RTR_FLAG};

/// The longest line: `(` up to 20+1+6 digits `) `, an interface name
/// (15), a space, an FD frame (8 + `##` + 1 + 128), ` T` and a newline.
const LINE_MAX: usize = 1 + 27 + 2 + 15 + 1 + 8 + 3 + 128 + 2 + 1;

/// The can-utils text of a frame in wire layout, as candump's log writes it.
struct LogFrame<'a>(&'a [u8]);

impl fmt::Display for LogFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = Frame::new_unchecked(self.0);
        let id = frame.can_id();
        if id & CAN_ERR_FLAG != 0 {
            // The flag is part of the ID candump prints for an error frame.
            write!(f, "{:08X}", id & (CAN_ERR_FLAG | CAN_EFF_MASK))?;
        } else if id & CAN_EFF_FLAG != 0 {
            write!(f, "{:08X}", id & CAN_EFF_MASK)?;
        } else {
            write!(f, "{:03X}", id & CAN_SFF_MASK)?;
        }
        if frame.is_fd() {
            write!(f, "##{:X}", frame.flags() & 0xF)?;
        } else if id & CAN_RTR_FLAG != 0 {
            f.write_str("#R")?;
            let len = frame.len();
            if (1..=8).contains(&len) {
                write!(f, "{len}")?;
            }
            return Ok(());
        } else {
            f.write_str("#")?;
        }
        for b in frame.data() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// A line being written into a fixed array.
struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Log lines waiting for the writer, and how many did not fit.
pub struct LogLines {
    buf: ByteBuf<LOG_BUF>,
    canif: heapless::String<16>,
    dropped: u64,
}

impl LogLines {
    /// Lines for frames on `canif` (cut to 15 bytes, the kernel's longest).
    pub fn new(canif: &str) -> LogLines {
        let mut name = heapless::String::new();
        for c in canif.chars().take(15) {
            let _ = name.push(c);
        }
        LogLines {
            buf: ByteBuf::new(),
            canif: name,
            dropped: 0,
        }
    }

    /// A frame (wire layout, 16 or 72 bytes) on the bus at `us` (µs since
    /// the epoch); `own`: this side sent it to the peer.
    pub fn frame(&mut self, us: u64, frame: &[u8], own: bool) {
        let mut line = Line {
            buf: [0; LINE_MAX],
            len: 0,
        };
        let mark = if own { " T" } else { "" };
        let ok = writeln!(
            line,
            "({:010}.{:06}) {} {}{mark}",
            us / 1_000_000,
            us % 1_000_000,
            self.canif,
            LogFrame(frame)
        );
        if ok.is_err() || !self.buf.push(&line.buf[..line.len]) {
            self.dropped += 1;
        }
    }

    /// Bytes for the writer.
    pub fn pending(&self) -> &[u8] {
        self.buf.data()
    }

    /// The writer took `n` bytes (a line may be cut: the rest follows).
    pub fn written(&mut self, n: usize) {
        self.buf.consume(n);
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CANFD_MTU, CAN_MTU};

    fn frame(id: u32, len: u8, fd: bool, flags: u8) -> std::vec::Vec<u8> {
        let mut f = vec![0u8; if fd { CANFD_MTU } else { CAN_MTU }];
        f[0..4].copy_from_slice(&id.to_le_bytes());
        f[4] = len;
        f[5] = flags;
        for i in 0..usize::from(len) {
            f[8 + i] = 0xA0 + i as u8;
        }
        f
    }

    fn line(us: u64, f: &[u8], own: bool) -> String {
        let mut l = LogLines::new("vcan0");
        l.frame(us, f, own);
        String::from_utf8(l.pending().to_vec()).unwrap()
    }

    #[test]
    fn lines_are_candump_log_lines() {
        let t = 1_700_000_000_000_042;
        assert_eq!(
            line(t, &frame(0x123, 2, false, 0), false),
            "(1700000000.000042) vcan0 123#A0A1\n"
        );
        assert_eq!(
            line(t, &frame(CAN_EFF_FLAG | 0x1234_5678, 0, false, 0), true),
            "(1700000000.000042) vcan0 12345678# T\n"
        );
        assert_eq!(
            line(t, &frame(CAN_RTR_FLAG | 0x7FF, 3, false, 0), false),
            "(1700000000.000042) vcan0 7FF#R3\n"
        );
        assert_eq!(
            line(t, &frame(CAN_RTR_FLAG | 0x7FF, 0, false, 0), false),
            "(1700000000.000042) vcan0 7FF#R\n"
        );
        assert_eq!(
            line(t, &frame(CAN_ERR_FLAG | 0x40, 8, false, 0), false),
            "(1700000000.000042) vcan0 20000040#A0A1A2A3A4A5A6A7\n"
        );
        assert_eq!(
            line(5, &frame(0x42, 12, true, 1), false),
            "(0000000000.000005) vcan0 042##1A0A1A2A3A4A5A6A7A8A9AAAB\n"
        );
    }

    #[test]
    fn the_longest_line_fits_and_a_full_buffer_drops_lines_not_bytes() {
        let mut l = LogLines::new("a-very-long-interface-name");
        let fd = frame(CAN_EFF_FLAG | 0x1FFF_FFFF, 64, true, 0xF);
        l.frame(u64::MAX, &fd, true);
        assert_eq!(l.dropped(), 0, "the longest line fits");
        let one = l.pending().len();
        assert!(one <= LINE_MAX);
        while l.dropped() == 0 {
            l.frame(u64::MAX, &fd, true);
        }
        assert_eq!(l.pending().len() % one, 0, "only whole lines");
        l.written(3);
        l.frame(u64::MAX, &fd, true);
        assert!(l.dropped() >= 1);
    }
}
