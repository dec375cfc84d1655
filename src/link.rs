//! What carries a connection's bytes? A TCP stream, or a pair of pipe ends:
//! our standard input and output (`--stdio`, behind sshd) or a command's
//! (`--via`, ssh at the desk). Both are non-blocking and read into and
//! written from the session's fixed buffers, so the loop treats them alike;
//! only what poll says at the end of a stream differs.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use socket2::Socket;

use crate::net;
use crate::sys;
use crate::time::Stamp;

/// A connection's byte stream.
pub enum Link {
    /// A TCP stream: one descriptor both ways, with receive stamps.
    Tcp(Socket),
    /// A pipe end (or any stream descriptor) each way.
    Pipes {
        /// What the peer sends us.
        rx: File,
        /// What we send the peer.
        tx: File,
    },
}

impl From<Socket> for Link {
    fn from(s: Socket) -> Link {
        Link::Tcp(s)
    }
}

impl Link {
    /// Grows a TCP stream's send buffer to `size` bytes (version 2's
    /// larger messages, once, after agreement); a pipe's is the kernel's.
    /// Best effort: the default still carries every frame it can.
    #[cold]
    pub fn grow_send_buffer(&self, size: usize) {
        if let Link::Tcp(s) = self {
            let _ = s.set_send_buffer_size(size);
        }
    }

    /// A link over `rx` and `tx`, made non-blocking.
    pub fn pipes(rx: impl Into<OwnedFd>, tx: impl Into<OwnedFd>) -> io::Result<Link> {
        let (rx, tx) = (File::from(rx.into()), File::from(tx.into()));
        sys::set_nonblocking(rx.as_raw_fd())?;
        sys::set_nonblocking(tx.as_raw_fd())?;
        Ok(Link::Pipes { rx, tx })
    }

    /// A link over our standard input and output (copies of them, so
    /// nothing else in the process writes to the peer's stream by mistake).
    pub fn stdio() -> io::Result<Link> {
        Link::pipes(sys::dup_std(0)?, sys::dup_std(1)?)
    }

    /// The descriptor polled for input (and, for TCP, output too).
    pub fn rx_fd(&self) -> RawFd {
        match self {
            Link::Tcp(s) => s.as_raw_fd(),
            Link::Pipes { rx, .. } => rx.as_raw_fd(),
        }
    }

    /// The descriptor polled for output, if it is not [`rx_fd`](Self::rx_fd).
    pub fn tx_fd(&self) -> Option<RawFd> {
        match self {
            Link::Tcp(_) => None,
            Link::Pipes { tx, .. } => Some(tx.as_raw_fd()),
        }
    }

    /// True if reads carry the kernel's receive stamps (TCP, once
    /// [`enable_stamps`](Self::enable_stamps) is called); pipe reads are
    /// timed by the loop's clock instead.
    pub fn is_stamped(&self) -> bool {
        matches!(self, Link::Tcp(_))
    }

    /// Asks for receive stamps where there are any.
    pub fn enable_stamps(&self) {
        if let Link::Tcp(s) = self {
            // Without them the reads are timed by the clock: no harm done.
            let _ = sys::enable_timestamps(s.as_raw_fd());
        }
    }

    /// Acknowledges what was just read at once, where there are
    /// acknowledgements (TCP: see [`net::ack_now`]); a pipe has none.
    pub fn ack_now(&self) {
        if let Link::Tcp(s) = self {
            net::ack_now(s);
        }
    }

    /// True if poll's hang-up means no more data can be read. On TCP it
    /// means the connection is gone; a pipe (or a Unix socket, as sshd may
    /// hand over) reports it as soon as the writer is gone, while what it
    /// wrote may still wait to be read: that is read to the end.
    pub fn hang_up_is_final(&self) -> bool {
        matches!(self, Link::Tcp(_))
    }

    /// Reads what the peer sent into `buf`, without blocking: how many
    /// bytes (0 at the end of the stream), and their receive stamp if the
    /// link has them.
    // Inline, as the send below: per read, and in place of the plain call
    // to the TCP read they wrap.
    #[inline]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Stamp)> {
        match self {
            Link::Tcp(s) => sys::recv_stamped(s.as_raw_fd(), buf),
            Link::Pipes { rx, .. } => Ok(((&*rx).read(buf)?, Stamp::default())),
        }
    }

    /// Sends what it can of `buf` without blocking (and without SIGPIPE,
    /// which std ignores in the whole process): 0 when the stream is full.
    #[inline]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Link::Tcp(s) => net::send_some(s, buf),
            Link::Pipes { tx, .. } => net::full_is_zero((&*tx).write(buf)),
        }
    }

    /// Why poll reported an error on the link.
    pub fn error(&self) -> io::Error {
        let e = match self {
            Link::Tcp(s) => s.take_error().ok().flatten(),
            // The only error a pipe reports: its reader is gone.
            Link::Pipes { .. } => Some(io::Error::from_raw_os_error(libc::EPIPE)),
        };
        e.unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn pair() -> (Link, UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        let (c, d) = UnixStream::pair().unwrap();
        (Link::pipes(a, c).unwrap(), b, d)
    }

    #[test]
    fn pipe_ends_carry_bytes_both_ways_without_blocking() {
        let (link, mut peer_tx, mut peer_rx) = pair();
        let mut buf = [0u8; 8];
        let e = link.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "empty: no wait");
        peer_tx.write_all(b"abc").unwrap();
        assert_eq!(link.recv(&mut buf).unwrap(), (3, Stamp::default()));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(link.send(b"xyz").unwrap(), 3);
        let mut got = [0u8; 3];
        peer_rx.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"xyz");
        assert!(!link.is_stamped() && !link.hang_up_is_final());
        assert_ne!(link.tx_fd(), Some(link.rx_fd()));
    }

    #[test]
    fn a_full_pipe_takes_nothing_and_says_so_with_zero() {
        let (link, _peer_tx, _peer_rx) = pair();
        let chunk = [0u8; 4096];
        let mut sent = 0;
        while link.send(&chunk).unwrap() > 0 {
            sent += 1;
            assert!(sent < 10_000, "never filled");
        }
    }

    #[test]
    fn the_end_of_input_reads_as_zero_and_a_gone_reader_as_an_error() {
        let (link, peer_tx, peer_rx) = pair();
        drop(peer_tx);
        assert_eq!(link.recv(&mut [0u8; 8]).unwrap().0, 0);
        drop(peer_rx);
        assert!(link.send(b"x").is_err());
        assert_eq!(link.error().raw_os_error(), Some(libc::EPIPE));
    }
}
