//! What happens on one socketcand connection? An [`ScdConn`] moves bytes
//! between its TCP stream, its own CAN socket (so it sees every other
//! client's frames and the bus's, as a v1 client does) and its
//! [`ScdSession`]. Back-pressure as for v1: while its output buffer cannot
//! take another line, its CAN socket is not read, so a slow client costs
//! only its own kernel queue.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use socket2::Socket;

use super::bus_side::{BusSide, Outbox};
use super::poll_table::{PollTable, Slot};
use super::port::{open_error, PortSlot};
use super::time::Now;
use crate::can::{bcm_changed_frame, BcmPort, CanPort, NoBus};
use crate::cli::Config;
use crate::close::Close;
use crate::counters::Counters;
use crate::device::CanSink;
use crate::limits::READS_PER_WAKEUP;
use crate::net;
use crate::socketcand::session::{ScdConfig, ScdSession};
use crate::sys::CanBatch;

/// One socketcand connection: its TCP stream, its own CAN socket, its session.
pub struct ScdConn {
    tcp: Socket,
    bus: BusSide,
    session: ScdSession,
    /// `add`/`update`/`delete`: the kernel's cyclic sends, and
    /// `filter`/`subscribe`: its receive jobs, ended with the connection.
    bcm: BcmPort,
}

impl Outbox for ScdSession {
    fn room(&self) -> usize {
        self.tx_room_frames()
    }

    fn queue(&mut self, frame: &[u8], stamp: crate::time::Stamp) {
        self.queue_frame(frame, stamp);
    }

    fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }
}

/// The session's switches from the command line.
fn scd_config(cfg: &Config) -> ScdConfig {
    ScdConfig {
        read_only: cfg.session.read_only,
        error_frames: cfg.session.error_frames,
        tx_timeout: cfg.session.tx_timeout,
        filters: cfg.can.filters.clone(),
    }
}

