//! How does a client get its connection? Dialing each address the host
//! resolved to, without blocking, and retrying with a back-off: the plan is
//! a pure [`Dialer`] driven by times and errors, the sockets are [`Client`]'s.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::time::Now;
use crate::close::Close;
use crate::error::Error;
use crate::limits::RETRY_INTERVAL;
use crate::negotiation::MIN_VERSION;
use crate::net::{self, Addrs};
use crate::peer::Peer;

/// What a failed attempt was worth saying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// A new cause: warned.
    Warned,
    /// The same cause as last time: a debug line only.
    Quiet,
}

/// When and where to dial next: tries each address in turn, backs off
/// [`RETRY_INTERVAL`] once all have failed, and names a cause once per
/// change, not once per second.
#[derive(Debug)]
pub struct Dialer {
    addrs: Addrs,
    next: usize,
    retry: bool,
    retry_at: Option<Instant>,
    last_error: Option<io::ErrorKind>,
    /// Addresses whose server closed on our version 2 and then agreed on
    /// 1 (the Python original): spoken to in version 1 until we restart.
    v1_only: Vec<Peer>,
    /// The address that closed on our version 2 and is being dialed with
    /// 1 to learn why: the Python original agrees, a tcpcan server that
    /// refuses us (`--allow`, `--max-clients`) closes again and is not
    /// pinned to 1 for it.
    trying_v1: Option<Peer>,
}

impl Dialer {
    /// A dialer over `addrs` (at least one) that dials at once; `retry` is
    /// false with `--no-retry`.
    pub fn new(addrs: Addrs, retry: bool, now: Instant) -> Dialer {
        Dialer {
            addrs,
            next: 0,
            retry,
            retry_at: Some(now),
            last_error: None,
            v1_only: Vec::new(),
            trying_v1: None,
        }
    }

    /// When the next attempt is due, if one is planned.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Starts an attempt: the address to dial. Clears the timer.
    pub fn start(&mut self) -> SocketAddr {
        self.retry_at = None;
        self.addrs[self.next]
    }

    /// The attempt succeeded: the next round starts from the first address,
    /// and the next failure is news again.
    pub fn connected(&mut self) {
        self.last_error = None;
        self.next = 0;
    }

    /// The attempt on `addr` failed with `e` at `now`. Plans the next one
    /// (at once for the next address, after the back-off when all have
    /// failed); with `--no-retry`, failing the last address is fatal.
    pub fn failed(&mut self, addr: SocketAddr, e: io::Error, now: Instant) -> Result<Said, Error> {
        self.next += 1;
        let tried_all = self.next >= self.addrs.len();
        if tried_all {
            self.next = 0;
        }
        if !self.retry {
            if tried_all {
                return Err(Error::Connect(addr, e));
            }
            self.retry_at = Some(now);
            return Ok(Said::Quiet);
        }
        let said = if self.last_error != Some(e.kind()) {
            log::warn!("cannot connect to {addr}: {e}; retrying every second");
            self.last_error = Some(e.kind());
            Said::Warned
        } else {
            log::debug!("cannot connect to {addr}: {e}");
            Said::Quiet
        };
        let wait = if tried_all {
            RETRY_INTERVAL
        } else {
            Duration::ZERO
        };
        self.retry_at = Some(now + wait);
        Ok(said)
    }

    /// The highest version to propose to `addr`: `configured`, or 1 for a
    /// server that closed on more (to learn why, or known to speak only 1).
    pub fn highest(&self, addr: impl Into<Peer>, configured: u32) -> u32 {
        let addr = addr.into();
        if self.trying_v1 == Some(addr) || self.v1_only.contains(&addr) {
            MIN_VERSION
        } else {
            configured
        }
    }

    /// The server at `addr` closed the connection on our proposal of
    /// `version` without answering, as the Python original does: dial it
    /// again at once proposing 1 (even with `--no-retry`: this is the
    /// negotiation, not a failure). Only an agreement on 1 makes it stick: a
    /// close for another cause (a server refusing us in an orderly way, or
    /// stopping) must not pin version 1.
    pub fn refused(&mut self, addr: impl Into<Peer>, version: u32, now: Instant) {
        let addr = addr.into();
        log::debug!(
            "{addr}: closed on protocol version {version} without answering: trying version {MIN_VERSION}"
        );
        self.trying_v1 = Some(addr);
        self.retry_at = Some(now);
    }

    /// True while a server that closed on version 2 is dialed with 1.
    pub fn trying_v1(&self) -> bool {
        self.trying_v1.is_some()
    }

    /// The connection to `addr` agreed on `version`. If it was the one
    /// dialed with 1 after a close on 2, the server is the Python original
    /// (or pinned to 1 and closing on more): remember 1 for it until we
    /// restart, and say so once.
    pub fn agreed(&mut self, addr: impl Into<Peer>, version: u32) {
        let addr = addr.into();
        if self.trying_v1 != Some(addr) {
            return;
        }
        self.trying_v1 = None;
        if version == MIN_VERSION && !self.v1_only.contains(&addr) {
            log::info!(
                "{addr}: closed on protocol version 2 without stepping down, and agreed on {MIN_VERSION} (the Python tcpcan does): speaking version {MIN_VERSION} to it until restart"
            );
            self.v1_only.push(addr);
        }
    }

