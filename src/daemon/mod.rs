//! How does the daemon run? One thread, one poll(2) loop over a fixed table
//! of non-blocking descriptors: build the table, poll, dispatch each ready
//! descriptor to its room, run the timers. Server and client differ only in
//! how a connection's link arrives ([`Mode`]): a TCP stream accepted or
//! dialed, our standard input and output (`--stdio`) or a command's pipes
//! (`--via`); all feed the same connections.
//!
//! The rooms: [`signals`], [`server`] (accept, `--allow`, capacity),
//! [`client`] (dial, retry, back-off), [`via`] (a command's pipes),
//! [`conn`] (a connection of either
//! protocol), [`table`] (the connections' slots), [`bus_side`] (a
//! connection's CAN socket), [`beacon`] (`--beacon`), [`monitor`] (bus
//! state), [`port`] (a CAN port that may vanish), [`poll_table`] and
//! [`time`].

pub mod beacon;
pub mod bus_side;
pub mod client;
pub mod conn;
pub mod logfile;
pub mod monitor;
pub mod poll_table;
pub mod port;
pub mod server;
pub mod signals;
pub mod table;
pub mod time;
pub mod via;

use std::time::{Duration, Instant};

use self::beacon::Beacon;
use self::client::{Client, Dialer};
use self::conn::{AnyConn, Conn};
use self::logfile::LogWriter;
use self::monitor::Monitor;
use self::poll_table::{PollTable, Ready, Slot};
use self::server::{Accepted, Server, Speaks};
use self::signals::Signals;
use self::table::Table;
use self::time::{ms_until, Now};
use self::via::Via;
use crate::cli::{Config, ModeConfig};
use crate::close::Close;
use crate::error::Error;
use crate::framelog::LogLines;
use crate::link::Link;
use crate::negotiation::MIN_VERSION;
use crate::net;
use crate::notices::wall_us;
use crate::peer::Peer;
use crate::session::{Role, Session};
use crate::socketcand::session::{ScdConfig, ScdSession};
use crate::sys::CanBatch;
use crate::time::earliest;

/// How links arrive: accepted, dialed, on stdin/stdout, or a command's.
// One value for the whole run: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Mode {
    /// `--serve`: accept clients, of protocol v1 and (`--socketcand`) of
    /// socketcand's, on a listening socket each.
    Server(heapless::Vec<Server, 2>),
    /// Dial one server.
    Client(Client),
    /// `--stdio`: one peer on standard input and output; the run ends
    /// with it.
    Stdio,
    /// `--via CMD`: one server, over the pipes of a command.
    Via(Via),
}

/// The whole daemon state.
pub struct Daemon {
    cfg: Config,
    signals: Signals,
    mode: Mode,
    monitor: Monitor,
    /// Connections of both protocols: they share `--max-clients`.
    conns: Table<AnyConn>,
    beacon: Option<Beacon>,
    batch: Box<CanBatch>,
    table: PollTable,
    /// `--stdio`: the one peer has gone, so the run is over.
    done: bool,
    /// `--log`: the writer of every connection's frame lines.
    log: Option<LogWriter>,
}

impl Daemon {
    /// Sets everything up; every start-up error is fatal and named.
    pub fn new(cfg: Config) -> Result<Daemon, Error> {
        // First: its copier process holds whatever is open when it starts.
        let log = cfg.log.as_deref().map(LogWriter::open).transpose()?;
        let signals =
            Signals::install().map_err(|e| Error::Io("cannot install signal handlers", e))?;
        let monitor = Monitor::open(&cfg.canif, cfg.wait)?;
        let resolve =
            || net::resolve(&cfg.host, cfg.port).map_err(|e| Error::Resolve(cfg.host.clone(), e));
        let mut beacon = None;
        let (mode, capacity) = match &cfg.mode {
            ModeConfig::Server { allow, max_clients } => {
                let addrs = resolve()?;
                let listen = |addrs, speaks| {
                    Server::listen(addrs, &cfg.canif, allow.clone(), cfg.keepalive, speaks)
                };
                let mut servers = heapless::Vec::new();
                let _ = servers.push(listen(&addrs, Speaks::V1)?);
                if let Some((host, port)) = &cfg.socketcand {
                    let addrs =
                        net::resolve(host, *port).map_err(|e| Error::Resolve(host.clone(), e))?;
                    let scd = listen(&addrs, Speaks::Socketcand)?;
                    if cfg.beacon {
                        let b = Beacon::new(scd.addr(), Instant::now())
                            .map_err(|e| Error::Io("cannot open the beacon's UDP socket", e))?;
                        beacon = Some(b);
                    }
                    let _ = servers.push(scd);
                }
                (Mode::Server(servers), *max_clients)
            }
            ModeConfig::Client { retry } => {
                let dialer = Dialer::new(resolve()?, *retry, Instant::now());
                (Mode::Client(Client::new(dialer)), 1)
            }
            ModeConfig::Stdio => (Mode::Stdio, 1),
            ModeConfig::Via { cmd, retry } => {
                (Mode::Via(Via::new(cmd.clone(), *retry, Instant::now())), 1)
            }
        };
        let stdio = matches!(mode, Mode::Stdio);
        let mut daemon = Daemon {
            cfg,
            signals,
            mode,
            monitor,
            beacon,
            conns: Table::with_capacity(capacity),
            batch: Box::default(),
            table: PollTable::default(),
            done: false,
            log,
        };
        if stdio {
            let link =
                Link::stdio().map_err(|e| Error::Io("cannot use standard input and output", e))?;
            log::info!("serving {} on standard input and output", daemon.cfg.canif);
            let peer = (Peer::Stdio, Speaks::V1, Role::Server);
            if let Some(slot) = daemon.conns.free_slot() {
                daemon.add_conn(slot, link, peer, &Now::default())?;
            }
        }
        Ok(daemon)
    }