impl ScdConn {
    /// A connection on `tcp`; `< hi >` is queued for it.
    pub fn open(tcp: Socket, peer: SocketAddr, cfg: &Config, now: &Now) -> ScdConn {
        let (can, failed) = PortSlot::opened(CanPort::open(&cfg.canif, &cfg.can), now.get());
        if let Some(e) = failed {
            log::warn!(
                "{peer}: {}; frames from TCP are dropped until it is back",
                open_error(&cfg.canif, e)
            );
        }
        log::info!("{peer}: speaks socketcand");
        ScdConn {
            tcp,
            bus: BusSide::new(can, cfg.wait_can(), true),
            session: ScdSession::new(peer, scd_config(cfg)),
            bcm: BcmPort::new(&cfg.canif),
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.session.peer()
    }

    /// Adds this connection's descriptors, as slot `i`, to the poll table.
    pub fn register(&self, i: usize, table: &mut PollTable) {
        let s = &self.session;
        let mut ev = 0;
        if s.wants_tcp_read() {
            ev |= libc::POLLIN;
        }
        if !s.tx_pending().is_empty() {
            ev |= libc::POLLOUT;
        }
        table.push(self.tcp.as_raw_fd(), ev, Slot::ScdTcp(i));
        let ev = if s.tx_has_room() { libc::POLLIN } else { 0 };
        self.bus.register(ev, Slot::ScdCan(i), table);
        if let Some(fd) = self.bcm.open_fd().filter(|_| s.has_subscriptions()) {
            table.push(fd, ev, Slot::ScdBcm(i));
        }
    }

    /// True if `fd`, polled for `slot`, is still this connection's.
    pub fn owns(&self, slot: Slot, fd: RawFd) -> bool {
        match slot {
            Slot::ScdTcp(_) => self.tcp.as_raw_fd() == fd,
            Slot::ScdCan(_) => self.bus.can.port().is_some_and(|p| p.fd() == fd),
            Slot::ScdBcm(_) => self.bcm.open_fd() == Some(fd),
            _ => false,
        }
    }

    /// The earliest time this connection has timer work.
    pub fn next_deadline(&self) -> Option<Instant> {
        crate::time::earliest(self.session.next_deadline(), self.bus.can.retry_at())
    }

    /// Timer work: reopen a vanished interface, retry a parked frame.
    pub fn on_timer(&mut self, cfg: &Config, now: &Now) -> Result<(), Close> {
        if self.bus.reopen_if_due(&cfg.canif, &cfg.can, now) {
            log::info!(
                "{}: {} is back; carrying frames again",
                self.peer(),
                cfg.canif
            );
        }
        if self.session.stats_due(now.get()) {
            let [rb, rp, tb, tp] = ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"]
                .map(|name| if_stat(&cfg.canif, name));
            self.session.queue_stats(rb, rp, tb, tp);
            self.flush()?;
        }
        if now.reached(self.session.next_deadline()) {
            self.deliver(now, &cfg.canif)?;
        }
        Ok(())
    }

    /// The TCP stream is ready: send what waits, read and carry out commands.
    pub fn on_tcp(&mut self, revents: i16, now: &Now, canif: &str) -> Result<(), Close> {
        if revents & libc::POLLOUT != 0 {
            self.flush()?;
        }
        if revents & libc::POLLERR != 0 {
            let e = self.tcp.take_error().ok().flatten();
            let e = e.unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset));
            return Err(e.into());
        }
        if revents & (libc::POLLIN | libc::POLLHUP) == 0 {
            return Ok(());
        }
        if revents & libc::POLLHUP != 0 && !self.session.wants_tcp_read() {
            // Nothing more will be read, and poll would repeat the hang-up.
            return Err(Close::PeerClosed);
        }
        for _ in 0..READS_PER_WAKEUP {
            if !self.session.wants_tcp_read() {
                break;
            }
            let spare = self.session.rx_spare();
            let want = spare.len();
            match (&self.tcp).read(spare) {
                Ok(0) => return Err(Close::PeerClosed),
                Ok(n) => {
                    // The client may hold its next command for this.
                    net::ack_now(&self.tcp);
                    self.session.rx_filled(n);
                    self.deliver(now, canif)?;
                    if n < want {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.flush()
    }

    /// Carries out buffered commands.
    fn deliver(&mut self, now: &Now, canif: &str) -> Result<(), Close> {
        let mut no_bus = NoBus;
        let sink: &mut dyn CanSink = match self.bus.can.port_mut() {
            Some(p) => p,
            None => &mut no_bus,
        };
        // A reply must reach the client even if the command then ends the
        // connection: it says why.
        let result = self.session.process(now.get(), canif, sink, &mut self.bcm);
        let flushed = self.flush();
        result?;
        flushed
    }

    /// One send of everything queued for the peer.
    pub fn flush(&mut self) -> Result<(), Close> {
        let pending = self.session.tx_pending();
        if pending.is_empty() {
            return Ok(());
        }
        let n = net::send_some(&self.tcp, pending)?;
        self.session.tx_sent(n);
        Ok(())
    }

    /// The CAN socket is ready: read frames for the peer while there is
    /// room for their lines.
    pub fn on_can(
        &mut self,
        revents: i16,
        now: &Now,
        canif: &str,
        batch: &mut CanBatch,
    ) -> Result<(), Close> {
        let ctx = (self.session.peer(), now, canif);
        self.bus.on_readable(revents, &mut self.session, ctx, batch);
        self.flush()
    }

    /// The BCM socket is ready: frames a `filter` or `subscribe` let
    /// through, read while there is room for their lines.
    pub fn on_bcm(&mut self, revents: i16, batch: &mut CanBatch) -> Result<(), Close> {
        if revents & (libc::POLLIN | libc::POLLERR) == 0 {
            return Ok(());
        }
        for _ in 0..READS_PER_WAKEUP {
            let room = self.session.tx_room_frames();
            if room == 0 {
                break;
            }
            let n = match self.bcm.recv(batch, room) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::warn!("{}: reading the BCM socket: {e}", self.peer());
                    break;
                }
            };
            for i in 0..n {
                if let Some(frame) = bcm_changed_frame(&batch.frames[i][..batch.lens[i]]) {
                    self.session.queue_subscribed(frame, batch.stamps[i]);
                }
            }
            if n < room {
                break;
            }
        }
        self.flush()
    }

    /// Logs the counters, after asking the kernel for drops not yet seen.
    pub fn log_counters(&mut self, now: Instant, canif: &str) {
        let ctx = (self.session.peer(), now, canif);
        self.bus.poll_kernel_drops(&mut self.session, ctx);
        log::info!("{}: socketcand: {}", self.peer(), self.counters_text());
    }

    fn counters_text(&self) -> CountersText<'_> {
        CountersText(&self.session)
    }

    /// Logs why the connection ended and its counters.
    pub fn log_close(&self, why: Close) {
        let peer = self.peer();
        log::info!("{peer}: closed: {why}");
        log::info!("{peer}: socketcand: {}", self.counters_text());
    }
}

/// One counter of the interface's statistics (sysfs), 0 if unreadable
/// (the interface is gone: a vanished interface counts nothing).
fn if_stat(canif: &str, name: &str) -> u64 {
    use core::fmt::Write;
    let mut path = heapless::String::<80>::new();
    if write!(path, "/sys/class/net/{canif}/statistics/{name}").is_err() {
        return 0;
    }
    let mut buf = [0u8; 24];
    let n = std::fs::File::open(path.as_str())
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    core::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// A session's counters with the socketcand-only one.
struct CountersText<'a>(&'a ScdSession);

impl core::fmt::Display for CountersText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} fd_not_sent={}", self.0.counters, self.0.fd_not_sent)
    }
}
