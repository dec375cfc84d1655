//! What happens on one connection, whatever protocol it speaks? A [`Conn`]
//! moves bytes between its link (a TCP stream, or pipes), its own CAN socket (so it sees every
//! other client's frames and the bus's), its BCM socket (socketcand's
//! cyclic sends and subscriptions) and its session, a [`Protocol`]. It is
//! written once for both protocols: one read path, one reopen path, one
//! send path. [`AnyConn`] is the table's entry: a connection of either kind.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::bus_side::BusSide;
use super::poll_table::{PollTable, Slot};
use super::port::{open_error, PortSlot};
use super::time::{clocks, Now, StampClock};
use crate::busstate::BusState;
use crate::can::{if_stats, BcmPort, CanPort, NoBus};
use crate::cli::Config;
use crate::close::Close;
use crate::coalesce::{Coalesce, Side};
use crate::device::CanSink;
use crate::framelog::LogLines;
use crate::limits::READS_PER_WAKEUP;
use crate::link::Link;
use crate::notices::state_of;
use crate::peer::Peer;
use crate::protocol::{Bus, Progress, Protocol, Timer, Wake};
use crate::session::Session;
use crate::socketcand::session::ScdSession;
use crate::sys::{bcm_changed_frame, CanBatch};

/// One connection: its link, its own CAN and BCM sockets, its session.
pub struct Conn<P> {
    link: Link,
    /// The peer hung up while frames still waited for the bus: deliver
    /// them, then close (poll would report the hang-up on every round).
    hung_up: bool,
    bus: BusSide,
    session: P,
    /// Jobs of the kernel's broadcast manager (socketcand's `add`,
    /// `filter`, `subscribe`), ended with the connection; opened on first
    /// use, so a v1 connection never opens it.
    bcm: BcmPort,
    /// Coalescing of TCP reads, timed by the kernel's receive stamps.
    tcp_coalesce: Coalesce,
    /// Receive stamps on the loop's clock, for the session's pacer.
    stamps: StampClock,
    /// The peer has sent something: for `--via`, a command that worked.
    heard: bool,
    /// Origin of the microseconds that time a read without a receive
    /// stamp (pipes): the loop's clock, for coalescing.
    opened: Instant,
}

