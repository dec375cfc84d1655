//! What does a socketcand client say, and how is a frame written for it?
//! socketcand's ASCII protocol (linux-can/socketcand `doc/protocol.md`, as
//! python-can's `socketcand` interface speaks it): commands cut from a byte
//! stream as `< word args… >`, and the lines the server writes back. No I/O,
//! no state: the connection's modes live in [`session`].
//!
//! Lines the server writes, byte for byte as socketcand writes them (python-can
//! reads the ID's width to tell a standard ID, 3 digits, from an extended
//! one, 8 digits, and needs the space before `>` even with no data):
//!
//! | line | when |
//! |---|---|
//! | `< hi >` | on connect |
//! | `< ok >` | a bus opened, a mode switched |
//! | `< frame ID SEC.USEC DATA >` | RAW mode, a data frame; DATA is contiguous hex, empty for DLC 0; BCM mode, a frame a `filter` or `subscribe` let through, written alike |
//! | `< rtr ID SEC.USEC DLC >` | RAW mode, a remote request |
//! | `< error CLASS SEC.USEC >` | RAW mode, an error frame (`--error-frames`) |
//! | `< echo >` | answer to `< echo >` |
//! | `< error TEXT >` | a command that cannot be done |

pub mod beacon;
pub mod session;

use core::fmt;

use crate::close::{BadInput, Close};
use crate::limits::SCD_MAX_LINE;
use crate::time::Stamp;
use crate::wire::HostFrame;

/// Why the byte stream cannot be read as commands: the connection ends
/// (nothing after it can be trusted to start a command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// No `>` within [`SCD_MAX_LINE`] bytes of the `<`.
    TooLong,
    /// Something other than `<` (or white space) where a command must start.
    Garbage(u8),
    /// A byte that is not printable ASCII inside `< … >`.
    Binary(u8),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LineError::TooLong => write!(f, "socketcand line longer than {SCD_MAX_LINE} bytes"),
            LineError::Garbage(b) => write!(f, "socketcand: byte 0x{b:02x} outside < >"),
            LineError::Binary(b) => write!(f, "socketcand: non-ASCII byte 0x{b:02x} in a command"),
        }
    }
}

/// Cuts the next `< … >` from `buf`. Returns the text between the angle
/// brackets and the bytes it used (leading white space included), or `None`
/// while the line is still incomplete.
pub fn next_line(buf: &[u8]) -> Result<Option<(&str, usize)>, LineError> {
    let Some(start) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(None);
    };
    if buf[start] != b'<' {
        return Err(LineError::Garbage(buf[start]));
    }
    let body = &buf[start + 1..];
    let window = &body[..body.len().min(SCD_MAX_LINE - 1)];
    for (i, &b) in window.iter().enumerate() {
        if b == b'>' {
            // Checked above to be printable ASCII, hence UTF-8.
            let text = core::str::from_utf8(&window[..i]).map_err(|_| LineError::Binary(0))?;
            return Ok(Some((text, start + 1 + i + 1)));
        }
        if !(b == b' ' || b == b'\t' || b.is_ascii_graphic()) || b == b'<' {
            return Err(LineError::Binary(b));
        }
    }
    if window.len() == SCD_MAX_LINE - 1 {
        return Err(LineError::TooLong);
    }
    Ok(None)
}

/// What a number in a command failed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// A CAN ID that is not 1 to 8 hex digits.
    Id,
    /// A DLC that is not a decimal number.
    Dlc,
    /// A data byte that is not 1 or 2 hex digits.
    Byte,
    /// An interval that is not a decimal number.
    Interval,
    /// A required field is absent.
    Missing,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberError::Id => "malformed CAN ID",
            NumberError::Dlc => "malformed DLC",
            NumberError::Byte => "malformed data byte",
            NumberError::Interval => "malformed interval",
            NumberError::Missing => "missing field",
        })
    }
}

/// Why a socketcand connection was ended by what its client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScdError {
    /// The byte stream is not `< … >` lines.
    Line(LineError),
    /// A number in a command is malformed.
    Number(NumberError),
    /// `< open >` named a bus this server does not serve.
    NoSuchBus,
}

// The sentence for a line too long names the limit.
const _: () = assert!(SCD_MAX_LINE == 256, "say the new limit in ScdError::said");

