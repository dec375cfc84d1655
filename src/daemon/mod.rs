//! How does the daemon run? One thread, one poll(2) loop over a fixed table
//! of non-blocking descriptors: build the table, poll, dispatch each ready
//! descriptor to its room, run the timers. Server and client differ only in
//! how a TCP stream arrives ([`Mode`]); both feed the same connections.
//!
//! The rooms: [`signals`], [`server`] (accept, `--allow`, capacity),
//! [`client`] (dial, retry, back-off), [`conn`] (a connection of either
//! protocol), [`table`] (the connections' slots), [`bus_side`] (a
//! connection's CAN socket), [`beacon`] (`--beacon`), [`monitor`] (bus
//! state), [`port`] (a CAN port that may vanish), [`poll_table`] and
//! [`time`].

pub mod beacon;
pub mod bus_side;
pub mod client;
pub mod conn;
pub mod monitor;
pub mod poll_table;
pub mod port;
pub mod server;
pub mod signals;
pub mod table;
pub mod time;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::Socket;

use self::beacon::Beacon;
use self::client::{Client, Dialer};
use self::conn::{AnyConn, Conn};
use self::monitor::Monitor;
use self::poll_table::{PollTable, Ready, Slot};
use self::server::{Accepted, Server, Speaks};
use self::signals::Signals;
use self::table::Table;
use self::time::{ms_until, Now};
use crate::cli::{Config, ModeConfig};
use crate::close::Close;
use crate::error::Error;
use crate::net;
use crate::session::{Role, Session};
use crate::socketcand::session::{ScdConfig, ScdSession};
use crate::sys::CanBatch;
use crate::time::earliest;

/// How TCP streams arrive: accepted, or dialed.
// One value for the whole run: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Mode {
    /// `--serve`: accept clients, of protocol v1 and (`--socketcand`) of
    /// socketcand's, on a listening socket each.
    Server(heapless::Vec<Server, 2>),
    /// Dial one server.
    Client(Client),
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
}

impl Daemon {
    /// Sets everything up; every start-up error is fatal and named.
    pub fn new(cfg: Config) -> Result<Daemon, Error> {
        let signals =
            Signals::install().map_err(|e| Error::Io("cannot install signal handlers", e))?;
        let monitor = Monitor::open(&cfg.canif, cfg.wait)?;
        let addrs =
            net::resolve(&cfg.host, cfg.port).map_err(|e| Error::Resolve(cfg.host.clone(), e))?;
        let mut beacon = None;
        let (mode, capacity) = match &cfg.mode {
            ModeConfig::Server { allow, max_clients } => {
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
                let dialer = Dialer::new(addrs, *retry, Instant::now());
                (Mode::Client(Client::new(dialer)), 1)
            }
        };
        Ok(Daemon {
            cfg,
            signals,
            mode,
            monitor,
            beacon,
            conns: Table::with_capacity(capacity),
            batch: Box::default(),
            table: PollTable::default(),
        })
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
                    return Ok(());
                }
                if ready.slot == Slot::Signal {
                    self.signals.drain();
                    if self.stopping() {
                        return Ok(());
                    }
                    if self.signals.take_usr1() {
                        self.log_counters();
                    }
                    continue;
                }
                self.dispatch(ready, now)?;
            }
            self.run_timers(now, conns_due.is_some())?;
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
                self.monitor
                    .on_readable(&self.cfg.canif, &mut self.batch, revents, now);
                Ok(())
            }
            Slot::Dial => self.dialed(now),
            Slot::Tcp(c) | Slot::Can(c) | Slot::Bcm(c) => {
                // The slot may have been closed, or even reused, since poll.
                let Some(conn) = self.conns.get_mut(c).filter(|conn| conn.owns(slot, fd)) else {
                    return Ok(());
                };
                let result = conn.on_ready(slot, revents, now, &self.cfg.canif, &mut self.batch);
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
        if let Some(fd) = match &self.mode {
            Mode::Client(c) => c.pending_fd(),
            Mode::Server(_) => None,
        } {
            t.push(fd, libc::POLLOUT, Slot::Dial);
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
            Mode::Server(_) => None,
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
                Mode::Client(_) => None,
            }) else {
                return Ok(());
            };
            let speaks = server.speaks();
            match server.accept(&mut self.conns) {
                Accepted::Peer(slot, sock, peer) => {
                    self.add_conn(slot, sock, peer, (speaks, Role::Server), now)?
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
            self.add_conn(slot, sock, addr, (Speaks::V1, Role::Client), now)?;
        }
        Ok(())
    }

    fn add_conn(
        &mut self,
        slot: usize,
        tcp: Socket,
        peer: SocketAddr,
        (speaks, role): (Speaks, Role),
        now: &Now,
    ) -> Result<(), Error> {
        let cfg = &self.cfg;
        let mut conn = match speaks {
            Speaks::V1 => {
                let session = Session::new(peer, role, cfg.session, now.get());
                AnyConn::V1(Conn::open(tcp, session, cfg, now))
            }
            Speaks::Socketcand => {
                log::info!("{peer}: speaks socketcand");
                let session = ScdSession::new(peer, scd_config(cfg));
                AnyConn::Scd(Conn::open(tcp, session, cfg, now))
            }
        };
        let result = conn.flush(&cfg.canif);
        self.conns.put(slot, conn);
        self.close_on_error(slot, result)
    }

    /// Ends connection `c` if `result` says why; for a client that may be
    /// fatal (`--no-retry`).
    fn close_on_error(&mut self, c: usize, result: Result<(), Close>) -> Result<(), Error> {
        let Err(why) = result else {
            return Ok(());
        };
        let Some(conn) = self.conns.take(c) else {
            return Ok(());
        };
        conn.log_close(why);
        match &mut self.mode {
            Mode::Client(client) => client.lost(conn.peer(), why),
            Mode::Server(_) => Ok(()),
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