    /// Runs until a signal (Ok) or a fatal error.
    pub fn run(mut self) -> Result<(), Error> {
        // Set up without error: now the queue the bus socket got may be said.
        crate::can::log_receive_queue(&self.cfg.canif);
        loop {
            self.build_poll_table();
            let conns_due = self.conns_deadline();
            let timeout = self
                .next_deadline(conns_due)
                .map(|t| Duration::from_millis(ms_until(Instant::now(), t) as u64));
            self.table
                .poll(timeout)
                .map_err(|e| Error::Io("poll failed", e))?;
            let now = &Now::default();
            for i in 0..self.table.len() {
                let Some(ready) = self.table.ready(i) else {
                    continue;
                };
                // A signal is honoured between any two descriptors, so a
                // loaded loop still stops within milliseconds.
                if self.stopping() {
                    self.finish_logs();
                    return Ok(());
                }
                if ready.slot == Slot::Signal {
                    self.signals.drain();
                    if self.stopping() {
                        self.finish_logs();
                        return Ok(());
                    }
                    if self.signals.take_usr1() {
                        self.log_counters();
                    }
                    continue;
                }
                self.dispatch(ready, now)?;
                if self.done {
                    return Ok(());
                }
            }
            self.run_timers(now, conns_due.is_some())?;
            if self.done {
                return Ok(());
            }
        }
    }

    /// True (after saying so) once SIGINT or SIGTERM asked us to stop.
    fn stopping(&mut self) -> bool {
        if !self.signals.stop_requested() {
            return false;
        }
        log::info!("stopping on signal");
        self.log_counters();
        true
    }

    fn dispatch(&mut self, ready: Ready, now: &Now) -> Result<(), Error> {
        let Ready { slot, fd, revents } = ready;
        match slot {
            Slot::Signal => Ok(()),
            Slot::Listener(n) => self.accept(n, now),
            Slot::Monitor => {
                let change =
                    self.monitor
                        .on_readable(&self.cfg.canif, &mut self.batch, revents, now);
                if let Some((state, stamp)) = change {
                    let at = stamp.micros().unwrap_or_else(wall_us);
                    for conn in self.conns.iter_mut() {
                        conn.bus_state(state, at);
                    }
                }
                Ok(())
            }
            Slot::Dial => self.dialed(now),
            Slot::Stderr => {
                if let Mode::Via(via) = &mut self.mode {
                    via.on_stderr();
                }
                Ok(())
            }
            Slot::Tcp(c) | Slot::Tx(c) | Slot::Can(c) | Slot::Bcm(c) => {
                // The slot may have been closed, or even reused, since poll.
                let Some(conn) = self.conns.get_mut(c).filter(|conn| conn.owns(slot, fd)) else {
                    return Ok(());
                };
                let result = conn.on_ready(slot, revents, now, &self.cfg.canif, &mut self.batch);
                if let (Some(w), Some(lines)) = (&mut self.log, conn.log_lines()) {
                    w.drain(lines);
                }
                if let Mode::Client(client) = &mut self.mode {
                    if let Some(v) = conn.agreed_version().filter(|_| client.trying_v1()) {
                        client.agreed(conn.peer(), v);
                    }
                }
                self.close_on_error(c, result)
            }
        }
    }