impl ScdError {
    /// The reason the connection ends, as its log line says it.
    pub fn said(self) -> BadInput {
        let (what, byte) = match self {
            ScdError::Line(LineError::TooLong) => ("socketcand line longer than 256 bytes", None),
            ScdError::Line(LineError::Garbage(b)) => ("socketcand: byte {} outside < >", Some(b)),
            ScdError::Line(LineError::Binary(b)) => {
                ("socketcand: non-ASCII byte {} in a command", Some(b))
            }
            ScdError::Number(e) => (
                match e {
                    NumberError::Id => "socketcand: malformed CAN ID",
                    NumberError::Dlc => "socketcand: malformed DLC",
                    NumberError::Byte => "socketcand: malformed data byte",
                    NumberError::Interval => "socketcand: malformed interval",
                    NumberError::Missing => "socketcand: missing field",
                },
                None,
            ),
            ScdError::NoSuchBus => ("socketcand: asked to open a bus not served", None),
        };
        BadInput { what, byte }
    }
}

impl fmt::Display for ScdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.said().fmt(f)
    }
}

impl From<ScdError> for Close {
    fn from(e: ScdError) -> Self {
        Close::Input(e.said())
    }
}

/// A frame a client asked to send, before the bus's rules are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFrame {
    /// Identifier with `CAN_EFF_FLAG` / `CAN_RTR_FLAG` set as the line said.
    pub can_id: u32,
    /// The DLC as written (may exceed 8: the session refuses it).
    pub dlc: u8,
    /// Data bytes given (at most 8 are kept).
    pub data: [u8; 8],
    /// How many data bytes the line carried.
    pub given: usize,
}

/// A bus name as `< open >` gives it: at most 16 bytes, as the protocol
/// says; a longer one is left empty, so it matches no bus.
pub type BusName = heapless::String<16>;

