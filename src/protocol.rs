//! What does a session tell the loop that carries it? The one face both
//! protocols show their connection: protocol v1's
//! [`Session`](crate::session::Session) and socketcand's
//! [`ScdSession`](crate::socketcand::session::ScdSession). The daemon's
//! connection is written once against [`Protocol`]: bytes to send, room for
//! frames from the bus, input to carry out, when there is timer work, how a
//! parked session wants to be woken, and why it ended. [`Stream`] is the
//! TCP side both keep: the two byte queues, the counters, and the rule for
//! a frame that waits for a busy bus. No I/O here.

use std::fmt;
use std::time::{Duration, Instant};

use crate::buf::ByteBuf;
use crate::close::Close;
use crate::counters::Counters;
use crate::device::{CanSink, CyclicSink};
use crate::pace::{Replay, Tally};
use crate::peer::Peer;
use crate::time::{Clock, Stamp};

/// Where a session stopped carrying out its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Everything complete was handled (or the output has no room for a
    /// reply); read more TCP.
    Drained,
    /// The head frame waits for the bus ([`Protocol::parked`] says how):
    /// stop reading TCP until it moves.
    Parked,
}

/// How a parked session wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// When the CAN socket polls writable.
    CanWritable,
    /// At this time.
    At(Instant),
}

/// What [`Protocol::on_timer`] found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Nothing yet.
    Idle,
    /// The parked frame is due for another try: carry out the input again.
    RetryParked,
    /// A replay may have caught up: carry out the input again to end it.
    ReplayDue,
    /// The interface's statistics are due ([`Protocol::queue_stats`]).
    Stats,
    /// The connection must end.
    Close(Close),
}

/// An interface's statistics: received bytes and packets, sent bytes and
/// packets.
pub type IfStats = [u64; 4];

/// The TCP side of a session, as the connection carrying it sees it.
pub trait Surface {
    /// Bytes waiting to be sent.
    fn pending(&self) -> &[u8];
    /// `n` bytes of [`pending`](Self::pending) were sent.
    fn sent(&mut self, n: usize);
    /// Free bytes in the output.
    fn tx_free(&self) -> usize;
    /// Traffic and drops of the connection.
    fn counters(&mut self) -> &mut Counters;
}

/// Where a session's input goes: frames to the CAN socket, jobs to the
/// kernel's broadcast manager (socketcand's cyclic sends and subscriptions).
pub struct Bus<'a> {
    /// The CAN socket (or a stand-in while the interface is gone).
    pub can: &'a mut dyn CanSink,
    /// The BCM socket.
    pub bcm: &'a mut dyn CyclicSink,
}

/// The accessors of a session's TCP side, written once for every protocol:
/// `stream_access!(field)` inside an `impl Protocol`.
macro_rules! stream_access {
    ($field:ident) => {
        fn tcp(&self) -> &Self::Tcp {
            &self.$field
        }

        fn tcp_mut(&mut self) -> &mut Self::Tcp {
            &mut self.$field
        }
    };
}
pub(crate) use stream_access;

/// A session of either protocol, as its connection drives it.
pub trait Protocol {
    /// Its TCP side.
    type Tcp: Surface;
    /// Bytes the longest frame from the bus takes in the output: below that
    /// the CAN socket is not read (back-pressure).
    const FRAME_ROOM: usize;
    /// True if its reads are timed by their kernel receive stamps (v1's
    /// pacer and TCP-side coalescing).
    const STAMPED_READS: bool;
    /// True if it shows each frame's receive time (socketcand's lines): the
    /// CAN socket is asked for stamps even when coalescing is off.
    const FRAME_STAMPS: bool;