impl<P: Protocol> Conn<P> {
    /// A connection on `link` for `session`, with its own CAN socket if the
    /// interface is there (else frames from TCP are dropped until it is back).
    pub fn open(link: impl Into<Link>, session: P, cfg: &Config, now: &Now) -> Self {
        let link = link.into();
        let peer = session.peer();
        let (can, failed) = PortSlot::opened(CanPort::open(&cfg.canif, &cfg.can), now.get());
        if let Some(e) = failed {
            log::warn!(
                "{peer}: {}; frames from TCP are dropped until it is back",
                open_error(&cfg.canif, e)
            );
        }
        let tcp_budget = match P::STAMPED_READS {
            true => cfg.wait_tcp(),
            false => Duration::ZERO,
        };
        if P::STAMPED_READS {
            // Receive stamps time coalescing and a desk's live traffic.
            link.enable_stamps();
        }
        Conn {
            link,
            hung_up: false,
            bus: BusSide::new(can, cfg.wait_can(), P::FRAME_STAMPS),
            session,
            bcm: BcmPort::new(&cfg.canif),
            tcp_coalesce: Coalesce::new(tcp_budget, Side::Tcp),
            stamps: StampClock::default(),
            heard: false,
            opened: now.get(),
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> Peer {
        self.session.peer()
    }

    /// When the connection was set up.
    pub fn opened(&self) -> Instant {
        self.opened
    }

    /// True once the peer has sent anything.
    pub fn heard(&self) -> bool {
        self.heard
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
        // A negative descriptor is skipped by poll. A pipe that is not to
        // be read is not polled at all: its writer's hang-up would wake us
        // on every turn while the data before it waits to be read.
        let unread = !self.link.hang_up_is_final() && ev & libc::POLLIN == 0;
        let fd = if self.hung_up || unread {
            -1
        } else {
            self.link.rx_fd()
        };
        if let Some(tx) = self.link.tx_fd() {
            // Polled even with nothing to send: its error is the reader gone.
            table.push(tx, ev & libc::POLLOUT, Slot::Tx(i));
            ev &= !libc::POLLOUT;
        }
        // A coalescing wait is taken by this turn's poll, read or not.
        table.push_held(fd, ev, self.tcp_coalesce.take_hold(), Slot::Tcp(i));
        // Capacity is back-pressure: a full output stops CAN reads and the
        // kernel queue (with its overflow counter) takes over.
        let room = if s.tx_has_room() { libc::POLLIN } else { 0 };
        let mut ev = room;
        if s.parked() == Some(Wake::CanWritable) {
            ev |= libc::POLLOUT;
        }
        self.bus.register(ev, Slot::Can(i), table);
        // Asked first: a protocol without subscriptions (v1) says no at
        // compile time, and its BCM socket is never looked at.
        if s.wants_bcm() {
            if let Some(fd) = self.bcm.open_fd() {
                table.push(fd, room, Slot::Bcm(i));
            }
        }
    }

    /// True if `fd`, polled for `slot`, is still this connection's.
    pub fn owns(&self, slot: Slot, fd: RawFd) -> bool {
        match slot {
            Slot::Tcp(_) => self.link.rx_fd() == fd,
            Slot::Tx(_) => self.link.tx_fd() == Some(fd),
            Slot::Can(_) => self.bus.can.port().is_some_and(|p| p.fd() == fd),
            Slot::Bcm(_) => self.bcm.open_fd() == Some(fd),
            _ => false,
        }
    }

    /// The earliest time this connection has timer work.
    #[inline]
    pub fn next_deadline(&self) -> Option<Instant> {
        crate::time::earliest(self.session.next_deadline(), self.bus.can.retry_at())
    }

    /// Timer work: reopen a vanished interface, end a handshake that took
    /// too long, retry a parked frame, queue statistics.
    // Inline: it runs for every connection on every turn, and almost
    // always finds nothing due.
    #[inline]
    pub fn on_timer(&mut self, cfg: &Config, now: &Now) -> Result<(), Close> {
        if self.bus.reopen_if_due(&cfg.canif, &cfg.can, now) {
            let peer = self.peer();
            log::info!("{peer}: {} is back; carrying frames again", cfg.canif);
        }
        // Only sessions with a deadline need the time.
        if self.session.next_deadline().is_none() {
            return Ok(());
        }
        match self.session.on_timer(now.get()) {
            Timer::Close(why) => Err(why),
            Timer::RetryParked | Timer::ReplayDue => self.deliver(now, &cfg.canif),
            Timer::Stats => {
                self.session.queue_stats(if_stats(&cfg.canif));
                self.flush(&cfg.canif)
            }
            Timer::Idle => Ok(()),
        }
    }

    /// The TCP stream is ready: send what waits, read and deliver.
    pub fn on_tcp(&mut self, revents: i16, now: &Now, canif: &str) -> Result<(), Close> {
        if revents & libc::POLLOUT != 0 {
            self.flush(canif)?;
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return Ok(());
        }
        if revents & libc::POLLERR != 0 {
            return Err(self.link.error().into());
        }
        let before = self.session.counters().to_can;
        let last_us = self.read_tcp(revents, now, canif)?;
        if self.tcp_coalesce.is_on() {
            // The frames this wake-up put on the bus, timed by when the
            // kernel received them: no clock read, which is a system call
            // where the vDSO has no clock (the Pi Zero's ARM11).
            let frames = (self.session.counters().to_can - before) as usize;
            self.tcp_coalesce.after_wake(frames, last_us);
        }
        self.flush(canif)
    }

    /// Reads what the peer sent, a few reads at most, and delivers it;
    /// returns the receive stamp of the last read (µs), if it had one.
    fn read_tcp(&mut self, revents: i16, now: &Now, canif: &str) -> Result<Option<u64>, Close> {
        let mut last_us = None;
        for _ in 0..READS_PER_WAKEUP {
            let spare = self.session.rx_spare();
            if spare.is_empty() {
                if revents & libc::POLLHUP != 0 && self.link.hang_up_is_final() {
                    if self.session.parked().is_none() {
                        return Err(Close::PeerClosed);
                    }
                    self.hung_up = true;
                }
                break;
            }
            let want = spare.len();
            match self.link.recv(spare) {
                // A replay reads on while frames wait their turn: they
                // still go out, at their pace, before the connection ends.
                Ok((0, _)) if self.session.parked().is_some() => {
                    self.hung_up = true;
                    break;
                }
                Ok((0, _)) => return Err(Close::PeerClosed),
                Ok((n, stamp)) => {
                    // The peer may hold its next frame or command for this:
                    // the Python original and python-can's socketcand
                    // interface at its defaults do (Nagle is on there).
                    self.link.ack_now();
                    self.heard = true;
                    self.session.rx_filled(n);
                    last_us = stamp.micros();
                    if let Some(us) = last_us {
                        self.session.rx_arrived(self.stamps.at(us, clocks));
                    } else if !self.link.is_stamped() {
                        // A pipe: the loop's time of this turn stands in,
                        // which tells the pacer its data did not wait (no
                        // proof it did), so a backlog is never replayed.
                        let t = now.get();
                        last_us = Some(t.duration_since(self.opened).as_micros() as u64);
                        self.session.rx_arrived(t);
                    }
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
        Ok(last_us)
    }

    /// Hands buffered TCP input to the session, frames to the bus.
    fn deliver(&mut self, now: &Now, canif: &str) -> Result<(), Close> {
        let mut no_bus = NoBus;
        let sink: &mut dyn CanSink = match self.bus.can.port_mut() {
            Some(p) => p,
            None => &mut no_bus,
        };
        let bus = Bus {
            can: sink,
            bcm: &mut self.bcm,
        };
        let result = self.session.process_input(now, bus);
        if let Some(size) = self.session.take_send_buffer() {
            self.link.grow_send_buffer(size);
        }
        // A reply must reach the peer even if its command then ends the
        // connection: it says why.
        let flushed = self.flush(canif);
        if result? == Progress::Drained && self.hung_up {
            return Err(Close::PeerClosed);
        }
        flushed
    }

    /// One send of everything queued for the peer.
    pub fn flush(&mut self, canif: &str) -> Result<(), Close> {
        let pending = self.session.tx_pending();
        if pending.is_empty() {
            return Ok(());
        }
        let was_full = !self.session.tx_has_room();
        let n = self.link.send(pending)?;
        self.session.tx_sent(n);
        // The CAN socket was not read while we were full: whatever the
        // kernel dropped meanwhile is counted now, not whenever the next
        // frame happens to report it.
        if was_full && self.session.tx_has_room() {
            self.poll_kernel_drops(Instant::now(), canif);
        }
        Ok(())
    }

    /// The write end of a pipe link is ready: send what waits, or its
    /// reader is gone.
    pub fn on_tx(&mut self, revents: i16, canif: &str) -> Result<(), Close> {
        if revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            return Err(Close::PeerClosed);
        }
        self.flush(canif)
    }

    /// The CAN socket is ready: deliver a parked frame, read frames for
    /// the peer while there is room for them.
    pub fn on_can(
        &mut self,
        revents: i16,
        now: &Now,
        canif: &str,
        batch: &mut CanBatch,
    ) -> Result<(), Close> {
        if revents & libc::POLLOUT != 0 {
            self.deliver(now, canif)?;
        }
        let ctx = (self.session.peer(), now, canif);
        self.bus.on_readable(revents, &mut self.session, ctx, batch);
        self.flush(canif)
    }

    /// The BCM socket is ready: frames a `filter` or `subscribe` let
    /// through, read while there is room for them.
    pub fn on_bcm(&mut self, revents: i16, canif: &str, batch: &mut CanBatch) -> Result<(), Close> {
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
        self.flush(canif)
    }

    /// Asks the kernel for drops it has not yet reported with a frame.
    fn poll_kernel_drops(&mut self, now: Instant, canif: &str) {
        let ctx = (self.session.peer(), now, canif);
        self.bus.poll_kernel_drops(&mut self.session, ctx);
    }

    /// Logs the counters, after asking the kernel for drops not yet seen.
    pub fn log_counters(&mut self, now: Instant, canif: &str) {
        self.poll_kernel_drops(now, canif);
        log::info!("{}: {}", self.peer(), CountersText(&self.session));
        if let Some(r) = self.session.replay() {
            log::info!("{}: replaying a backlog: {r} so far", self.peer());
        }
        // Only a desk writing into a virtual interface ever replays.
        if let Some(replays) = self.session.replays().filter(|t| t.replays > 0) {
            log::info!("{}: {replays}", self.peer());
        }
    }

    /// Logs why the connection ended and its counters.
    pub fn log_close(&self, why: Close) {
        let peer = self.peer();
        log::info!("{peer}: closed: {why}");
        log::info!("{peer}: {}", CountersText(&self.session));
    }
}

/// A session's counters, as its protocol writes them.
struct CountersText<'a, P>(&'a P);

impl<P: Protocol> fmt::Display for CountersText<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_counters(f)
    }
}

/// A connection of either protocol, as the table holds it.
// Inline, not boxed: the table is reserved at start-up so that adding a
// connection never allocates; the smaller kind leaves the rest of its slot
// reserved but untouched, which costs no resident memory.
#[allow(clippy::large_enum_variant)]
pub enum AnyConn {
    /// Protocol v1.
    V1(Conn<Session>),
    /// socketcand's protocol.
    Scd(Conn<ScdSession>),
}

/// Runs `$body` with `$c` bound to the connection, whichever kind it is.
macro_rules! each {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            AnyConn::V1($c) => $body,
            AnyConn::Scd($c) => $body,
        }
    };
}