/// One command of a client, detached from the input it was read from (so
/// the input can be consumed once the command ran).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `< open BUS >`
    Open(BusName),
    /// `< rawmode >`
    RawMode,
    /// `< bcmmode >`
    BcmMode,
    /// `< echo >`
    Echo,
    /// `< send ID DLC BYTES… >` or `< sendrtr ID DLC >`
    Send(SendFrame),
    /// `< add SECS USECS ID DLC BYTES… >`: a cyclic send by the kernel's BCM.
    Add {
        /// Seconds and microseconds between two sends.
        interval: (u32, u32),
        /// The frame sent.
        frame: SendFrame,
    },
    /// `< controlmode >`
    ControlMode,
    /// `< statistics MS >`: interface statistics every MS ms (0: stop).
    Statistics(u32),
    /// `< update ID DLC BYTES… >`: new content for a cyclic send, same timer.
    Update(SendFrame),
    /// `< delete ID >`: stop a cyclic send.
    Delete(u32),
    /// `< filter SECS USECS ID DLC MASK… >`: frames of ID whose bytes under
    /// MASK changed, at most one per interval (the kernel's BCM).
    Filter {
        /// Throttle: seconds and microseconds.
        interval: (u32, u32),
        /// The ID, and the mask as its data bytes.
        frame: SendFrame,
    },
    /// `< subscribe SECS USECS ID >`: every frame of ID, at most one per interval.
    Subscribe {
        /// Throttle: seconds and microseconds.
        interval: (u32, u32),
        /// The ID, with `CAN_EFF_FLAG` for an extended one.
        can_id: u32,
    },
    /// `< unsubscribe ID >`: ends the filter or subscription for ID.
    Unsubscribe(u32),
    /// A command with more fields than it takes: answered, not carried out.
    Surplus(&'static str),
    /// A command of the protocol this server does not carry out
    /// (multiplex filters, ISO-TP, CAN FD sends).
    Unsupported(&'static str),
    /// A word the protocol does not have.
    Unknown,
}

/// Commands the protocol defines that are not carried out here; answered
/// with an error line rather than "unknown command".
const UNSUPPORTED: &[&str] = &["muxfilter", "isotpmode", "isotpconf", "sendpdu", "fdsend"];

/// Parses the text between `<` and `>`.
pub fn parse(text: &str) -> Result<Command, NumberError> {
    let mut words = text.split_ascii_whitespace();
    let Some(word) = words.next() else {
        return Ok(Command::Unknown);
    };
    Ok(match word {
        "open" => Command::Open(bus_name(words.next().ok_or(NumberError::Missing)?)),
        "rawmode" => Command::RawMode,
        "bcmmode" => Command::BcmMode,
        "echo" => Command::Echo,
        "send" => Command::Send(parse_send(&mut words, false)?),
        "sendrtr" => Command::Send(parse_send(&mut words, true)?),
        "add" => {
            let secs = parse_dec(words.next())?;
            let usecs = parse_dec(words.next())?;
            let frame = parse_send(&mut words, false)?;
            Command::Add {
                interval: (secs, usecs),
                frame,
            }
        }
        "update" => Command::Update(parse_send(&mut words, false)?),
        "controlmode" => Command::ControlMode,
        "statistics" => Command::Statistics(parse_dec(words.next())?),
        "delete" => Command::Delete(parse_id(words.next().ok_or(NumberError::Missing)?)?),
        "filter" => {
            let interval = (parse_dec(words.next())?, parse_dec(words.next())?);
            let frame = parse_send(&mut words, false)?;
            Command::Filter { interval, frame }
        }
        "subscribe" => {
            let interval = (parse_dec(words.next())?, parse_dec(words.next())?);
            let can_id = parse_id(words.next().ok_or(NumberError::Missing)?)?;
            match words.next() {
                Some(_) => Command::Surplus("subscribe"),
                None => Command::Subscribe { interval, can_id },
            }
        }
        "unsubscribe" => {
            let can_id = parse_id(words.next().ok_or(NumberError::Missing)?)?;
            match words.next() {
                Some(_) => Command::Surplus("unsubscribe"),
                None => Command::Unsubscribe(can_id),
            }
        }
        w => match UNSUPPORTED.iter().find(|&&u| u == w) {
            Some(u) => Command::Unsupported(u),
            None => Command::Unknown,
        },
    })
}

fn bus_name(text: &str) -> BusName {
    let mut name = BusName::new();
    if name.push_str(text).is_err() {
        name.clear();
    }
    name
}

fn parse_send<'a>(
    words: &mut impl Iterator<Item = &'a str>,
    rtr: bool,
) -> Result<SendFrame, NumberError> {
    let mut can_id = parse_id(words.next().ok_or(NumberError::Missing)?)?;
    if rtr {
        can_id |= libc::CAN_RTR_FLAG;
    }
    let dlc_text = words.next().ok_or(NumberError::Missing)?;
    // A DLC is one or two decimal digits; more is certainly not a DLC.
    if dlc_text.len() > 2 {
        return Err(NumberError::Dlc);
    }
    let dlc: u8 = dlc_text.parse().map_err(|_| NumberError::Dlc)?;
    let mut data = [0u8; 8];
    let mut given = 0;
    for w in words {
        let b = parse_hex(w, 2).ok_or(NumberError::Byte)? as u8;
        if given < data.len() {
            data[given] = b;
        }
        given += 1;
    }
    Ok(SendFrame {
        can_id,
        dlc,
        data,
        given,
    })
}

/// A CAN ID; as socketcand, an 8-digit ID is extended whatever its value.
fn parse_id(text: &str) -> Result<u32, NumberError> {
    let id = parse_hex(text, 8).ok_or(NumberError::Id)?;
    Ok(if text.len() == 8 {
        id | libc::CAN_EFF_FLAG
    } else {
        id
    })
}

/// A decimal interval field, at most 10 digits.
fn parse_dec(word: Option<&str>) -> Result<u32, NumberError> {
    let w = word.ok_or(NumberError::Missing)?;
    if w.is_empty() || w.len() > 10 || !w.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::Interval);
    }
    w.parse().map_err(|_| NumberError::Interval)
}

/// 1 to `max_digits` hex digits, nothing else (no sign, no `0x`).
fn parse_hex(s: &str, max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Longest line [`write_frame`] produces: `< frame 1FFFFFFF ` + a 20-digit
/// second count + `.123456 ` + 16 hex digits + `>`, rounded up.
pub const MAX_FRAME_LINE: usize = 80;

/// What a frame read from the bus becomes for a socketcand client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    /// A line of this many bytes was written.
    Line(usize),
    /// A CAN FD frame: the protocol cannot say it.
    Fd,
    /// An error frame, and error frames are not forwarded.
    ErrorNotWanted,
}

