//! Protocol version 1 on the wire: message framing, the streaming decoder,
//! the encoder and the CAN frame layout. No I/O here.
//!
//! Every message is `prefix (1 byte) | length N (1 byte) | N payload bytes`.
//! `v` carries a big-endian u32 version; `d` carries a Linux `struct can_frame`
//! (16 bytes) or `struct canfd_frame` (72 bytes) in little-endian host layout.

use core::fmt;

/// Prefix of a protocol version message.
pub const PREFIX_VERSION: u8 = b'v';
/// Prefix of a CAN data message.
pub const PREFIX_DATA: u8 = b'd';
/// Prefix byte plus length byte.
pub const HEADER_LEN: usize = 2;
/// Payload length of a version message.
pub const VERSION_LEN: usize = 4;
/// Size of `struct can_frame` (classic CAN, `CAN_MTU`).
pub const CAN_MTU: usize = 16;
/// Size of `struct canfd_frame` (CAN FD, `CANFD_MTU`).
pub const CANFD_MTU: usize = 72;
/// Largest message we ever emit: a header plus a CAN FD frame.
pub const MAX_DATA_MESSAGE: usize = HEADER_LEN + CANFD_MTU;

/// `can_id` flag: extended 29-bit identifier.
pub const CAN_EFF_FLAG: u32 = 0x8000_0000;
/// `can_id` flag: remote transmission request.
pub const CAN_RTR_FLAG: u32 = 0x4000_0000;
/// `can_id` flag: error message frame.
pub const CAN_ERR_FLAG: u32 = 0x2000_0000;

/// Byte offsets inside `struct can_frame` / `struct canfd_frame`.
mod field {
    use core::ops::Range;
    pub const CAN_ID: Range<usize> = 0..4;
    pub const LEN: usize = 4;
    pub const DATA: usize = 8;
}

/// A decoded message, borrowing its payload from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// `v`: a protocol version proposal or acknowledgement.
    Version(u32),
    /// `d`: a CAN frame payload of any length; [`check_frame`] validates it.
    Data(&'a [u8]),
}

/// Outcome of [`decode`]: a whole message, or "not enough bytes yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A message and the number of bytes it occupied.
    Complete(Message<'a>, usize),
    /// The buffer holds only the start of a message.
    Partial,
}

/// A stream that cannot be framed further: the connection must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// A prefix this protocol version does not define.
    UnknownPrefix(u8),
    /// A `v` message whose payload is not 4 bytes.
    VersionLength(u8),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::UnknownPrefix(p) => write!(f, "unknown message prefix 0x{p:02x}"),
            WireError::VersionLength(n) => {
                write!(f, "version message with length {n} (expected 4)")
            }
        }
    }
}

/// Decodes the first message in `buf`.
///
/// TCP is a byte stream, so `buf` may end anywhere: a message cut short is
/// [`Decoded::Partial`], not an error. An unknown prefix is reported as soon
/// as its first byte is seen, without waiting for the rest.
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, WireError> {
    let Some(&prefix) = buf.first() else {
        return Ok(Decoded::Partial);
    };
    if prefix != PREFIX_VERSION && prefix != PREFIX_DATA {
        return Err(WireError::UnknownPrefix(prefix));
    }
    let Some(&len) = buf.get(1) else {
        return Ok(Decoded::Partial);
    };
    if prefix == PREFIX_VERSION && usize::from(len) != VERSION_LEN {
        return Err(WireError::VersionLength(len));
    }
    let total = HEADER_LEN + usize::from(len);
    let Some(payload) = buf.get(HEADER_LEN..total) else {
        return Ok(Decoded::Partial);
    };
    let msg = if prefix == PREFIX_VERSION {
        let mut be = [0u8; VERSION_LEN];
        be.copy_from_slice(payload);
        Message::Version(u32::from_be_bytes(be))
    } else {
        Message::Data(payload)
    };
    Ok(Decoded::Complete(msg, total))
}

/// Encodes a version message.
pub fn encode_version(version: u32) -> [u8; HEADER_LEN + VERSION_LEN] {
    let v = version.to_be_bytes();
    [PREFIX_VERSION, VERSION_LEN as u8, v[0], v[1], v[2], v[3]]
}

