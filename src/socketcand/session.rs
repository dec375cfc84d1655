//! What state is one socketcand client in, and what does each of its
//! commands do? The protocol's modes as a pure state machine over fixed
//! buffers: bytes in from TCP, lines out to TCP, frames to a [`CanSink`].
//! No I/O; tests drive it line by line.
//!
//! Modes served: NO_BUS (until `< open >`), BCM (the protocol's mode after
//! `open`: `< send >` and cyclic sends work, and only the frames a
//! `< filter >` or `< subscribe >` asked the kernel's BCM for are
//! forwarded), RAW (every frame of the bus is forwarded) and CONTROL.

use std::fmt;
use std::time::{Duration, Instant};

use super::MAX_FRAME_LINE;
use super::{next_line, parse, write_frame, Command, Out, ScdError, SendFrame};
use crate::close::Close;
use crate::counters::DropReason;
use crate::device::{CanSink, CanTx, CyclicSink};
use crate::filter::Filters;
use crate::limits::{SCD_MAX_REPLY, SCD_MAX_SUBSCRIPTIONS, SCD_RX_BUF, SCD_TX_BUF};
use crate::peer::Peer;
use crate::protocol::{stream_access, Bus, IfStats, Protocol, Stream};
pub use crate::protocol::{Progress, Timer, Wake};
use crate::time::{earliest, Clock, Stamp};
use crate::wire::HostFrame;

/// The protocol's modes that this server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connected, no bus opened yet.
    NoBus,
    /// A bus is open; frames can be sent, those subscribed to are forwarded.
    Bcm,
    /// A bus is open; every frame is forwarded.
    Raw,
    /// A bus is open; statistics may be asked for, no frames are forwarded.
    Control,
}

/// Behaviour switches, from the command line.
#[derive(Debug, Clone)]
pub struct ScdConfig {
    /// `--read-only`: `< send >` frames are counted and dropped.
    pub read_only: bool,
    /// `--error-frames`: error frames are forwarded as `< error … >`.
    pub error_frames: bool,
    /// `--tx-timeout`: how long a frame may wait for a busy bus.
    pub tx_timeout: Duration,
    /// `--filter`: a subscription may not reach frames these hide.
    pub filters: Filters,
    /// The bus served: the one `< open >` may name.
    pub bus: String,
}

/// One socketcand connection, without its sockets.
pub struct ScdSession {
    peer: Peer,
    cfg: ScdConfig,
    mode: Mode,
    io: Stream<SCD_RX_BUF, SCD_TX_BUF>,
    /// When a parked frame is tried again.
    retry_at: Option<Instant>,
    fd_warned: bool,
    /// `< statistics MS >`: the interval and when the next line is due.
    stats: Option<(Duration, Instant)>,
    /// IDs with a receive job in the kernel's BCM (`filter`, `subscribe`).
    subs: heapless::Vec<u32, SCD_MAX_SUBSCRIPTIONS>,
    /// CAN FD frames not forwarded: the protocol cannot say them.
    pub fd_not_sent: u64,
}

/// Shortest statistics interval: each line costs four small sysfs reads,
/// so a client asking for 1 ms gets 10 per second instead.
const MIN_STATS_INTERVAL: Duration = Duration::from_millis(100);

/// How long a frame refused with "queue full" waits before it is tried again.
const BUSY_RETRY: Duration = crate::limits::ENOBUFS_RETRY;

impl ScdSession {
    /// A new connection; the greeting `< hi >` is queued at once.
    pub fn new(peer: impl Into<Peer>, cfg: ScdConfig) -> Self {
        let peer = peer.into();
        let mut s = ScdSession {
            peer,
            cfg,
            mode: Mode::NoBus,
            io: Stream::new(),
            retry_at: None,
            fd_warned: false,
            stats: None,
            subs: heapless::Vec::new(),
            fd_not_sent: 0,
        };
        s.reply("< hi >");
        s
    }

    /// The mode the client is in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// True (and the next time set) when a `< stat >` line is due; a line
    /// that finds no room in the output is skipped, not queued.
    pub fn stats_due(&mut self, now: Instant) -> bool {
        match &mut self.stats {
            Some((ival, at)) if now >= *at => {
                *at = now + *ival;
                self.io.tx.free() >= SCD_MAX_REPLY
            }
            _ => false,
        }
    }

    /// Carries out every complete command in the input, in order.
    pub fn process(
        &mut self,
        now: Instant,
        can: &mut dyn CanSink,
        bcm: &mut dyn CyclicSink,
    ) -> Result<Progress, Close> {
        self.retry_at = None;
        loop {
            if self.io.tx.free() < SCD_MAX_REPLY {
                return Ok(Progress::Drained);
            }
            let (cmd, used) = match next_line(self.io.rx.data()) {
                Err(e) => return Err(ScdError::Line(e).into()),
                Ok(None) => return Ok(Progress::Drained),
                Ok(Some((text, used))) => match parse(text) {
                    Ok(cmd) => (cmd, used),
                    Err(e) => {
                        self.reply_error(&e.to_string());
                        return Err(ScdError::Number(e).into());
                    }
                },
            };
            match self.command(cmd, now, can, bcm)? {
                Step::Done => self.io.rx.consume(used),
                Step::Parked(at) => {
                    self.retry_at = Some(at);
                    return Ok(Progress::Parked);
                }
            }
        }
    }

