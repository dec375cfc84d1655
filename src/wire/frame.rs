//! Which bytes make a CAN frame in a `d` message, and which frames may go to
//! a bus? The frame layout as a byte table, a typed view over it, the checks
//! a frame from TCP must pass, and its can-utils text for log lines. No I/O.
//!
//! A `d` payload is a Linux `struct can_frame` or `struct canfd_frame`
//! (`linux/can.h`), byte for byte as a little-endian host holds it:
//!
//! | bytes | classic `can_frame` (16)   | FD `canfd_frame` (72)                 |
//! |-------|----------------------------|---------------------------------------|
//! | 0..4  | `can_id`, little-endian    | `can_id`, little-endian               |
//! | 4     | `len`: 0..=8               | `len`: 0..=8, 12, 16, 20, 24, 32, 48, 64 |
//! | 5     | padding                    | `flags`: `CANFD_BRS`, `CANFD_ESI`, …  |
//! | 6     | reserved                   | reserved                              |
//! | 7     | `len8_dlc`                 | reserved                              |
//! | 8..   | `data`, 8 bytes            | `data`, 64 bytes                      |
//!
//! `can_id` holds the identifier (11 or 29 bits) and, in its top three bits,
//! `CAN_EFF_FLAG`, `CAN_RTR_FLAG` and `CAN_ERR_FLAG`. The *host layout* (what
//! the kernel reads and writes) is the same bytes with `can_id` in native
//! byte order: the two differ only on a big-endian host.

use core::fmt;

use super::Field;

// The kernel's names and values, from `libc` rather than copied here.
pub use libc::{CANFD_MTU, CAN_EFF_FLAG, CAN_ERR_FLAG, CAN_MTU, CAN_RTR_FLAG};
use libc::{CAN_EFF_MASK, CAN_MAX_DLEN, CAN_SFF_MASK};

// The protocol carries the kernel structs byte for byte: if libc ever
// described them with other sizes, the wire format would silently change.
const _: () = assert!(CAN_MTU == 16 && CANFD_MTU == 72);

/// Byte offsets of the fields in the table above.
mod field {
    use super::Field;

    /// `can_id`: identifier and flags, little-endian on the wire.
    pub const CAN_ID: Field = 0..4;
    /// `len`: how many bytes of `data` the frame carries.
    pub const LEN: usize = 4;
    /// `flags` of an FD frame (`CANFD_*`); padding in a classic frame.
    pub const FLAGS: usize = 5;
    /// Reserved in both layouts.
    #[allow(dead_code)] // named for the reader of the table; nothing reads it
    pub const RES0: usize = 6;
    /// `len8_dlc` of a classic frame (a DLC of 9..=15 for 8 data bytes);
    /// reserved in an FD frame.
    #[allow(dead_code)] // forwarded as is; nothing here interprets it
    pub const LEN8_DLC: usize = 7;
    /// `data`: 8 bytes (classic) or 64 (FD), up to the end of the frame.
    pub const DATA: usize = 8;
}

/// What kind of CAN frame a valid `d` payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Classic CAN (`struct can_frame`).
    Classic,
    /// CAN FD (`struct canfd_frame`).
    Fd,
}

/// Why a `d` payload cannot go to a bus. The frame is dropped, the
/// connection stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Payload neither 16 nor 72 bytes long.
    Length(usize),
    /// Classic frame whose `len` exceeds 8.
    ClassicLen(u8),
    /// FD frame whose `len` is not a valid CAN FD payload length.
    FdLen(u8),
    /// Error frames describe a bus; they are never written to one.
    ErrorFrame,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::Length(n) => write!(f, "data message of {n} bytes (expected 16 or 72)"),
            FrameError::ClassicLen(n) => write!(f, "classic frame with len {n} (max 8)"),
            FrameError::FdLen(n) => write!(f, "CAN FD frame with invalid len {n}"),
            FrameError::ErrorFrame => write!(f, "error frame (CAN_ERR_FLAG) from TCP"),
        }
    }
}

