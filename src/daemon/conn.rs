//! What happens on one tunnel connection, and where do connections live?
//! A [`Conn`] moves bytes between its TCP stream, its own CAN socket and its
//! [`Session`]; a [`Table`] holds the connections in fixed slots.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use socket2::Socket;

use super::bus_side::{BusSide, Outbox};
use super::poll_table::{PollTable, Slot};
use super::port::{open_error, PortSlot};
use super::time::{clocks, Now, StampClock};
use crate::can::{CanPort, NoBus};
use crate::cli::Config;
use crate::close::Close;
use crate::coalesce::{Coalesce, Side};
use crate::counters::Counters;
use crate::device::CanSink;
use crate::limits::READS_PER_WAKEUP;
use crate::net;
use crate::session::{Role, RxState, Session, Timer, Wake};
use crate::sys::{self, CanBatch};

/// Connection slots. Reserved whole at start-up but filled only as far as
/// the busiest moment needed, so an idle server's untouched slots cost no
/// resident memory, and adding one never allocates.
pub struct Table<T> {
    slots: Vec<Option<T>>,
    // Kept apart: `Vec::with_capacity` may reserve more than asked.
    capacity: usize,
}

impl<T> Table<T> {
    /// A table of at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Table {
            slots: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// Most entries at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A free slot, if there is capacity left: a vacated one first, else a
    /// new one at the end.
    pub fn free_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            return Some(i);
        }
        if self.slots.len() < self.capacity() {
            self.slots.push(None);
            return Some(self.slots.len() - 1);
        }
        None
    }

    /// Fills slot `i` (from [`free_slot`](Self::free_slot)).
    pub fn put(&mut self, i: usize, value: T) {
        self.slots[i] = Some(value);
    }

    /// Empties slot `i`, returning what it held.
    pub fn take(&mut self, i: usize) -> Option<T> {
        self.slots.get_mut(i)?.take()
    }

    /// The entry in slot `i`.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.as_ref()
    }

    /// The entry in slot `i`, mutable.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i)?.as_mut()
    }

    /// Slots touched so far (filled or vacated).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The entries with their slot numbers.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_ref()?)))
    }

    /// The entries, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten()
    }

    /// True if no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

/// One tunnel connection: its TCP stream, its own CAN socket, its session.
pub struct Conn {
    tcp: Socket,
    /// The peer hung up while frames still waited for the bus: deliver
    /// them, then close (poll would report the hang-up on every round).
    hung_up: bool,
    bus: BusSide,
    session: Session,
    /// Coalescing of TCP reads, timed by the kernel's receive stamps.
    tcp_coalesce: Coalesce,
    /// Receive stamps on the loop's clock, for the session's pacer.
    stamps: StampClock,
}

impl Outbox for Session {
    fn room(&self) -> usize {
        self.tx_room_frames()
    }

    fn queue(&mut self, frame: &[u8], _stamp: crate::time::Stamp) {
        self.queue_frame(frame);
    }

    fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }
}

