//! Why did a connection end? One name for every reason, whether the peer
//! hung up, the socket failed or the protocol was broken, so the log line
//! and a client's fatal error say it the same way.

use core::fmt;
use std::io;
use std::time::Duration;

use crate::negotiation::NegotiationError;
use crate::wire::WireError;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The peer closed its end.
    PeerClosed,
    /// Reading or writing the TCP stream failed.
    Io(IoCause),
    /// The byte stream cannot be framed.
    Wire(WireError),
    /// Version negotiation failed.
    Negotiation(NegotiationError),
    /// A `d` message arrived before a version was agreed.
    DataBeforeAgreement,
    /// No version agreed within the handshake timeout.
    HandshakeTimeout(Duration),
    /// The peer sent what its protocol cannot carry on from.
    Input(BadInput),
}

/// What a peer sent that its protocol cannot carry on from, as the
/// protocol that found it says it: a fixed sentence and, where one byte is
/// to blame, that byte. Small and comparable, as every cause here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadInput {
    /// The sentence; `{}` in it stands for the byte.
    pub what: &'static str,
    /// The byte to blame, written `0x..` where the sentence has `{}`.
    pub byte: Option<u8>,
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.byte, self.what.split_once("{}")) {
            (Some(b), Some((before, after))) => write!(f, "{before}0x{b:02x}{after}"),
            _ => f.write_str(self.what),
        }
    }
}

/// A failed socket call, kept small and comparable (an `io::Error` is
/// neither): the OS error number when there is one, else the error's kind.
/// Displays exactly as the `io::Error` it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoCause {
    os: Option<i32>,
    kind: io::ErrorKind,
}

impl From<io::Error> for IoCause {
    fn from(e: io::Error) -> Self {
        IoCause {
            os: e.raw_os_error(),
            kind: e.kind(),
        }
    }
}

impl fmt::Display for IoCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.os {
            Some(code) => io::Error::from_raw_os_error(code).fmt(f),
            None => io::Error::from(self.kind).fmt(f),
        }
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Close::PeerClosed => f.write_str("peer closed the connection"),
            Close::Io(e) => e.fmt(f),
            Close::Wire(e) => e.fmt(f),
            Close::Negotiation(e) => e.fmt(f),
            Close::DataBeforeAgreement => f.write_str("data message before version agreement"),
            Close::HandshakeTimeout(t) => {
                write!(f, "no version agreement within {} s", t.as_secs())
            }
            Close::Input(e) => e.fmt(f),
        }
    }
}

impl From<io::Error> for Close {
    fn from(e: io::Error) -> Self {
        Close::Io(e.into())
    }
}

impl From<WireError> for Close {
    fn from(e: WireError) -> Self {
        Close::Wire(e)
    }
}

impl From<NegotiationError> for Close {
    fn from(e: NegotiationError) -> Self {
        Close::Negotiation(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_cause_reads_as_the_error_it_came_from() {
        let e = io::Error::from_raw_os_error(libc::ECONNRESET);
        let text = e.to_string();
        assert_eq!(Close::from(e).to_string(), text);
        let e = io::Error::from(io::ErrorKind::ConnectionReset);
        let text = e.to_string();
        assert_eq!(Close::from(e).to_string(), text);
    }

    #[test]
    fn every_reason_reads_as_one_line() {
        assert_eq!(Close::PeerClosed.to_string(), "peer closed the connection");
        assert_eq!(
            Close::HandshakeTimeout(Duration::from_secs(10)).to_string(),
            "no version agreement within 10 s"
        );
        assert_eq!(
            Close::from(WireError::UnknownPrefix(0x78)).to_string(),
            "unknown message prefix 0x78"
        );
        let bad = |what, byte| Close::Input(BadInput { what, byte }).to_string();
        assert_eq!(
            bad("byte {} outside < >", Some(0x41)),
            "byte 0x41 outside < >"
        );
        assert_eq!(bad("a bus not served", None), "a bus not served");
    }
}