    fn command(
        &mut self,
        cmd: Command,
        now: Instant,
        can: &mut dyn CanSink,
        bcm: &mut dyn CyclicSink,
    ) -> Result<Step, Close> {
        match (self.mode, cmd) {
            (_, Command::Echo) => self.reply("< echo >"),
            (Mode::NoBus, Command::Open(ref name)) if name.as_str() == self.cfg.bus => {
                log::info!("{}: socketcand client opened {}", self.peer, self.cfg.bus);
                self.mode = Mode::Bcm;
                self.reply("< ok >");
            }
            (Mode::NoBus, Command::Open(_)) => {
                self.reply_error("no such bus");
                return Err(ScdError::NoSuchBus.into());
            }
            (Mode::NoBus, _) => self.reply_error("no bus open"),
            (_, Command::Open(_)) => self.reply_error("a bus is already open"),
            (_, Command::RawMode) => self.switch(Mode::Raw, bcm),
            (_, Command::BcmMode) => self.switch(Mode::Bcm, bcm),
            (_, Command::ControlMode) => self.switch(Mode::Control, bcm),
            (Mode::Control, Command::Statistics(ms)) => {
                // The first line comes at once, so a client sees it works.
                let ival = Duration::from_millis(u64::from(ms)).max(MIN_STATS_INTERVAL);
                self.stats = (ms != 0).then_some((ival, now));
            }
            (_, Command::Statistics(_)) => self.reply_error("statistics only in control mode"),
            (
                Mode::Control,
                Command::Send(_) | Command::Add { .. } | Command::Update(_) | Command::Delete(_),
            ) => self.reply_error("not in control mode"),
            (_, Command::Send(f)) => return Ok(self.send(f, now, can)),
            (_, Command::Add { interval, frame }) => self.cyclic(frame, Some(interval), bcm),
            (_, Command::Update(f)) => self.cyclic(f, None, bcm),
            (_, Command::Delete(id)) => {
                if bcm.delete(id).is_err() {
                    self.reply_error("no such cyclic send");
                }
            }
            (Mode::Bcm, Command::Filter { interval, frame }) => {
                self.subscribe(frame.can_id, interval, Some(frame), bcm)
            }
            (Mode::Bcm, Command::Subscribe { interval, can_id }) => {
                self.subscribe(can_id, interval, None, bcm)
            }
            (Mode::Bcm, Command::Unsubscribe(id)) => self.unsubscribe(id, bcm),
            (_, Command::Filter { .. } | Command::Subscribe { .. } | Command::Unsubscribe(_)) => {
                self.reply_error("subscriptions only in BCM mode")
            }
            (_, Command::Surplus(_)) => self.reply_error("too many fields"),
            (_, Command::Unsupported(_)) => self.reply_error("command not supported"),
            (_, Command::Unknown) => self.reply_error("unknown command"),
        }
        Ok(Step::Done)
    }

    /// The frame a `send`, `add` or `update` asks for, in host layout, if
    /// it obeys the bus's rules and `--read-only` lets it go; otherwise it
    /// is counted, with an error line for a broken rule.
    fn frame_for_bus(&mut self, f: SendFrame) -> Option<[u8; libc::CAN_MTU]> {
        if let Some(p) = frame_problem(&f) {
            self.io.counters.count_drop(DropReason::Invalid);
            self.reply_error(p);
            return None;
        }
        if self.cfg.read_only {
            self.io.counters.count_drop(DropReason::ReadOnly);
            return None;
        }
        Some(host_frame(&f))
    }

    /// Hands an `add` (with its interval) or `update` to the kernel's BCM.
    fn cyclic(&mut self, f: SendFrame, interval: Option<(u32, u32)>, bcm: &mut dyn CyclicSink) {
        let Some(frame) = self.frame_for_bus(f) else {
            return;
        };
        if bcm.setup(&frame, interval.map(duration)).is_err() {
            self.reply_error("cyclic send refused");
        }
    }

    /// Asks the kernel's BCM for the frames of `can_id`: every one, or with
    /// `mask` (a `filter`) those whose masked bytes changed; at most one per
    /// `interval`. Only reads, so `--read-only` allows it; `--filter` does
    /// not let it reach an ID it hides.
    fn subscribe(
        &mut self,
        can_id: u32,
        interval: (u32, u32),
        mask: Option<SendFrame>,
        bcm: &mut dyn CyclicSink,
    ) {
        let probe = SendFrame {
            can_id,
            dlc: 0,
            data: [0; 8],
            given: 0,
        };
        if let Some(p) = frame_problem(mask.as_ref().unwrap_or(&probe)) {
            return self.reply_error(p);
        }
        if !self.cfg.filters.admits(can_id) {
            return self.reply_error("ID hidden by --filter");
        }
        let known = self.subs.contains(&can_id);
        if !known && self.subs.is_full() {
            return self.reply_error("too many subscriptions");
        }
        let mask = mask.map(|f| host_frame(&f));
        let mask = mask.as_ref().map(|f| &f[..]);
        if bcm.rx_setup(can_id, duration(interval), mask).is_err() {
            return self.reply_error("subscription refused");
        }
        if !known {
            // Cannot fail: checked not full above.
            let _ = self.subs.push(can_id);
        }
    }

    /// `< unsubscribe ID >`: ends the receive job for the ID.
    fn unsubscribe(&mut self, can_id: u32, bcm: &mut dyn CyclicSink) {
        let Some(at) = self.subs.iter().position(|&id| id == can_id) else {
            return self.reply_error("no such subscription");
        };
        self.subs.swap_remove(at);
        if bcm.rx_delete(can_id).is_err() {
            self.reply_error("unsubscribe refused");
        }
    }