    /// The peer's address, for log lines.
    fn peer(&self) -> Peer;
    /// Its TCP side.
    fn tcp(&self) -> &Self::Tcp;
    /// Its TCP side, mutable.
    fn tcp_mut(&mut self) -> &mut Self::Tcp;
    /// Free space for the next TCP read: empty while it takes none (see
    /// [`wants_tcp_read`](Self::wants_tcp_read)).
    fn rx_spare(&mut self) -> &mut [u8];
    /// `n` bytes were read into [`rx_spare`](Self::rx_spare).
    fn rx_filled(&mut self, n: usize);
    /// The bytes of the last read arrived at `at` (the kernel's receive
    /// stamp, on the loop's clock).
    fn rx_arrived(&mut self, _at: Instant) {}
    /// True when the session wants more TCP input.
    fn wants_tcp_read(&self) -> bool;
    /// How a parked session wants to be woken, if it is parked.
    fn parked(&self) -> Option<Wake>;
    /// Carries out what is buffered from TCP, towards `bus`.
    fn process_input(&mut self, clock: impl Clock, bus: Bus<'_>) -> Result<Progress, Close>;
    /// Takes one frame (host layout) read from the bus at `stamp`. Returns
    /// false if it did not fit.
    fn queue_frame(&mut self, frame: &[u8], stamp: Stamp) -> bool;
    /// The earliest time at which [`on_timer`](Self::on_timer) has work.
    fn next_deadline(&self) -> Option<Instant>;
    /// What is due at `now`.
    fn on_timer(&mut self, now: Instant) -> Timer;
    /// Writes its counters for a log line.
    fn fmt_counters(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// True while frames come back through its BCM socket.
    fn wants_bcm(&self) -> bool {
        false
    }
    /// Takes one frame the kernel's BCM passed back, received at `stamp`.
    fn queue_subscribed(&mut self, _frame: &[u8], _stamp: Stamp) -> bool {
        true
    }
    /// Queues the interface's statistics, after [`Timer::Stats`].
    fn queue_stats(&mut self, _stats: IfStats) {}
    /// A TCP send buffer size the session asks for, once (version 2's
    /// larger messages, after agreement).
    fn take_send_buffer(&mut self) -> Option<usize> {
        None
    }
    /// The replay in progress, if any (for SIGUSR1).
    fn replay(&self) -> Option<Replay> {
        None
    }
    /// Replays so far, and how many live traffic ended, for a protocol
    /// that replays (for SIGUSR1).
    fn replays(&self) -> Option<Tally> {
        None
    }

    /// Bytes waiting to be sent on TCP.
    fn tx_pending(&self) -> &[u8] {
        self.tcp().pending()
    }
    /// `n` bytes of [`tx_pending`](Self::tx_pending) were sent.
    fn tx_sent(&mut self, n: usize) {
        self.tcp_mut().sent(n);
    }
    /// True while one more frame of any kind fits in the output.
    fn tx_has_room(&self) -> bool {
        self.tcp().tx_free() >= Self::FRAME_ROOM
    }
    /// How many more frames the output can take now.
    fn tx_room_frames(&self) -> usize {
        self.tcp().tx_free() / Self::FRAME_ROOM
    }
    /// Traffic and drops of the connection.
    fn counters(&mut self) -> &mut Counters {
        self.tcp_mut().counters()
    }
}

/// The TCP side of a session: input on its way to the bus, output on its
/// way to the peer, the counters, and since when the head frame has waited
/// for a busy bus.
pub struct Stream<const RX: usize, const TX: usize> {
    /// Bytes read from TCP, not yet carried out.
    pub rx: ByteBuf<RX>,
    /// Bytes for the peer, not yet sent.
    pub tx: ByteBuf<TX>,
    /// Traffic and drops of this connection.
    pub counters: Counters,
    /// Reset only by a frame the bus accepts, so once the timeout passed,
    /// frames are shed until the bus moves again.
    busy_since: Option<Instant>,
}

impl<const RX: usize, const TX: usize> Stream<RX, TX> {
    /// Empty queues, zero counters.
    pub fn new() -> Self {
        Stream {
            rx: ByteBuf::new(),
            tx: ByteBuf::new(),
            counters: Counters::default(),
            busy_since: None,
        }
    }

    /// `n` bytes were read into the input's spare room.
    pub fn filled(&mut self, n: usize) {
        self.rx.fill(n);
        self.counters.bytes_in += n as u64;
    }

    /// The bus refused the head frame as busy at `now`: true while it may
    /// still wait (less than `timeout` since the bus last took a frame),
    /// false once it is stale.
    pub fn may_wait(&mut self, now: Instant, timeout: Duration) -> bool {
        let since = *self.busy_since.get_or_insert(now);
        now.saturating_duration_since(since) < timeout
    }

    /// The bus took a frame: it is not busy.
    pub fn bus_moved(&mut self) {
        self.busy_since = None;
    }

    /// When a frame waiting on a busy bus becomes stale, if one waits.
    pub fn stale_at(&self, timeout: Duration) -> Option<Instant> {
        self.busy_since.map(|t| t + timeout)
    }
}

impl<const RX: usize, const TX: usize> Default for Stream<RX, TX> {
    fn default() -> Self {
        Stream::new()
    }
}

impl<const RX: usize, const TX: usize> Surface for Stream<RX, TX> {
    fn pending(&self) -> &[u8] {
        self.tx.data()
    }

    fn sent(&mut self, n: usize) {
        self.tx.consume(n);
        self.counters.bytes_out += n as u64;
    }

    fn tx_free(&self) -> usize {
        self.tx.free()
    }

    fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_bus_is_waited_for_until_the_timeout_and_a_frame_taken_resets_it() {
        let t = Instant::now();
        let timeout = Duration::from_millis(100);
        let mut s: Stream<16, 16> = Stream::new();
        assert_eq!(s.stale_at(timeout), None, "nothing waits");
        assert!(s.may_wait(t, timeout));
        assert!(s.may_wait(t + Duration::from_millis(99), timeout));
        assert_eq!(s.stale_at(timeout), Some(t + timeout));
        assert!(!s.may_wait(t + timeout, timeout), "stale");
        assert!(
            !s.may_wait(t + timeout * 2, timeout),
            "still stale: the bus never moved"
        );
        s.bus_moved();
        assert!(s.may_wait(t + timeout * 2, timeout), "a new wait");
    }

    #[test]
    fn bytes_in_and_out_are_counted_as_they_pass() {
        let mut s: Stream<16, 16> = Stream::new();
        s.rx.spare()[..3].copy_from_slice(b"abc");
        s.filled(3);
        assert_eq!(s.rx.data(), b"abc");
        assert!(s.tx.push(b"hello"));
        assert_eq!(s.pending(), b"hello");
        assert_eq!(s.tx_free(), 11);
        s.sent(2);
        assert_eq!(s.pending(), b"llo");
        let c = Surface::counters(&mut s);
        assert_eq!((c.bytes_in, c.bytes_out), (3, 2));
    }
}
