//! What do two tcpcan peers say in protocol version 2 that version 1 cannot?
//! The bus's own time of each frame, and every loss: the messages version 2
//! adds, as byte tables, their decoder and encoders. Same header as
//! version 1 (prefix, length, payload); multi-byte fields big-endian. No I/O.
//!
//! | prefix | payload (N bytes)                                      | meaning |
//! |--------|--------------------------------------------------------|---------|
//! | `t`    | frame (16 or 72), kernel µs u64 [, hardware ns u64]     | a frame with its receive time: N = 24, 80 (kernel stamp) or 32, 88 (and a hardware stamp) |
//! | `l`    | reason u8, count u32, total u64, since µs u64 (N = 21)   | frames lost on their way to the peer |
//! | `w`    | same as `l`                                            | frames from the peer the bus did not take |
//! | `s`    | state u8, at µs u64 (N = 9)                             | the bus's state changed |
//!
//! The frame comes first in `t`, so it starts where it starts in `d`: one
//! path delivers either to the bus.

use core::fmt;

use super::{Decoded, Message, WireError, HEADER_LEN, PREFIX_DATA, PREFIX_VERSION};
use super::{CANFD_MTU, CAN_MTU, VERSION_LEN};

/// Prefix of a frame with its receive time.
pub const PREFIX_STAMPED: u8 = b't';
/// Prefix of a loss notice (towards the reader of the notice).
pub const PREFIX_LOSS: u8 = b'l';
/// Prefix of a write-failure notice (frames the notice's reader sent).
pub const PREFIX_WRITE_FAIL: u8 = b'w';
/// Prefix of a bus-state notice.
pub const PREFIX_STATE: u8 = b's';

/// Bytes of the kernel stamp (microseconds since the epoch).
pub const KERNEL_STAMP_LEN: usize = 8;
/// Bytes of the hardware stamp (nanoseconds, the driver's clock).
pub const HW_STAMP_LEN: usize = 8;
/// Payload of a loss or write-failure notice.
pub const NOTICE_LEN: usize = 21;
/// Payload of a bus-state notice.
pub const STATE_LEN: usize = 9;
/// Largest frame message: header, FD frame and both stamps.
pub const MAX_STAMPED_MESSAGE: usize = HEADER_LEN + CANFD_MTU + KERNEL_STAMP_LEN + HW_STAMP_LEN;
/// Whole notice message.
pub const NOTICE_MESSAGE: usize = HEADER_LEN + NOTICE_LEN;
/// Whole state message.
pub const STATE_MESSAGE: usize = HEADER_LEN + STATE_LEN;

/// Byte offsets inside the payloads of the table above.
mod field {
    use core::ops::Range;

    /// Notice: the reason code.
    pub const REASON: usize = 0;
    /// Notice: frames lost since the notice before.
    pub const COUNT: Range<usize> = 1..5;
    /// Notice: frames lost for this reason since the connection began.
    pub const TOTAL: Range<usize> = 5..13;
    /// Notice: when the first of `count` was lost, µs since the epoch.
    pub const SINCE: Range<usize> = 13..21;
    /// State notice: the state code.
    pub const STATE: usize = 0;
    /// State notice: when it changed, µs since the epoch.
    pub const AT: Range<usize> = 1..9;
}

/// Why frames were lost or not written, named as the connection's counters
/// name them (see `counters.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Malformed frame from TCP.
    Invalid = 1,
    /// The interface refused it.
    Refused = 2,
    /// The interface was down or absent.
    BusDown = 3,
    /// The bus could not take it within `--tx-timeout`.
    Stale = 4,
    /// `--read-only`.
    ReadOnly = 5,
    /// An error frame from TCP.
    ErrorFrame = 6,
    /// The kernel's queue of the peer's CAN socket overflowed.
    KernelOverflow = 7,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 7] = [
        Reason::Invalid,
        Reason::Refused,
        Reason::BusDown,
        Reason::Stale,
        Reason::ReadOnly,
        Reason::ErrorFrame,
        Reason::KernelOverflow,
    ];

    fn from_code(c: u8) -> Option<Reason> {
        Reason::ALL.get(usize::from(c).checked_sub(1)?).copied()
    }

    /// The counter's name, as the counters' log line writes it.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Invalid => "invalid",
            Reason::Refused => "refused",
            Reason::BusDown => "bus_down",
            Reason::Stale => "stale",
            Reason::ReadOnly => "read_only",
            Reason::ErrorFrame => "error_frames",
            Reason::KernelOverflow => "kernel_overflow",
        }
    }
}