    /// `< rawmode >`, `< bcmmode >`, `< controlmode >`. A change of mode
    /// ends every job of the mode before, cyclic sends and subscriptions,
    /// as socketcand's closing of its BCM socket does: a cyclic frame that
    /// outlived the mode that made it would be one nobody is watching.
    fn switch(&mut self, mode: Mode, bcm: &mut dyn CyclicSink) {
        if mode != self.mode {
            bcm.end_all();
            self.subs.clear();
            self.mode = mode;
        }
        self.reply("< ok >");
    }

    /// Checks a `< send >` against the bus's rules and writes it.
    fn send(&mut self, f: SendFrame, now: Instant, can: &mut dyn CanSink) -> Step {
        let Some(frame) = self.frame_for_bus(f) else {
            return Step::Done;
        };
        match can.send(&frame) {
            CanTx::Sent => {
                self.io.bus_moved();
                self.io.counters.to_can += 1;
            }
            CanTx::Busy => {
                if self.io.may_wait(now, self.cfg.tx_timeout) {
                    return Step::Parked(now + BUSY_RETRY);
                }
                // Not reset: until the bus moves, later frames are shed too.
                self.io.counters.count_drop(DropReason::Stale);
            }
            CanTx::Refused => self.io.counters.count_drop(DropReason::Refused),
            CanTx::Down => self.io.counters.count_drop(DropReason::BusDown),
        }
        Step::Done
    }

    fn reply(&mut self, line: &str) {
        // Room was checked before the command was taken.
        let _ = self.io.tx.push(line.as_bytes());
    }

    fn reply_error(&mut self, text: &str) {
        log::debug!("{}: socketcand error: {text}", self.peer);
        let mut line = heapless::String::<SCD_MAX_REPLY>::new();
        let _ = line.push_str("< error ");
        let _ = line.push_str(&text[..text.len().min(SCD_MAX_REPLY - 12)]);
        let _ = line.push_str(" >");
        self.reply(&line);
    }
}

impl Protocol for ScdSession {
    type Tcp = Stream<SCD_RX_BUF, SCD_TX_BUF>;
    const FRAME_ROOM: usize = MAX_FRAME_LINE;
    const STAMPED_READS: bool = false;
    const FRAME_STAMPS: bool = true;
    stream_access!(io);

    fn process_input(&mut self, clock: impl Clock, bus: Bus<'_>) -> Result<Progress, Close> {
        self.process(clock.now(), bus.can, bus.bcm)
    }

    fn on_timer(&mut self, now: Instant) -> Timer {
        if self.stats_due(now) {
            Timer::Stats
        } else if self.retry_at.is_some_and(|t| now >= t) {
            Timer::RetryParked
        } else {
            Timer::Idle
        }
    }

    fn fmt_counters(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "socketcand: {} fd_not_sent={}",
            self.io.counters, self.fd_not_sent
        )
    }

    /// The peer's address, for log lines.
    fn peer(&self) -> Peer {
        self.peer
    }

    /// True while the kernel's BCM may pass frames back for this client.
    fn wants_bcm(&self) -> bool {
        !self.subs.is_empty()
    }

    /// Free space for the next TCP read.
    fn rx_spare(&mut self) -> &mut [u8] {
        if !self.wants_tcp_read() {
            return &mut [];
        }
        self.io.rx.spare()
    }

    /// `n` bytes were read into [`rx_spare`](Self::rx_spare).
    fn rx_filled(&mut self, n: usize) {
        self.io.filled(n);
    }

    /// True when more TCP input can be taken: not while a frame waits for
    /// the bus, nor while a reply would not fit.
    fn wants_tcp_read(&self) -> bool {
        self.retry_at.is_none() && self.io.rx.free() > 0 && self.io.tx.free() >= SCD_MAX_REPLY
    }

    /// How a parked session wants to be woken, if it is parked.
    fn parked(&self) -> Option<Wake> {
        self.retry_at.map(Wake::At)
    }

    /// When a parked frame is due for another try, or statistics are due.
    fn next_deadline(&self) -> Option<Instant> {
        earliest(self.retry_at, self.stats.map(|(_, at)| at))
    }

    /// Queues `< stat RBYTES RPACKETS TBYTES TPACKETS >` (the interface's).
    fn queue_stats(&mut self, [rx_bytes, rx_packets, tx_bytes, tx_packets]: IfStats) {
        let mut line = heapless::String::<SCD_MAX_REPLY>::new();
        let _ = core::fmt::Write::write_fmt(
            &mut line,
            format_args!("< stat {rx_bytes} {rx_packets} {tx_bytes} {tx_packets} >"),
        );
        self.reply(&line);
    }

    /// Takes one frame (host layout) read from the bus at `stamp`: a line
    /// in RAW mode, nothing otherwise. Returns false if it did not fit.
    fn queue_frame(&mut self, frame: &[u8], stamp: Stamp) -> bool {
        if self.mode != Mode::Raw {
            return true;
        }
        let mut line = [0u8; MAX_FRAME_LINE];
        match write_frame(frame, stamp, self.cfg.error_frames, &mut line) {
            Out::Line(n) => {
                let ok = self.io.tx.push(&line[..n]);
                if ok {
                    self.io.counters.to_tcp += 1;
                }
                ok
            }
            Out::Fd => {
                self.fd_not_sent += 1;
                if !self.fd_warned {
                    self.fd_warned = true;
                    log::warn!(
                        "{}: CAN FD frames are not sent to socketcand clients (the protocol has none); counting them",
                        self.peer
                    );
                }
                true
            }
            Out::ErrorNotWanted => true,
        }
    }

    /// Takes one frame (host layout, classic) the kernel's BCM passed back
    /// for a `filter` or `subscribe`, received at `stamp`: a line in BCM
    /// mode; one still queued when the client left BCM mode is dropped.
    /// Returns false if it did not fit.
    fn queue_subscribed(&mut self, frame: &[u8], stamp: Stamp) -> bool {
        if self.mode != Mode::Bcm {
            return true;
        }
        let mut line = [0u8; MAX_FRAME_LINE];
        let Out::Line(n) = write_frame(frame, stamp, false, &mut line) else {
            return true;
        };
        let ok = self.io.tx.push(&line[..n]);
        if ok {
            self.io.counters.to_tcp += 1;
        }
        ok
    }
}

