//! How is a TCP byte stream cut into protocol messages, and how are they
//! written? Protocol version 1 framing: the message header as a byte table,
//! the streaming decoder and the encoder. The CAN frame a `d` message carries
//! is described in [`frame`]. No I/O here.
//!
//! | bytes    | field   | meaning                                          |
//! |----------|---------|--------------------------------------------------|
//! | 0        | prefix  | `v` (version) or `d` (data)                      |
//! | 1        | length  | payload length N, 0..=255                        |
//! | 2..2+N   | payload | `v`: big-endian u32, N = 4; `d`: a CAN frame     |

use core::fmt;
use core::ops::Range;

pub mod frame;
pub mod host;
pub mod v2;

pub use frame::{
    check_frame, is_valid_fd_len, swap_layout, wire_can_id, Frame, FrameError, FrameKind,
    FrameText, CANFD_MTU, CAN_EFF_FLAG, CAN_ERR_FLAG, CAN_MTU, CAN_RTR_FLAG,
};
pub use host::HostFrame;

/// A run of bytes inside a message or frame, as the byte tables name them.
type Field = Range<usize>;

/// Byte offsets of the message header in the table above.
mod field {
    use super::Field;

    /// Which kind of message: `v` or `d`.
    pub const PREFIX: usize = 0;
    /// Payload length N.
    pub const LENGTH: usize = 1;
    /// Where the payload starts.
    pub const PAYLOAD: usize = 2;

    /// The payload of a message whose length byte says `len`.
    pub const fn payload(len: u8) -> Field {
        PAYLOAD..PAYLOAD + len as usize
    }
}

/// Prefix of a protocol version message.
pub const PREFIX_VERSION: u8 = b'v';
/// Prefix of a CAN data message.
pub const PREFIX_DATA: u8 = b'd';
/// Prefix byte plus length byte.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Payload length of a version message.
pub const VERSION_LEN: usize = 4;
/// Largest message we ever emit: a header plus a CAN FD frame.
pub const MAX_DATA_MESSAGE: usize = HEADER_LEN + CANFD_MTU;