/// A bus state as the notice carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Normal operation (also after a restart from bus-off).
    ErrorActive = 0,
    /// An error counter passed 96.
    ErrorWarning = 1,
    /// An error counter passed 127.
    ErrorPassive = 2,
    /// The controller left the bus.
    BusOff = 3,
}

impl State {
    fn from_code(c: u8) -> Option<State> {
        [
            State::ErrorActive,
            State::ErrorWarning,
            State::ErrorPassive,
            State::BusOff,
        ]
        .get(usize::from(c))
        .copied()
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::ErrorActive => "error-active",
            State::ErrorWarning => "error-warning",
            State::ErrorPassive => "error-passive",
            State::BusOff => "bus-off",
        })
    }
}

/// A loss or write-failure notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// Why.
    pub reason: Reason,
    /// Frames since the notice before for this reason.
    pub count: u32,
    /// Frames for this reason since the connection began.
    pub total: u64,
    /// When the first of `count` was lost, µs since the epoch (0: unknown).
    pub since: u64,
}

/// The receive times a `t` message carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    /// The kernel's receive time, µs since the epoch (0: none).
    pub kernel_us: u64,
    /// The driver's hardware time in ns, if it gave one.
    pub hw_ns: Option<u64>,
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// Splits a `t` payload into the frame and its times, by its length.
fn stamped(payload: &[u8]) -> Option<(&[u8], Times)> {
    let frame_len = match payload.len() {
        24 | 32 => CAN_MTU,
        80 | 88 => CANFD_MTU,
        _ => return None,
    };
    let (frame, stamps) = payload.split_at(frame_len);
    let kernel_us = be64(&stamps[..KERNEL_STAMP_LEN]);
    let hw_ns = (stamps.len() == KERNEL_STAMP_LEN + HW_STAMP_LEN)
        .then(|| be64(&stamps[KERNEL_STAMP_LEN..]));
    Some((frame, Times { kernel_us, hw_ns }))
}

/// Decodes the first message of a version 2 stream: version 1's `v` and
/// `d`, and the messages above. As [`super::decode`], a cut message is
/// [`Decoded::Partial`] and an unknown prefix is an error at its first
/// byte; a known prefix with a length or code it cannot have is an error
/// once the message is whole.
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, WireError> {
    let Some(&prefix) = buf.first() else {
        return Ok(Decoded::Partial);
    };
    if prefix == PREFIX_VERSION || prefix == PREFIX_DATA {
        return super::decode(buf);
    }
    if ![PREFIX_STAMPED, PREFIX_LOSS, PREFIX_WRITE_FAIL, PREFIX_STATE].contains(&prefix) {
        return Err(WireError::UnknownPrefix(prefix));
    }
    let Some(&len) = buf.get(1) else {
        return Ok(Decoded::Partial);
    };
    let expected = match prefix {
        PREFIX_LOSS | PREFIX_WRITE_FAIL => Some(NOTICE_LEN),
        PREFIX_STATE => Some(STATE_LEN),
        _ => None,
    };
    if expected.is_some_and(|n| n != usize::from(len)) {
        return Err(WireError::Length(prefix, len));
    }
    let total = HEADER_LEN + usize::from(len);
    let Some(p) = buf.get(HEADER_LEN..total) else {
        return Ok(Decoded::Partial);
    };
    let bad = WireError::Length(prefix, len);
    let msg = match prefix {
        PREFIX_STAMPED => {
            let (frame, times) = stamped(p).ok_or(bad)?;
            Message::Stamped(frame, times)
        }
        PREFIX_STATE => {
            let state = State::from_code(p[field::STATE]).ok_or(WireError::Code(prefix))?;
            Message::State(state, be64(&p[field::AT]))
        }
        _ => {
            let reason = Reason::from_code(p[field::REASON]).ok_or(WireError::Code(prefix))?;
            let mut count = [0u8; 4];
            count.copy_from_slice(&p[field::COUNT]);
            let notice = Notice {
                reason,
                count: u32::from_be_bytes(count),
                total: be64(&p[field::TOTAL]),
                since: be64(&p[field::SINCE]),
            };
            if prefix == PREFIX_LOSS {
                Message::Loss(notice)
            } else {
                Message::WriteFail(notice)
            }
        }
    };
    Ok(Decoded::Complete(msg, total))
}