/// What is wrong with a frame (or a filter's ID and mask) for the bus.
fn frame_problem(f: &SendFrame) -> Option<&'static str> {
    let rtr = f.can_id & libc::CAN_RTR_FLAG != 0;
    let id = f.can_id & libc::CAN_EFF_MASK;
    let extended = f.can_id & libc::CAN_EFF_FLAG != 0;
    if f.dlc > 8 {
        Some("DLC above 8")
    } else if !rtr && f.given != usize::from(f.dlc) {
        Some("data bytes differ from DLC")
    } else if rtr && f.given != 0 {
        Some("data bytes in a remote request")
    } else if !extended && id > libc::CAN_SFF_MASK {
        Some("standard ID above 7FF")
    } else {
        None
    }
}

/// A checked frame in host layout (a remote request carries no data).
fn host_frame(f: &SendFrame) -> [u8; libc::CAN_MTU] {
    let carried = match f.can_id & libc::CAN_RTR_FLAG {
        0 => usize::from(f.dlc),
        _ => 0,
    };
    HostFrame::classic(f.can_id, f.dlc, &f.data[..carried]).into_inner()
}

/// A protocol interval, seconds and microseconds.
fn duration((secs, usecs): (u32, u32)) -> Duration {
    Duration::from_secs(u64::from(secs)) + Duration::from_micros(u64::from(usecs))
}

/// What a command did.
enum Step {
    Done,
    Parked(Instant),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socketcand::{LineError, NumberError};

    /// Records frames; answers `answer` to each.
    struct Bus {
        sent: Vec<Vec<u8>>,
        answer: CanTx,
    }

    impl CanSink for Bus {
        fn send(&mut self, frame: &[u8]) -> CanTx {
            if self.answer == CanTx::Sent {
                self.sent.push(frame.to_vec());
            }
            self.answer
        }
    }

    /// Records cyclic jobs as (frame, interval) and deletions, and receive
    /// jobs as (ID, throttle, mask) and their deletions.
    #[derive(Default)]
    struct Jobs {
        setups: Vec<(Vec<u8>, Option<Duration>)>,
        deleted: Vec<u32>,
        rx: Vec<(u32, Duration, Option<Vec<u8>>)>,
        rx_deleted: Vec<u32>,
        refuse_rx: bool,
        /// Times every job was ended at once (the socket closed).
        ended: usize,
    }

    impl CyclicSink for Jobs {
        fn setup(&mut self, frame: &[u8], interval: Option<Duration>) -> std::io::Result<()> {
            self.setups.push((frame.to_vec(), interval));
            Ok(())
        }

        fn delete(&mut self, can_id: u32) -> std::io::Result<()> {
            if self
                .setups
                .iter()
                .any(|(f, _)| f[..4] == can_id.to_ne_bytes())
            {
                self.deleted.push(can_id);
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(libc::EINVAL))
            }
        }

        fn rx_setup(
            &mut self,
            can_id: u32,
            throttle: Duration,
            mask: Option<&[u8]>,
        ) -> std::io::Result<()> {
            if self.refuse_rx {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            self.rx.push((can_id, throttle, mask.map(<[u8]>::to_vec)));
            Ok(())
        }

        fn rx_delete(&mut self, can_id: u32) -> std::io::Result<()> {
            self.rx_deleted.push(can_id);
            Ok(())
        }

        fn end_all(&mut self) {
            self.setups.clear();
            self.rx.clear();
            self.ended += 1;
        }
    }

    fn bus() -> Bus {
        Bus {
            sent: Vec::new(),
            answer: CanTx::Sent,
        }
    }

    fn cfg() -> ScdConfig {
        ScdConfig {
            read_only: false,
            error_frames: false,
            tx_timeout: Duration::from_millis(100),
            filters: Filters::All,
            bus: "vcan0".into(),
        }
    }

    fn session() -> ScdSession {
        ScdSession::new(
            "192.0.2.1:5000".parse::<std::net::SocketAddr>().unwrap(),
            cfg(),
        )
    }

    /// Feeds `input`, runs the session, returns what it wrote since last asked.
    fn talk(s: &mut ScdSession, input: &str, can: &mut Bus) -> Result<String, Close> {
        talk_jobs(s, input, can, &mut Jobs::default())
    }

    fn talk_jobs(
        s: &mut ScdSession,
        input: &str,
        can: &mut Bus,
        jobs: &mut Jobs,
    ) -> Result<String, Close> {
        feed(s, input);
        s.process(Instant::now(), can, jobs)?;
        Ok(take(s))
    }

    fn feed(s: &mut ScdSession, input: &str) {
        let spare = s.rx_spare();
        spare[..input.len()].copy_from_slice(input.as_bytes());
        s.rx_filled(input.len());
    }