    /// The connection to `peer`, set up at `opened`, ended for `why` at
    /// `now`: dial again at once (a restarted server is back within a
    /// second), but not twice within [`RETRY_INTERVAL`], so a server that
    /// closes on us as soon as we connect (`--allow`, `--max-clients`, a
    /// bus it cannot open) is not dialed in a tight loop; with
    /// `--no-retry`, that is fatal. A server that closed on version 2 and
    /// then on 1 refused us: it gets our highest again next time.
    pub fn lost(
        &mut self,
        peer: Peer,
        why: Close,
        opened: Instant,
        now: Instant,
    ) -> Result<(), Error> {
        if self.trying_v1 == Some(peer) {
            self.trying_v1 = None;
        }
        if !self.retry {
            return Err(Error::Lost(peer, why));
        }
        self.retry_at = Some(now.max(opened + RETRY_INTERVAL));
        Ok(())
    }
}

/// A client: its dialer and the connection attempt in flight.
pub struct Client {
    dialer: Dialer,
    pending: Option<(Socket, SocketAddr)>,
}

impl Client {
    /// A client that starts dialing on the first turn of the loop.
    pub fn new(dialer: Dialer) -> Client {
        Client {
            dialer,
            pending: None,
        }
    }

    /// The socket being connected, for poll (POLLOUT means done).
    pub fn pending_fd(&self) -> Option<RawFd> {
        self.pending.as_ref().map(|(s, _)| s.as_raw_fd())
    }

    /// When the next attempt is due.
    pub fn retry_at(&self) -> Option<Instant> {
        self.dialer.retry_at()
    }

    /// At the due time: starts a non-blocking connect, unless `connected`
    /// (the one connection is up) or an attempt is already in flight.
    pub fn dial(&mut self, keepalive: Duration, connected: bool, now: &Now) -> Result<(), Error> {
        if connected || self.pending.is_some() {
            self.dialer.retry_at = None;
            return Ok(());
        }
        let addr = self.dialer.start();
        log::debug!("connecting to {addr}");
        match net::connect_start(addr, keepalive) {
            Ok(sock) => self.pending = Some((sock, addr)),
            Err(e) => {
                self.dialer.failed(addr, e, now.get())?;
            }
        }
        Ok(())
    }

    /// The attempt in flight finished: the stream if it connected.
    pub fn dialed(&mut self, now: &Now) -> Result<Option<(Socket, SocketAddr)>, Error> {
        let Some((sock, addr)) = self.pending.take() else {
            return Ok(None);
        };
        match sock.take_error() {
            Ok(None) => {
                log::info!("connected to {addr}");
                self.dialer.connected();
                Ok(Some((sock, addr)))
            }
            Ok(Some(e)) | Err(e) => {
                self.dialer.failed(addr, e, now.get())?;
                Ok(None)
            }
        }
    }

    /// See [`Dialer::highest`].
    pub fn highest(&self, addr: Peer, configured: u32) -> u32 {
        self.dialer.highest(addr, configured)
    }

    /// See [`Dialer::refused`].
    pub fn refused(&mut self, addr: Peer, version: u32) {
        self.dialer.refused(addr, version, Instant::now());
    }

    /// See [`Dialer::trying_v1`].
    pub fn trying_v1(&self) -> bool {
        self.dialer.trying_v1()
    }

    /// See [`Dialer::agreed`].
    pub fn agreed(&mut self, addr: Peer, version: u32) {
        self.dialer.agreed(addr, version);
    }