impl AnyConn {
    /// See [`Conn::peer`].
    pub fn peer(&self) -> Peer {
        each!(self, c => c.peer())
    }

    /// See [`Conn::heard`].
    pub fn heard(&self) -> bool {
        each!(self, c => c.heard())
    }

    /// See [`Conn::opened`].
    pub fn opened(&self) -> Instant {
        each!(self, c => c.opened())
    }

    /// See [`Conn::register`].
    pub fn register(&self, i: usize, table: &mut PollTable) {
        each!(self, c => c.register(i, table))
    }

    /// See [`Conn::owns`].
    pub fn owns(&self, slot: Slot, fd: RawFd) -> bool {
        each!(self, c => c.owns(slot, fd))
    }

    /// See [`Conn::next_deadline`].
    #[inline]
    pub fn next_deadline(&self) -> Option<Instant> {
        each!(self, c => c.next_deadline())
    }

    /// See [`Conn::on_timer`].
    #[inline]
    pub fn on_timer(&mut self, cfg: &Config, now: &Now) -> Result<(), Close> {
        each!(self, c => c.on_timer(cfg, now))
    }

    /// What poll reported for `slot` of this connection: its link (the TCP
    /// stream, or a pipe's read or write end), its CAN socket or its BCM
    /// socket.
    pub fn on_ready(
        &mut self,
        slot: Slot,
        revents: i16,
        now: &Now,
        canif: &str,
        batch: &mut CanBatch,
    ) -> Result<(), Close> {
        each!(self, c => match slot {
            Slot::Tcp(_) => c.on_tcp(revents, now, canif),
            Slot::Tx(_) => c.on_tx(revents, canif),
            Slot::Bcm(_) => c.on_bcm(revents, canif, batch),
            _ => c.on_can(revents, now, canif, batch),
        })
    }