/// True for the payload lengths a CAN FD frame can carry.
pub fn is_valid_fd_len(len: u8) -> bool {
    matches!(len, 0..=8 | 12 | 16 | 20 | 24 | 32 | 48 | 64)
}

/// A CAN frame in wire layout, read and written in place through the named
/// fields of the table above. Zero-copy: it only borrows (or owns) `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without looking at it. The accessors panic if it is
    /// shorter than a classic frame; use [`Frame::new_checked`] for bytes
    /// from outside.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer of exactly 16 or 72 bytes, the only sizes a frame has,
    /// so no accessor can panic. Says nothing about the fields: see
    /// [`Frame::check`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>, FrameError> {
        match buffer.as_ref().len() {
            CAN_MTU | CANFD_MTU => Ok(Frame::new_unchecked(buffer)),
            n => Err(FrameError::Length(n)),
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// True for a `struct canfd_frame` (72 bytes).
    pub fn is_fd(&self) -> bool {
        self.buffer.as_ref().len() == CANFD_MTU
    }

    /// Classic or FD, by size.
    pub fn kind(&self) -> FrameKind {
        if self.is_fd() {
            FrameKind::Fd
        } else {
            FrameKind::Classic
        }
    }

    /// `can_id`: identifier and `CAN_*_FLAG` bits.
    pub fn can_id(&self) -> u32 {
        let mut le = [0u8; 4];
        le.copy_from_slice(&self.buffer.as_ref()[field::CAN_ID]);
        u32::from_le_bytes(le)
    }

    /// The `len` field as sent, which may claim more than the frame holds.
    // `len` is the kernel's name for this field, not the size of the view:
    // an `is_empty` beside it would only mislead.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.buffer.as_ref()[field::LEN]
    }

    /// `flags` of an FD frame (`CANFD_BRS`, `CANFD_ESI`, `CANFD_FDF`); the
    /// padding byte of a classic one.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The whole `data` field (8 or 64 bytes), whatever `len` says.
    pub fn data_field(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// The data bytes the frame carries: `len` of them, at most the field.
    pub fn data(&self) -> &[u8] {
        let field = self.data_field();
        &field[..usize::from(self.len()).min(field.len())]
    }

    /// Whether the frame may go to a bus: a data frame whose `len` its kind
    /// allows. Error frames describe a bus and are never written to one.
    pub fn check(&self) -> Result<FrameKind, FrameError> {
        if self.can_id() & CAN_ERR_FLAG != 0 {
            return Err(FrameError::ErrorFrame);
        }
        let len = self.len();
        match self.kind() {
            FrameKind::Classic if usize::from(len) > CAN_MAX_DLEN => {
                Err(FrameError::ClassicLen(len))
            }
            FrameKind::Fd if !is_valid_fd_len(len) => Err(FrameError::FdLen(len)),
            kind => Ok(kind),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets `can_id` (identifier and flags).
    pub fn set_can_id(&mut self, id: u32) {
        self.buffer.as_mut()[field::CAN_ID].copy_from_slice(&id.to_le_bytes());
    }

    /// Sets the `len` field.
    pub fn set_len(&mut self, len: u8) {
        self.buffer.as_mut()[field::LEN] = len;
    }

    /// Sets `flags` (FD frames).
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// The whole `data` field, to fill.
    pub fn data_field_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Converts between host and wire layout in place; the same call goes
    /// either way.
    ///
    /// The wire carries what a little-endian Linux host has in memory (what
    /// the reference emits on x86 and ARM); only `can_id` is wider than a
    /// byte, so a big-endian host swaps just those four bytes. A no-op on
    /// little-endian hosts.
    pub fn swap_layout(&mut self) {
        if cfg!(target_endian = "big") {
            self.buffer.as_mut()[field::CAN_ID].reverse();
        }
    }
}

/// The can-utils text form (`123#DEADBEEF`, `12345678##1…` for FD, `123#R`
/// for RTR), for log lines.
impl<T: AsRef<[u8]>> fmt::Display for Frame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // can-utils prints the low nibble of the FD flags as one hex digit.
        const FD_FLAGS_DIGIT: u8 = 0xF;
        let id = self.can_id();
        if id & (CAN_EFF_FLAG | CAN_ERR_FLAG) != 0 {
            write!(f, "{:08X}", id & CAN_EFF_MASK)?;
        } else {
            write!(f, "{:03X}", id & CAN_SFF_MASK)?;
        }
        if self.is_fd() {
            write!(f, "##{:X}", self.flags() & FD_FLAGS_DIGIT)?;
        } else if id & CAN_RTR_FLAG != 0 {
            return f.write_str("#R");
        } else {
            f.write_str("#")?;
        }
        for b in self.data() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// Validates a `d` payload (in wire layout) before it goes to a bus.
pub fn check_frame(frame: &[u8]) -> Result<FrameKind, FrameError> {
    Frame::new_checked(frame)?.check()
}

/// The `can_id` of a frame in wire (little-endian) layout.
pub fn wire_can_id(frame: &[u8]) -> u32 {
    Frame::new_unchecked(frame).can_id()
}

/// Converts a frame between host and wire layout in place
/// ([`Frame::swap_layout`]).
pub fn swap_layout(frame: &mut [u8]) {
    Frame::new_unchecked(frame).swap_layout()
}

/// Writes a frame in can-utils text form for log lines (see [`Frame`]'s
/// `Display`), or `<N bytes>` if it is no frame. Takes the wire layout.
pub struct FrameText<'a>(pub &'a [u8]);

impl fmt::Display for FrameText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Frame::new_checked(self.0) {
            Ok(frame) => fmt::Display::fmt(&frame, f),
            Err(_) => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic frame in wire layout, built through the view.
    fn classic(id: u32, data: &[u8]) -> [u8; CAN_MTU] {
        let mut f = Frame::new_unchecked([0u8; CAN_MTU]);
        f.set_can_id(id);
        f.set_len(data.len() as u8);
        f.data_field_mut()[..data.len()].copy_from_slice(data);
        f.into_inner()
    }

    #[test]
    fn a_classic_frame_reads_field_by_field() {
        let bytes = [
            0x23, 0x01, 0x00, 0x80, // can_id 0x123 | CAN_EFF_FLAG, little-endian
            0x04, 0x00, 0x00, 0x00, // len 4, pad, res0, len8_dlc
            0xDE, 0xAD, 0xBE, 0xEF, 0x55, 0x55, 0x55, 0x55, // data, 4 of 8 used
        ];
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(f.can_id(), CAN_EFF_FLAG | 0x123);
        assert_eq!(f.len(), 4);
        assert!(!f.is_fd());
        assert_eq!(f.kind(), FrameKind::Classic);
        assert_eq!(f.data(), &[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(f.data_field().len(), 8);
        assert_eq!(f.check(), Ok(FrameKind::Classic));
    }

    #[test]
    fn an_fd_frame_reads_field_by_field() {
        let mut bytes = [0u8; CANFD_MTU];
        bytes[..8].copy_from_slice(&[0x42, 0, 0, 0, 12, 0x05, 0, 0]);
        bytes[8] = 0xAA;
        bytes[20] = 0xBB; // beyond len: not data
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!((f.can_id(), f.len(), f.flags()), (0x42, 12, 0x05));
        assert!(f.is_fd());
        assert_eq!(f.flags() & libc::CANFD_BRS as u8, libc::CANFD_BRS as u8);
        assert_eq!(f.data(), &[0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(f.data_field().len(), 64);
    }

    #[test]
    fn setters_write_the_bytes_of_the_table() {
        let mut f = Frame::new_unchecked([0u8; CANFD_MTU]);
        f.set_can_id(0x1234_5678);
        f.set_len(64);
        f.set_flags(0x01);
        f.data_field_mut()[63] = 0xEE;
        let b = f.into_inner();
        assert_eq!(&b[..8], &[0x78, 0x56, 0x34, 0x12, 64, 0x01, 0, 0]);
        assert_eq!(b[CANFD_MTU - 1], 0xEE);
    }

    #[test]
    fn only_frame_sizes_make_a_view() {
        let buf = [0u8; 255];
        for n in 0..=255usize {
            let ok = Frame::new_checked(&buf[..n]).is_ok();
            assert_eq!(ok, n == CAN_MTU || n == CANFD_MTU, "{n} bytes");
        }
    }

    #[test]
    fn data_never_reaches_past_the_field() {
        let mut f = Frame::new_unchecked([0u8; CAN_MTU]);
        f.set_len(15);
        assert_eq!(f.data().len(), 8);
        let mut fd = Frame::new_unchecked([0u8; CANFD_MTU]);
        fd.set_len(255);
        assert_eq!(fd.data().len(), 64);
    }

    #[test]
    fn check_frame_lengths() {
        for n in 0..=255usize {
            let f = [0u8; 255];
            let r = check_frame(&f[..n]);
            match n {
                CAN_MTU => assert_eq!(r, Ok(FrameKind::Classic)),
                CANFD_MTU => assert_eq!(r, Ok(FrameKind::Fd)),
                _ => assert_eq!(r, Err(FrameError::Length(n))),
            }
        }
    }

    #[test]
    fn check_frame_len_fields() {
        for len in 0u8..=255 {
            let mut c = classic(0x123, &[]);
            c[4] = len;
            assert_eq!(check_frame(&c).is_ok(), len <= 8, "classic len {len}");
            let mut fd = [0u8; CANFD_MTU];
            fd[4] = len;
            let valid = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64].contains(&len);
            assert_eq!(check_frame(&fd).is_ok(), valid, "fd len {len}");
        }
    }

    #[test]
    fn error_frames_are_refused() {
        let f = classic(CAN_ERR_FLAG | 0x40, &[0; 8]);
        assert_eq!(check_frame(&f), Err(FrameError::ErrorFrame));
    }

    #[test]
    fn frame_text_matches_can_utils() {
        let f = classic(0x123, &[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(FrameText(&f).to_string(), "123#DEADBEEF");
        let f = classic(CAN_EFF_FLAG | 0x1234_5678, &[1]);
        assert_eq!(FrameText(&f).to_string(), "12345678#01");
        let f = classic(CAN_RTR_FLAG | 0x7FF, &[]);
        assert_eq!(FrameText(&f).to_string(), "7FF#R");
        let mut fd = [0u8; CANFD_MTU];
        fd[0..4].copy_from_slice(&0x42u32.to_le_bytes());
        fd[4] = 12;
        fd[5] = 1;
        fd[8] = 0xAA;
        assert_eq!(FrameText(&fd).to_string(), "042##1AA0000000000000000000000");
        assert_eq!(FrameText(&[0u8; 3]).to_string(), "<3 bytes>");
    }

    #[test]
    fn layout_swap_is_identity_on_little_endian() {
        let mut f = classic(0x1234_5678, &[1, 2]);
        let before = f;
        swap_layout(&mut f);
        if cfg!(target_endian = "little") {
            assert_eq!(f, before);
        } else {
            assert_eq!(&f[0..4], &[0x12, 0x34, 0x56, 0x78]);
        }
    }

    #[test]
    fn host_layout_holds_can_id_in_native_order() {
        let mut f = Frame::new_unchecked(classic(CAN_EFF_FLAG | 0x0ABC_DEF0, &[7]));
        f.swap_layout();
        let host = f.into_inner();
        let mut ne = [0u8; 4];
        ne.copy_from_slice(&host[..4]);
        assert_eq!(u32::from_ne_bytes(ne), CAN_EFF_FLAG | 0x0ABC_DEF0);
        let mut back = Frame::new_unchecked(host);
        back.swap_layout();
        assert_eq!(back.can_id(), CAN_EFF_FLAG | 0x0ABC_DEF0);
        assert_eq!(&host[4..], &back.into_inner()[4..], "only can_id moves");
    }
}
