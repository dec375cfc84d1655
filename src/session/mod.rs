//! What does one tunnel connection do with the bytes and frames it is
//! given? A state machine with no I/O: negotiation, the two fixed buffers,
//! back-pressure towards the bus and the counters.
//!
//! The event loop reads TCP into [`Session::rx_spare`], calls
//! [`Session::process`] with the CAN socket as a [`CanSink`], queues frames
//! read from CAN with [`Session::queue_frame`] and writes out
//! [`Session::tx_pending`]. Time comes in as a parameter so tests drive it.
//!
//! Into a virtual interface, a backlog is released at the pace of a
//! [`Pacer`]; a frame waiting for its turn parks the session like one
//! waiting for a busy bus, but it is never stale, and TCP is still read,
//! into a bounded [`Reservoir`]: pushed back, the far end would drop.

use std::fmt;
use std::time::{Duration, Instant};

use crate::buf::Reservoir;
use crate::close::Close;
use crate::counters::{DropReason, RateLimit};
use crate::device::{CanSink, CanTx};
use crate::framelog::LogLines;
use crate::limits::{CAN_BATCH, ENOBUFS_RETRY, REPLAY_RESERVOIR, RX_BUF, TCP_SNDBUF_V2, TX_BUF};
use crate::negotiation::{Negotiation, Step};
use crate::notices::{wall_us, Notices};
use crate::pace::{Event, Pacer, Pacing, Replay, StreamSizes, Tally};
use crate::peer::Peer;
use crate::protocol::{stream_access, Bus, Protocol, Stream};
pub use crate::protocol::{Progress, Timer, Wake};
use crate::time::{earliest, Clock, Stamp};
use crate::wire::{self, v2, Decoded, FrameError, FrameText, Message, HEADER_LEN};

mod inbound;
mod outbound;

use inbound::{Head, Verdict};

/// Which side of the TCP connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We connected and propose the version.
    Client,
    /// We accepted and wait for the client's proposal.
    Server,
}

/// Behaviour switches of a session, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Nothing from TCP is written to the bus.
    pub read_only: bool,
    /// `--error-frames`: error frames from TCP go to a *virtual* interface.
    pub error_frames: bool,
    /// How long a frame may wait for a bus that reports ENOBUFS.
    pub tx_timeout: Duration,
    /// How long a connection may take to agree on a version.
    pub handshake_timeout: Duration,
    /// How a backlog is replayed into a virtual interface.
    pub pacing: Pacing,
    /// The highest protocol version to speak (`--protocol`; a client
    /// lowers it for a server that closed on version 2).
    pub protocol: u32,
}

/// State of one tunnel connection.
pub struct Session {
    peer: Peer,
    cfg: SessionConfig,
    negotiation: Negotiation,
    io: Stream<RX_BUF, TX_BUF>,
    handshake_deadline: Instant,
    parked: Option<Wake>,
    warn: RateLimit,
    /// Paces a backlog into a virtual interface. It is told of every TCP
    /// read with the kernel's receive stamp when there is one: that times
    /// live traffic without a clock read, a system call where the vDSO has
    /// no clock (UML, the Pi Zero).
    pacer: Pacer,
    /// While a replay runs, and until what it took has drained: what TCP
    /// brings, read on while frames wait their turn, so the far end's
    /// buffers empty as fast as with `--replay-rate 0`.
    reservoir: Option<Reservoir>,
    /// Version 2 agreed: frames carry their receive time, losses notices.
    v2: bool,
    /// How the agreed version's frame messages are found.
    frames: wire::FrameMessages,
    /// What this side owes its peer and what the peer said (version 2).
    notices: Notices,
    /// `--log`: lines for every frame carried.
    log: Option<Box<LogLines>>,
    /// Version 2 was agreed and the TCP send buffer not yet grown for it.
    grow_send_buffer: bool,
}

impl Session {
    /// A new session; a client's first version proposal is queued at once.
    pub fn new(peer: impl Into<Peer>, role: Role, cfg: SessionConfig, now: Instant) -> Self {
        let peer = peer.into();
        let mut s = Session {
            peer,
            cfg,
            negotiation: Negotiation::new(cfg.protocol),
            io: Stream::new(),
            handshake_deadline: now + cfg.handshake_timeout,
            parked: None,
            warn: RateLimit::default(),
            pacer: Pacer::new(cfg.pacing, now),
            reservoir: None,
            v2: false,
            frames: wire::V1_FRAMES,
            notices: Notices::default(),
            log: None,
            grow_send_buffer: false,
        };
        if role == Role::Client {
            let v = s.negotiation.propose();
            log::debug!("{peer}: proposing protocol version {v}");
            s.io.tx.push(&wire::encode_version(v));
        }
        s
    }

    /// True once a protocol version is agreed.
    pub fn is_agreed(&self) -> bool {
        self.negotiation.agreed().is_some()
    }

    /// The agreed protocol version, once there is one.
    pub fn agreed_version(&self) -> Option<u32> {
        self.negotiation.agreed()
    }

    /// The version this side proposed and the peer never agreed to: a
    /// connection closed in this state was refused on it.
    pub fn unanswered_proposal(&self) -> Option<u32> {
        self.negotiation.proposed().filter(|_| !self.is_agreed())
    }

    /// Writes a `--log` line for every frame from now on.
    pub fn log_to(&mut self, lines: LogLines) {
        self.log = Some(Box::new(lines));
    }

    /// The `--log` lines waiting for the writer, with `--log`.
    pub fn log_lines(&mut self) -> Option<&mut LogLines> {
        self.log.as_deref_mut()
    }

    /// The bus changed state at `at_us` (µs since the epoch): a version 2
    /// peer is told, before the next frame if the output is full now.
    pub fn bus_state(&mut self, state: v2::State, at_us: u64) {
        self.notices.state_changed(state, at_us);
        if self.v2 {
            self.notices
                .flush(&mut self.io.tx, &self.io.counters, false);
        }
    }

    /// Handles every complete message buffered from TCP.
    pub fn process(&mut self, clock: impl Clock, can: &mut dyn CanSink) -> Result<Progress, Close> {
        let progress = self.carry_out(&clock, can);
        if self.v2 && self.notices.owed(&self.io.counters) {
            // Write failures of this read, told at once.
            self.notices
                .flush(&mut self.io.tx, &self.io.counters, false);
        }
        progress
    }