/// Encodes the data message header for a frame of `frame_len` bytes.
pub fn data_header(frame_len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(frame_len == CAN_MTU || frame_len == CANFD_MTU);
    [PREFIX_DATA, frame_len as u8]
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

/// Validates a `d` payload (in wire layout) before it goes to a bus.
pub fn check_frame(frame: &[u8]) -> Result<FrameKind, FrameError> {
    let kind = match frame.len() {
        CAN_MTU => FrameKind::Classic,
        CANFD_MTU => FrameKind::Fd,
        n => return Err(FrameError::Length(n)),
    };
    if wire_can_id(frame) & CAN_ERR_FLAG != 0 {
        return Err(FrameError::ErrorFrame);
    }
    let len = frame[field::LEN];
    match kind {
        FrameKind::Classic if len > 8 => Err(FrameError::ClassicLen(len)),
        FrameKind::Fd if !is_valid_fd_len(len) => Err(FrameError::FdLen(len)),
        _ => Ok(kind),
    }
}

/// The `can_id` of a frame in wire (little-endian) layout.
pub fn wire_can_id(frame: &[u8]) -> u32 {
    let mut le = [0u8; 4];
    le.copy_from_slice(&frame[field::CAN_ID]);
    u32::from_le_bytes(le)
}

/// Converts a frame between host and wire layout in place.
///
/// The wire carries what a little-endian Linux host has in memory (what the
/// reference emits on x86 and ARM); only `can_id` is wider than a byte, so a
/// big-endian host swaps just those four bytes. A no-op on little-endian hosts.
pub fn swap_layout(frame: &mut [u8]) {
    if cfg!(target_endian = "big") {
        frame[field::CAN_ID].reverse();
    }
}

/// Writes a frame in can-utils text form (`123#DEADBEEF`, `12345678##1…` for
/// FD, `123#R` for RTR) for log lines. Takes the wire layout.
pub struct FrameText<'a>(pub &'a [u8]);

impl fmt::Display for FrameText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = self.0;
        if frame.len() != CAN_MTU && frame.len() != CANFD_MTU {
            return write!(f, "<{} bytes>", frame.len());
        }
        let id = wire_can_id(frame);
        if id & (CAN_EFF_FLAG | CAN_ERR_FLAG) != 0 {
            write!(f, "{:08X}", id & 0x1FFF_FFFF)?;
        } else {
            write!(f, "{:03X}", id & 0x7FF)?;
        }
        let max = frame.len() - field::DATA;
        let len = usize::from(frame[field::LEN]).min(max);
        if frame.len() == CANFD_MTU {
            write!(f, "##{:X}", frame[field::LEN + 1] & 0xF)?;
        } else if id & CAN_RTR_FLAG != 0 {
            return f.write_str("#R");
        } else {
            f.write_str("#")?;
        }
        for b in &frame[field::DATA..field::DATA + len] {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic(id: u32, data: &[u8]) -> [u8; CAN_MTU] {
        let mut f = [0u8; CAN_MTU];
        f[0..4].copy_from_slice(&id.to_le_bytes());
        f[4] = data.len() as u8;
        f[8..8 + data.len()].copy_from_slice(data);
        f
    }

    #[test]
    fn version_message_bytes() {
        assert_eq!(encode_version(1), *b"v\x04\x00\x00\x00\x01");
        assert_eq!(encode_version(0xFFFF_FFFF), *b"v\x04\xff\xff\xff\xff");
    }

    #[test]
    fn decodes_version() {
        let d = decode(b"v\x04\x00\x00\x00\x02rest").unwrap();
        assert_eq!(d, Decoded::Complete(Message::Version(2), 6));
    }

    #[test]
    fn every_prefix_of_a_message_is_partial() {
        let mut msg = [0u8; 2 + CANFD_MTU];
        msg[0] = b'd';
        msg[1] = CANFD_MTU as u8;
        for cut in 0..msg.len() {
            assert_eq!(decode(&msg[..cut]), Ok(Decoded::Partial), "cut at {cut}");
        }
        assert_eq!(
            decode(&msg),
            Ok(Decoded::Complete(Message::Data(&msg[2..]), msg.len()))
        );
    }

    #[test]
    fn unknown_prefix_is_an_error_at_once() {
        assert_eq!(decode(b"x"), Err(WireError::UnknownPrefix(b'x')));
        assert_eq!(decode(b"\x00\x10"), Err(WireError::UnknownPrefix(0)));
    }

    #[test]
    fn version_with_wrong_length_is_an_error() {
        for len in (0u8..=255).filter(|&l| l != 4) {
            assert_eq!(decode(&[b'v', len]), Err(WireError::VersionLength(len)));
        }
    }

    #[test]
    fn data_of_any_length_is_framed() {
        let buf = [0u8; 2 + 255];
        for len in 0u8..=255 {
            let mut m = buf;
            m[0] = b'd';
            m[1] = len;
            let n = 2 + usize::from(len);
            match decode(&m[..n]).unwrap() {
                Decoded::Complete(Message::Data(p), used) => {
                    assert_eq!((p.len(), used), (usize::from(len), n))
                }
                other => panic!("{other:?}"),
            }
        }
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
}