    fn take(s: &mut ScdSession) -> String {
        let out = String::from_utf8(s.tx_pending().to_vec()).unwrap();
        s.tx_sent(out.len());
        out
    }

    fn opened_raw() -> (ScdSession, Bus) {
        let mut s = session();
        let mut b = bus();
        take(&mut s);
        talk(&mut s, "< open vcan0 >", &mut b).unwrap();
        talk(&mut s, "< rawmode >", &mut b).unwrap();
        (s, b)
    }

    fn frame(id: u32, data: &[u8]) -> [u8; 16] {
        let mut f = [0u8; 16];
        f[..4].copy_from_slice(&id.to_ne_bytes());
        f[4] = data.len() as u8;
        f[8..8 + data.len()].copy_from_slice(data);
        f
    }

    #[test]
    fn a_client_is_greeted_then_opens_the_served_bus_and_switches_to_raw() {
        let mut s = session();
        let mut b = bus();
        assert_eq!(take(&mut s), "< hi >");
        assert_eq!(s.mode(), Mode::NoBus);
        assert_eq!(talk(&mut s, "< open vcan0 >", &mut b).unwrap(), "< ok >");
        assert_eq!(s.mode(), Mode::Bcm, "BCM is the protocol's mode after open");
        assert_eq!(talk(&mut s, "< rawmode >", &mut b).unwrap(), "< ok >");
        assert_eq!(s.mode(), Mode::Raw);
        assert_eq!(talk(&mut s, "< bcmmode >", &mut b).unwrap(), "< ok >");
        assert_eq!(s.mode(), Mode::Bcm);
    }

    #[test]
    fn a_bus_not_served_gets_an_error_and_the_connection_ends() {
        let mut s = session();
        take(&mut s);
        let r = talk(&mut s, "< open can7 >", &mut bus());
        assert_eq!(r, Err(Close::from(ScdError::NoSuchBus)));
        assert_eq!(take(&mut s), "< error no such bus >");
        let long = "< open vcan0vcan0vcan0vcan0 >";
        let r = talk(&mut session(), long, &mut bus());
        assert_eq!(r, Err(Close::from(ScdError::NoSuchBus)));
    }

    #[test]
    fn send_before_open_is_an_error_and_nothing_reaches_the_bus() {
        let mut s = session();
        let mut b = bus();
        take(&mut s);
        let out = talk(&mut s, "< send 123 1 11 >", &mut b).unwrap();
        assert_eq!(out, "< error no bus open >");
        assert!(b.sent.is_empty());
        assert_eq!(talk(&mut s, "< open vcan0 >", &mut b).unwrap(), "< ok >");
    }

    #[test]
    fn a_send_writes_the_frame_byte_for_byte() {
        let (mut s, mut b) = opened_raw();
        assert_eq!(talk(&mut s, "< send 123 3 1 a2 FF >", &mut b).unwrap(), "");
        assert_eq!(b.sent, [frame(0x123, &[1, 0xa2, 0xff]).to_vec()]);
        talk(&mut s, "< send 1AAAAAAA 0 >", &mut b).unwrap();
        let ext = frame(0x1AAA_AAAA | libc::CAN_EFF_FLAG, &[]);
        assert_eq!(b.sent[1], ext.to_vec());
        assert_eq!(s.io.counters.to_can, 2);
    }

    #[test]
    fn send_works_in_bcm_mode_too() {
        let mut s = session();
        let mut b = bus();
        talk(&mut s, "< open vcan0 >", &mut b).unwrap();
        talk(&mut s, "< send 001 1 7 >", &mut b).unwrap();
        assert_eq!(b.sent.len(), 1);
    }

    #[test]
    fn sendrtr_writes_a_remote_request_with_its_dlc_and_no_data() {
        let (mut s, mut b) = opened_raw();
        talk(&mut s, "< sendrtr 123 4 >", &mut b).unwrap();
        let mut want = frame(0x123 | libc::CAN_RTR_FLAG, &[]);
        want[4] = 4;
        assert_eq!(b.sent, [want.to_vec()]);
    }

    #[test]
    fn a_dlc_above_8_or_a_wrong_byte_count_is_an_error_and_the_connection_stays() {
        let (mut s, mut b) = opened_raw();
        let out = talk(&mut s, "< send 123 9 1 2 3 4 5 6 7 8 9 >", &mut b).unwrap();
        assert_eq!(out, "< error DLC above 8 >");
        let out = talk(&mut s, "< send 123 2 1 >", &mut b).unwrap();
        assert_eq!(out, "< error data bytes differ from DLC >");
        let out = talk(&mut s, "< send 800 0 >", &mut b).unwrap();
        assert_eq!(out, "< error standard ID above 7FF >");
        assert!(b.sent.is_empty());
        assert_eq!(s.io.counters.drop_invalid, 3);
        talk(&mut s, "< send 123 0 >", &mut b).unwrap();
        assert_eq!(b.sent.len(), 1, "still served");
    }

    #[test]
    fn a_malformed_number_gets_an_error_line_then_the_connection_ends() {
        let (mut s, mut b) = opened_raw();
        let r = talk(&mut s, "< send 12G 1 00 >", &mut b);
        let want = Close::from(ScdError::Number(NumberError::Id));
        assert_eq!(r, Err(want));
        assert_eq!(take(&mut s), "< error malformed CAN ID >");
        assert_eq!(want.to_string(), "socketcand: malformed CAN ID");
    }