/// A decoded message, borrowing its payload from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// `v`: a protocol version proposal or acknowledgement.
    Version(u32),
    /// `d`: a CAN frame payload of any length; [`check_frame`] validates it.
    Data(&'a [u8]),
    /// `t` (version 2): a frame of 16 or 72 bytes and its receive times.
    Stamped(&'a [u8], v2::Times),
    /// `l` (version 2): frames lost on their way to us.
    Loss(v2::Notice),
    /// `w` (version 2): frames we sent that the peer's bus did not take.
    WriteFail(v2::Notice),
    /// `s` (version 2): the peer's bus changed state at this time (µs).
    State(v2::State, u64),
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
    /// A version 2 message (prefix) with a length it cannot have.
    Length(u8, u8),
    /// A version 2 message (prefix) with a reason or state code it does
    /// not define.
    Code(u8),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::UnknownPrefix(p) => write!(f, "unknown message prefix 0x{p:02x}"),
            WireError::VersionLength(n) => {
                write!(f, "version message with length {n} (expected 4)")
            }
            WireError::Length(p, n) => {
                write!(f, "'{}' message with length {n}", char::from(p))
            }
            WireError::Code(p) => {
                write!(f, "'{}' message with an undefined code", char::from(p))
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
    let Some(&prefix) = buf.get(field::PREFIX) else {
        return Ok(Decoded::Partial);
    };
    if prefix != PREFIX_VERSION && prefix != PREFIX_DATA {
        return Err(WireError::UnknownPrefix(prefix));
    }
    let Some(&len) = buf.get(field::LENGTH) else {
        return Ok(Decoded::Partial);
    };
    if prefix == PREFIX_VERSION && usize::from(len) != VERSION_LEN {
        return Err(WireError::VersionLength(len));
    }
    let payload_at = field::payload(len);
    let total = payload_at.end;
    let Some(payload) = buf.get(payload_at) else {
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

/// The frame's length inside a `t` message of each payload length (the
/// stamps follow the frame: 8 or 16 bytes); 0 where there is none.
const STAMPED_FRAME: [u8; 256] = {
    let mut t = [0u8; 256];
    t[CAN_MTU + v2::KERNEL_STAMP_LEN] = CAN_MTU as u8;
    t[CAN_MTU + v2::KERNEL_STAMP_LEN + v2::HW_STAMP_LEN] = CAN_MTU as u8;
    t[CANFD_MTU + v2::KERNEL_STAMP_LEN] = CANFD_MTU as u8;
    t[CANFD_MTU + v2::KERNEL_STAMP_LEN + v2::HW_STAMP_LEN] = CANFD_MTU as u8;
    t
};

/// The frame's length inside a `d` message of each payload length: the
/// length itself (0, no frame, is left to [`decode`] and the verdict).
const DATA_FRAME: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut len = 0;
    while len < 256 {
        t[len] = len as u8;
        len += 1;
    }
    t
};

/// How one protocol version's frame messages are found by their header
/// alone: the prefix the version sends frames with, and per payload length
/// the frame's length (0 where that length cannot carry one).
#[derive(Debug, Clone, Copy)]
pub struct FrameMessages {
    prefix: u8,
    frame_len: &'static [u8; 256],
}

/// Version 1's frame messages: `d`.
pub const V1_FRAMES: FrameMessages = FrameMessages {
    prefix: PREFIX_DATA,
    frame_len: &DATA_FRAME,
};

/// Version 2's frame messages: `t` (a `d`, which version 2 accepts but we
/// never send, is left to [`v2::decode`]).
pub const V2_FRAMES: FrameMessages = FrameMessages {
    prefix: v2::PREFIX_STAMPED,
    frame_len: &STAMPED_FRAME,
};

/// The whole frame message at the start of `buf`, of the kind `frames`
/// sends: the frame's length and the message's. `None` for anything else,
/// or a message cut short; [`decode`] (or [`v2::decode`]) then says what it
/// is. Reads nothing but the header, and costs the same in either version:
/// the path that carries a run of frames to the bus.
// Inline: once per frame from TCP.
#[inline]
pub fn frame_message(buf: &[u8], frames: FrameMessages) -> Option<(usize, usize)> {
    let (&prefix, &len) = (buf.first()?, buf.get(1)?);
    let total = HEADER_LEN + usize::from(len);
    if prefix != frames.prefix || buf.len() < total {
        return None;
    }
    // One load instead of a chain of compares (measured: 12 instructions a
    // frame, 8 % of a frame's cost at 5 kfps).
    match frames.frame_len[usize::from(len)] {
        0 => None,
        f => Some((usize::from(f), total)),
    }
}

/// Encodes a version message.
pub fn encode_version(version: u32) -> [u8; HEADER_LEN + VERSION_LEN] {
    let mut msg = [0u8; HEADER_LEN + VERSION_LEN];
    msg[field::PREFIX] = PREFIX_VERSION;
    msg[field::LENGTH] = VERSION_LEN as u8;
    msg[field::payload(VERSION_LEN as u8)].copy_from_slice(&version.to_be_bytes());
    msg
}

/// Encodes the data message header for a frame of `frame_len` bytes.
pub fn data_header(frame_len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(frame_len == CAN_MTU || frame_len == CANFD_MTU);
    let mut header = [0u8; HEADER_LEN];
    header[field::PREFIX] = PREFIX_DATA;
    header[field::LENGTH] = frame_len as u8;
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_message_bytes() {
        assert_eq!(encode_version(1), *b"v\x04\x00\x00\x00\x01");
        assert_eq!(encode_version(0xFFFF_FFFF), *b"v\x04\xff\xff\xff\xff");
    }

    #[test]
    fn data_header_bytes() {
        assert_eq!(data_header(CAN_MTU), *b"d\x10");
        assert_eq!(data_header(CANFD_MTU), *b"d\x48");
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
    fn frame_messages_are_found_by_their_header_alone_and_never_cut() {
        let mut d = vec![b'd', 16];
        d.resize(18, 0);
        assert_eq!(frame_message(&d, V1_FRAMES), Some((16, 18)));
        assert_eq!(frame_message(&d, V2_FRAMES), None, "v2::decode's");
        let mut empty_d = vec![b'd', 0];
        assert_eq!(frame_message(&empty_d, V1_FRAMES), None, "decode's");
        empty_d[1] = 255;
        empty_d.resize(257, 0);
        assert_eq!(frame_message(&empty_d, V1_FRAMES), Some((255, 257)));
        for (len, frame) in [
            (24u8, CAN_MTU),
            (32, CAN_MTU),
            (80, CANFD_MTU),
            (88, CANFD_MTU),
        ] {
            let mut t = vec![b't', len];
            t.resize(HEADER_LEN + usize::from(len), 0);
            assert_eq!(frame_message(&t, V2_FRAMES), Some((frame, t.len())));
            assert_eq!(frame_message(&t, V1_FRAMES), None, "no 't' in version 1");
            for cut in 0..t.len() {
                assert_eq!(frame_message(&t[..cut], V2_FRAMES), None, "cut at {cut}");
            }
        }
        let mut odd = vec![b't', 25];
        odd.resize(27, 0);
        assert_eq!(
            frame_message(&odd, V2_FRAMES),
            None,
            "decode names the length"
        );
        assert_eq!(frame_message(&encode_version(1), V2_FRAMES), None);
    }
}
