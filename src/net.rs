//! How does tcpcan reach and accept TCP peers? Resolving the host,
//! listening, connecting without blocking, per-stream options, and the
//! `--allow` list.

use core::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, TcpKeepalive, Type};

use crate::limits::{LISTEN_BACKLOG, MAX_ADDRS, TCP_SNDBUF};

/// Addresses a host resolved to.
pub type Addrs = heapless::Vec<SocketAddr, MAX_ADDRS>;

/// Resolves `host` (a name, an IPv4 literal, or an IPv6 literal with or
/// without brackets).
pub fn resolve(host: &str, port: u16) -> io::Result<Addrs> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let mut out = Addrs::new();
    for a in (bare, port).to_socket_addrs()? {
        if !out.contains(&a) && out.push(a).is_err() {
            break;
        }
    }
    if out.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
    }
    Ok(out)
}

/// The address a server binds: the reference binds an IPv4 socket, so a name
/// that resolves to both families is served on IPv4; `::` (or any IPv6
/// literal) gets IPv6, dual-stack when unspecified.
pub fn listen_addr(addrs: &Addrs) -> SocketAddr {
    addrs
        .iter()
        .copied()
        .find(SocketAddr::is_ipv4)
        .unwrap_or(addrs[0])
}

/// Opens a non-blocking listening socket.
pub fn listen(addr: SocketAddr) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A restarted daemon must not wait for TIME_WAIT to pass.
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `::` accepts IPv4 clients too, whatever net.ipv6.bindv6only says.
        sock.set_only_v6(!addr.ip().is_unspecified())?;
    }
    sock.bind(&addr.into())?;
    sock.listen(LISTEN_BACKLOG)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Sets the options every tunnel stream gets, whichever side opened it.
pub fn configure_stream(sock: &Socket, keepalive: Duration) -> io::Result<()> {
    sock.set_nonblocking(true)?;
    // Frames are small and latency matters more than segment count; we
    // already coalesce everything read in one wake-up into one send.
    sock.set_nodelay(true)?;
    // Fixed, not autotuned: see limits::TCP_SNDBUF.
    sock.set_send_buffer_size(TCP_SNDBUF)?;
    // As the reference: probe after `keepalive` idle, every `keepalive`, 3 times.
    let ka = TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(keepalive)
        .with_retries(3);
    sock.set_tcp_keepalive(&ka)?;
    // Keepalive does not cover data stuck in flight to a vanished peer;
    // the user timeout does, and bounds both cases to the same time.
    sock.set_tcp_user_timeout(Some(keepalive * 4))?;
    Ok(())
}

/// Acknowledges at once what was just read from `sock`.
///
/// A peer that leaves Nagle on (python-can's socketcand interface at its
/// defaults, which Windows cannot change, and the Python tcpcan 0.0.2
/// always) holds each small write until the one before is acknowledged.
/// Linux delays its acknowledgement by tens of milliseconds on a connection
/// that looks interactive, unless data goes back first; an ISO-TP block of
/// frames, with nothing to answer, would pay that delay every time (issue
/// 26: a desk at a quarter of its speed). Setting TCP_QUICKACK sends the
/// acknowledgement still owed; Linux drops back to delayed ones by itself,
/// so it is set again after every read that took data: one system call per
/// read, not per frame. A failure costs only speed, never a frame: ignored.
pub fn ack_now(sock: &Socket) {
    let _ = sock.set_quickack(true);
}

/// Starts a non-blocking connect; completion is signalled by POLLOUT.
pub fn connect_start(addr: SocketAddr, keepalive: Duration) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    configure_stream(&sock, keepalive)?;
    match sock.connect(&addr.into()) {
        Ok(()) => Ok(sock),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(sock),
        Err(e) => Err(e),
    }
}

/// Sends what it can of `buf` without blocking and without `SIGPIPE`:
/// how many bytes went, 0 when the socket's buffer is full (or a signal
/// came first); the peer's errors are errors.
pub fn send_some(sock: &Socket, buf: &[u8]) -> io::Result<usize> {
    full_is_zero(sock.send_with_flags(buf, libc::MSG_NOSIGNAL))
}

/// A non-blocking send's result, with a full stream (or a signal first)
/// as 0 bytes sent rather than an error: for TCP and pipes alike.
#[inline]
pub fn full_is_zero(sent: io::Result<usize>) -> io::Result<usize> {
    match sent {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(0)
        }
        sent => sent,
    }
}

/// The peer address as a plain IPv4 address when it came in on a dual-stack
/// socket as `::ffff:a.b.c.d`.
pub fn peer_addr(addr: &SockAddr) -> Option<SocketAddr> {
    let a = addr.as_socket()?;
    Some(match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    })
}

/// An address block from `--allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a single host).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || {
            format!("bad --allow '{s}': expected an address or address/prefix, e.g. 192.168.1.0/24")
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// True if `ip` lies in this block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    a & mask == b & mask
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("192.168.1.0/24").unwrap();
        assert!(c.contains(ip("192.168.1.77")));
        assert!(!c.contains(ip("192.168.2.1")));
        assert!(
            c.contains(ip("::ffff:192.168.1.5")),
            "mapped IPv4 from a dual-stack socket"
        );
        assert!(!c.contains(ip("fe80::1")));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe00::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    }

    #[test]
    fn cidr_garbage_is_refused() {
        for bad in ["", "1.2.3.4/33", "::/129", "host/8", "1.2.3/8"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literals_resolve_without_dns() {
        assert_eq!(
            resolve("127.0.0.1", 1).unwrap()[0],
            "127.0.0.1:1".parse().unwrap()
        );
        assert_eq!(resolve("::1", 2).unwrap()[0], "[::1]:2".parse().unwrap());
        assert_eq!(resolve("[::]", 3).unwrap()[0], "[::]:3".parse().unwrap());
    }
}