/// The header of a `t` message for a frame of `frame_len` bytes with a
/// kernel stamp (and a hardware stamp if `hw`); the stamps follow the
/// frame ([`kernel_stamp`]).
pub fn stamped_header(frame_len: usize, hw: bool) -> [u8; HEADER_LEN] {
    debug_assert!(frame_len == CAN_MTU || frame_len == CANFD_MTU);
    let hw_len = if hw { HW_STAMP_LEN } else { 0 };
    [
        PREFIX_STAMPED,
        (frame_len + KERNEL_STAMP_LEN + hw_len) as u8,
    ]
}

/// The stamp bytes behind the frame of a `t` message.
pub fn stamp_bytes(us_or_ns: u64) -> [u8; 8] {
    us_or_ns.to_be_bytes()
}

/// Encodes a loss (`l`) or write-failure (`w`) notice.
pub fn encode_notice(prefix: u8, n: &Notice) -> [u8; NOTICE_MESSAGE] {
    debug_assert!(prefix == PREFIX_LOSS || prefix == PREFIX_WRITE_FAIL);
    let mut m = [0u8; NOTICE_MESSAGE];
    m[0] = prefix;
    m[1] = NOTICE_LEN as u8;
    let p = &mut m[HEADER_LEN..];
    p[field::REASON] = n.reason as u8;
    p[field::COUNT].copy_from_slice(&n.count.to_be_bytes());
    p[field::TOTAL].copy_from_slice(&n.total.to_be_bytes());
    p[field::SINCE].copy_from_slice(&n.since.to_be_bytes());
    m
}

/// Encodes a bus-state notice.
pub fn encode_state(state: State, at_us: u64) -> [u8; STATE_MESSAGE] {
    let mut m = [0u8; STATE_MESSAGE];
    m[0] = PREFIX_STATE;
    m[1] = STATE_LEN as u8;
    m[HEADER_LEN + field::STATE] = state as u8;
    m[HEADER_LEN + field::AT.start..].copy_from_slice(&at_us.to_be_bytes());
    m
}