    /// See [`Conn::flush`].
    pub fn flush(&mut self, canif: &str) -> Result<(), Close> {
        each!(self, c => c.flush(canif))
    }

    /// See [`Conn::log_counters`].
    pub fn log_counters(&mut self, now: Instant, canif: &str) {
        each!(self, c => c.log_counters(now, canif))
    }

    /// See [`Conn::log_close`].
    pub fn log_close(&self, why: Close) {
        each!(self, c => c.log_close(why))
    }

    /// See [`Session::log_lines`]; socketcand's sessions write none.
    pub fn log_lines(&mut self) -> Option<&mut LogLines> {
        match self {
            AnyConn::V1(c) => c.session.log_lines(),
            AnyConn::Scd(_) => None,
        }
    }

    /// The agreed protocol version; socketcand negotiates none.
    pub fn agreed_version(&self) -> Option<u32> {
        match self {
            AnyConn::V1(c) => c.session.agreed_version(),
            AnyConn::Scd(_) => None,
        }
    }

    /// See [`Session::unanswered_proposal`]; socketcand proposes nothing.
    pub fn unanswered_proposal(&self) -> Option<u32> {
        match self {
            AnyConn::V1(c) => c.session.unanswered_proposal(),
            AnyConn::Scd(_) => None,
        }
    }

    /// The bus changed state at `at_us`: see [`Session::bus_state`]
    /// (socketcand's clients see error frames with `--error-frames`).
    pub fn bus_state(&mut self, state: BusState, at_us: u64) {
        if let AnyConn::V1(c) = self {
            c.session.bus_state(state_of(state), at_us);
        }
    }
}