    fn carry_out(&mut self, clock: &impl Clock, can: &mut dyn CanSink) -> Result<Progress, Close> {
        let was_parked = self.parked.take();
        let is_virtual = can.is_virtual();
        if let Some(event) = self.pacer.time_read(clock, is_virtual) {
            self.log_pace(event);
        }
        if self.pacer.is_replaying() && self.reservoir.is_none() {
            self.reservoir = Some(Reservoir::new(REPLAY_RESERVOIR));
        }
        self.pour();
        let mut head = self.head(0, is_virtual)?;
        loop {
            head = match head {
                Head::Partial if self.pour() == 0 => return Ok(Progress::Drained),
                Head::Partial => self.head(0, is_virtual)?,
                Head::Version(v, used) => {
                    self.on_version(v)?;
                    self.io.rx.consume(used);
                    self.head(0, is_virtual)?
                }
                Head::Notice(msg, used) => {
                    self.notices.heard(self.peer, &msg);
                    self.io.rx.consume(used);
                    self.head(0, is_virtual)?
                }
                Head::Frame(..) if !self.is_agreed() => return Err(Close::DataBeforeAgreement),
                // Drops keep their place in the stream: a frame is dropped
                // only at the head, and a run ends before it.
                Head::Frame(Verdict::Drop(why, detail), used, len) => {
                    self.drop_frame(clock, why, len, detail);
                    self.io.rx.consume(used);
                    self.head(0, is_virtual)?
                }
                Head::Frame(Verdict::Send, used, len) => {
                    match self.deliver(clock, (used, len), can, was_parked)? {
                        Some(next) => next,
                        None => return Ok(Progress::Parked),
                    }
                }
            };
        }
    }

    /// Moves what waits in the reservoir into the input buffer, as much as
    /// fits; frees the reservoir once the replay ended and it is empty.
    /// Returns the bytes moved.
    fn pour(&mut self) -> usize {
        let Some(r) = self.reservoir.as_mut() else {
            return 0;
        };
        let n = r.pour(&mut self.io.rx);
        if r.is_empty() && !self.pacer.is_replaying() {
            self.reservoir = None;
        }
        n
    }

    /// Logs what the pacer says a read changed.
    fn log_pace(&self, event: Event) {
        let peer = self.peer;
        match event {
            Event::Started(s) => log::info!(
                "{peer}: backlog: data waited {} ms in the kernel ({} ms without a read): replaying it at most {} frames/s, so readers with default queues keep up",
                s.waited.as_millis(),
                s.silence.as_millis(),
                s.rate
            ),
            Event::Overtaken(o) => log::warn!(
                "{peer}: replay ended by live traffic: new frames kept arriving at least as fast as it released them ({} frames/s arriving), so they are written as they come: {}",
                o.arriving,
                o.replay
            ),
            Event::Done(done) => log::info!("{peer}: replay done: {done}"),
        }
    }
    fn on_version(&mut self, v: u32) -> Result<(), Close> {
        let peer = self.peer;
        match self.negotiation.on_version(v)? {
            Step::Propose(mine) => {
                log::info!("{peer}: peer proposed version {v}; proposing {mine}");
                self.io.tx.push(&wire::encode_version(mine));
            }
            Step::AgreedReply(agreed) => {
                self.io.tx.push(&wire::encode_version(agreed));
                self.agreed(agreed);
            }
            Step::Agreed(agreed) => self.agreed(agreed),
            Step::Repeat => log::debug!("{peer}: ignoring repeated version {v}"),
        }
        Ok(())
    }

    fn agreed(&mut self, version: u32) {
        log::info!("{}: agreed protocol version {version}", self.peer);
        self.v2 = version >= 2;
        self.frames = if self.v2 {
            wire::V2_FRAMES
        } else {
            wire::V1_FRAMES
        };
        // The backlog a stall leaves is counted in bytes of these messages.
        self.pacer.sized_for(if self.v2 {
            StreamSizes::V2
        } else {
            StreamSizes::V1
        });
        self.grow_send_buffer = self.v2;
        // Losses before agreement reached nobody: counted from here.
        self.notices.agreed(&self.io.counters);
    }
}

impl Protocol for Session {
    fn process_input(&mut self, clock: impl Clock, bus: Bus<'_>) -> Result<Progress, Close> {
        self.process(clock, bus.can)
    }

    type Tcp = Stream<RX_BUF, TX_BUF>;
    const FRAME_ROOM: usize = wire::MAX_DATA_MESSAGE;
    const STAMPED_READS: bool = true;
    // Version 2 carries every frame's receive time; whether it is agreed is
    // known only after the socket is set up.
    const FRAME_STAMPS: bool = true;
    stream_access!(io);