    #[test]
    fn an_unknown_command_is_answered_and_the_connection_stays() {
        let (mut s, mut b) = opened_raw();
        let out = talk(&mut s, "< frobnicate 1 >", &mut b).unwrap();
        assert_eq!(out, "< error unknown command >");
        let out = talk(&mut s, "< isotpmode >", &mut b).unwrap();
        assert_eq!(out, "< error command not supported >");
        assert_eq!(talk(&mut s, "< echo >", &mut b).unwrap(), "< echo >");
    }

    #[test]
    fn garbage_or_an_endless_line_ends_the_connection() {
        let (mut s, mut b) = opened_raw();
        let r = talk(&mut s, "\x00\x7f\x01", &mut b);
        assert_eq!(r, Err(Close::from(ScdError::Line(LineError::Garbage(0)))));
        let (mut s, mut b) = opened_raw();
        let long = format!("< send {}", " ".repeat(300));
        let r = talk(&mut s, &long, &mut b);
        assert_eq!(r, Err(Close::from(ScdError::Line(LineError::TooLong))));
    }

    #[test]
    fn commands_split_across_reads_are_carried_out_once_whole() {
        let (mut s, mut b) = opened_raw();
        assert_eq!(talk(&mut s, "< send 12", &mut b).unwrap(), "");
        assert!(b.sent.is_empty());
        assert_eq!(
            talk(&mut s, "3 1 55 >< echo >", &mut b).unwrap(),
            "< echo >"
        );
        assert_eq!(b.sent, [frame(0x123, &[0x55]).to_vec()]);
    }

    #[test]
    fn add_update_and_delete_drive_the_kernels_cyclic_sends() {
        let (mut s, mut b) = opened_raw();
        let mut jobs = Jobs::default();
        let out = talk_jobs(&mut s, "< add 0 20000 123 2 42 43 >", &mut b, &mut jobs).unwrap();
        assert_eq!(out, "", "socketcand answers nothing to a job set up");
        talk_jobs(&mut s, "< update 123 1 11 >", &mut b, &mut jobs).unwrap();
        assert_eq!(
            jobs.setups,
            [
                (
                    frame(0x123, &[0x42, 0x43]).to_vec(),
                    Some(Duration::from_millis(20))
                ),
                (frame(0x123, &[0x11]).to_vec(), None)
            ]
        );
        assert_eq!(
            talk_jobs(&mut s, "< delete 123 >", &mut b, &mut jobs).unwrap(),
            ""
        );
        assert_eq!(jobs.deleted, [0x123]);
        let out = talk_jobs(&mut s, "< delete 456 >", &mut b, &mut jobs).unwrap();
        assert_eq!(out, "< error no such cyclic send >");
        let out = talk_jobs(
            &mut s,
            "< add 1 0 123 9 1 2 3 4 5 6 7 8 9 >",
            &mut b,
            &mut jobs,
        )
        .unwrap();
        assert_eq!(out, "< error DLC above 8 >");
        assert!(
            b.sent.is_empty(),
            "cyclic sends are the kernel's, not the raw socket's"
        );
    }

    #[test]
    fn control_mode_sends_statistics_at_the_interval_asked_until_zero() {
        let (mut s, mut b) = opened_raw();
        assert_eq!(
            talk(&mut s, "< statistics 1000 >", &mut b).unwrap(),
            "< error statistics only in control mode >"
        );
        assert_eq!(talk(&mut s, "< controlmode >", &mut b).unwrap(), "< ok >");
        assert_eq!(s.mode(), Mode::Control);
        let t0 = Instant::now();
        feed(&mut s, "< statistics 1000 >");
        s.process(t0, &mut b, &mut Jobs::default()).unwrap();
        assert_eq!(s.next_deadline(), Some(t0));
        assert!(s.stats_due(t0), "the first line at once");
        s.queue_stats([1, 2, 3, 4]);
        assert_eq!(take(&mut s), "< stat 1 2 3 4 >");
        assert!(!s.stats_due(t0 + Duration::from_millis(999)));
        assert!(s.stats_due(t0 + Duration::from_millis(1000)));
        assert!(s.queue_frame(&frame(1, &[]), Stamp::default()));
        assert_eq!(take(&mut s), "", "no frames forwarded in control mode");
        let out = talk(&mut s, "< send 123 0 >", &mut b).unwrap();
        assert_eq!(out, "< error not in control mode >");
        talk(&mut s, "< statistics 0 >", &mut b).unwrap();
        assert_eq!(s.next_deadline(), None);
    }

    /// A session with `cfg`, opened, in BCM mode, greeting taken.
    fn opened_bcm(cfg: ScdConfig) -> (ScdSession, Bus, Jobs) {
        let mut s = ScdSession::new(
            "192.0.2.1:5000".parse::<std::net::SocketAddr>().unwrap(),
            cfg,
        );
        let mut b = bus();
        let mut jobs = Jobs::default();
        talk_jobs(&mut s, "< open vcan0 >", &mut b, &mut jobs).unwrap();
        take(&mut s);
        (s, b, jobs)
    }

    #[test]
    fn subscribe_asks_the_bcm_for_every_frame_of_the_id_and_says_nothing() {
        let (mut s, mut b, mut jobs) = opened_bcm(cfg());
        let out = talk_jobs(&mut s, "< subscribe 0 0 123 >", &mut b, &mut jobs).unwrap();
        assert_eq!(out, "", "socketcand answers nothing to a subscription");
        talk_jobs(&mut s, "< subscribe 1 500000 1AAAAAAA >", &mut b, &mut jobs).unwrap();
        let ext = 0x1AAA_AAAA | libc::CAN_EFF_FLAG;
        assert_eq!(
            jobs.rx,
            [
                (0x123, Duration::ZERO, None),
                (ext, Duration::from_millis(1500), None)
            ]
        );
        assert!(s.wants_bcm());
    }

