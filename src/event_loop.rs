//! The daemon: one thread, one poll(2) loop over a fixed table of
//! non-blocking descriptors. Server and client differ only in how a TCP
//! stream arrives (accept or connect); both feed the same [`Session`].

use std::cell::Cell;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use socket2::Socket;

use crate::busstate::{state_from_error_frame, BusState, STATE_ERRORS};
use crate::can::{CanOptions, CanPort, Filters, NoBus, OpenError, ReadError};
use crate::cli::Config;
use crate::close::Close;
use crate::counters::RateLimit;
use crate::device::CanSink;
use crate::error::Error;
use crate::limits::{MAX_CLIENTS, READS_PER_WAKEUP, RETRY_INTERVAL};
use crate::net::{self, Addrs};
use crate::session::{Clock, Role, RxState, Session, Timer, Wake};
use crate::sys::{self, CanBatch, PollFd};

/// Signal pipe, listener, monitor, dialing socket, then TCP + CAN per client.
const MAX_POLL: usize = 4 + 2 * MAX_CLIENTS;

/// What each entry of the poll table stands for.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Signal,
    Listener,
    Monitor,
    Dial,
    Tcp(usize),
    Can(usize),
}

/// Signals reach the loop through a self-pipe; flags say which arrived.
struct Signals {
    pipe: UnixStream,
    term: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> io::Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        use signal_hook::{flag, low_level::pipe};
        let (pipe_rx, pipe_tx) = UnixStream::pair()?;
        pipe_rx.set_nonblocking(true)?;
        pipe_tx.set_nonblocking(true)?;
        let term = Arc::new(AtomicBool::new(false));
        let usr1 = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // A second signal while we are already stopping ends us at once.
            flag::register_conditional_shutdown(sig, 1, Arc::clone(&term))?;
            flag::register(sig, Arc::clone(&term))?;
            pipe::register(sig, pipe_tx.try_clone()?)?;
        }
        flag::register(SIGUSR1, Arc::clone(&usr1))?;
        pipe::register(SIGUSR1, pipe_tx)?;
        Ok(Signals {
            pipe: pipe_rx,
            term,
            usr1,
        })
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!((&self.pipe).read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// One tunnel connection: its TCP stream, its own CAN socket, its session.
struct Conn {
    tcp: Socket,
    /// The peer hung up while frames still waited for the bus: deliver
    /// them, then close (poll would report the hang-up on every round).
    hung_up: bool,
    can: Option<CanPort>,
    can_retry_at: Option<Instant>,
    session: Session,
    overflow_warn: RateLimit,
}

impl Conn {
    /// Asks the kernel for drops it has not yet reported with a frame.
    fn poll_kernel_drops(&mut self, now: Instant, canif: &str) {
        if let Some(port) = self.can.as_mut() {
            let dropped = port.new_drops();
            self.kernel_dropped(dropped, now, canif);
        }
    }

    /// Counts frames the kernel dropped on our CAN socket, with a
    /// rate-limited warning: the peer is not keeping up with the bus.
    fn kernel_dropped(&mut self, dropped: u32, now: Instant, canif: &str) {
        if dropped == 0 {
            return;
        }
        self.session.counters.drop_kernel_overflow += u64::from(dropped);
        if let Some(s) = self.overflow_warn.allow(now) {
            log::warn!(
                "{}: kernel dropped {dropped} frames from {canif}: peer is not keeping up ({s} similar warnings suppressed)",
                self.session.peer()
            );
        }
    }
}

/// A socket on the served interface that only receives bus-state error
/// frames, and watches the interface come and go, for the log.
struct Monitor {
    port: Option<CanPort>,
    retry_at: Option<Instant>,
    down: bool,
    state: Option<BusState>,
}

/// A client's connection attempts.
struct Dial {
    addrs: Addrs,
    next: usize,
    pending: Option<(Socket, SocketAddr)>,
    retry_at: Option<Instant>,
    last_error: Option<io::ErrorKind>,
}

/// The whole daemon state.
pub struct Daemon {
    cfg: Config,
    signals: Signals,
    listener: Option<Socket>,
    dial: Option<Dial>,
    monitor: Monitor,
    /// Connection slots. Reserved whole at start-up but filled only as far
    /// as the busiest moment needed, so an idle server's untouched slots
    /// cost no resident memory, and adding one never allocates.
    conns: Vec<Option<Conn>>,
    capacity: usize,
    batch: Box<CanBatch>,
    fds: heapless::Vec<PollFd, MAX_POLL>,
    slots: heapless::Vec<Slot, MAX_POLL>,
    fatal: Option<Error>,
}

fn open_error(name: &str, e: OpenError) -> Error {
    match e {
        OpenError::NoSuchInterface => Error::NoSuchInterface(name.to_string()),
        OpenError::NotCan => Error::NotCan(name.to_string()),
        OpenError::Io(e) => Error::CanOpen(name.to_string(), e),
    }
}

fn monitor_options() -> CanOptions {
    CanOptions {
        filters: Filters::Nothing,
        error_mask: STATE_ERRORS,
    }
}

/// The time, read from the clock at most once per loop turn and only when a
/// path needs it: where the vDSO has no clock source (UML, ARM boards without
/// the architected timer) every read is a system call.
#[derive(Default)]
struct Now(Cell<Option<Instant>>);

impl Now {
    fn get(&self) -> Instant {
        match self.0.get() {
            Some(t) => t,
            None => {
                let t = Instant::now();
                self.0.set(Some(t));
                t
            }
        }
    }
}

impl Clock for &Now {
    fn now(&self) -> Instant {
        self.get()
    }
}

/// Milliseconds from `now` until `t`, rounded up so we never wake early and spin.
fn ms_until(now: Instant, t: Instant) -> i32 {
    let d = t.saturating_duration_since(now);
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    ms.min(60_000) as i32
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Daemon {
    /// Sets everything up; every start-up error is fatal and named.
    pub fn new(cfg: Config) -> Result<Daemon, Error> {
        let signals =
            Signals::install().map_err(|e| Error::Io("cannot install signal handlers", e))?;
        let mut monitor = Monitor {
            port: None,
            retry_at: None,
            down: false,
            state: None,
        };
        match CanPort::open(&cfg.canif, &monitor_options()) {
            Ok(p) => {
                monitor.down = !sys::if_is_up(p.fd(), &cfg.canif).unwrap_or(true);
                if monitor.down {
                    log::warn!(
                        "{}: interface is down; frames from TCP are dropped until it is up",
                        cfg.canif
                    );
                    monitor.retry_at = Some(Instant::now() + RETRY_INTERVAL);
                }
                monitor.port = Some(p);
            }
            Err(OpenError::NoSuchInterface) if cfg.wait => {
                log::warn!(
                    "{}: no such interface yet; waiting for it (--wait)",
                    cfg.canif
                );
                monitor.retry_at = Some(Instant::now());
            }
            Err(e) => return Err(open_error(&cfg.canif, e)),
        }
        let addrs =
            net::resolve(&cfg.host, cfg.port).map_err(|e| Error::Resolve(cfg.host.clone(), e))?;
        let (listener, dial) = if cfg.serve {
            let addr = net::listen_addr(&addrs);
            let l = net::listen(addr).map_err(|e| Error::Listen(addr, e))?;
            log::info!("listening on {addr}, serving {}", cfg.canif);
            (Some(l), None)
        } else {
            let dial = Dial {
                addrs,
                next: 0,
                pending: None,
                retry_at: Some(Instant::now()),
                last_error: None,
            };
            (None, Some(dial))
        };
        let capacity = if cfg.serve { cfg.max_clients } else { 1 };
        let conns = Vec::with_capacity(capacity);
        Ok(Daemon {
            cfg,
            signals,
            listener,
            dial,
            monitor,
            conns,
            capacity,
            batch: Box::default(),
            fds: heapless::Vec::new(),
            slots: heapless::Vec::new(),
            fatal: None,
        })
    }

    /// Runs until a signal (Ok) or a fatal error.
    pub fn run(mut self) -> Result<(), Error> {
        loop {
            let timeout = self
                .next_deadline()
                .map_or(-1, |t| ms_until(Instant::now(), t));
            self.build_poll_table();
            sys::poll(&mut self.fds, timeout).map_err(|e| Error::Io("poll failed", e))?;
            let now = &Now::default();
            for i in 0..self.fds.len() {
                let revents = self.fds[i].revents;
                if revents == 0 {
                    continue;
                }
                // A signal is honoured between any two descriptors, so a
                // loaded loop still stops within milliseconds.
                if self.signals.term.load(Ordering::Relaxed) {
                    log::info!("stopping on signal");
                    self.log_counters();
                    return Ok(());
                }
                let fd = self.fds[i].fd;
                match self.slots[i] {
                    Slot::Signal => {
                        self.signals.drain();
                        if self.signals.term.load(Ordering::Relaxed) {
                            log::info!("stopping on signal");
                            self.log_counters();
                            return Ok(());
                        }
                        if self.signals.usr1.swap(false, Ordering::Relaxed) {
                            self.log_counters();
                        }
                    }
                    Slot::Listener => self.accept(now),
                    Slot::Monitor => self.monitor_readable(now, revents),
                    Slot::Dial => self.dial_done(now),
                    Slot::Tcp(c) if self.is_live(c, fd, true) => self.tcp_ready(c, now, revents),
                    Slot::Can(c) if self.is_live(c, fd, false) => self.can_ready(c, now, revents),
                    Slot::Tcp(_) | Slot::Can(_) => {}
                }
                if let Some(e) = self.fatal.take() {
                    return Err(e);
                }
            }
            self.run_timers(now);
            if let Some(e) = self.fatal.take() {
                return Err(e);
            }
        }
    }

    /// True if slot `c` still holds the connection whose descriptor was polled.
    fn is_live(&self, c: usize, fd: i32, tcp: bool) -> bool {
        match &self.conns[c] {
            Some(conn) if tcp => conn.tcp.as_raw_fd() == fd,
            Some(conn) => conn.can.as_ref().is_some_and(|p| p.fd() == fd),
            None => false,
        }
    }

    fn build_poll_table(&mut self) {
        self.fds.clear();
        self.slots.clear();
        let mut push = |fds: &mut heapless::Vec<PollFd, MAX_POLL>, fd: i32, events: i16, slot| {
            // Cannot overflow: MAX_POLL covers every descriptor we can own.
            let _ = fds.push(PollFd {
                fd,
                events,
                revents: 0,
            });
            let _ = self.slots.push(slot);
        };
        push(
            &mut self.fds,
            self.signals.pipe.as_raw_fd(),
            libc::POLLIN,
            Slot::Signal,
        );
        if let Some(l) = &self.listener {
            push(&mut self.fds, l.as_raw_fd(), libc::POLLIN, Slot::Listener);
        }
        if let Some(p) = &self.monitor.port {
            push(&mut self.fds, p.fd(), libc::POLLIN, Slot::Monitor);
        }
        if let Some((s, _)) = self.dial.as_ref().and_then(|d| d.pending.as_ref()) {
            push(&mut self.fds, s.as_raw_fd(), libc::POLLOUT, Slot::Dial);
        }
        for (i, conn) in self.conns.iter().enumerate() {
            let Some(conn) = conn else { continue };
            let s = &conn.session;
            let mut ev = 0;
            if s.wants_tcp_read() {
                ev |= libc::POLLIN;
            }
            if !s.tx_pending().is_empty() {
                ev |= libc::POLLOUT;
            }
            // A negative descriptor is skipped by poll.
            let fd = if conn.hung_up {
                -1
            } else {
                conn.tcp.as_raw_fd()
            };
            push(&mut self.fds, fd, ev, Slot::Tcp(i));
            if let Some(p) = &conn.can {
                let mut ev = 0;
                // Capacity is back-pressure: a full TX buffer stops CAN reads
                // and the kernel queue (with its overflow counter) takes over.
                if s.tx_has_room() {
                    ev |= libc::POLLIN;
                }
                if s.parked() == Some(Wake::CanWritable) {
                    ev |= libc::POLLOUT;
                }
                push(&mut self.fds, p.fd(), ev, Slot::Can(i));
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t = earliest(
            self.monitor.retry_at,
            self.dial.as_ref().and_then(|d| d.retry_at),
        );
        for conn in self.conns.iter().flatten() {
            t = earliest(t, conn.session.next_deadline());
            t = earliest(t, conn.can_retry_at);
        }
        t
    }

    fn run_timers(&mut self, now: &Now) {
        if self.monitor.retry_at.is_some_and(|t| now.get() >= t) {
            self.monitor_retry(now);
        }
        if self
            .dial
            .as_ref()
            .and_then(|d| d.retry_at)
            .is_some_and(|t| now.get() >= t)
        {
            self.dial_start(now);
        }
        for c in 0..self.conns.len() {
            let Some(conn) = self.conns[c].as_mut() else {
                continue;
            };
            if conn.can_retry_at.is_some_and(|t| now.get() >= t) {
                conn.can_retry_at = None;
                match CanPort::open(&self.cfg.canif, &self.cfg.can) {
                    Ok(p) => {
                        log::info!(
                            "{}: {} is back; carrying frames again",
                            conn.session.peer(),
                            self.cfg.canif
                        );
                        conn.can = Some(p);
                    }
                    Err(_) => conn.can_retry_at = Some(now.get() + RETRY_INTERVAL),
                }
            }
            // Only sessions with a deadline need the time.
            if conn.session.next_deadline().is_none() {
                continue;
            }
            match conn.session.on_timer(now.get()) {
                Timer::Close(close) => self.close(c, close),
                Timer::RetryParked => self.deliver(c, now),
                Timer::Idle => {}
            }
        }
    }

    // ----- server side -----

    fn accept(&mut self, now: &Now) {
        for _ in 0..self.capacity {
            let Some(listener) = &self.listener else {
                return;
            };
            let (sock, addr) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    return;
                }
            };
            let Some(peer) = net::peer_addr(&addr) else {
                continue;
            };
            if !self.cfg.allow.is_empty() && !self.cfg.allow.iter().any(|c| c.contains(peer.ip())) {
                log::warn!("{peer}: refused: not in the --allow list");
                continue;
            }
            let Some(slot) = self.free_slot() else {
                log::warn!(
                    "{peer}: refused: already serving {} clients (--max-clients)",
                    self.capacity
                );
                continue;
            };
            if let Err(e) = net::configure_stream(&sock, self.cfg.keepalive) {
                log::warn!("{peer}: refused: cannot set socket options: {e}");
                continue;
            }
            log::info!("{peer}: accepted");
            self.add_conn(slot, sock, peer, Role::Server, now);
        }
    }

    /// A free connection slot, if there is capacity left.
    fn free_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.conns.iter().position(Option::is_none) {
            return Some(i);
        }
        if self.conns.len() < self.capacity {
            self.conns.push(None);
            return Some(self.conns.len() - 1);
        }
        None
    }

    fn add_conn(&mut self, slot: usize, tcp: Socket, peer: SocketAddr, role: Role, now: &Now) {
        let (can, can_retry_at) = match CanPort::open(&self.cfg.canif, &self.cfg.can) {
            Ok(p) => (Some(p), None),
            Err(e) => {
                log::warn!(
                    "{peer}: {}; frames from TCP are dropped until it is back",
                    open_error(&self.cfg.canif, e)
                );
                (None, Some(now.get() + RETRY_INTERVAL))
            }
        };
        self.conns[slot] = Some(Conn {
            tcp,
            hung_up: false,
            can,
            can_retry_at,
            session: Session::new(peer, role, self.cfg.session, now.get()),
            overflow_warn: RateLimit::default(),
        });
        self.flush(slot);
    }

    fn close(&mut self, c: usize, why: Close) {
        let Some(conn) = self.conns[c].take() else {
            return;
        };
        let peer = conn.session.peer();
        log::info!("{peer}: closed: {why}");
        log::info!("{peer}: {}", conn.session.counters);
        if let Some(dial) = &mut self.dial {
            if self.cfg.retry {
                // Try again at once: a restarted server is back within a second.
                dial.retry_at = Some(Instant::now());
            } else {
                self.fatal = Some(Error::Lost(peer, why));
            }
        }
    }

    fn log_counters(&mut self) {
        let n = self.conns.iter().flatten().count();
        log::info!("{n} connection(s)");
        let now = Instant::now();
        for conn in self.conns.iter_mut().flatten() {
            conn.poll_kernel_drops(now, &self.cfg.canif);
            log::info!("{}: {}", conn.session.peer(), conn.session.counters);
        }
    }

    // ----- client side -----

    fn dial_start(&mut self, now: &Now) {
        let Some(dial) = &mut self.dial else { return };
        dial.retry_at = None;
        if self.conns.iter().any(Option::is_some) || dial.pending.is_some() {
            return;
        }
        let addr = dial.addrs[dial.next];
        log::debug!("connecting to {addr}");
        match net::connect_start(addr, self.cfg.keepalive) {
            Ok(sock) => dial.pending = Some((sock, addr)),
            Err(e) => self.dial_failed(now, addr, e),
        }
    }

    fn dial_done(&mut self, now: &Now) {
        let Some(dial) = &mut self.dial else { return };
        let Some((sock, addr)) = dial.pending.take() else {
            return;
        };
        match sock.take_error() {
            Ok(None) => {
                log::info!("connected to {addr}");
                dial.last_error = None;
                dial.next = 0;
                // A client has one slot, and dials only while it is free.
                if let Some(slot) = self.free_slot() {
                    self.add_conn(slot, sock, addr, Role::Client, now);
                }
            }
            Ok(Some(e)) | Err(e) => self.dial_failed(now, addr, e),
        }
    }

    fn dial_failed(&mut self, now: &Now, addr: SocketAddr, e: io::Error) {
        let Some(dial) = &mut self.dial else { return };
        dial.next += 1;
        let tried_all = dial.next >= dial.addrs.len();
        if tried_all {
            dial.next = 0;
        }
        if !self.cfg.retry {
            if tried_all {
                self.fatal = Some(Error::Connect(addr, e));
            } else {
                dial.retry_at = Some(now.get());
            }
            return;
        }
        // Say it once per change of cause, not once per second.
        if dial.last_error != Some(e.kind()) {
            log::warn!("cannot connect to {addr}: {e}; retrying every second");
            dial.last_error = Some(e.kind());
        } else {
            log::debug!("cannot connect to {addr}: {e}");
        }
        dial.retry_at = Some(if tried_all {
            now.get() + RETRY_INTERVAL
        } else {
            now.get()
        });
    }

    // ----- both sides -----

    fn tcp_ready(&mut self, c: usize, now: &Now, revents: i16) {
        if revents & libc::POLLOUT != 0 {
            self.flush(c);
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return;
        }
        let Some(conn) = self.conns[c].as_mut() else {
            return;
        };
        if revents & libc::POLLERR != 0 {
            let e = conn.tcp.take_error().ok().flatten();
            let e = e.unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset));
            return self.close(c, Close::from(e));
        }
        for _ in 0..READS_PER_WAKEUP {
            let Some(conn) = self.conns[c].as_mut() else {
                return;
            };
            let spare = conn.session.rx_spare();
            if spare.is_empty() {
                if revents & libc::POLLHUP != 0 {
                    if conn.session.parked().is_none() {
                        return self.close(c, Close::PeerClosed);
                    }
                    conn.hung_up = true;
                }
                break;
            }
            let want = spare.len();
            match (&conn.tcp).read(spare) {
                Ok(0) => return self.close(c, Close::PeerClosed),
                Ok(n) => {
                    conn.session.rx_filled(n);
                    self.deliver(c, now);
                    if n < want {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(c, Close::from(e)),
            }
        }
        self.flush(c);
    }

    /// Hands buffered TCP input to the bus (and answers negotiation).
    fn deliver(&mut self, c: usize, now: &Now) {
        let Some(conn) = self.conns[c].as_mut() else {
            return;
        };
        let mut no_bus = NoBus;
        let sink: &mut dyn CanSink = match conn.can.as_mut() {
            Some(p) => p,
            None => &mut no_bus,
        };
        match conn.session.process(now, sink) {
            Err(close) => return self.close(c, close),
            Ok(RxState::Drained) if conn.hung_up => return self.close(c, Close::PeerClosed),
            Ok(_) => {}
        }
        self.flush(c);
    }

    /// One send of everything queued for the peer.
    fn flush(&mut self, c: usize) {
        let Some(conn) = self.conns[c].as_mut() else {
            return;
        };
        let pending = conn.session.tx_pending();
        if pending.is_empty() {
            return;
        }
        let was_full = !conn.session.tx_has_room();
        match conn.tcp.send_with_flags(pending, libc::MSG_NOSIGNAL) {
            Ok(n) => {
                conn.session.tx_sent(n);
                // The CAN socket was not read while we were full: whatever
                // the kernel dropped meanwhile is counted now, not whenever
                // the next frame happens to report it.
                if was_full && conn.session.tx_has_room() {
                    conn.poll_kernel_drops(Instant::now(), &self.cfg.canif);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => self.close(c, Close::from(e)),
        }
    }

    fn can_ready(&mut self, c: usize, now: &Now, revents: i16) {
        if revents & libc::POLLOUT != 0 {
            self.deliver(c, now);
        }
        let Some(conn) = self.conns[c].as_mut() else {
            return;
        };
        let Some(port) = conn.can.as_mut() else {
            return;
        };
        if revents & libc::POLLERR != 0 {
            // Reading the pending error clears it; otherwise poll repeats it.
            if let Some(e) = port.take_error() {
                self.can_read_error(c, now, e);
                return;
            }
        }
        if revents & libc::POLLIN == 0 {
            return;
        }
        for _ in 0..READS_PER_WAKEUP {
            let Some(conn) = self.conns[c].as_mut() else {
                return;
            };
            let Some(port) = conn.can.as_mut() else {
                return;
            };
            let room = conn.session.tx_room_frames();
            if room == 0 {
                break;
            }
            match port.recv(&mut self.batch, room) {
                Ok((n, overflow)) => {
                    if overflow > 0 {
                        conn.kernel_dropped(overflow, now.get(), &self.cfg.canif);
                    };
                    for i in 0..n {
                        let len = self.batch.lens[i];
                        conn.session.queue_frame(&self.batch.frames[i][..len]);
                    }
                    if n < room {
                        break;
                    }
                }
                Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.can_read_error(c, now, e);
                    break;
                }
            }
        }
        self.flush(c);
    }

    fn can_read_error(&mut self, c: usize, now: &Now, e: ReadError) {
        let Some(conn) = self.conns[c].as_mut() else {
            return;
        };
        let peer = conn.session.peer();
        match e {
            // The monitor logs the interface state once for everyone.
            ReadError::Down => log::debug!("{peer}: {} is down", self.cfg.canif),
            ReadError::Gone => {
                log::info!(
                    "{peer}: {} disappeared; will reopen it when it is back",
                    self.cfg.canif
                );
                conn.can = None;
                conn.can_retry_at = Some(now.get() + RETRY_INTERVAL);
            }
            ReadError::Io(e) => log::warn!("{peer}: reading {}: {e}", self.cfg.canif),
        }
    }

    // ----- bus state -----

    fn monitor_readable(&mut self, now: &Now, revents: i16) {
        let name = &self.cfg.canif;
        let Some(port) = self.monitor.port.as_mut() else {
            return;
        };
        let result = if revents & libc::POLLERR != 0 {
            port.take_error().map_or(Ok((0, 0)), Err)
        } else {
            port.recv(&mut self.batch, crate::limits::CAN_BATCH)
        };
        match result {
            Ok((n, _)) => {
                for i in 0..n {
                    let frame = &self.batch.frames[i][..self.batch.lens[i]];
                    let Some(state) = state_from_error_frame(frame) else {
                        continue;
                    };
                    if self.monitor.state != Some(state) {
                        self.monitor.state = Some(state);
                        match state {
                            BusState::ErrorActive => log::info!("{name}: bus state {state}"),
                            _ => log::warn!("{name}: bus state {state}"),
                        }
                    }
                }
            }
            Err(ReadError::Down) => {
                if !self.monitor.down {
                    log::warn!(
                        "{name}: interface is down; frames from TCP are dropped until it is up"
                    );
                    self.monitor.down = true;
                }
                self.monitor.retry_at = Some(now.get() + RETRY_INTERVAL);
            }
            Err(ReadError::Gone) => {
                log::warn!("{name}: interface disappeared; waiting for it to come back");
                self.monitor.port = None;
                self.monitor.down = true;
                self.monitor.retry_at = Some(now.get() + RETRY_INTERVAL);
            }
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(ReadError::Io(e)) => log::warn!("{name}: {e}"),
        }
    }

    /// Reopens a vanished interface, or checks whether a down one is up.
    fn monitor_retry(&mut self, now: &Now) {
        let name = &self.cfg.canif;
        self.monitor.retry_at = None;
        if self.monitor.port.is_none() {
            match CanPort::open(name, &monitor_options()) {
                Ok(p) => self.monitor.port = Some(p),
                Err(_) => {
                    self.monitor.retry_at = Some(now.get() + RETRY_INTERVAL);
                    return;
                }
            }
        }
        let Some(port) = &self.monitor.port else {
            return;
        };
        if sys::if_is_up(port.fd(), name).unwrap_or(false) {
            if self.monitor.down {
                log::info!("{name}: interface is up");
                self.monitor.down = false;
                self.monitor.state = None;
            }
        } else {
            self.monitor.retry_at = Some(now.get() + RETRY_INTERVAL);
        }
    }
}

/// Runs the daemon with a validated configuration.
pub fn run(cfg: Config) -> Result<(), Error> {
    Daemon::new(cfg)?.run()
}