/// Writes the line for one frame in host layout (16 or 72 bytes) into
/// `out`, which must hold [`MAX_FRAME_LINE`] bytes.
pub fn write_frame(frame: &[u8], stamp: Stamp, error_frames: bool, out: &mut [u8]) -> Out {
    // Anything but a classic frame (an FD frame is 72 bytes) has no line.
    if frame.len() != libc::CAN_MTU {
        return Out::Fd;
    }
    let frame = HostFrame::new_unchecked(frame);
    let raw = frame.can_id();
    let mut w = Cursor { out, at: 0 };
    if raw & libc::CAN_ERR_FLAG != 0 {
        if !error_frames {
            return Out::ErrorNotWanted;
        }
        w.text("< error ");
        w.hex(raw & libc::CAN_EFF_MASK, 3);
        w.stamp(stamp);
        w.text(" >");
        return Out::Line(w.at);
    }
    let rtr = raw & libc::CAN_RTR_FLAG != 0;
    w.text(if rtr { "< rtr " } else { "< frame " });
    if raw & libc::CAN_EFF_FLAG != 0 {
        w.hex(raw & libc::CAN_EFF_MASK, 8);
    } else {
        w.hex(raw & libc::CAN_SFF_MASK, 3);
    }
    w.stamp(stamp);
    w.text(" ");
    if rtr {
        w.dec(u64::from(frame.len().min(8)));
    } else {
        for &b in frame.data() {
            w.hex(u32::from(b), 2);
        }
    }
    w.text(" >");
    Out::Line(w.at)
}