// A version message is the same in both versions.
const _: () = assert!(VERSION_LEN == 4);

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped_msg(frame_len: usize, hw: Option<u64>) -> std::vec::Vec<u8> {
        let mut m = stamped_header(frame_len, hw.is_some()).to_vec();
        let mut frame = vec![0u8; frame_len];
        frame[0] = 0x23;
        frame[4] = 1;
        m.extend(frame);
        m.extend(stamp_bytes(1_700_000_000_123_456));
        if let Some(ns) = hw {
            m.extend(stamp_bytes(ns));
        }
        m
    }

    fn every_message() -> std::vec::Vec<std::vec::Vec<u8>> {
        let n = Notice {
            reason: Reason::KernelOverflow,
            count: 0x0102_0304,
            total: 0x1122_3344_5566_7788,
            since: 1_700_000_000_000_001,
        };
        vec![
            stamped_msg(CAN_MTU, None),
            stamped_msg(CAN_MTU, Some(42)),
            stamped_msg(CANFD_MTU, None),
            stamped_msg(CANFD_MTU, Some(u64::MAX)),
            encode_notice(PREFIX_LOSS, &n).to_vec(),
            encode_notice(PREFIX_WRITE_FAIL, &n).to_vec(),
            encode_state(State::BusOff, 7).to_vec(),
        ]
    }

    #[test]
    fn notice_bytes() {
        let n = Notice {
            reason: Reason::Stale,
            count: 3,
            total: 258,
            since: 1,
        };
        assert_eq!(
            encode_notice(PREFIX_WRITE_FAIL, &n),
            *b"w\x15\x04\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x00\x00\x00\x01"
        );
        assert_eq!(
            encode_state(State::ErrorPassive, 0x0102),
            *b"s\x09\x02\x00\x00\x00\x00\x00\x00\x01\x02"
        );
    }

    #[test]
    fn every_message_decodes_to_what_was_encoded() {
        for m in every_message() {
            let Ok(Decoded::Complete(msg, used)) = decode(&m) else {
                panic!("{m:02x?}");
            };
            assert_eq!(used, m.len());
            match msg {
                Message::Stamped(frame, t) => {
                    assert_eq!(frame, &m[HEADER_LEN..HEADER_LEN + frame.len()]);
                    assert_eq!(frame[0], 0x23);
                    assert_eq!(t.kernel_us, 1_700_000_000_123_456);
                    let hw =
                        (m.len() - HEADER_LEN - frame.len() == 16).then(|| be64(&m[m.len() - 8..]));
                    assert_eq!(t.hw_ns, hw);
                }
                Message::Loss(n) | Message::WriteFail(n) => {
                    assert_eq!(encode_notice(m[0], &n).to_vec(), m);
                }
                Message::State(s, at) => assert_eq!(encode_state(s, at).to_vec(), m),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn every_cut_of_every_message_is_partial() {
        for m in every_message() {
            for cut in 0..m.len() {
                assert_eq!(
                    decode(&m[..cut]),
                    Ok(Decoded::Partial),
                    "{m:02x?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn version_1_messages_decode_as_in_version_1() {
        assert_eq!(
            decode(b"v\x04\x00\x00\x00\x02"),
            Ok(Decoded::Complete(Message::Version(2), 6))
        );
        let mut d = vec![b'd', 16];
        d.extend([0u8; 16]);
        assert_eq!(decode(&d), super::super::decode(&d));
    }

    #[test]
    fn wrong_lengths_and_codes_are_errors() {
        for len in (0u8..=255).filter(|&l| usize::from(l) != NOTICE_LEN) {
            assert_eq!(decode(&[b'l', len]), Err(WireError::Length(b'l', len)));
            assert_eq!(decode(&[b'w', len]), Err(WireError::Length(b'w', len)));
        }
        for len in (0u8..=255).filter(|&l| usize::from(l) != STATE_LEN) {
            assert_eq!(decode(&[b's', len]), Err(WireError::Length(b's', len)));
        }
        for len in (0u8..=255).filter(|l| ![24, 32, 80, 88].contains(l)) {
            let mut m = vec![b't', len];
            m.resize(HEADER_LEN + usize::from(len), 0);
            assert_eq!(decode(&m), Err(WireError::Length(b't', len)));
        }
        let mut bad = encode_state(State::BusOff, 0);
        bad[HEADER_LEN] = 4;
        assert_eq!(decode(&bad), Err(WireError::Code(b's')));
        let n = Notice {
            reason: Reason::Invalid,
            count: 0,
            total: 0,
            since: 0,
        };
        for code in [0u8, 8, 255] {
            let mut bad = encode_notice(PREFIX_LOSS, &n);
            bad[HEADER_LEN] = code;
            assert_eq!(decode(&bad), Err(WireError::Code(b'l')));
        }
    }

    #[test]
    fn an_unknown_prefix_is_an_error_at_once() {
        for p in (0u8..=255).filter(|p| !b"vdtlws".contains(p)) {
            assert_eq!(decode(&[p]), Err(WireError::UnknownPrefix(p)));
        }
    }

    #[test]
    fn reason_codes_round_trip_and_name_the_counters() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r as u8), Some(r));
        }
        assert_eq!(Reason::from_code(0), None);
        assert_eq!(Reason::KernelOverflow.name(), "kernel_overflow");
    }
}
