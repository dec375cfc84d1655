//! Why did the program stop? Errors that end it, each naming what we were
//! doing and why it failed, in one line.

use core::fmt;
use std::io;
use std::net::SocketAddr;

use crate::can::CanSupport;
use crate::close::Close;
use crate::peer::Peer;

/// A fatal error.
#[derive(Debug)]
pub enum Error {
    /// The CAN interface does not exist.
    NoSuchInterface(String),
    /// The interface exists but is not CAN.
    NotCan(String),
    /// The kernel makes no raw CAN sockets, so no interface could be opened.
    NoCanSupport(String, CanSupport),
    /// Opening the CAN interface failed otherwise.
    CanOpen(String, io::Error),
    /// The host name did not resolve.
    Resolve(String, io::Error),
    /// The listening socket could not be set up.
    Listen(SocketAddr, io::Error),
    /// A client could not connect and must not retry.
    Connect(SocketAddr, io::Error),
    /// A client lost its connection, for this reason, and must not retry.
    Lost(Peer, Close),
    /// The `--via` command could not run, or ended, and must not be
    /// started again (`--no-retry`): how, in words.
    Via(String),
    /// Any other system call, with what we were doing.
    Io(&'static str, io::Error),
    /// `--log FILE` could not be opened (or its writer started).
    LogFile(String, io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchInterface(n) => write!(f, "no such CAN interface: {n}"),
            Error::NotCan(n) => write!(f, "{n} is not a CAN interface"),
            Error::NoCanSupport(n, CanSupport::NoFamily) => write!(
                f,
                "cannot open {n}: this kernel has no CAN (socket(AF_CAN) is refused): \
                 load the can and can_raw modules (modprobe can_raw) or use a kernel built with CAN"
            ),
            Error::NoCanSupport(n, CanSupport::NoRaw) => write!(
                f,
                "cannot open {n}: this kernel has CAN but no raw CAN sockets: \
                 load the can_raw module (modprobe can_raw)"
            ),
            Error::CanOpen(n, e) => write!(f, "cannot open CAN interface {n}: {e}"),
            Error::Resolve(h, e) => write!(f, "cannot resolve host {h}: {e}"),
            Error::Listen(a, e) => write!(f, "cannot listen on {a}: {e}"),
            Error::Connect(a, e) => write!(f, "cannot connect to {a}: {e}"),
            Error::Lost(a, why) => write!(f, "connection to {a} lost: {why}"),
            Error::Via(how) => write!(f, "{how}"),
            Error::Io(what, e) => write!(f, "{what}: {e}"),
            Error::LogFile(p, e) => write!(f, "cannot open --log file {p}: {e}"),
        }
    }
}

impl std::error::Error for Error {}