    /// The connection, set up at `opened`, ended: see [`Dialer::lost`].
    pub fn lost(&mut self, peer: Peer, why: Close, opened: Instant) -> Result<(), Error> {
        self.dialer.lost(peer, why, opened, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Addrs {
        (1..=n)
            .map(|i| SocketAddr::from(([192, 0, 2, i as u8], 20010)))
            .collect()
    }

    fn refused() -> io::Error {
        io::Error::from_raw_os_error(libc::ECONNREFUSED)
    }

    #[test]
    fn each_address_is_tried_in_turn_then_the_dialer_backs_off() {
        let t = Instant::now();
        let a = addrs(3);
        let mut d = Dialer::new(a.clone(), true, t);
        assert_eq!(d.retry_at(), Some(t), "the first attempt is at once");
        for (i, addr) in a.iter().enumerate() {
            assert_eq!(d.start(), *addr);
            assert_eq!(d.retry_at(), None);
            d.failed(*addr, refused(), t).unwrap();
            let wait = if i + 1 < a.len() {
                Duration::ZERO
            } else {
                RETRY_INTERVAL
            };
            assert_eq!(d.retry_at(), Some(t + wait), "after address {i}");
        }
        assert_eq!(d.start(), a[0], "the next round starts over");
    }

    #[test]
    fn a_cause_is_warned_once_per_change() {
        let t = Instant::now();
        let mut d = Dialer::new(addrs(1), true, t);
        let mut said = std::vec::Vec::new();
        for e in [
            refused(),
            refused(),
            refused(),
            io::Error::from_raw_os_error(libc::ENETUNREACH),
            refused(),
        ] {
            let addr = d.start();
            said.push(d.failed(addr, e, t).unwrap());
        }
        use Said::*;
        assert_eq!(said, [Warned, Quiet, Quiet, Warned, Warned]);
    }

    #[test]
    fn a_connection_makes_the_next_failure_news_and_starts_from_the_first_address() {
        let t = Instant::now();
        let a = addrs(2);
        let mut d = Dialer::new(a.clone(), true, t);
        let first = d.start();
        assert_eq!(d.failed(first, refused(), t).unwrap(), Said::Warned);
        assert_eq!(d.start(), a[1]);
        d.connected();
        assert_eq!(d.start(), a[0]);
        assert_eq!(d.failed(a[0], refused(), t).unwrap(), Said::Warned);
    }

    #[test]
    fn no_retry_fails_after_the_last_address_and_not_before() {
        let t = Instant::now();
        let a = addrs(2);
        let mut d = Dialer::new(a.clone(), false, t);
        let first = d.start();
        assert_eq!(d.failed(first, refused(), t).unwrap(), Said::Quiet);
        assert_eq!(d.retry_at(), Some(t), "the next address at once");
        let second = d.start();
        match d.failed(second, refused(), t) {
            Err(Error::Connect(addr, e)) => {
                assert_eq!(addr, a[1]);
                assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lost_connection_is_dialed_again_at_once_unless_no_retry() {
        let t = Instant::now();
        let peer = addrs(1)[0];
        let mut d = Dialer::new(addrs(1), true, t);
        d.start();
        d.connected();
        let later = t + Duration::from_secs(5);
        d.lost(peer.into(), Close::PeerClosed, t, later).unwrap();
        assert_eq!(d.retry_at(), Some(later));
        let mut d = Dialer::new(addrs(1), false, t);
        let e = d
            .lost(peer.into(), Close::PeerClosed, t, later)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "connection to 192.0.2.1:20010 lost: peer closed the connection"
        );
    }

    #[test]
    fn a_server_that_closes_on_us_at_once_is_dialed_once_a_second() {
        // --allow or --max-clients there: accepted, then reset.
        let t = Instant::now();
        let peer = addrs(1)[0];
        let mut d = Dialer::new(addrs(1), true, t);
        d.start();
        d.connected();
        let reset = t + Duration::from_millis(2);
        d.lost(peer.into(), Close::PeerClosed, t, reset).unwrap();
        assert_eq!(d.retry_at(), Some(t + RETRY_INTERVAL));
    }

    #[test]
    fn a_server_that_closed_on_version_2_and_agreed_on_1_gets_1_until_restart() {
        let t = Instant::now();
        let a = addrs(2);
        let mut d = Dialer::new(a.clone(), false, t);
        assert_eq!(d.highest(a[0], 2), 2);
        d.start();
        let later = t + Duration::from_secs(1);
        d.refused(a[0], 2, later);
        assert_eq!(
            d.retry_at(),
            Some(later),
            "dialed again at once, even with --no-retry"
        );
        assert_eq!(d.highest(a[0], 2), 1, "proposing 1");
        assert_eq!(d.highest(a[1], 2), 2, "per address");
        d.agreed(a[0], 1);
        assert!(!d.trying_v1());
        assert_eq!(d.highest(a[0], 2), 1, "remembered");
        // A later close on 2 (it never gets 2 again) changes nothing.
        d.refused(a[0], 2, later);
        d.agreed(a[0], 1);
        assert_eq!(d.v1_only, [Peer::from(a[0])], "remembered once");
    }

    #[test]
    fn a_server_that_refuses_us_is_not_taken_for_the_python_one() {
        // --allow or --max-clients: it closes on 2, and on 1 too.
        let t = Instant::now();
        let a = addrs(1);
        let mut d = Dialer::new(a.clone(), true, t);
        d.refused(a[0], 2, t);
        assert_eq!(d.highest(a[0], 2), 1, "asked in 1 once");
        d.lost(a[0].into(), Close::PeerClosed, t, t).unwrap();
        assert_eq!(d.highest(a[0], 2), 2, "its close on 1 was a refusal");
        assert!(d.v1_only.is_empty());
        // Once it lets us in, it agrees on 2: nothing to remember.
        d.refused(a[0], 2, t);
        d.lost(a[0].into(), Close::PeerClosed, t, t).unwrap();
        assert_eq!(d.highest(a[0], 2), 2);
        d.agreed(a[0], 2);
        assert!(d.v1_only.is_empty());
    }

    #[test]
    fn only_the_address_being_asked_in_1_is_remembered() {
        let t = Instant::now();
        let a = addrs(2);
        let mut d = Dialer::new(a.clone(), true, t);
        d.refused(a[0], 2, t);
        d.agreed(a[1], 1);
        assert!(d.trying_v1(), "another address's agreement says nothing");
        assert!(d.v1_only.is_empty());
    }
}