    fn build_poll_table(&mut self) {
        let t = &mut self.table;
        t.clear();
        t.push(self.signals.fd(), libc::POLLIN, Slot::Signal);
        if let Mode::Server(servers) = &self.mode {
            for (n, s) in servers.iter().enumerate() {
                t.push(s.fd(), libc::POLLIN, Slot::Listener(n));
            }
        }
        if let Some(fd) = self.monitor.fd() {
            t.push(fd, libc::POLLIN, Slot::Monitor);
        }
        match &self.mode {
            Mode::Client(c) => {
                if let Some(fd) = c.pending_fd() {
                    t.push(fd, libc::POLLOUT, Slot::Dial);
                }
            }
            Mode::Via(v) => {
                if let Some(fd) = v.stderr_fd() {
                    t.push(fd, libc::POLLIN, Slot::Stderr);
                }
            }
            Mode::Server(_) | Mode::Stdio => {}
        }
        for (i, conn) in self.conns.iter() {
            conn.register(i, t);
        }
    }

    /// The earliest timer work of any connection.
    fn conns_deadline(&self) -> Option<Instant> {
        let mut t = None;
        for (_, conn) in self.conns.iter() {
            t = earliest(t, conn.next_deadline());
        }
        t
    }

    /// The earliest timer work of all, given the connections'.
    fn next_deadline(&self, conns: Option<Instant>) -> Option<Instant> {
        let dial = match &self.mode {
            Mode::Client(c) => c.retry_at(),
            Mode::Via(v) => v.retry_at(),
            Mode::Server(_) | Mode::Stdio => None,
        };
        let t = earliest(self.monitor.retry_at(), dial);
        let t = earliest(t, self.beacon.as_ref().map(Beacon::due_at));
        earliest(t, conns)
    }

    /// Timer work due at `now`; the connections' only if one of them had a
    /// deadline when the turn began (one set since lies ahead: the next
    /// turn's poll waits for it), so a turn without any asks none of them.
    fn run_timers(&mut self, now: &Now, conns_due: bool) -> Result<(), Error> {
        if self.monitor.due(now) {
            self.monitor.on_due(&self.cfg.canif, now);
        }
        if let Some(b) = &mut self.beacon {
            b.on_timer(&self.cfg.canif, now);
        }
        if let Mode::Client(client) = &mut self.mode {
            if now.reached(client.retry_at()) {
                let connected = !self.conns.is_empty();
                client.dial(self.cfg.keepalive, connected, now)?;
            }
        }
        if let Mode::Via(via) = &self.mode {
            if now.reached(via.retry_at()) {
                self.start_via(now)?;
            }
        }
        if !conns_due {
            return Ok(());
        }
        for c in 0..self.conns.slots() {
            let Some(conn) = self.conns.get_mut(c) else {
                continue;
            };
            let result = conn.on_timer(&self.cfg, now);
            self.close_on_error(c, result)?;
        }
        Ok(())
    }

    /// Accepts clients pending on listening socket `n`, at most a table's
    /// worth per wake-up.
    fn accept(&mut self, n: usize, now: &Now) -> Result<(), Error> {
        for _ in 0..self.conns.capacity() {
            let Some(server) = (match &self.mode {
                Mode::Server(servers) => servers.get(n),
                _ => None,
            }) else {
                return Ok(());
            };
            let speaks = server.speaks();
            match server.accept(&mut self.conns) {
                Accepted::Peer(slot, sock, peer) => {
                    self.add_conn(slot, sock.into(), (peer.into(), speaks, Role::Server), now)?
                }
                Accepted::Skipped => {}
                Accepted::Done => break,
            }
        }
        Ok(())
    }

    /// A client's connection attempt finished.
    fn dialed(&mut self, now: &Now) -> Result<(), Error> {
        let Mode::Client(client) = &mut self.mode else {
            return Ok(());
        };
        let Some((sock, addr)) = client.dialed(now)? else {
            return Ok(());
        };
        // A client has one slot, and dials only while it is free.
        if let Some(slot) = self.conns.free_slot() {
            let peer = (addr.into(), Speaks::V1, Role::Client);
            self.add_conn(slot, sock.into(), peer, now)?;
        }
        Ok(())
    }