impl Conn {
    /// A connection on `tcp`, with its own CAN socket if the interface is
    /// there (else frames from TCP are dropped until it is back).
    pub fn open(tcp: Socket, peer: SocketAddr, role: Role, cfg: &Config, now: &Now) -> Conn {
        let (can, failed) = PortSlot::opened(CanPort::open(&cfg.canif, &cfg.can), now.get());
        if let Some(e) = failed {
            log::warn!(
                "{peer}: {}; frames from TCP are dropped until it is back",
                open_error(&cfg.canif, e)
            );
        }
        let tcp_coalesce = Coalesce::new(cfg.wait_tcp(), Side::Tcp);
        // Receive stamps time coalescing and a desk's live traffic. Without
        // them the TCP side is never left unread and the pacer reads the
        // clock: no harm done.
        let _ = sys::enable_timestamps(tcp.as_raw_fd());
        Conn {
            tcp,
            hung_up: false,
            bus: BusSide::new(can, cfg.wait_can(), false),
            session: Session::new(peer, role, cfg.session, now.get()),
            tcp_coalesce,
            stamps: StampClock::default(),
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
        // A negative descriptor is skipped by poll.
        let fd = if self.hung_up {
            -1
        } else {
            self.tcp.as_raw_fd()
        };
        // A coalescing wait is taken by this turn's poll, read or not.
        table.push_held(fd, ev, self.tcp_coalesce.take_hold(), Slot::Tcp(i));
        let mut ev = 0;
        // Capacity is back-pressure: a full TX buffer stops CAN reads
        // and the kernel queue (with its overflow counter) takes over.
        if s.tx_has_room() {
            ev |= libc::POLLIN;
        }
        if s.parked() == Some(Wake::CanWritable) {
            ev |= libc::POLLOUT;
        }
        self.bus.register(ev, Slot::Can(i), table);
    }

    /// True if `fd`, polled for `slot`, is still this connection's.
    pub fn owns(&self, slot: Slot, fd: RawFd) -> bool {
        match slot {
            Slot::Tcp(_) => self.tcp.as_raw_fd() == fd,
            Slot::Can(_) => self.bus.can.port().is_some_and(|p| p.fd() == fd),
            _ => false,
        }
    }

    /// The earliest time this connection has timer work.
    pub fn next_deadline(&self) -> Option<Instant> {
        crate::time::earliest(self.session.next_deadline(), self.bus.can.retry_at())
    }

    /// Timer work: reopen a vanished interface, end a handshake that took
    /// too long, retry a parked frame.
    pub fn on_timer(&mut self, cfg: &Config, now: &Now) -> Result<(), Close> {
        if self.bus.reopen_if_due(&cfg.canif, &cfg.can, now) {
            log::info!(
                "{}: {} is back; carrying frames again",
                self.peer(),
                cfg.canif
            );
        }
        // Only sessions with a deadline need the time.
        if self.session.next_deadline().is_none() {
            return Ok(());
        }
        match self.session.on_timer(now.get()) {
            Timer::Close(why) => Err(why),
            Timer::RetryParked | Timer::ReplayDue => self.deliver(now, &cfg.canif),
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
            let e = self.tcp.take_error().ok().flatten();
            let e = e.unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset));
            return Err(e.into());
        }
        let before = self.session.counters.to_can;
        let last_us = self.read_tcp(revents, now, canif)?;
        if self.tcp_coalesce.is_on() {
            // The frames this wake-up put on the bus, timed by when the
            // kernel received them: no clock read, which is a system call
            // where the vDSO has no clock (the Pi Zero's ARM11).
            let frames = (self.session.counters.to_can - before) as usize;
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
                if revents & libc::POLLHUP != 0 {
                    if self.session.parked().is_none() {
                        return Err(Close::PeerClosed);
                    }
                    self.hung_up = true;
                }
                break;
            }
            let want = spare.len();
            match sys::recv_stamped(self.tcp.as_raw_fd(), spare) {
                Ok((0, _)) => return Err(Close::PeerClosed),
                Ok((n, stamp)) => {
                    // The peer may hold its next frame for this: the Python
                    // original does (Nagle is on there).
                    net::ack_now(&self.tcp);
                    self.session.rx_filled(n);
                    last_us = stamp.micros();
                    if let Some(us) = last_us {
                        self.session.rx_arrived(self.stamps.at(us, clocks));
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

    /// Hands buffered TCP input to the bus (and answers negotiation).
    fn deliver(&mut self, now: &Now, canif: &str) -> Result<(), Close> {
        let mut no_bus = NoBus;
        let sink: &mut dyn CanSink = match self.bus.can.port_mut() {
            Some(p) => p,
            None => &mut no_bus,
        };
        if self.session.process(now, sink)? == RxState::Drained && self.hung_up {
            return Err(Close::PeerClosed);
        }
        self.flush(canif)
    }

    /// One send of everything queued for the peer.
    pub fn flush(&mut self, canif: &str) -> Result<(), Close> {
        let pending = self.session.tx_pending();
        if pending.is_empty() {
            return Ok(());
        }
        let was_full = !self.session.tx_has_room();
        let n = net::send_some(&self.tcp, pending)?;
        self.session.tx_sent(n);
        // The CAN socket was not read while we were full: whatever the
        // kernel dropped meanwhile is counted now, not whenever the next
        // frame happens to report it.
        if was_full && self.session.tx_has_room() {
            self.poll_kernel_drops(Instant::now(), canif);
        }
        Ok(())
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

    /// Asks the kernel for drops it has not yet reported with a frame.
    fn poll_kernel_drops(&mut self, now: Instant, canif: &str) {
        let ctx = (self.session.peer(), now, canif);
        self.bus.poll_kernel_drops(&mut self.session, ctx);
    }

    /// Logs the counters, after asking the kernel for drops not yet seen.
    pub fn log_counters(&mut self, now: Instant, canif: &str) {
        self.poll_kernel_drops(now, canif);
        log::info!("{}: {}", self.peer(), self.session.counters);
        if let Some(r) = self.session.replay() {
            log::info!("{}: replaying a backlog: {r} so far", self.peer());
        }
        // Only a desk writing into a virtual interface ever replays.
        let replays = self.session.replays();
        if replays.replays > 0 {
            log::info!("{}: {replays}", self.peer());
        }
    }

    /// Logs why the connection ended and its counters.
    pub fn log_close(&self, why: Close) {
        let peer = self.peer();
        log::info!("{peer}: closed: {why}");
        log::info!("{peer}: {}", self.session.counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_filled_lazily_up_to_the_capacity() {
        let mut t: Table<&str> = Table::with_capacity(3);
        assert_eq!(t.capacity(), 3);
        assert_eq!(t.slots(), 0, "nothing touched before the first client");
        let a = t.free_slot().unwrap();
        t.put(a, "a");
        assert_eq!(t.slots(), 1);
        let b = t.free_slot().unwrap();
        t.put(b, "b");
        let c = t.free_slot().unwrap();
        t.put(c, "c");
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(t.free_slot(), None, "full");
        assert_eq!(t.slots(), 3);
    }

    #[test]
    fn a_vacated_slot_is_reused_before_a_new_one() {
        let mut t: Table<u32> = Table::with_capacity(4);
        for v in 0..3 {
            let i = t.free_slot().unwrap();
            t.put(i, v);
        }
        assert_eq!(t.take(1), Some(1));
        assert_eq!(t.take(1), None, "taken once");
        assert_eq!(t.free_slot(), Some(1));
        t.put(1, 10);
        assert_eq!(t.slots(), 3, "no new slot while one was free");
        let seen: std::vec::Vec<_> = t.iter().map(|(i, v)| (i, *v)).collect();
        assert_eq!(seen, [(0, 0), (1, 10), (2, 2)]);
    }

    #[test]
    fn an_asked_for_but_unfilled_slot_is_offered_again() {
        let mut t: Table<u32> = Table::with_capacity(1);
        assert_eq!(t.free_slot(), Some(0));
        assert!(t.is_empty());
        assert_eq!(t.free_slot(), Some(0));
        t.put(0, 7);
        assert!(!t.is_empty());
        assert_eq!(t.free_slot(), None);
        assert_eq!(t.get(0), Some(&7));
        *t.get_mut(0).unwrap() += 1;
        assert_eq!(t.iter_mut().map(|v| *v).sum::<u32>(), 8);
        assert_eq!(t.get(5), None);
    }
}
