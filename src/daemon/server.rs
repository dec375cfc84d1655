//! Who may connect to a server? The listening socket, accepting without
//! blocking, the `--allow` list and the `--max-clients` capacity.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::Socket;

use super::table::Table;
use crate::error::Error;
use crate::limits::MAX_ALLOW;
use crate::net::{self, Addrs, Cidr};

/// What one accept brought.
pub enum Accepted {
    /// A peer that may connect, and the connection slot it gets.
    Peer(usize, Socket, SocketAddr),
    /// A connection refused or aborted; others may still wait.
    Skipped,
    /// No more connections wait (or accepting failed, which was logged).
    Done,
}

/// The protocol a listening socket's clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// Protocol v1 (the Python `tcpcan`'s).
    V1,
    /// socketcand's (`--socketcand`).
    Socketcand,
}

/// A server's listening socket and who it lets in.
pub struct Server {
    listener: Socket,
    allow: heapless::Vec<Cidr, MAX_ALLOW>,
    keepalive: Duration,
    addr: SocketAddr,
    speaks: Speaks,
}

/// Ends a refused connection with a reset (`SO_LINGER` 0), not an orderly
/// close: a tcpcan client tells a refusal from the Python original's close
/// on a protocol version it does not speak, and so never pins version 1 for
/// a server that only had no room for it.
fn reset(sock: Socket) {
    let _ = sock.set_linger(Some(Duration::ZERO));
}

impl Server {
    /// Listens on the address `addrs` gives for clients speaking `speaks`
    /// about `canif`; the same `--allow` list applies to either protocol.
    pub fn listen(
        addrs: &Addrs,
        canif: &str,
        allow: heapless::Vec<Cidr, MAX_ALLOW>,
        keepalive: Duration,
        speaks: Speaks,
    ) -> Result<Server, Error> {
        let addr = net::listen_addr(addrs);
        let listener = net::listen(addr).map_err(|e| Error::Listen(addr, e))?;
        let who = match speaks {
            Speaks::V1 => "",
            Speaks::Socketcand => " for socketcand clients",
        };
        log::info!("listening on {addr}{who}, serving {canif}");
        Ok(Server {
            listener,
            allow,
            keepalive,
            addr,
            speaks,
        })
    }

    /// The protocol its clients speak.
    pub fn speaks(&self) -> Speaks {
        self.speaks
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening socket, for poll.
    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// True if `--allow` lets `peer` in (an empty list lets everyone in).
    fn allows(&self, peer: SocketAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(peer.ip()))
    }

    /// Accepts one pending connection and decides whether it may stay; a
    /// peer admitted gets a free slot of `conns`, whose capacity clients
    /// of both protocols share.
    pub fn accept<T>(&self, conns: &mut Table<T>) -> Accepted {
        let (sock, addr) = match self.listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Done,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Accepted::Skipped,
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => return Accepted::Skipped,
            Err(e) => {
                log::warn!("accept failed: {e}");
                return Accepted::Done;
            }
        };
        let Some(peer) = net::peer_addr(&addr) else {
            return Accepted::Skipped;
        };
        if !self.allows(peer) {
            log::warn!("{peer}: refused: not in the --allow list");
            reset(sock);
            return Accepted::Skipped;
        }
        let Some(slot) = conns.free_slot() else {
            log::warn!(
                "{peer}: refused: already serving {} clients (--max-clients)",
                conns.capacity()
            );
            reset(sock);
            return Accepted::Skipped;
        };
        if let Err(e) = net::configure_stream(&sock, self.keepalive) {
            log::warn!("{peer}: refused: cannot set socket options: {e}");
            return Accepted::Skipped;
        }
        log::info!("{peer}: accepted");
        Accepted::Peer(slot, sock, peer)
    }
}