    /// `--via`: at the due time, starts the command, whose pipes are the
    /// one connection's link.
    #[cold]
    fn start_via(&mut self, now: &Now) -> Result<(), Error> {
        let Mode::Via(via) = &mut self.mode else {
            return Ok(());
        };
        if !self.conns.is_empty() {
            return Ok(());
        }
        let Some(link) = via.start(now)? else {
            return Ok(());
        };
        let peer = (Peer::Via, Speaks::V1, Role::Client);
        // A client has one slot, and starts the command only while it is free.
        match self.conns.free_slot() {
            Some(slot) => self.add_conn(slot, link, peer, now),
            None => Ok(()),
        }
    }

    fn add_conn(
        &mut self,
        slot: usize,
        link: Link,
        (peer, speaks, role): (Peer, Speaks, Role),
        now: &Now,
    ) -> Result<(), Error> {
        let cfg = &self.cfg;
        let mut scfg = cfg.session;
        if let Mode::Client(client) = &self.mode {
            scfg.protocol = client.highest(peer, scfg.protocol);
        }
        let mut conn = match speaks {
            Speaks::V1 => {
                let mut session = Session::new(peer, role, scfg, now.get());
                if cfg.log.is_some() {
                    session.log_to(LogLines::new(&cfg.canif));
                }
                AnyConn::V1(Conn::open(link, session, cfg, now))
            }
            Speaks::Socketcand => {
                log::info!("{peer}: speaks socketcand");
                let session = ScdSession::new(peer, scd_config(cfg));
                AnyConn::Scd(Conn::open(link, session, cfg, now))
            }
        };
        let result = conn.flush(&cfg.canif);
        self.conns.put(slot, conn);
        self.close_on_error(slot, result)
    }

    /// Ends connection `c` if `result` says why; for a client that may be
    /// fatal (`--no-retry`).
    // Inline, with the closing kept out of line: it runs for every
    // connection on every turn, and almost always finds Ok.
    #[inline]
    fn close_on_error(&mut self, c: usize, result: Result<(), Close>) -> Result<(), Error> {
        match result {
            Ok(()) => Ok(()),
            Err(why) => self.close(c, why),
        }
    }

    /// Ends connection `c` for `why`: see [`close_on_error`](Self::close_on_error).
    #[cold]
    fn close(&mut self, c: usize, why: Close) -> Result<(), Error> {
        let Some(mut conn) = self.conns.take(c) else {
            return Ok(());
        };
        if let (Some(w), Some(lines)) = (&mut self.log, conn.log_lines()) {
            w.finish(lines);
        }
        if let Mode::Client(client) = &mut self.mode {
            // The Python original closes on a version above 1 instead of
            // stepping down: that orderly close is its answer, not a
            // failure. A tcpcan server refusing us resets the connection.
            if let Some(v) = conn.unanswered_proposal().filter(|&v| v > MIN_VERSION) {
                if why == Close::PeerClosed {
                    client.refused(conn.peer(), v);
                    return Ok(());
                }
            }
        }
        conn.log_close(why);
        match &mut self.mode {
            Mode::Client(client) => client.lost(conn.peer(), why, conn.opened()),
            Mode::Server(_) => Ok(()),
            Mode::Via(via) => via.lost(conn.heard(), Instant::now()),
            // The end of input is the end of the run; any other end is
            // an error, which ssh passes on as our exit status.
            Mode::Stdio if why == Close::PeerClosed => {
                self.done = true;
                Ok(())
            }
            Mode::Stdio => Err(Error::Lost(conn.peer(), why)),
        }
    }

    /// Hands the `--log` writer every line still held, before it ends.
    fn finish_logs(&mut self) {
        let Some(w) = &mut self.log else {
            return;
        };
        for conn in self.conns.iter_mut() {
            if let Some(lines) = conn.log_lines() {
                w.finish(lines);
            }
        }
    }

    fn log_counters(&mut self) {
        let n = self.conns.iter().count();
        log::info!("{n} connection(s)");
        let now = Instant::now();
        for conn in self.conns.iter_mut() {
            conn.log_counters(now, &self.cfg.canif);
        }
    }
}

/// A socketcand session's switches from the command line.
fn scd_config(cfg: &Config) -> ScdConfig {
    ScdConfig {
        read_only: cfg.session.read_only,
        error_frames: cfg.session.error_frames,
        tx_timeout: cfg.session.tx_timeout,
        filters: cfg.can.filters.clone(),
        bus: cfg.canif.clone(),
    }
}

/// Runs the daemon with a validated configuration.
pub fn run(cfg: Config) -> Result<(), Error> {
    Daemon::new(cfg)?.run()
}