    #[test]
    fn filter_hands_the_bcm_its_mask_and_throttle() {
        let (mut s, mut b, mut jobs) = opened_bcm(cfg());
        let out = talk_jobs(&mut s, "< filter 0 100000 123 2 FF 0F >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "");
        let mask = frame(0x123, &[0xFF, 0x0F]).to_vec();
        assert_eq!(jobs.rx, [(0x123, Duration::from_millis(100), Some(mask))]);
        let out = talk_jobs(&mut s, "< filter 0 0 123 2 FF >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "< error data bytes differ from DLC >");
        let out = talk_jobs(&mut s, "< subscribe 0 0 800 >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "< error standard ID above 7FF >");
        assert_eq!(jobs.rx.len(), 1, "a bad filter reaches no kernel");
        assert_eq!(s.io.counters.drop_invalid, 0, "no frame was dropped");
    }

    #[test]
    fn subscribed_frames_become_lines_with_the_kernels_stamp() {
        let (mut s, mut b, mut jobs) = opened_bcm(cfg());
        talk_jobs(&mut s, "< subscribe 0 0 123 >", &mut b, &mut jobs).unwrap();
        let t = Stamp::kernel(7, 8);
        assert!(s.queue_subscribed(&frame(0x123, &[0xAB, 0xCD]), t));
        assert_eq!(take(&mut s), "< frame 123 7.000008 ABCD >");
        assert_eq!(s.io.counters.to_tcp, 1);
    }

    #[test]
    fn unsubscribe_ends_the_job_and_an_unknown_id_is_an_error() {
        let (mut s, mut b, mut jobs) = opened_bcm(cfg());
        talk_jobs(&mut s, "< subscribe 0 0 123 >", &mut b, &mut jobs).unwrap();
        let out = talk_jobs(&mut s, "< unsubscribe 123 >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "");
        assert_eq!(jobs.rx_deleted, [0x123]);
        assert!(!s.wants_bcm());
        let out = talk_jobs(&mut s, "< unsubscribe 123 >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "< error no such subscription >");
        assert_eq!(jobs.rx_deleted, [0x123], "nothing asked of the kernel");
    }

    #[test]
    fn subscriptions_beyond_the_limit_are_refused_and_the_connection_stays() {
        let (mut s, mut b, mut jobs) = opened_bcm(cfg());
        for id in 0..SCD_MAX_SUBSCRIPTIONS {
            let line = format!("< subscribe 0 0 {id:03X} >");
            assert_eq!(talk_jobs(&mut s, &line, &mut b, &mut jobs).unwrap(), "");
        }
        let out = talk_jobs(&mut s, "< subscribe 0 0 7FF >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "< error too many subscriptions >");
        let out = talk_jobs(&mut s, "< filter 1 0 000 1 FF >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "", "a held ID may be set up again");
        assert_eq!(jobs.rx.len(), SCD_MAX_SUBSCRIPTIONS + 1);
        talk_jobs(&mut s, "< unsubscribe 005 >", &mut b, &mut jobs).unwrap();
        let out = talk_jobs(&mut s, "< subscribe 0 0 7FF >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "", "a freed place is taken again");
    }

    #[test]
    fn a_subscription_cannot_reach_an_id_the_filter_hides() {
        let mut list = heapless::Vec::new();
        let only = libc::can_filter {
            can_id: 0x100,
            can_mask: 0x700,
        };
        list.push(only).unwrap();
        let (mut s, mut b, mut jobs) = opened_bcm(ScdConfig {
            filters: Filters::List(list),
            ..cfg()
        });
        let out = talk_jobs(&mut s, "< subscribe 0 0 200 >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "< error ID hidden by --filter >");
        let out = talk_jobs(&mut s, "< filter 0 0 1AB 1 FF >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "");
        assert_eq!(jobs.rx.len(), 1);
    }

    #[test]
    fn read_only_allows_subscriptions_they_only_read() {
        let (mut s, mut b, mut jobs) = opened_bcm(ScdConfig {
            read_only: true,
            ..cfg()
        });
        let out = talk_jobs(&mut s, "< subscribe 0 0 123 >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "");
        assert_eq!(jobs.rx.len(), 1);
    }

    #[test]
    fn subscriptions_belong_to_bcm_mode_and_end_when_it_is_left() {
        let (mut s, mut b, mut jobs) = opened_bcm(cfg());
        talk_jobs(
            &mut s,
            "< subscribe 0 0 123 >< filter 0 0 456 0 >",
            &mut b,
            &mut jobs,
        )
        .unwrap();
        assert_eq!(
            talk_jobs(&mut s, "< rawmode >", &mut b, &mut jobs).unwrap(),
            "< ok >"
        );
        assert_eq!(jobs.ended, 1, "every job ended at once");
        assert!(jobs.rx.is_empty());
        assert!(!s.wants_bcm());
        let late = frame(0x123, &[1]);
        assert!(s.queue_subscribed(&late, Stamp::default()));
        assert_eq!(
            take(&mut s),
            "",
            "a frame queued before the switch is dropped"
        );
        let out = talk_jobs(&mut s, "< subscribe 0 0 123 >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "< error subscriptions only in BCM mode >");
        talk_jobs(&mut s, "< bcmmode >", &mut b, &mut jobs).unwrap();
        talk_jobs(&mut s, "< subscribe 0 0 123 >", &mut b, &mut jobs).unwrap();
        talk_jobs(&mut s, "< controlmode >", &mut b, &mut jobs).unwrap();
        assert_eq!(jobs.ended, 3, "into BCM mode, and out of it");
        assert!(jobs.rx.is_empty());
    }

    #[test]
    fn a_change_of_mode_ends_the_cyclic_sends_and_the_same_mode_keeps_them() {
        let (mut s, mut b, mut jobs) = opened_bcm(cfg());
        talk_jobs(&mut s, "< add 0 20000 123 1 11 >", &mut b, &mut jobs).unwrap();
        let out = talk_jobs(&mut s, "< bcmmode >", &mut b, &mut jobs).unwrap();
        assert_eq!(out, "< ok >");
        assert_eq!(jobs.ended, 0, "no change of mode, no job ended");
        assert_eq!(jobs.setups.len(), 1);
        for (mode, ended) in [("rawmode", 1), ("rawmode", 1), ("controlmode", 2)] {
            let out = talk_jobs(&mut s, &format!("< {mode} >"), &mut b, &mut jobs);
            assert_eq!(out.unwrap(), "< ok >");
            assert_eq!(jobs.ended, ended, "after < {mode} >");
            assert!(jobs.setups.is_empty(), "the cyclic send outlived its mode");
        }
    }

    #[test]
    fn a_field_too_many_or_a_refusal_is_answered_and_the_connection_stays() {
        let (mut s, mut b, mut jobs) = opened_bcm(cfg());
        let out = talk_jobs(&mut s, "< subscribe 0 0 123 4 >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "< error too many fields >");
        jobs.refuse_rx = true;
        let out = talk_jobs(&mut s, "< subscribe 0 0 123 >", &mut b, &mut jobs);
        assert_eq!(out.unwrap(), "< error subscription refused >");
        assert!(!s.wants_bcm(), "a refused job is not held");
        assert_eq!(
            talk_jobs(&mut s, "< echo >", &mut b, &mut jobs).unwrap(),
            "< echo >"
        );
    }

    #[test]
    fn read_only_counts_and_drops_sends() {
        let mut s = ScdSession::new(
            "192.0.2.1:5000".parse::<std::net::SocketAddr>().unwrap(),
            ScdConfig {
                read_only: true,
                ..cfg()
            },
        );
        let mut b = bus();
        talk(&mut s, "< open vcan0 >< send 123 0 >", &mut b).unwrap();
        assert!(b.sent.is_empty());
        assert_eq!(s.io.counters.drop_read_only, 1);
    }

    #[test]
    fn a_busy_bus_parks_the_frame_then_sheds_it_after_the_timeout() {
        let (mut s, mut b) = opened_raw();
        b.answer = CanTx::Busy;
        feed(&mut s, "< send 123 0 >< echo >");
        let t0 = Instant::now();
        let r = s.process(t0, &mut b, &mut Jobs::default()).unwrap();
        assert_eq!(r, Progress::Parked);
        assert_eq!(s.parked(), Some(Wake::At(t0 + BUSY_RETRY)));
        assert_eq!(s.on_timer(t0 + BUSY_RETRY), Timer::RetryParked);
        assert!(!s.wants_tcp_read(), "no more input while parked");
        assert_eq!(take(&mut s), "", "later commands wait their turn");
        let r = s.process(
            t0 + Duration::from_millis(100),
            &mut b,
            &mut Jobs::default(),
        );
        assert_eq!(r.unwrap(), Progress::Drained);
        assert_eq!(s.io.counters.drop_stale, 1);
        assert_eq!(take(&mut s), "< echo >");
    }

    #[test]
    fn frames_from_the_bus_are_lines_in_raw_mode_only() {
        let mut s = session();
        let mut b = bus();
        take(&mut s);
        talk(&mut s, "< open vcan0 >", &mut b).unwrap();
        let t = Stamp::kernel(5, 6);
        assert!(s.queue_frame(&frame(0x10, &[1]), t));
        assert_eq!(take(&mut s), "", "BCM mode forwards nothing unasked");
        talk(&mut s, "< rawmode >", &mut b).unwrap();
        assert!(s.queue_frame(&frame(0x10, &[1]), t));
        assert_eq!(take(&mut s), "< frame 010 5.000006 01 >");
        assert_eq!(s.io.counters.to_tcp, 1);
    }

    #[test]
    fn fd_frames_are_counted_not_sent() {
        let (mut s, _) = opened_raw();
        let fd = [0u8; libc::CANFD_MTU];
        assert!(s.queue_frame(&fd, Stamp::default()));
        assert!(s.queue_frame(&fd, Stamp::default()));
        assert_eq!((s.fd_not_sent, s.io.counters.to_tcp), (2, 0));
        assert_eq!(take(&mut s), "");
    }

    #[test]
    fn a_full_output_stops_frames_and_input() {
        let (mut s, _) = opened_raw();
        let f = frame(0x1FFF_FFFF | libc::CAN_EFF_FLAG, &[0xFF; 8]);
        while s.tx_has_room() {
            assert!(s.queue_frame(&f, Stamp::default()));
        }
        assert_eq!(s.tx_room_frames(), 0);
        let n = s.tx_pending().len();
        s.tx_sent(n);
        assert!(s.tx_has_room() && s.wants_tcp_read());
    }
}