/// Appends ASCII to a fixed slice sized for the longest line.
struct Cursor<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn text(&mut self, s: &str) {
        self.out[self.at..self.at + s.len()].copy_from_slice(s.as_bytes());
        self.at += s.len();
    }

    /// Upper-case hex, zero-padded to at least `width` digits.
    fn hex(&mut self, v: u32, width: usize) {
        let digits = (32 - v.leading_zeros() as usize).div_ceil(4);
        let n = digits.max(width);
        for i in (0..n).rev() {
            let d = ((v >> (4 * i)) & 0xf) as u8;
            self.out[self.at] = if d < 10 { b'0' + d } else { b'A' + d - 10 };
            self.at += 1;
        }
    }

    fn dec(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut n = 0;
        loop {
            tmp[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            self.out[self.at] = tmp[i];
            self.at += 1;
        }
    }

    /// ` SEC.USEC`, microseconds always six digits.
    fn stamp(&mut self, s: Stamp) {
        self.text(" ");
        self.dec(s.sec.max(0) as u64);
        self.text(".");
        let u = s.usec.min(999_999);
        let mut div = 100_000;
        while div > 0 {
            self.out[self.at] = b'0' + ((u / div) % 10) as u8;
            self.at += 1;
            div /= 10;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u32, data: &[u8]) -> [u8; 16] {
        let mut f = [0u8; 16];
        f[..4].copy_from_slice(&id.to_ne_bytes());
        f[4] = data.len() as u8;
        f[8..8 + data.len()].copy_from_slice(data);
        f
    }

    fn line(f: &[u8], stamp: Stamp, errors: bool) -> String {
        let mut out = [0u8; MAX_FRAME_LINE];
        match write_frame(f, stamp, errors, &mut out) {
            Out::Line(n) => String::from_utf8(out[..n].to_vec()).unwrap(),
            other => format!("{other:?}"),
        }
    }

    const T: Stamp = Stamp::kernel(23, 424_242);

    #[test]
    fn a_standard_frame_is_written_as_socketcand_writes_it() {
        let f = frame(0x123, &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(line(&f, T, false), "< frame 123 23.424242 11223344 >");
    }

    #[test]
    fn an_extended_id_has_eight_digits_and_a_standard_one_three() {
        let f = frame(0x5 | libc::CAN_EFF_FLAG, &[0xAB]);
        assert_eq!(line(&f, T, false), "< frame 00000005 23.424242 AB >");
        assert_eq!(line(&frame(0x5, &[]), T, false), "< frame 005 23.424242  >");
    }

    #[test]
    fn a_frame_without_data_keeps_the_space_python_can_splits_on() {
        let l = line(&frame(0x7FF, &[]), Stamp::kernel(1, 5), false);
        assert_eq!(l, "< frame 7FF 1.000005  >");
        assert_eq!(l[8..l.len() - 2].splitn(3, ' ').count(), 3);
    }

    #[test]
    fn eight_bytes_and_the_largest_stamp_fit_the_line() {
        let f = frame(0x1FFF_FFFF | libc::CAN_EFF_FLAG, &[0xFF; 8]);
        let big = Stamp::kernel(i64::MAX, 999_999);
        let l = line(&f, big, false);
        assert!(l.len() <= MAX_FRAME_LINE);
        assert!(l.ends_with(".999999 FFFFFFFFFFFFFFFF >"), "{l}");
    }

    #[test]
    fn a_remote_request_says_its_dlc() {
        let mut f = frame(0x123 | libc::CAN_RTR_FLAG, &[]);
        f[4] = 4;
        assert_eq!(line(&f, T, false), "< rtr 123 23.424242 4 >");
    }

    #[test]
    fn error_frames_are_written_only_when_wanted() {
        let f = frame(libc::CAN_ERR_FLAG | 0x4, &[0; 8]);
        assert_eq!(line(&f, T, false), "ErrorNotWanted");
        assert_eq!(line(&f, T, true), "< error 004 23.424242 >");
    }

    #[test]
    fn an_fd_frame_has_no_line() {
        let f = [0u8; libc::CANFD_MTU];
        let mut out = [0u8; MAX_FRAME_LINE];
        assert_eq!(write_frame(&f, T, true, &mut out), Out::Fd);
    }

    #[test]
    fn a_command_is_cut_at_its_closing_bracket() {
        let buf = b"< open vcan0 >< rawmode >";
        let (text, used) = next_line(buf).unwrap().unwrap();
        assert_eq!((text, used), (" open vcan0 ", 14));
        let (text, used) = next_line(&buf[14..]).unwrap().unwrap();
        assert_eq!((text, used), (" rawmode ", 11));
    }

    #[test]
    fn every_cut_of_a_command_waits_and_the_whole_one_is_read() {
        let buf = b"  \r\n< send 1AAAAAAA 2 1 F1 >";
        for cut in 0..buf.len() {
            assert_eq!(next_line(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            next_line(buf),
            Ok(Some((" send 1AAAAAAA 2 1 F1 ", buf.len())))
        );
    }

    #[test]
    fn a_line_with_no_closing_bracket_ends_at_the_limit() {
        let mut long = vec![b'<'];
        long.resize(SCD_MAX_LINE - 1, b'a');
        assert_eq!(next_line(&long), Ok(None), "one byte short of the limit");
        long.push(b'a');
        assert_eq!(next_line(&long), Err(LineError::TooLong));
        let mut fits = vec![b'<'];
        fits.resize(SCD_MAX_LINE - 1, b' ');
        fits.push(b'>');
        assert!(next_line(&fits).unwrap().is_some(), "the limit itself fits");
    }

    #[test]
    fn binary_garbage_is_refused_where_it_stands() {
        assert_eq!(next_line(b"\x00\x01"), Err(LineError::Garbage(0)));
        assert_eq!(next_line(b"hello"), Err(LineError::Garbage(b'h')));
        assert_eq!(next_line(b"< se\xffnd >"), Err(LineError::Binary(0xff)));
        assert_eq!(next_line(b"< a < b >"), Err(LineError::Binary(b'<')));
    }

    #[test]
    fn the_commands_python_can_sends_are_understood() {
        assert_eq!(
            parse(" open vcan0 "),
            Ok(Command::Open("vcan0".try_into().unwrap()))
        );
        assert_eq!(parse(" rawmode "), Ok(Command::RawMode));
        assert_eq!(
            parse(" send 123 3 1 a2 FF "),
            Ok(Command::Send(SendFrame {
                can_id: 0x123,
                dlc: 3,
                data: [1, 0xa2, 0xff, 0, 0, 0, 0, 0],
                given: 3
            }))
        );
    }

    #[test]
    fn an_eight_digit_id_is_extended_and_sendrtr_asks_for_a_remote_frame() {
        let Ok(Command::Send(f)) = parse(" send 00000123 0 ") else {
            panic!()
        };
        assert_eq!(f.can_id, 0x123 | libc::CAN_EFF_FLAG);
        let Ok(Command::Send(f)) = parse(" sendrtr 7FF 2 ") else {
            panic!()
        };
        assert_eq!(
            (f.can_id, f.dlc, f.given),
            (0x7FF | libc::CAN_RTR_FLAG, 2, 0)
        );
    }

    #[test]
    fn malformed_numbers_are_named() {
        assert_eq!(parse(" send 12G 1 00 "), Err(NumberError::Id));
        assert_eq!(parse(" send 123456789 1 00 "), Err(NumberError::Id));
        assert_eq!(parse(" send 0x12 1 00 "), Err(NumberError::Id));
        assert_eq!(parse(" send 123 x 00 "), Err(NumberError::Dlc));
        assert_eq!(parse(" send 123 1 100 "), Err(NumberError::Byte));
        assert_eq!(parse(" send 123 "), Err(NumberError::Missing));
        assert_eq!(parse(" open "), Err(NumberError::Missing));
    }

    #[test]
    fn cyclic_send_commands_are_understood() {
        let Ok(Command::Add { interval, frame }) = parse(" add 1 500000 123 2 AA BB ") else {
            panic!()
        };
        assert_eq!(
            (interval, frame.can_id, frame.dlc),
            ((1, 500_000), 0x123, 2)
        );
        assert_eq!(&frame.data[..2], &[0xAA, 0xBB]);
        let Ok(Command::Update(f)) = parse(" update 00000123 1 11 ") else {
            panic!()
        };
        assert_eq!(f.can_id, 0x123 | libc::CAN_EFF_FLAG);
        assert_eq!(parse(" delete 123 "), Ok(Command::Delete(0x123)));
        assert_eq!(
            parse(" delete 1AAAAAAA "),
            Ok(Command::Delete(0x1AAA_AAAA | libc::CAN_EFF_FLAG))
        );
        assert_eq!(parse(" add x 0 123 0 "), Err(NumberError::Interval));
        assert_eq!(parse(" add 1 -5 123 0 "), Err(NumberError::Interval));
        assert_eq!(
            parse(" add 99999999999 0 123 0 "),
            Err(NumberError::Interval)
        );
        assert_eq!(parse(" delete "), Err(NumberError::Missing));
        assert_eq!(parse(" controlmode "), Ok(Command::ControlMode));
        assert_eq!(parse(" statistics 1000 "), Ok(Command::Statistics(1000)));
        assert_eq!(parse(" statistics 1e3 "), Err(NumberError::Interval));
    }

    #[test]
    fn a_large_dlc_is_parsed_for_the_session_to_refuse() {
        let Ok(Command::Send(f)) = parse(" send 123 9 1 2 3 4 5 6 7 8 9 ") else {
            panic!()
        };
        assert_eq!((f.dlc, f.given), (9, 9));
    }

    #[test]
    fn receive_commands_are_understood() {
        let Ok(Command::Filter { interval, frame }) = parse(" filter 1 500000 123 2 FF 0F ") else {
            panic!()
        };
        assert_eq!(
            (interval, frame.can_id, frame.dlc, frame.given),
            ((1, 500_000), 0x123, 2, 2)
        );
        assert_eq!(&frame.data[..2], &[0xFF, 0x0F]);
        assert_eq!(
            parse(" subscribe 0 250000 1AAAAAAA "),
            Ok(Command::Subscribe {
                interval: (0, 250_000),
                can_id: 0x1AAA_AAAA | libc::CAN_EFF_FLAG
            })
        );
        assert_eq!(parse(" unsubscribe 123 "), Ok(Command::Unsubscribe(0x123)));
    }

    #[test]
    fn a_receive_command_with_a_bad_number_or_a_field_too_many_is_named() {
        assert_eq!(parse(" subscribe 0 0 12G "), Err(NumberError::Id));
        assert_eq!(parse(" subscribe 0 0 "), Err(NumberError::Missing));
        assert_eq!(parse(" subscribe x 0 123 "), Err(NumberError::Interval));
        assert_eq!(parse(" filter 0 0 123 1 FFF "), Err(NumberError::Byte));
        assert_eq!(parse(" unsubscribe "), Err(NumberError::Missing));
        assert_eq!(
            parse(" subscribe 0 0 123 1 "),
            Ok(Command::Surplus("subscribe"))
        );
        assert_eq!(
            parse(" unsubscribe 123 456 "),
            Ok(Command::Surplus("unsubscribe"))
        );
    }

    #[test]
    fn protocol_commands_not_carried_out_differ_from_unknown_words() {
        assert_eq!(
            parse(" muxfilter 0 0 123 2 FF 00 00 00 00 00 00 00 33 FF FF FF FF FF FF FF "),
            Ok(Command::Unsupported("muxfilter"))
        );
        assert_eq!(parse(" isotpmode "), Ok(Command::Unsupported("isotpmode")));
        assert_eq!(parse(" frobnicate "), Ok(Command::Unknown));
        assert_eq!(parse("  "), Ok(Command::Unknown));
    }
}