    fn fmt_counters(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.io.counters, f)?;
        if self.v2 {
            write!(f, "; peer reports {}", self.notices.peer_totals())?;
        }
        if let Some(log) = &self.log {
            write!(f, "; --log lines dropped={}", log.dropped())?;
        }
        Ok(())
    }

    /// Version 2's frame messages are larger, and a loss notice may have to
    /// go before the next: room for both.
    fn tx_has_room(&self) -> bool {
        self.io.tx.free() >= self.frame_room()
    }

    fn tx_room_frames(&self) -> usize {
        self.io.tx.free() / self.frame_room()
    }

    /// The peer's address, for log lines.
    fn peer(&self) -> Peer {
        self.peer
    }

    /// Free space for the next TCP read: the reservoir's while a replay
    /// runs or what it took waits, else the input buffer's (none while
    /// parked).
    fn rx_spare(&mut self) -> &mut [u8] {
        if let Some(r) = self.reservoir.as_mut() {
            let spare = r.spare(RX_BUF);
            self.pacer.note_offer(spare.len());
            return spare;
        }
        if self.parked.is_some() {
            return &mut [];
        }
        let spare = self.io.rx.spare();
        self.pacer.note_offer(spare.len());
        spare
    }

    /// Records `n` bytes read into [`rx_spare`](Self::rx_spare).
    fn rx_filled(&mut self, n: usize) {
        // Timed by the next process(): the same loop turn, one clock read.
        self.pacer.note_read(n);
        match self.reservoir.as_mut() {
            Some(r) => {
                r.fill(n);
                self.io.counters.bytes_in += n as u64;
            }
            None => self.io.filled(n),
        }
    }

    /// The bytes of the last [`rx_filled`](Self::rx_filled) arrived at
    /// `at` (the kernel's receive stamp, on the loop's clock).
    fn rx_arrived(&mut self, at: Instant) {
        self.pacer.note_arrival(at);
    }

    /// True when the session wants more TCP input.
    fn wants_tcp_read(&self) -> bool {
        match &self.reservoir {
            Some(r) => !r.is_full(),
            None => self.parked.is_none() && self.io.rx.free() > 0,
        }
    }

    /// How a parked session wants to be woken, if it is parked.
    fn parked(&self) -> Option<Wake> {
        self.parked
    }

    /// The replay in progress, if any (for SIGUSR1).
    fn replay(&self) -> Option<Replay> {
        self.pacer.progress()
    }

    /// Replays so far, and how many live traffic ended (for SIGUSR1).
    fn replays(&self) -> Option<Tally> {
        Some(self.pacer.tally())
    }

    fn take_send_buffer(&mut self) -> Option<usize> {
        core::mem::take(&mut self.grow_send_buffer).then_some(TCP_SNDBUF_V2)
    }

    /// Queues a frame read from CAN (host layout) for the TCP peer; the
    /// caller's copy is left as it was. Frames read before agreement are
    /// dropped, as the reference does. Returns false if the buffer is full
    /// (the caller checks [`tx_has_room`](Self::tx_has_room) first).
    fn queue_frame(&mut self, frame: &[u8], stamp: Stamp) -> bool {
        if !self.is_agreed() {
            return true;
        }
        if self.v2 {
            return self.queue_stamped(frame, stamp);
        }
        let Some(msg) = self.io.tx.append(HEADER_LEN + frame.len()) else {
            return false;
        };
        msg[..HEADER_LEN].copy_from_slice(&wire::data_header(frame.len()));
        msg[HEADER_LEN..].copy_from_slice(frame);
        self.queued(frame.len(), 0, stamp);
        true
    }

    /// The earliest time at which [`on_timer`](Self::on_timer) has work.
    #[inline]
    fn next_deadline(&self) -> Option<Instant> {
        let handshake = (!self.is_agreed()).then_some(self.handshake_deadline);
        let retry = match self.parked {
            Some(Wake::At(t)) => Some(t),
            // A frame waiting on POLLOUT must still be shed after the timeout.
            Some(Wake::CanWritable) => self.io.stale_at(self.cfg.tx_timeout),
            // A replay's end is logged once it has caught up.
            None => self.pacer.deadline(),
        };
        earliest(handshake, retry)
    }

    /// What is due at `now`: the handshake deadline, another try for a
    /// parked frame, or the end of a replay.
    fn on_timer(&mut self, now: Instant) -> Timer {
        if !self.is_agreed() && now >= self.handshake_deadline {
            return Timer::Close(Close::HandshakeTimeout(self.cfg.handshake_timeout));
        }
        match self.next_deadline() {
            Some(t) if now >= t && self.parked.is_some() => Timer::RetryParked,
            Some(t) if now >= t && self.pacer.is_replaying() => Timer::ReplayDue,
            _ => Timer::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Counted;
    use crate::wire::{CANFD_MTU, CAN_ERR_FLAG, CAN_MTU};

    /// A bus that records frames and answers from a script.
    #[derive(Default)]
    struct FakeBus {
        sent: std::vec::Vec<std::vec::Vec<u8>>,
        script: std::collections::VecDeque<CanTx>,
        /// A vcan: no flow control, so a backlog is paced.
        is_vcan: bool,
    }

    impl FakeBus {
        /// A virtual bus that takes every frame.
        fn vcan() -> FakeBus {
            FakeBus {
                is_vcan: true,
                ..FakeBus::default()
            }
        }
    }

    impl CanSink for FakeBus {
        fn send(&mut self, frame: &[u8]) -> CanTx {
            let r = self.script.pop_front().unwrap_or(CanTx::Sent);
            if r == CanTx::Sent {
                self.sent.push(frame.to_vec());
            }
            r
        }

        fn is_virtual(&self) -> bool {
            self.is_vcan
        }
    }

    fn cfg() -> SessionConfig {
        SessionConfig {
            read_only: false,
            error_frames: false,
            tx_timeout: Duration::from_millis(100),
            handshake_timeout: Duration::from_secs(10),
            pacing: Pacing::Learned,
            protocol: 1,
        }
    }

    fn peer() -> std::net::SocketAddr {
        "192.0.2.1:5000".parse().unwrap()
    }

    fn classic(id: u32, len: u8) -> std::vec::Vec<u8> {
        let mut f = vec![0u8; CAN_MTU];
        f[0..4].copy_from_slice(&id.to_le_bytes());
        f[4] = len;
        for i in 0..usize::from(len.min(8)) {
            f[8 + i] = i as u8 + 1;
        }
        f
    }

    fn data_msg(frame: &[u8]) -> std::vec::Vec<u8> {
        let mut m = vec![b'd', frame.len() as u8];
        m.extend_from_slice(frame);
        m
    }

    fn feed(s: &mut Session, bytes: &[u8]) {
        let spare = s.rx_spare();
        spare[..bytes.len()].copy_from_slice(bytes);
        s.rx_filled(bytes.len());
    }

    fn agreed_server(t: Instant) -> Session {
        let mut s = Session::new(peer(), Role::Server, cfg(), t);
        feed(&mut s, &wire::encode_version(1));
        s.process(t, &mut FakeBus::default()).unwrap();
        let ack = s.tx_pending().to_vec();
        s.tx_sent(ack.len());
        assert_eq!(ack, wire::encode_version(1));
        s
    }

    #[test]
    fn server_is_silent_until_the_client_proposes() {
        let t = Instant::now();
        let s = Session::new(peer(), Role::Server, cfg(), t);
        assert!(s.tx_pending().is_empty());
        let c = Session::new(peer(), Role::Client, cfg(), t);
        assert_eq!(c.tx_pending(), wire::encode_version(1));
    }

    #[test]
    fn data_before_agreement_closes() {
        let t = Instant::now();
        let mut s = Session::new(peer(), Role::Server, cfg(), t);
        feed(&mut s, &data_msg(&classic(1, 1)));
        assert_eq!(
            s.process(t, &mut FakeBus::default()),
            Err(Close::DataBeforeAgreement)
        );
    }

    #[test]
    fn handshake_times_out() {
        let t = Instant::now();
        let mut s = Session::new(peer(), Role::Server, cfg(), t);
        assert_eq!(s.next_deadline(), Some(t + Duration::from_secs(10)));
        assert_eq!(s.on_timer(t + Duration::from_secs(9)), Timer::Idle);
        assert!(matches!(
            s.on_timer(t + Duration::from_secs(10)),
            Timer::Close(Close::HandshakeTimeout(_))
        ));
    }

    #[test]
    fn frames_split_at_every_byte_arrive_whole() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        let mut stream = std::vec::Vec::new();
        let mut frames = std::vec::Vec::new();
        for len in 0..=8u8 {
            frames.push(classic(0x100 + u32::from(len), len));
        }
        let mut fd = vec![0u8; CANFD_MTU];
        fd[4] = 64;
        fd[70] = 0x5A;
        frames.push(fd);
        for f in &frames {
            stream.extend(data_msg(f));
        }
        let mut bus = FakeBus::default();
        for b in &stream {
            feed(&mut s, std::slice::from_ref(b));
            assert_eq!(s.process(t, &mut bus), Ok(Progress::Drained));
        }
        assert_eq!(bus.sent, frames);
        assert_eq!(s.io.counters.to_can, frames.len() as u64);
    }

    /// xorshift64*: a fixed-seed generator, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_frame(rng: &mut Rng) -> std::vec::Vec<u8> {
        const FD_LENS: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];
        let fd = rng.below(2) == 0;
        let mut f = vec![0u8; if fd { CANFD_MTU } else { CAN_MTU }];
        for b in f.iter_mut() {
            *b = rng.next() as u8;
        }
        let id = rng.next() as u32 & !CAN_ERR_FLAG;
        f[0..4].copy_from_slice(&id.to_le_bytes());
        f[4] = if fd {
            FD_LENS[rng.below(16)]
        } else {
            rng.below(9) as u8
        };
        f
    }

    /// Property: whatever random frames are encoded, and however the byte
    /// stream is cut into reads, the bus receives exactly those frames.
    #[test]
    fn random_streams_cut_at_random_points_decode_to_what_was_encoded() {
        let mut rng = Rng(0x7CA7_CA7C_A7CA_7CA7);
        for _case in 0..500 {
            let t = Instant::now();
            let mut s = Session::new(peer(), Role::Server, cfg(), t);
            let n = 1 + rng.below(60);
            let frames: std::vec::Vec<_> = (0..n).map(|_| random_frame(&mut rng)).collect();
            let mut stream = wire::encode_version(1).to_vec();
            for f in &frames {
                stream.extend(wire::data_header(f.len()));
                stream.extend(f);
            }
            let mut bus = FakeBus::default();
            let mut at = 0;
            while at < stream.len() {
                let cut = (at + 1 + rng.below(200)).min(stream.len());
                feed(&mut s, &stream[at..cut]);
                assert_eq!(s.process(t, &mut bus), Ok(Progress::Drained));
                at = cut;
            }
            assert_eq!(bus.sent, frames);
        }
    }

    /// Property, CAN to TCP and back: what one session encodes from its bus,
    /// a peer session decodes onto its own bus unchanged.
    #[test]
    fn frames_queued_by_one_session_arrive_through_another() {
        let mut rng = Rng(0x0DDB_A11C_AB1E_5EED);
        for _case in 0..200 {
            let t = Instant::now();
            let mut from = agreed_server(t);
            let mut to = Session::new(peer(), Role::Client, cfg(), t);
            let proposal = to.tx_pending().len();
            to.tx_sent(proposal);
            feed(&mut to, &wire::encode_version(1));
            to.process(t, &mut FakeBus::default()).unwrap();
            let mut frames = std::vec::Vec::new();
            while from.tx_room_frames() > 0 && frames.len() < 80 {
                let f = random_frame(&mut rng);
                assert!(from.queue_frame(&f, Stamp::default()));
                frames.push(f);
            }
            let stream = from.tx_pending().to_vec();
            let mut bus = FakeBus::default();
            let mut at = 0;
            while at < stream.len() {
                let cut = (at + 1 + rng.below(300)).min(stream.len());
                feed(&mut to, &stream[at..cut]);
                assert_eq!(to.process(t, &mut bus), Ok(Progress::Drained));
                at = cut;
            }
            assert_eq!(bus.sent, frames);
        }
    }

    #[test]
    fn many_messages_in_one_read() {
        let t = Instant::now();
        let mut s = Session::new(peer(), Role::Server, cfg(), t);
        let mut stream = wire::encode_version(1).to_vec();
        for i in 0..50 {
            stream.extend(data_msg(&classic(i, 8)));
        }
        feed(&mut s, &stream);
        let mut bus = FakeBus::default();
        assert_eq!(s.process(t, &mut bus), Ok(Progress::Drained));
        assert_eq!(bus.sent.len(), 50);
    }

    #[test]
    fn bad_frames_are_dropped_and_counted_but_the_connection_stays() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        let mut bus = FakeBus::default();
        for len in (0..=255u8).filter(|&l| l != 16 && l != 72) {
            let mut m = vec![b'd', len];
            m.extend(std::iter::repeat(0).take(usize::from(len)));
            feed(&mut s, &m);
            assert_eq!(s.process(t, &mut bus), Ok(Progress::Drained));
        }
        feed(&mut s, &data_msg(&classic(1, 9)));
        feed(&mut s, &data_msg(&classic(CAN_ERR_FLAG | 4, 8)));
        let mut fd = vec![0u8; CANFD_MTU];
        fd[4] = 65;
        feed(&mut s, &data_msg(&fd));
        assert_eq!(s.process(t, &mut bus), Ok(Progress::Drained));
        assert!(bus.sent.is_empty());
        assert_eq!(s.io.counters.drop_invalid, 254 + 2);
        assert_eq!(s.io.counters.drop_error_frame, 1);
        // Still usable.
        feed(&mut s, &data_msg(&classic(7, 2)));
        s.process(t, &mut bus).unwrap();
        assert_eq!(bus.sent.len(), 1);
    }

    /// A virtual interface, as vcan on a desk machine.
    #[derive(Default)]
    struct VirtualBus(FakeBus);

    impl CanSink for VirtualBus {
        fn send(&mut self, frame: &[u8]) -> CanTx {
            self.0.send(frame)
        }
        fn is_virtual(&self) -> bool {
            true
        }
    }

    #[test]
    fn error_frames_reach_only_a_virtual_bus_and_only_with_error_frames() {
        let t = Instant::now();
        let err = classic(CAN_ERR_FLAG | 0x40, 8);
        for (error_frames, is_virtual, delivered) in [
            (false, false, false),
            (false, true, false),
            (true, false, false),
            (true, true, true),
        ] {
            let c = SessionConfig {
                error_frames,
                ..cfg()
            };
            let mut s = Session::new(peer(), Role::Server, c, t);
            feed(&mut s, &wire::encode_version(1));
            feed(&mut s, &data_msg(&err));
            let mut real = FakeBus::default();
            let mut virt = VirtualBus::default();
            let sink: &mut dyn CanSink = if is_virtual { &mut virt } else { &mut real };
            s.process(t, sink).unwrap();
            let sent = real.sent.len() + virt.0.sent.len();
            assert_eq!(
                sent == 1,
                delivered,
                "error_frames={error_frames} virtual={is_virtual}"
            );
            assert_eq!(s.io.counters.drop_error_frame == 1, !delivered);
        }
    }

    /// A socket whose queue takes only three frames per wake-up, then
    /// answers ENOBUFS for the next, as a slow bus does.
    #[derive(Default)]
    struct StingyBus(FakeBus, usize);

    impl CanSink for StingyBus {
        fn send(&mut self, frame: &[u8]) -> CanTx {
            self.0.send(frame)
        }
        fn send_batch(&mut self, frames: &[&[u8]]) -> (usize, CanTx) {
            self.1 += 1;
            let take = frames.len().min(3);
            for f in &frames[..take] {
                self.0.send(f);
            }
            if take == frames.len() {
                (take, CanTx::Sent)
            } else {
                (take, CanTx::Busy)
            }
        }
    }

    #[test]
    fn runs_go_out_in_batches_in_order_even_when_cut_short() {
        let mut t = Instant::now();
        let mut s = agreed_server(t);
        let frames: std::vec::Vec<_> = (0..40).map(|i| classic(i, 8)).collect();
        for f in &frames {
            feed(&mut s, &data_msg(f));
        }
        let mut bus = StingyBus::default();
        let mut wakes = 0;
        while s.process(t, &mut bus) == Ok(Progress::Parked) {
            // Each cut parks the head frame; the queue drains meanwhile.
            wakes += 1;
            assert!(wakes < 40, "no progress");
            t += ENOBUFS_RETRY;
        }
        assert_eq!(bus.0.sent, frames);
        assert_eq!(s.io.counters.to_can, 40);
        assert_eq!(s.io.counters.drop_stale, 0);
        assert!(bus.1 >= 13, "sent in batches, not one by one");
    }

    /// A batch call that takes nothing and gives no reason (a broken sink).
    #[derive(Default)]
    struct MuteBatch(usize);

    impl CanSink for MuteBatch {
        fn send(&mut self, _frame: &[u8]) -> CanTx {
            CanTx::Busy
        }
        fn send_batch(&mut self, _frames: &[&[u8]]) -> (usize, CanTx) {
            self.0 += 1;
            (0, CanTx::Sent)
        }
    }

    #[test]
    fn a_batch_without_progress_or_reason_waits_instead_of_spinning() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        for i in 0..5 {
            feed(&mut s, &data_msg(&classic(i, 1)));
        }
        let mut bus = MuteBatch::default();
        assert_eq!(s.process(t, &mut bus), Ok(Progress::Parked));
        assert_eq!(bus.0, 1, "asked once, then parked");
        assert_eq!(s.parked(), Some(Wake::CanWritable));
    }

    #[test]
    fn a_frame_to_drop_keeps_its_place_between_frames_sent() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        let mut bus = FakeBus::default();
        feed(&mut s, &data_msg(&classic(1, 1)));
        feed(&mut s, &data_msg(&classic(2, 1)));
        feed(&mut s, &data_msg(&classic(3, 9)));
        feed(&mut s, &data_msg(&classic(4, 1)));
        bus.script
            .extend([CanTx::Sent, CanTx::Sent, CanTx::Refused]);
        assert_eq!(s.process(t, &mut bus), Ok(Progress::Drained));
        assert_eq!(bus.sent, vec![classic(1, 1), classic(2, 1)]);
        assert_eq!(
            (s.io.counters.drop_invalid, s.io.counters.drop_refused),
            (1, 1)
        );
        assert_eq!(s.io.counters.to_can, 2);
    }

    #[test]
    fn refused_and_down_frames_are_counted() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        let mut bus = FakeBus::default();
        bus.script.extend([CanTx::Refused, CanTx::Down]);
        feed(&mut s, &data_msg(&classic(1, 1)));
        feed(&mut s, &data_msg(&classic(2, 1)));
        s.process(t, &mut bus).unwrap();
        assert_eq!(
            (s.io.counters.drop_refused, s.io.counters.drop_bus_down),
            (1, 1)
        );
    }

    #[test]
    fn read_only_never_writes_to_the_bus() {
        let t = Instant::now();
        let mut s = Session::new(
            peer(),
            Role::Server,
            SessionConfig {
                read_only: true,
                ..cfg()
            },
            t,
        );
        feed(&mut s, &wire::encode_version(1));
        feed(&mut s, &data_msg(&classic(1, 1)));
        let mut bus = FakeBus::default();
        s.process(t, &mut bus).unwrap();
        assert!(bus.sent.is_empty());
        assert_eq!(s.io.counters.drop_read_only, 1);
    }

    #[test]
    fn busy_bus_parks_in_order_then_falls_back_to_a_timer() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        let mut bus = FakeBus::default();
        bus.script.extend([CanTx::Busy, CanTx::Busy]);
        feed(&mut s, &data_msg(&classic(1, 1)));
        feed(&mut s, &data_msg(&classic(2, 1)));
        assert_eq!(s.process(t, &mut bus), Ok(Progress::Parked));
        assert_eq!(s.parked(), Some(Wake::CanWritable));
        assert!(!s.wants_tcp_read());
        assert!(s.rx_spare().is_empty(), "no TCP reads while parked");
        // Woken by POLLOUT but the queue is still full: timer fallback.
        let t1 = t + Duration::from_millis(1);
        assert_eq!(s.process(t1, &mut bus), Ok(Progress::Parked));
        assert_eq!(s.parked(), Some(Wake::At(t1 + ENOBUFS_RETRY)));
        assert_eq!(s.on_timer(t1), Timer::Idle);
        assert_eq!(s.on_timer(t1 + ENOBUFS_RETRY), Timer::RetryParked);
        // The bus moves: both frames go, in order.
        assert_eq!(
            s.process(t1 + ENOBUFS_RETRY, &mut bus),
            Ok(Progress::Drained)
        );
        assert_eq!(bus.sent, vec![classic(1, 1), classic(2, 1)]);
        assert!(s.wants_tcp_read());
    }

    #[test]
    fn frames_are_shed_after_tx_timeout_until_the_bus_moves() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        let mut bus = FakeBus::default();
        bus.script.extend([CanTx::Busy, CanTx::Busy, CanTx::Busy]);
        feed(&mut s, &data_msg(&classic(1, 1)));
        feed(&mut s, &data_msg(&classic(2, 1)));
        feed(&mut s, &data_msg(&classic(3, 1)));
        assert_eq!(s.process(t, &mut bus), Ok(Progress::Parked));
        assert_eq!(s.next_deadline(), Some(t + Duration::from_millis(100)));
        let late = t + Duration::from_millis(100);
        // Frames 1 and 2 are stale and shed at once; frame 3 goes.
        assert_eq!(s.process(late, &mut bus), Ok(Progress::Drained));
        assert_eq!(s.io.counters.drop_stale, 2);
        assert_eq!(bus.sent, vec![classic(3, 1)]);
    }

    #[test]
    fn frames_from_can_wait_for_agreement_and_respect_capacity() {
        let t = Instant::now();
        let mut c = Session::new(peer(), Role::Client, cfg(), t);
        let proposal = c.tx_pending().len();
        c.tx_sent(proposal);
        let f = classic(0x7FF, 8);
        assert!(
            c.queue_frame(&f, Stamp::default()),
            "dropped silently before agreement"
        );
        assert!(c.tx_pending().is_empty());
        feed(&mut c, &wire::encode_version(1));
        c.process(t, &mut FakeBus::default()).unwrap();
        assert!(c.tx_pending().is_empty(), "never answer our own proposal");
        let mut queued = 0;
        while c.tx_has_room() {
            assert!(c.queue_frame(&f, Stamp::default()));
            queued += 1;
        }
        assert_eq!(
            queued,
            (TX_BUF - wire::MAX_DATA_MESSAGE) / (2 + CAN_MTU) + 1
        );
        assert_eq!(&c.tx_pending()[..2], b"d\x10");
        assert_eq!(&c.tx_pending()[2..18], &f[..]);
    }

    /// A stall's worth of frames: fills all the space the session offers
    /// (the last message cut short, as a read cuts it), after a silence;
    /// its data arrived as the session began and waited in the kernel.
    fn backlog(s: &mut Session, arrived: Instant) -> std::vec::Vec<std::vec::Vec<u8>> {
        let frames: std::vec::Vec<_> = (0..1000u32).map(|i| classic(i & 0x7FF, 8)).collect();
        let stream: std::vec::Vec<u8> = frames.iter().flat_map(|f| data_msg(f)).collect();
        let spare = s.rx_spare();
        let n = spare.len();
        spare.copy_from_slice(&stream[..n]);
        s.rx_filled(n);
        s.rx_arrived(arrived);
        let whole = n / (HEADER_LEN + CAN_MTU);
        frames[..whole].to_vec()
    }

    /// Runs the session's timers and deliveries until it wants TCP again.
    fn run_until_drained(s: &mut Session, t: &mut Instant, bus: &mut FakeBus) {
        while let Some(due) = s.parked().and(s.next_deadline()) {
            *t = due;
            assert_eq!(s.on_timer(*t), Timer::RetryParked);
            s.process(*t, bus).unwrap();
        }
    }

    #[test]
    fn a_backlog_into_a_virtual_bus_goes_out_in_small_paced_bursts() {
        let t0 = Instant::now();
        let mut s = agreed_server(t0);
        let mut vcan = FakeBus::vcan();
        let mut t = t0 + Duration::from_secs(1);
        let frames = backlog(&mut s, t0);
        assert_eq!(s.process(t, &mut vcan), Ok(Progress::Parked));
        assert_eq!(vcan.sent.len(), crate::limits::REPLAY_BURST as usize);
        // Waiting for its turn, the session still reads TCP, into its
        // reservoir: pushed back, a far end under a busy bus would drop.
        assert!(s.wants_tcp_read());
        assert_eq!(s.rx_spare().len(), crate::limits::REPLAY_RESERVOIR);
        assert_eq!(s.parked(), Some(Wake::At(t + crate::limits::PACE_TICK)));
        let replay = s.replay().expect("a replay in progress");
        assert_eq!(replay.frames, u64::from(crate::limits::REPLAY_BURST));
        run_until_drained(&mut s, &mut t, &mut vcan);
        assert_eq!(vcan.sent, frames, "every frame, in order");
        let took = t - (t0 + Duration::from_secs(1));
        let floor = u64::from(crate::limits::REPLAY_FLOOR);
        let at_floor = Duration::from_millis(1000 * (frames.len() as u64 - 32) / floor);
        assert!(took + Duration::from_millis(10) >= at_floor, "{took:?}");
    }

    #[test]
    fn a_replay_reads_on_and_what_it_read_follows_the_backlog_in_order() {
        let t0 = Instant::now();
        let mut s = agreed_server(t0);
        let mut vcan = FakeBus::vcan();
        let frames: std::vec::Vec<_> = (0..2000u32).map(|i| classic(i & 0x7FF, 8)).collect();
        let stream: std::vec::Vec<u8> = frames.iter().flat_map(|f| data_msg(f)).collect();
        // The stall's first read, then what followed it, read while the
        // replay holds frames back: both reads, whole, at once.
        let mut t = t0 + Duration::from_secs(1);
        let mut at = 0;
        for arrived in [t0, t] {
            let spare = s.rx_spare();
            let n = spare.len().min(stream.len() - at);
            spare[..n].copy_from_slice(&stream[at..at + n]);
            s.rx_filled(n);
            s.rx_arrived(arrived);
            at += n;
            assert_eq!(s.process(t, &mut vcan), Ok(Progress::Parked));
        }
        assert_eq!(at, stream.len(), "the second read took the rest");
        assert_eq!(s.io.counters.bytes_in, (stream.len() + 6) as u64);
        run_until_drained(&mut s, &mut t, &mut vcan);
        assert_eq!(vcan.sent, frames, "every frame, in order");
        // Caught up: the replay ends and the reservoir is freed.
        t += crate::limits::BACKLOG_SILENCE;
        assert_eq!(s.on_timer(t), Timer::ReplayDue);
        s.process(t, &mut vcan).unwrap();
        assert!(s.replay().is_none() && s.reservoir.is_none());
        assert_eq!(s.rx_spare().len(), RX_BUF);
    }

    #[test]
    fn a_burst_after_a_silence_into_a_virtual_bus_is_written_at_once() {
        // Issue 25: the same full read, but its data arrived as it is read.
        let t0 = Instant::now();
        let mut s = agreed_server(t0);
        let mut vcan = FakeBus::vcan();
        let t = t0 + Duration::from_millis(844);
        let frames = backlog(&mut s, t);
        assert_eq!(s.process(t, &mut vcan), Ok(Progress::Drained));
        assert_eq!(vcan.sent, frames);
        assert_eq!(s.replay(), None);
        assert_eq!(s.replays().unwrap().replays, 0);
    }

    #[test]
    fn a_frame_waiting_for_its_turn_is_not_stale() {
        // --tx-timeout (100 ms here) counts only a bus that refuses frames.
        let t0 = Instant::now();
        let mut s = agreed_server(t0);
        let mut vcan = FakeBus::vcan();
        let mut t = t0 + Duration::from_secs(1);
        let frames = backlog(&mut s, t0);
        s.process(t, &mut vcan).unwrap();
        run_until_drained(&mut s, &mut t, &mut vcan);
        assert!(t > t0 + Duration::from_secs(1) + s.cfg.tx_timeout * 4);
        assert_eq!(s.io.counters.drop_stale, 0);
        assert_eq!(s.io.counters.to_can, frames.len() as u64);
    }

    #[test]
    fn the_same_backlog_into_a_real_bus_is_not_paced() {
        let t0 = Instant::now();
        let mut s = agreed_server(t0);
        let mut can0 = FakeBus::default();
        let frames = backlog(&mut s, t0);
        let t = t0 + Duration::from_secs(1);
        assert_eq!(s.process(t, &mut can0), Ok(Progress::Drained));
        assert_eq!(can0.sent, frames);
        assert_eq!(s.replay(), None);
    }

    #[test]
    fn a_replay_ends_on_the_timer_once_caught_up() {
        let t0 = Instant::now();
        let mut s = agreed_server(t0);
        let mut vcan = FakeBus::vcan();
        let mut t = t0 + Duration::from_secs(1);
        backlog(&mut s, t0);
        s.process(t, &mut vcan).unwrap();
        run_until_drained(&mut s, &mut t, &mut vcan);
        let due = s.next_deadline().expect("the replay's end is due");
        assert_eq!(s.on_timer(due - Duration::from_millis(1)), Timer::Idle);
        assert_eq!(s.on_timer(due), Timer::ReplayDue);
        s.process(due, &mut vcan).unwrap();
        assert_eq!(s.replay(), None);
        assert_eq!(s.next_deadline(), None, "nothing left due: no busy loop");
    }

    #[test]
    fn live_reads_into_a_virtual_bus_timed_by_their_arrival_read_no_clock() {
        let t0 = Instant::now();
        let mut s = agreed_server(t0);
        let mut vcan = FakeBus::vcan();
        let reads = std::cell::Cell::new(0);
        for i in 0..10u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            feed(&mut s, &data_msg(&classic(0x100, 8)));
            s.rx_arrived(at);
            assert_eq!(
                s.process(Counted(at, &reads), &mut vcan),
                Ok(Progress::Drained)
            );
        }
        assert_eq!(vcan.sent.len(), 10);
        assert_eq!(reads.get(), 0, "no clock read for live traffic");
        // Without a stamp the read is timed by the clock, as before.
        feed(&mut s, &data_msg(&classic(0x100, 8)));
        s.process(Counted(t0, &reads), &mut vcan).unwrap();
        assert!(reads.get() > 0);
    }

    #[test]
    fn a_read_that_could_be_a_backlog_is_timed_by_the_clock_not_its_arrival() {
        let t0 = Instant::now();
        let mut s = agreed_server(t0);
        let mut vcan = FakeBus::vcan();
        let reads = std::cell::Cell::new(0);
        backlog(&mut s, t0);
        // Its data arrived long ago, in the stall; it is read now, a second
        // after the last data: the silence is measured to now.
        s.rx_arrived(t0);
        let t = t0 + Duration::from_secs(1);
        assert_eq!(
            s.process(Counted(t, &reads), &mut vcan),
            Ok(Progress::Parked)
        );
        assert!(reads.get() > 0, "the clock was read");
        assert!(s.replay().is_some(), "the backlog is paced");
    }

    /// A server agreed on version 2 with its client, the output emptied.
    fn agreed_v2(cfg: SessionConfig, t: Instant) -> Session {
        let mut s = Session::new(
            peer(),
            Role::Server,
            SessionConfig { protocol: 2, ..cfg },
            t,
        );
        feed(&mut s, &wire::encode_version(2));
        s.process(t, &mut FakeBus::default()).unwrap();
        assert_eq!(s.tx_pending(), wire::encode_version(2));
        s.tx_sent(6);
        s
    }

    fn messages(out: &[u8]) -> std::vec::Vec<Message<'_>> {
        let mut buf = out;
        let mut m = std::vec::Vec::new();
        while let Ok(Decoded::Complete(msg, used)) = v2::decode(buf) {
            m.push(msg);
            buf = &buf[used..];
        }
        assert!(buf.is_empty(), "a cut message in {out:02x?}");
        m
    }

    #[test]
    fn version_2_frames_carry_the_kernel_receive_time() {
        let t = Instant::now();
        let mut s = agreed_v2(cfg(), t);
        let frame = classic(0x123, 2);
        let stamp = Stamp::kernel(1_700_000_000, 654_321);
        assert!(s.queue_frame(&frame, stamp));
        let out = s.tx_pending().to_vec();
        assert_eq!(&out[..2], b"t\x18");
        let times = v2::Times {
            kernel_us: 1_700_000_000_654_321,
            hw_ns: None,
        };
        assert_eq!(messages(&out), [Message::Stamped(&frame, times)]);
    }

    #[test]
    fn a_hardware_stamp_is_carried_where_the_receive_had_one() {
        let t = Instant::now();
        let mut s = agreed_v2(cfg(), t);
        let frame = classic(0x123, 2);
        let stamp = Stamp {
            hw_ns: 42_000_000_123,
            ..Stamp::kernel(1_700_000_000, 1)
        };
        assert!(s.queue_frame(&frame, stamp));
        assert!(s.queue_frame(&frame, Stamp::kernel(1_700_000_000, 2)));
        let out = s.tx_pending().to_vec();
        assert_eq!(&out[..2], b"t\x20", "both stamps behind the frame");
        let times = |kernel_us, hw_ns| v2::Times { kernel_us, hw_ns };
        assert_eq!(
            messages(&out),
            [
                Message::Stamped(&frame, times(1_700_000_000_000_001, Some(42_000_000_123))),
                Message::Stamped(&frame, times(1_700_000_000_000_002, None)),
            ]
        );
    }

    #[test]
    fn a_version_1_peer_still_gets_d_messages_byte_for_byte() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        let frame = classic(0x123, 2);
        assert!(s.queue_frame(&frame, Stamp::kernel(1, 2)));
        assert_eq!(s.tx_pending(), data_msg(&frame));
    }

    #[test]
    fn a_kernel_loss_is_told_before_the_next_frame() {
        let t = Instant::now();
        let mut s = agreed_v2(cfg(), t);
        s.io.counters.drop_kernel_overflow = 40;
        let frame = classic(0x7, 1);
        assert!(s.queue_frame(&frame, Stamp::kernel(5, 0)));
        assert!(s.queue_frame(&frame, Stamp::kernel(6, 0)));
        let out = s.tx_pending().to_vec();
        let m = messages(&out);
        assert_eq!(m.len(), 3, "{m:?}");
        let Message::Loss(n) = m[0] else {
            panic!("{m:?}")
        };
        assert_eq!(
            (n.reason, n.count, n.total, n.since),
            (v2::Reason::KernelOverflow, 40, 40, 5_000_000)
        );
        assert!(matches!(m[1], Message::Stamped(..)));
        assert!(matches!(m[2], Message::Stamped(..)), "told once");
    }

    #[test]
    fn frames_the_bus_did_not_take_are_told_by_reason_after_the_read() {
        let t = Instant::now();
        let ro = SessionConfig {
            read_only: true,
            ..cfg()
        };
        let mut s = agreed_v2(ro, t);
        let mut input = data_msg(&classic(1, 1));
        input.extend(data_msg(&classic(2, 1)));
        feed(&mut s, &input);
        s.process(t, &mut FakeBus::default()).unwrap();
        let out = s.tx_pending().to_vec();
        let m = messages(&out);
        let [Message::WriteFail(n)] = m[..] else {
            panic!("{m:?}")
        };
        assert_eq!((n.reason, n.count, n.total), (v2::Reason::ReadOnly, 2, 2));
    }

    #[test]
    fn a_stamped_frame_from_the_peer_reaches_the_bus_without_its_stamps() {
        let t = Instant::now();
        let mut s = agreed_v2(cfg(), t);
        let frame = classic(0x55, 8);
        let mut msg = v2::stamped_header(CAN_MTU, true).to_vec();
        msg.extend(&frame);
        msg.extend(v2::stamp_bytes(1));
        msg.extend(v2::stamp_bytes(2));
        msg.extend(data_msg(&frame));
        let mut bus = FakeBus::default();
        for b in &msg {
            feed(&mut s, std::slice::from_ref(b));
            assert_eq!(s.process(t, &mut bus), Ok(Progress::Drained));
        }
        assert_eq!(bus.sent, [frame.clone(), frame]);
    }

    #[test]
    fn notices_from_the_peer_are_kept_and_an_unknown_prefix_still_closes() {
        let t = Instant::now();
        let mut s = agreed_v2(cfg(), t);
        let n = v2::Notice {
            reason: v2::Reason::KernelOverflow,
            count: 3,
            total: 3,
            since: 1,
        };
        feed(&mut s, &v2::encode_notice(v2::PREFIX_LOSS, &n));
        feed(&mut s, &v2::encode_state(v2::State::BusOff, 1));
        s.process(t, &mut FakeBus::default()).unwrap();
        assert!(s
            .notices
            .peer_totals()
            .to_string()
            .contains("peer_kernel_overflow=3"));
        feed(&mut s, b"x\x00");
        assert_eq!(
            s.process(t, &mut FakeBus::default()),
            Err(Close::Wire(wire::WireError::UnknownPrefix(b'x')))
        );
    }

    #[test]
    fn a_version_1_session_refuses_version_2_messages() {
        let t = Instant::now();
        let mut s = agreed_server(t);
        feed(&mut s, &v2::encode_state(v2::State::BusOff, 1));
        assert_eq!(
            s.process(t, &mut FakeBus::default()),
            Err(Close::Wire(wire::WireError::UnknownPrefix(b's')))
        );
    }

    #[test]
    fn a_bus_state_change_is_told_at_once_to_a_version_2_peer_only() {
        let t = Instant::now();
        let mut s = agreed_v2(cfg(), t);
        s.bus_state(v2::State::BusOff, 9);
        assert_eq!(
            messages(s.tx_pending()),
            [Message::State(v2::State::BusOff, 9)]
        );
        let mut s1 = agreed_server(t);
        s1.bus_state(v2::State::BusOff, 9);
        assert!(s1.tx_pending().is_empty());
    }
}
