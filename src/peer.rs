//! Who is at the other end of a connection? A TCP address, or, with no
//! socket at all, our standard input and output (`--stdio`) or the pipes
//! of a command we run (`--via`). Only log lines and errors name it.

use core::fmt;
use std::net::SocketAddr;

/// The other end of a connection, as log lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// Whoever holds our standard input and output (`--stdio`: sshd).
    Stdio,
    /// The command `--via` runs (ssh, usually).
    Via,
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        Peer::Tcp(a)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(a) => a.fmt(f),
            Peer::Stdio => f.write_str("stdio"),
            Peer::Via => f.write_str("via"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_peer_reads_as_its_address_and_a_pipe_peer_as_its_mode() {
        let a: SocketAddr = "[::1]:20010".parse().unwrap();
        assert_eq!(Peer::from(a).to_string(), "[::1]:20010");
        assert_eq!(Peer::Stdio.to_string(), "stdio");
        assert_eq!(Peer::Via.to_string(), "via");
    }
}
