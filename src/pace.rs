//! How fast may a backlog go into a virtual interface? A pure pacer, no
//! I/O, time passed in.
//!
//! A virtual CAN interface (vcan, vxcan) has no flow control: a frame
//! written to it lands in every reader's receive queue at once, and a
//! reader with the kernel's default queue (`candump`, python-can: about
//! 277 classic frames) loses what does not fit. Live traffic is harmless:
//! it comes at the bus's own pace, which the desk's tools keep up with. A
//! backlog is not: when the desk end stalls (a laptop that sleeps, a
//! process stopped, swapped or starved), frames wait in TCP and then
//! arrive all at once, far faster than any bus sends them.
//!
//! A backlog is data that waited, not data that follows a silence. Each
//! TCP read comes with the kernel's receive stamp of its newest data, so a
//! read that fills all the space it was offered, after
//! [`BACKLOG_SILENCE`] without a read, is a backlog only if even that
//! newest data had waited [`BACKLOG_AGE`] when it was read: the desk was
//! away while the network kept delivering. A burst after a quiet bus (an
//! ECU waking up, a flash download starting) arrives as it is read, and is
//! written at once however long the silence before it. So is everything
//! read without a stamp: with no proof that data waited, nothing is held.
//! That is all a pipe's reads (`--stdio`, `--via`): a pipe has no receive
//! stamps, and the mtime of an anonymous pipe, which tells when it was
//! last written on Linux 6.1, stays at its creation on newer kernels (6.18
//! and 7.2 here), so a stream through ssh is never paced.
//! The one exception is the rest of a backlog that TCP held back (a
//! retransmission after the stall): a full read after a silence within
//! [`REPLAY_RESUME`] of a replay that caught up is paced again.
//!
//! The pacer learns the rate frames arrive at while traffic is live (the
//! busiest recent window, or the one a stall cut short if the bus was
//! busier then, at least [`RATE_GLIMPSE`] of it) and releases a backlog
//! no faster than
//! [`REPLAY_MULTIPLE`] times that rate, never below [`REPLAY_FLOOR`], in
//! bursts of at most [`REPLAY_BURST`], until it has caught up and stayed
//! so for [`BACKLOG_SILENCE`]. Outside a replay nothing is limited, so
//! steady traffic and saturation are never slowed.
//!
//! No pace may hold the desk below what the bus delivers: the far end
//! would drop what does not fit in its buffers. So while a replay runs the
//! session reads on, into a bounded reservoir, and the far end's buffers
//! drain as fast as with no pacing at all; and the stamps of what it reads
//! say whether frames keep arriving. Data that arrived after the replay
//! began is new, but up to [`FAR_STOCK`] of it may be what a stall left in
//! the far end's buffers, sent in a lump once this end reads again. Past
//! that, if over [`REPLAY_ESCAPE`] of arrival times as many frames arrive
//! (counted in classic frames) as the replay releases while frames wait
//! their turn, the backlog does not shrink: the bus delivers at least as
//! much, and the replay ends there, whatever the pace (learned or
//! `--replay-rate`). A bus slower than the pace is caught up with, however
//! long it goes on: at twice its rate, a flood's backlog shrinks by the
//! flood's own rate.
//!
//! Frames held back wait in the session's reservoir, at most
//! [`REPLAY_RESERVOIR`](crate::limits::REPLAY_RESERVOIR) (then in TCP,
//! as with a slow bus): nothing is dropped, order is kept. They are not
//! "stale" in the sense of `--tx-timeout`, which counts only time the
//! interface itself refuses a frame.

use core::fmt;
use std::time::{Duration, Instant};

use crate::limits::{
    BACKLOG_AGE, BACKLOG_READ, BACKLOG_SILENCE, FAR_STOCK, FAR_STOCK_V2, MAX_REPLAY_RATE,
    PACE_TICK, RATE_GLIMPSE, RATE_MEMORY, RATE_WINDOW, REPLAY_BURST, REPLAY_CATCH_UP,
    REPLAY_ESCAPE, REPLAY_FLOOR, REPLAY_LATENESS, REPLAY_MULTIPLE, REPLAY_RESUME, RESUME_READ,
    RESUME_READ_V2,
};
use crate::time::Clock;

/// How backlogs are paced (`--replay-rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Never (`--replay-rate 0`).
    Off,
    /// At [`REPLAY_MULTIPLE`] times the bus's rate as learned from the
    /// stream, at least [`REPLAY_FLOOR`] (the default).
    Learned,
    /// At this many frames per second (`--replay-rate FPS`).
    Fixed(u32),
}

/// How many frames may go to the interface now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowance {
    /// As many as there are: no replay is in progress.
    Unlimited,
    /// At most this many (at least one).
    Frames(usize),
    /// None before this time.
    WaitUntil(Instant),
}

/// One TCP read, as the pacer is shown it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Read {
    /// When it was read: the clock if [`Pacer::needs_read_time`] says so,
    /// else when its data arrived.
    pub at: Instant,
    /// When its newest data arrived (the kernel's receive stamp), if known.
    pub arrived: Option<Instant>,
    /// Bytes it brought.
    pub got: usize,
    /// Bytes of space it was offered.
    pub offered: usize,
}

impl Read {
    /// How long its newest data had waited in the kernel when it was read
    /// (nothing without a stamp: no proof that it waited).
    pub fn waited(&self) -> Duration {
        self.arrived
            .map_or(Duration::ZERO, |a| self.at.saturating_duration_since(a))
    }
}

/// What a read changed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A replay began.
    Started(Started),
    /// Frames kept arriving as fast as the replay released them: it ended,
    /// and frames are written as they come.
    Overtaken(Overtaken),
    /// The replay caught up and ended.
    Done(Replay),
}

/// A replay that just began, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// How long the read's newest data had waited in the kernel.
    pub waited: Duration,
    /// How long no data had been read before it.
    pub silence: Duration,
    /// Frames per second it starts at.
    pub rate: u32,
}

/// A replay that live traffic ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overtaken {
    /// What it released.
    pub replay: Replay,
    /// Frames per second that arrived meanwhile, in classic frames: at
    /// least what it released.
    pub arriving: u64,
}

/// A replay's figures: how many frames, over how long, at what rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// Frames released so far.
    pub frames: u64,
    /// From the backlog's first read to its last frame released so far.
    pub took: Duration,
    /// The pace in force at the end (frames per second).
    pub rate: u32,
}

impl Replay {
    /// Frames per second achieved on average (0 for an instant replay).
    pub fn average(&self) -> u64 {
        per_second(self.frames, self.took)
    }
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.took.as_millis();
        write!(
            f,
            "{} frames in {}.{:03} s ({} frames/s; pace {} frames/s)",
            self.frames,
            ms / 1000,
            ms % 1000,
            self.average(),
            self.rate
        )
    }
}

/// How many replays a connection had, and how many live traffic ended
/// (for SIGUSR1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Replays begun.
    pub replays: u64,
    /// Replays ended because frames kept arriving as fast as they went.
    pub overtaken: u64,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replays={} ended_by_live_traffic={}",
            self.replays, self.overtaken
        )
    }
}

/// A read that filled all the space it was offered, and that space was
/// large: the kernel may hold more (a backlog, if its data waited).
fn could_be_backlog(got: usize, offered: usize) -> bool {
    got == offered && got >= BACKLOG_READ
}

/// Frames per second for `frames` over `took` (0 over no time).
fn per_second(frames: u64, took: Duration) -> u64 {
    let ns = took.as_nanos();
    if ns == 0 {
        return 0;
    }
    (u128::from(frames) * 1_000_000_000 / ns).min(u128::from(u64::MAX)) as u64
}

/// Live traffic counted over one window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    frames: u64,
}

/// A read, during a replay, of data that arrived after the replay began
/// and after the far end's stock: where a stretch of arrivals is measured
/// from.
#[derive(Debug, Clone, Copy)]
struct Mark {
    arrived: Instant,
    /// New bytes read up to and including it.
    bytes: u64,
    /// Frames the replay had released by then.
    frames: u64,
}

/// The frames per second that arrived from `mark` to `now`, in frames of
/// `frame` bytes, if at least as many arrived as the replay released
/// meanwhile (an eighth less, for a message cut by a read): the backlog
/// did not shrink. The session reads on while frames wait (its reservoir),
/// so what a read brings is what arrived since the read before.
fn keeps_up(mark: &Mark, now: &Mark, frame: usize) -> Option<u64> {
    let arrived = (now.bytes - mark.bytes) / frame as u64;
    let released = now.frames - mark.frames;
    (8 * arrived >= 7 * released)
        .then(|| per_second(arrived, now.arrived.saturating_duration_since(mark.arrived)))
}

/// The stamps' sign of frames that keep arriving during replay `b`: once
/// more data arrived after it began than the far end can hold back
/// (`sizes.far_stock`, [`FAR_STOCK`] in version 1), what arrives over
/// [`REPLAY_ESCAPE`] of arrival times is at least what the replay
/// released meanwhile while frames were `held` back. Returns the frames
/// per second that arrived.
fn new_data_keeps_up(b: &mut Backlog, read: Read, held: bool, sizes: StreamSizes) -> Option<u64> {
    let arrived = read.arrived.filter(|&a| a >= b.started)?;
    b.new_bytes += read.got as u64;
    if b.new_bytes <= sizes.far_stock as u64 {
        // It may all be what the far end held back, sent in a lump.
        return None;
    }
    let now = Mark {
        arrived,
        bytes: b.new_bytes,
        frames: b.frames,
    };
    let Some(mark) = b.new_data else {
        b.new_data = Some(now);
        return None;
    };
    if arrived.saturating_duration_since(mark.arrived) < REPLAY_ESCAPE {
        return None;
    }
    let arriving = keeps_up(&mark, &now, sizes.frame).filter(|_| held);
    // Catching up, or judged: measure afresh from here.
    b.new_data = Some(now);
    arriving
}

/// How far behind `now` a replay's account may stand: a wake-up that comes
/// late (a coarse timer, a busy loop) makes up for up to [`REPLAY_LATENESS`]
/// of lateness, at most [`REPLAY_CATCH_UP`] frames at once, instead of
/// losing that time. Without it a replay ran at most a burst per timer tick
/// (6,400 frames/s with 5 ms ticks, less in UML), below a fast bus, and the
/// gateway dropped. A slow pace gains only a few frames: its readers'
/// queues are not asked for more than before.
fn credit_floor(now: Instant) -> Instant {
    now.checked_sub(REPLAY_LATENESS).unwrap_or(now)
}

/// A replay in progress.
#[derive(Debug, Clone, Copy)]
struct Backlog {
    started: Instant,
    frames: u64,
    last_sent: Instant,
    /// When the frames released so far are paid for at the pace (the
    /// "theoretical arrival time" of a cell-rate algorithm): up to a burst
    /// may be ahead of `now`; at or before `now` nothing is held back.
    paid_until: Instant,
    /// The last time a frame had to wait for its turn.
    last_held: Instant,
    /// Where the stretch of arrivals being measured began.
    new_data: Option<Mark>,
    /// Bytes read so far that arrived after the replay began.
    new_bytes: u64,
}

/// The byte counts the pacer judges reads by, which grow with the agreed
/// protocol version's frame message (18 bytes in version 1, 26 in 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSizes {
    /// What the far end can hold back while this end is stalled
    /// ([`FAR_STOCK`]).
    far_stock: usize,
    /// A classic frame's message, what arriving bytes are counted in (an
    /// FD frame counts as several, which can only end a replay sooner).
    frame: usize,
    /// A read bigger than a burst of frames ([`RESUME_READ`]).
    resume_read: usize,
}

impl StreamSizes {
    /// Protocol version 1's (and the pacer's until a version is agreed).
    pub const V1: StreamSizes = StreamSizes {
        far_stock: FAR_STOCK,
        frame: 18,
        resume_read: RESUME_READ,
    };
    /// Protocol version 2's.
    pub const V2: StreamSizes = StreamSizes {
        far_stock: FAR_STOCK_V2,
        frame: 26,
        resume_read: RESUME_READ_V2,
    };
}

/// The last TCP read, noted as it happens, until [`Pacer::time_read`]
/// times it on the same loop turn.
#[derive(Debug, Clone, Copy, Default)]
struct Note {
    /// Bytes of space offered to it.
    offered: usize,
    /// Bytes it brought; `None` once timed.
    got: Option<usize>,
    /// When its newest data arrived (the kernel's receive stamp), if known.
    arrived: Option<Instant>,
}

/// The pacer of one connection's frames into a virtual interface.
///
/// The session tells it about each TCP read as it happens
/// ([`note_offer`](Self::note_offer), [`note_read`](Self::note_read),
/// [`note_arrival`](Self::note_arrival)), and then, on every pass over its
/// input, calls [`time_read`](Self::time_read) first, which alone decides
/// when to read the clock, then [`limit`](Self::limit) before writing and
/// [`released`](Self::released) after.
#[derive(Debug, Clone)]
pub struct Pacer {
    pacing: Pacing,
    note: Note,
    /// Whether this pass writes to a virtual interface (set by
    /// [`time_read`](Self::time_read)): only those are paced.
    is_virtual: bool,
    /// When the data of this pass's read arrived, if it had a stamp.
    arrived: Option<Instant>,
    last_data: Instant,
    window: Option<Window>,
    /// The busiest live window recently seen (frames/s) and when it ended.
    peak: Option<(u32, Instant)>,
    backlog: Option<Backlog>,
    /// When the last replay caught up, for [`REPLAY_RESUME`].
    caught_up: Option<Instant>,
    tally: Tally,
    sizes: StreamSizes,
}

impl Pacer {
    /// A pacer for a connection that starts now.
    pub fn new(pacing: Pacing, now: Instant) -> Self {
        Pacer {
            pacing,
            note: Note::default(),
            is_virtual: false,
            arrived: None,
            last_data: now,
            window: None,
            peak: None,
            backlog: None,
            caught_up: None,
            tally: Tally::default(),
            sizes: StreamSizes::V1,
        }
    }

    /// Judges reads by the sizes of the protocol version agreed.
    pub fn sized_for(&mut self, sizes: StreamSizes) {
        self.sizes = sizes;
    }

    /// True while a backlog is being replayed: only then does the pacer
    /// need the time to answer [`allowance`](Self::allowance).
    pub fn is_replaying(&self) -> bool {
        self.backlog.is_some()
    }

    /// The bus's rate as learned from live traffic (frames/s), if any.
    pub fn learned(&self) -> Option<u32> {
        self.peak.map(|(rate, _)| rate)
    }

    /// Replays so far, and how many live traffic ended (for SIGUSR1).
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Notes the space offered to the next TCP read.
    pub fn note_offer(&mut self, offered: usize) {
        self.note.offered = offered;
    }

    /// Notes a TCP read of `got` bytes, to be timed by the next
    /// [`time_read`](Self::time_read) (the same loop turn).
    pub fn note_read(&mut self, got: usize) {
        self.note.got = Some(got);
        self.note.arrived = None;
    }

    /// Notes when the data of the last read arrived (the kernel's receive
    /// stamp, on the loop's clock).
    pub fn note_arrival(&mut self, at: Instant) {
        self.note.arrived = Some(at);
    }

    /// The one entry point for timing a read, called first on every pass
    /// over the session's input, into an interface that `is_virtual` or
    /// not. Times the read noted since the last pass (only a virtual
    /// interface needs it) by when its data arrived, reading the clock only
    /// if it could reveal a backlog or a replay runs, and ends a replay that
    /// has caught up whatever the interface is now, so an ended replay
    /// never stays due. Returns what changed, for the log.
    pub fn time_read(&mut self, clock: &impl Clock, is_virtual: bool) -> Option<Event> {
        let note = core::mem::take(&mut self.note);
        self.is_virtual = is_virtual;
        self.arrived = note.arrived;
        let mut event = None;
        if let (Some(got), true) = (note.got, is_virtual) {
            let at = match note.arrived {
                Some(t) if !self.needs_read_time(got, note.offered) => t,
                _ => clock.now(),
            };
            event = self.on_read(Read {
                at,
                arrived: note.arrived,
                got,
                offered: note.offered,
            });
        }
        if self.is_replaying() {
            event = self.finish(clock.now()).map(Event::Done).or(event);
        }
        event
    }

    /// How many frames may be written now (`usize::MAX` outside a replay
    /// or into a real interface), or until when the next waits its turn.
    pub fn limit(&mut self, clock: &impl Clock) -> Result<usize, Instant> {
        if !self.is_virtual || !self.is_replaying() {
            return Ok(usize::MAX);
        }
        match self.allowance(clock.now()) {
            Allowance::Unlimited => Ok(usize::MAX),
            Allowance::Frames(n) => Ok(n),
            Allowance::WaitUntil(t) => Err(t),
        }
    }

    /// Records `n` frames written this pass. Live traffic's rate is counted
    /// by when its data arrived (no clock read); a replay's pace by the
    /// clock.
    pub fn released(&mut self, clock: &impl Clock, n: usize) {
        if !self.is_virtual {
            return;
        }
        let at = match self.arrived {
            Some(t) if !self.is_replaying() => t,
            _ => clock.now(),
        };
        self.sent(at, n);
    }

    /// True if a TCP read of `got` bytes into `offered` bytes of space
    /// needs the time it was read at: one that could reveal a backlog (how
    /// long its data waited is measured to it), or any read during a
    /// replay. Any other read may be timed by when its data arrived (the
    /// kernel's receive stamp), which tells the same about live traffic:
    /// its rate, and that data still flows.
    fn needs_read_time(&self, got: usize, offered: usize) -> bool {
        self.is_replaying() || could_be_backlog(got, offered)
    }

    /// Records a TCP read: `Some` if a replay begins, or if live traffic
    /// ended the one in progress.
    fn on_read(&mut self, read: Read) -> Option<Event> {
        let Read {
            at: now,
            got,
            offered,
            ..
        } = read;
        if got == 0 || self.pacing == Pacing::Off {
            return None;
        }
        let last_data = self.last_data;
        // Reads timed by arrival and by the clock mix: never go back.
        self.last_data = last_data.max(now);
        if self.backlog.is_some() {
            return self.on_replay_read(read).map(Event::Overtaken);
        }
        // Most reads are live traffic's and end here, with no arithmetic
        // on times: this runs for every read of a desk.
        if !could_be_backlog(got, offered) && !self.may_resume(now, got) {
            return None;
        }
        let silence = now.saturating_duration_since(last_data);
        let waited = read.waited();
        // The rest of a backlog that TCP held back and sent after a pause.
        let resumed = || {
            self.caught_up
                .is_some_and(|t| now.saturating_duration_since(t) < REPLAY_RESUME)
        };
        if silence < BACKLOG_SILENCE || (waited < BACKLOG_AGE && !resumed()) {
            return None;
        }
        // The live window the silence interrupted is too short to learn
        // from, but it is what the bus was just doing: never pace below it.
        if let Some(w) = self.window.take() {
            let took = last_data.saturating_duration_since(w.start);
            if took >= RATE_GLIMPSE {
                let rate = per_second(w.frames, took).min(u64::from(u32::MAX)) as u32;
                if self.pacing == Pacing::Learned && self.rate() < rate {
                    self.peak = Some((rate, last_data));
                }
            }
        }
        self.caught_up = None;
        self.tally.replays += 1;
        self.backlog = Some(Backlog {
            started: now,
            frames: 0,
            last_sent: now,
            paid_until: now,
            last_held: now,
            new_data: None,
            new_bytes: 0,
        });
        Some(Event::Started(Started {
            waited,
            silence,
            rate: self.rate(),
        }))
    }

    /// A read during a replay: ends the replay if, past the far end's
    /// stock, as many frames arrived over [`REPLAY_ESCAPE`] of arrival
    /// times as it released while frames waited their turn: the bus
    /// delivers at least as fast, and the backlog would never shrink.
    fn on_replay_read(&mut self, read: Read) -> Option<Overtaken> {
        let sizes = self.sizes;
        let b = self.backlog.as_mut()?;
        // Frames still wait for their turn: the replay is behind.
        let held = read.at.saturating_duration_since(b.last_held) < BACKLOG_SILENCE;
        let arriving = new_data_keeps_up(b, read, held, sizes)?;
        let replay = self.progress()?;
        self.backlog = None;
        self.tally.overtaken += 1;
        Some(Overtaken { replay, arriving })
    }

    /// Whether a read of `got` bytes that did not fill its space may still
    /// be the rest of the backlog a replay just caught up with: TCP resends
    /// what the stalled desk had no room for in lumps of its own choosing
    /// (818 frames, seen on Linux 7.2), and such a lump written at once
    /// overruns a default reader queue (238 frames there).
    fn may_resume(&self, now: Instant, got: usize) -> bool {
        got > self.sizes.resume_read
            && self
                .caught_up
                .is_some_and(|t| now.saturating_duration_since(t) < REPLAY_RESUME)
    }

    /// The pace of a replay, in frames per second.
    fn rate(&self) -> u32 {
        match self.pacing {
            Pacing::Off => u32::MAX,
            Pacing::Fixed(rate) => rate.max(1),
            Pacing::Learned => self
                .learned()
                .unwrap_or(0)
                .saturating_mul(REPLAY_MULTIPLE)
                .clamp(REPLAY_FLOOR, MAX_REPLAY_RATE),
        }
    }

    /// How many frames may be written now.
    fn allowance(&mut self, now: Instant) -> Allowance {
        let interval = interval(self.rate());
        let Some(b) = self.backlog.as_mut() else {
            return Allowance::Unlimited;
        };
        let burst = interval * (REPLAY_BURST - 1);
        let base = b.paid_until.max(credit_floor(now));
        if base > now + burst {
            b.last_held = now;
            // The next frame is paid for at `base - burst`; wait a tick
            // longer if that is sooner, so frames leave in batches.
            let first = base - burst;
            return Allowance::WaitUntil(first.max((now + PACE_TICK).min(base)));
        }
        let ahead = (now + burst).saturating_duration_since(base);
        let n = ahead.as_nanos() / interval.as_nanos() + 1;
        Allowance::Frames(n.min(u128::from(REPLAY_CATCH_UP)) as usize)
    }

    /// Records `n` frames written to the interface.
    fn sent(&mut self, now: Instant, n: usize) {
        if n == 0 {
            return;
        }
        let n = n as u64;
        if let Some(mut b) = self.backlog {
            b.frames += n;
            b.last_sent = now;
            b.paid_until = b.paid_until.max(credit_floor(now)) + interval(self.rate()) * n as u32;
            self.backlog = Some(b);
            return;
        }
        match self.window.as_mut() {
            Some(w) if now.saturating_duration_since(w.start) >= RATE_WINDOW => {
                let rate = per_second(w.frames, now.saturating_duration_since(w.start));
                let rate = rate.min(u64::from(u32::MAX)) as u32;
                self.peak = match self.peak {
                    Some((p, at))
                        if p >= rate && now.saturating_duration_since(at) < RATE_MEMORY =>
                    {
                        Some((p, at))
                    }
                    _ => Some((rate, now)),
                };
                *w = Window {
                    start: now,
                    frames: n,
                };
            }
            Some(w) => w.frames += n,
            None => {
                self.window = Some(Window {
                    start: now,
                    frames: n,
                })
            }
        }
    }

    /// When a replay in progress ends if nothing more comes: the time to
    /// call [`finish`](Self::finish) so its end is logged on time.
    pub fn deadline(&self) -> Option<Instant> {
        self.backlog
            .map(|b| b.paid_until.max(b.last_held + BACKLOG_SILENCE))
    }

    /// Ends a replay that has caught up: everything released is paid for
    /// and nothing had to wait for [`BACKLOG_SILENCE`], so what TCP still
    /// delivers after a pause of its own is paced too (and for
    /// [`REPLAY_RESUME`] after the end, a full read after a silence is the
    /// rest of it, whatever its age). Returns its figures,
    /// unless it released nothing (the interface went away meanwhile).
    fn finish(&mut self, now: Instant) -> Option<Replay> {
        if self.deadline().map_or(true, |t| t > now) {
            return None;
        }
        let done = self.progress().filter(|r| r.frames > 0);
        self.backlog = None;
        self.caught_up = Some(now);
        done
    }

    /// The replay in progress, if any (for SIGUSR1).
    pub fn progress(&self) -> Option<Replay> {
        self.backlog.map(|b| Replay {
            frames: b.frames,
            took: b.last_sent.saturating_duration_since(b.started),
            rate: self.rate(),
        })
    }
}

/// Time between two frames at `rate` frames per second.
fn interval(rate: u32) -> Duration {
    Duration::from_nanos(1_000_000_000 / u64::from(rate.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RX_BUF;
    use std::collections::VecDeque;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A read at `at` of `got` bytes into all of RX_BUF, whose newest data
    /// arrived at `arrived`.
    fn read(at: Instant, arrived: Option<Instant>, got: usize) -> Read {
        Read {
            at,
            arrived,
            got,
            offered: RX_BUF,
        }
    }

    fn started(e: Option<Event>) -> Option<Started> {
        match e {
            Some(Event::Started(s)) => Some(s),
            None => None,
            Some(other) => panic!("not a start: {other:?}"),
        }
    }

    /// Live traffic at `rate` frames/s for `secs` seconds, one frame per
    /// read, each read as it arrives.
    fn live(p: &mut Pacer, t: &mut Instant, rate: u64, secs: u64) {
        live_for(p, t, rate, Duration::from_secs(secs));
    }

    fn live_for(p: &mut Pacer, t: &mut Instant, rate: u64, took: Duration) {
        let step = Duration::from_nanos(1_000_000_000 / rate);
        let end = *t + took;
        while *t + step <= end {
            *t += step;
            assert_eq!(p.on_read(read(*t, Some(*t), 18)), None);
            assert_eq!(p.allowance(*t), Allowance::Unlimited);
            p.sent(*t, 1);
        }
    }

    /// A stall: the desk reads nothing for `silence`, then a read that
    /// fills the buffer with data that arrived as the stall began.
    fn backlog(p: &mut Pacer, t: &mut Instant, silence: Duration) -> Option<Started> {
        let arrived = *t;
        *t += silence;
        started(p.on_read(read(*t, Some(arrived), RX_BUF)))
    }

    /// Releases everything allowed, as often as the pacer asks to be woken,
    /// until `frames` went out; returns how long that took.
    fn drain(p: &mut Pacer, t: &mut Instant, frames: u64) -> Duration {
        let start = *t;
        let mut left = frames;
        while left > 0 {
            match p.allowance(*t) {
                Allowance::Frames(n) => {
                    let n = (n as u64).min(left);
                    p.sent(*t, n as usize);
                    left -= n;
                }
                Allowance::WaitUntil(at) => {
                    assert!(at > *t, "a wake-up in the past would spin");
                    *t = at;
                }
                Allowance::Unlimited => panic!("the replay ended with {left} frames held"),
            }
        }
        *t - start
    }

    // ----- the one entry point, as a session calls it

    #[test]
    fn a_live_read_is_timed_by_its_arrival_without_reading_the_clock() {
        let t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        let reads = core::cell::Cell::new(0);
        let clock = crate::time::Counted(t + ms(5), &reads);
        p.note_offer(RX_BUF);
        p.note_read(18);
        p.note_arrival(t + ms(5));
        assert_eq!(p.time_read(&clock, true), None);
        assert_eq!(p.limit(&clock), Ok(usize::MAX));
        p.released(&clock, 1);
        assert_eq!(reads.get(), 0, "no clock read for live traffic");
    }

    #[test]
    fn a_backlog_read_through_the_entry_point_starts_a_replay_then_reports_it_done() {
        let t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        p.note_offer(RX_BUF);
        p.note_read(RX_BUF);
        p.note_arrival(t);
        let read_at = t + ms(1000);
        let started = started(p.time_read(&read_at, true)).expect("a backlog");
        assert_eq!(started.waited, ms(1000));
        // Paced: a burst now, then the rest waits for its turn.
        let burst = p.limit(&read_at).unwrap();
        p.released(&read_at, burst);
        let wait = p.limit(&read_at).unwrap_err();
        assert!(wait > read_at);
        // A later pass with no new read ends the replay once caught up.
        let due = p.deadline().unwrap();
        match p.time_read(&due, true) {
            Some(Event::Done(done)) => assert_eq!(done.frames, burst as u64),
            other => panic!("not done: {other:?}"),
        }
        assert!(!p.is_replaying());
    }

    #[test]
    fn a_real_interface_is_never_paced_and_its_reads_teach_nothing() {
        let t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        p.note_offer(RX_BUF);
        p.note_read(RX_BUF);
        p.note_arrival(t);
        assert_eq!(p.time_read(&(t + ms(1000)), false), None);
        assert_eq!(p.limit(&(t + ms(1000))), Ok(usize::MAX));
        p.released(&(t + ms(1000)), 100);
        assert_eq!(p.learned(), None);
        assert!(!p.is_replaying());
    }

    // ----- what is a backlog

    #[test]
    fn live_traffic_is_never_limited() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 2000, 2);
        assert_eq!(p.learned(), Some(2000));
        assert_eq!(p.allowance(t), Allowance::Unlimited);
    }

    #[test]
    fn a_burst_after_a_silence_is_live_traffic_however_long_the_silence() {
        // Issue 25: one frame, 844 ms of quiet, then a flood whose first
        // read fills the buffer. Its data arrived just now: it is written
        // at once, not paced at the floor.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 1, 1);
        t += ms(844);
        assert_eq!(p.on_read(read(t, Some(t - ms(1)), RX_BUF)), None);
        assert_eq!(p.allowance(t), Allowance::Unlimited);
        for _ in 0..1000 {
            t += ms(1);
            assert_eq!(p.on_read(read(t, Some(t), RX_BUF)), None);
            p.sent(t, 110);
        }
        assert_eq!(p.tally(), Tally::default());
    }

    #[test]
    fn a_full_read_after_a_silence_whose_data_waited_starts_a_replay() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        let started = backlog(&mut p, &mut t, ms(1000)).expect("a backlog");
        assert_eq!(started.waited, ms(1000));
        assert_eq!(started.silence, ms(1000));
        assert_eq!(started.rate, REPLAY_FLOOR);
        // A second full read during the replay is the same backlog.
        assert_eq!(p.on_read(read(t + ms(1), Some(t - ms(900)), RX_BUF)), None);
        assert_eq!(p.tally().replays, 1);
    }

    #[test]
    fn data_is_a_backlog_once_it_waited_backlog_age() {
        for (waited, is_backlog) in [
            (BACKLOG_AGE - Duration::from_micros(1), false),
            (BACKLOG_AGE, true),
        ] {
            let t = Instant::now();
            let mut p = Pacer::new(Pacing::Learned, t);
            let at = t + ms(5000);
            let got = started(p.on_read(read(at, Some(at - waited), RX_BUF)));
            assert_eq!(got.is_some(), is_backlog, "waited {waited:?}");
        }
    }

    #[test]
    fn a_read_without_a_stamp_is_never_taken_for_a_backlog() {
        // No proof that its data waited: nothing is held back.
        let t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        assert_eq!(p.on_read(read(t + ms(5000), None, RX_BUF)), None);
        assert_eq!(p.allowance(t + ms(5000)), Allowance::Unlimited);
    }

    #[test]
    fn a_desk_falling_behind_a_flood_is_not_held_back_further() {
        // Full reads of data that waited, but read all along: no silence.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        for i in 0..1000 {
            t += ms(1);
            let waited = ms(i / 4);
            assert_eq!(p.on_read(read(t, Some(t - waited), RX_BUF)), None);
            assert_eq!(p.allowance(t), Allowance::Unlimited);
            p.sent(t, 455);
        }
    }

    #[test]
    fn a_short_read_after_a_silence_is_live_traffic_starting() {
        let t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        let at = t + ms(5000);
        assert_eq!(p.on_read(read(at, Some(t), 180)), None);
        assert_eq!(p.allowance(at), Allowance::Unlimited);
    }

    #[test]
    fn a_small_buffer_filled_is_not_proof_of_a_backlog() {
        let t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        let r = Read {
            offered: 100,
            ..read(t + ms(1000), Some(t), 100)
        };
        assert_eq!(p.on_read(r), None);
    }

    /// A pacer whose replay of 500 frames caught up; `t` is then.
    fn caught_up(t: &mut Instant) -> Pacer {
        let mut p = Pacer::new(Pacing::Learned, *t);
        backlog(&mut p, t, ms(1000));
        drain(&mut p, t, 500);
        *t = p.deadline().unwrap();
        assert!(p.finish(*t).is_some());
        p
    }

    #[test]
    fn the_rest_of_a_backlog_that_tcp_sent_after_a_pause_is_paced_too() {
        // The stalled desk's kernel had no room for a segment; the far end
        // sends it again when its timer fires, after the replay of the rest
        // caught up: fresh data, but the same backlog.
        let mut t = Instant::now();
        let mut p = caught_up(&mut t);
        let resumed = t + REPLAY_RESUME - ms(1);
        let s = started(p.on_read(read(resumed, Some(resumed), RX_BUF)));
        assert!(s.is_some(), "paced again");
        assert_eq!(p.tally().replays, 2);
        // Later, a burst after a silence is live again.
        let mut p = caught_up(&mut t);
        let later = t + REPLAY_RESUME;
        assert_eq!(p.on_read(read(later, Some(later), RX_BUF)), None);
    }

    #[test]
    fn a_lump_of_the_rest_smaller_than_a_full_read_is_paced_too() {
        // 818 classic frames, as TCP resent them on Linux 7.2: far from
        // filling the read, but more than a default reader queue holds.
        let lump = 818 * 18;
        let mut t = Instant::now();
        let mut p = caught_up(&mut t);
        let resumed = t + ms(500);
        assert!(started(p.on_read(read(resumed, Some(resumed), lump))).is_some());
        // A burst's worth is live, and so is the lump once the window closed.
        let mut p = caught_up(&mut t);
        let at = t + ms(500);
        assert_eq!(p.on_read(read(at, Some(at), RESUME_READ)), None);
        let mut p = caught_up(&mut t);
        let later = t + REPLAY_RESUME;
        assert_eq!(p.on_read(read(later, Some(later), lump)), None);
    }

    #[test]
    fn off_never_paces() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Off, t);
        assert_eq!(backlog(&mut p, &mut t, ms(1000)), None);
        assert_eq!(p.allowance(t), Allowance::Unlimited);
        assert_eq!(p.tally(), Tally::default());
    }

    // ----- how fast a backlog goes

    #[test]
    fn a_replay_starts_with_one_burst_then_waits_a_tick() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        backlog(&mut p, &mut t, ms(1000));
        assert_eq!(p.allowance(t), Allowance::Frames(REPLAY_BURST as usize));
        p.sent(t, REPLAY_BURST as usize);
        // The next frame is paid for a few milliseconds on, but frames go
        // out in batches, one tick apart.
        assert_eq!(p.allowance(t), Allowance::WaitUntil(t + PACE_TICK));
        let per_tick = PACE_TICK.as_millis() as u32 * REPLAY_FLOOR / 1000;
        assert_eq!(
            p.allowance(t + PACE_TICK),
            Allowance::Frames(per_tick as usize)
        );
    }

    #[test]
    fn a_fast_replay_keeps_its_pace_when_every_wake_up_comes_a_tick_late() {
        // 20,000 frames/s: a burst is paid for every 1.6 ms, but a coarse
        // timer wakes the loop only every 5 ms. Late wake-ups make up for
        // their lateness, so the replay still runs at its pace, not at a
        // burst per tick (6,400 frames/s), below the bus.
        let mut t = Instant::now();
        let mut p = replaying(Pacing::Fixed(20_000), t);
        let start = t;
        let mut frames = 0u64;
        while frames < 20_000 {
            t += PACE_TICK;
            while let Allowance::Frames(n) = p.allowance(t) {
                assert!(n <= REPLAY_CATCH_UP as usize, "{n} frames at once");
                p.sent(t, n);
                frames += n as u64;
            }
        }
        let rate = frames as f64 / (t - start).as_secs_f64();
        assert!(
            rate >= 19_000.0,
            "{rate:.0} frames/s against a pace of 20,000"
        );
    }

    #[test]
    fn a_late_wake_up_makes_up_for_its_lateness_only_so_far() {
        let mut t = Instant::now();
        let mut p = replaying(Pacing::Fixed(1000), t);
        // A second late: the burst due now, and what the last
        // REPLAY_LATENESS would have released; nothing for the rest.
        t += ms(1000);
        let made_up = REPLAY_LATENESS.as_millis() as usize;
        assert_eq!(
            p.allowance(t),
            Allowance::Frames(REPLAY_BURST as usize + made_up)
        );
        p.sent(t, REPLAY_BURST as usize + made_up);
        assert!(matches!(p.allowance(t), Allowance::WaitUntil(_)));
        // At a fast pace, never more than REPLAY_CATCH_UP at once.
        let mut p = replaying(Pacing::Fixed(1_000_000), t);
        assert_eq!(
            p.allowance(t + ms(1000)),
            Allowance::Frames(REPLAY_CATCH_UP as usize)
        );
    }

    #[test]
    fn with_nothing_learned_a_backlog_goes_at_the_floor() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        backlog(&mut p, &mut t, ms(100_000));
        let took = drain(&mut p, &mut t, 2000);
        // The first burst is free; the rest goes at the floor.
        let paced = 2000 - u64::from(REPLAY_BURST);
        let expected = Duration::from_millis(1000 * paced / u64::from(REPLAY_FLOOR));
        assert!(
            took >= expected - ms(5) && took <= expected + PACE_TICK,
            "{took:?}"
        );
    }

    #[test]
    fn a_backlog_goes_at_twice_the_rate_the_bus_was_seen_at() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 2500, 2);
        let started = backlog(&mut p, &mut t, ms(1000)).unwrap();
        assert_eq!(started.rate, 5000);
        let took = drain(&mut p, &mut t, 5000);
        assert!(took >= ms(990) && took <= ms(1000), "{took:?}");
    }

    #[test]
    fn a_stall_that_cut_a_flood_short_paces_it_at_least_as_fast() {
        // The desk is starved 50 ms into a flood of 20,000 frames/s: too
        // short a window to learn from, but the bus is that busy.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 1, 1);
        t += ms(800);
        live_for(&mut p, &mut t, 20_000, ms(50));
        let s = backlog(&mut p, &mut t, ms(150)).unwrap();
        assert!((40_000..=40_100).contains(&s.rate), "{s:?}");
        // A lone frame before a stall says nothing of the bus.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live_for(&mut p, &mut t, 1000, RATE_GLIMPSE - ms(2));
        assert_eq!(backlog(&mut p, &mut t, ms(150)).unwrap().rate, REPLAY_FLOOR);
    }

    #[test]
    fn a_pause_in_the_middle_of_a_backlog_does_not_end_the_replay() {
        // TCP itself may pause (a retransmission timer) while the backlog
        // drains: what it delivers next is the same backlog.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        backlog(&mut p, &mut t, ms(1000));
        drain(&mut p, &mut t, 500);
        t += BACKLOG_SILENCE / 2;
        assert_eq!(p.finish(t), None);
        assert_eq!(
            p.on_read(read(t, Some(t), RX_BUF)),
            None,
            "not a new replay"
        );
        match p.allowance(t) {
            Allowance::Frames(n) => p.sent(t, n),
            other => panic!("the rest of the backlog is not paced: {other:?}"),
        }
        assert!(matches!(p.allowance(t), Allowance::WaitUntil(_)));
    }

    #[test]
    fn the_learned_rate_is_the_busiest_recent_window() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 4000, 1);
        live(&mut p, &mut t, 500, 2);
        assert_eq!(p.learned(), Some(4000));
        // ... and is forgotten once older than RATE_MEMORY.
        live(&mut p, &mut t, 500, RATE_MEMORY.as_secs());
        assert_eq!(p.learned(), Some(500));
    }

    #[test]
    fn a_replay_ends_once_caught_up_and_says_how_it_went() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        backlog(&mut p, &mut t, ms(1000));
        let start = t;
        assert_eq!(p.finish(t), None, "nothing released yet");
        drain(&mut p, &mut t, 1000);
        assert_eq!(p.finish(t), None, "the last frames are not paid for yet");
        let at = p.deadline().unwrap();
        // The last frame that waited did so one tick before the end.
        assert!(
            at >= t + BACKLOG_SILENCE - PACE_TICK,
            "ends only after staying caught up"
        );
        assert_eq!(p.finish(at - ms(1)), None);
        let done = p.finish(at).expect("caught up at the deadline");
        assert_eq!(done.frames, 1000);
        assert_eq!(
            done.took,
            t - start,
            "from the backlog's read to its last frame"
        );
        let text = done.to_string();
        assert!(text.starts_with("1000 frames in "), "{text}");
        assert!(
            text.ends_with(&format!("pace {REPLAY_FLOOR} frames/s)")),
            "{text}"
        );
        assert_eq!(p.allowance(at), Allowance::Unlimited);
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn a_replay_with_nothing_released_ends_quietly_when_due() {
        // E.g. the interface vanished as the backlog came: no frame went
        // out, yet the replay must end, or its deadline would stay due.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        backlog(&mut p, &mut t, ms(1000));
        let due = p.deadline().unwrap();
        assert_eq!(p.finish(due), None);
        assert!(!p.is_replaying());
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn what_a_replay_releases_does_not_teach_the_live_rate() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 800, 1);
        backlog(&mut p, &mut t, ms(1000));
        drain(&mut p, &mut t, 3000);
        t = p.deadline().unwrap();
        p.finish(t).unwrap();
        live(&mut p, &mut t, 800, 1);
        assert_eq!(p.learned(), Some(800));
    }

    #[test]
    fn sigusr1_sees_a_replay_in_progress_and_the_replays_so_far() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        assert_eq!(p.progress(), None);
        backlog(&mut p, &mut t, ms(1000));
        drain(&mut p, &mut t, 500);
        let now = p.progress().unwrap();
        assert_eq!(now.frames, 500);
        assert!(now.took > ms(400));
        assert_eq!(p.tally().to_string(), "replays=1 ended_by_live_traffic=0");
    }

    #[test]
    fn a_fixed_rate_is_kept_whatever_was_learned() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Fixed(500), t);
        live(&mut p, &mut t, 3000, 1);
        assert_eq!(backlog(&mut p, &mut t, ms(1000)).unwrap().rate, 500);
        let took = drain(&mut p, &mut t, 532);
        assert!(took >= ms(995) && took <= ms(1005), "{took:?}");
    }

    // ----- never below the live rate: the escape, from arrivals over time

    /// A replay begun at `t` whose first burst went out and whose next
    /// frames wait their turn.
    fn replaying(pacing: Pacing, t: Instant) -> Pacer {
        let mut p = Pacer::new(pacing, t - ms(1000));
        assert!(started(p.on_read(read(t, Some(t - ms(900)), RX_BUF))).is_some());
        p.sent(t, REPLAY_BURST as usize);
        assert!(matches!(p.allowance(t), Allowance::WaitUntil(_)));
        p
    }

    /// Reads at `read_at` of data that arrived at `arrived_at`, each after
    /// the replay released what it may (so frames are held back).
    fn reads(p: &mut Pacer, times: &[(Instant, Instant)]) -> Vec<Option<Event>> {
        times
            .iter()
            .map(|&(at, arrived)| {
                if let Allowance::Frames(n) = p.allowance(at) {
                    p.sent(at, n);
                }
                let _ = p.allowance(at);
                p.on_read(read(at, Some(arrived), RX_BUF))
            })
            .collect()
    }

    /// `n` reads, `step` apart from `first`, of data that arrived `lag`
    /// before each.
    fn arriving(first: Instant, lag: Duration, step: Duration, n: u32) -> Vec<(Instant, Instant)> {
        (0..n)
            .map(|i| (first + step * i, first + step * i - lag))
            .collect()
    }

    /// Reads of a whole buffer that are more than the far end can hold: the
    /// last of them is the first that may begin a stretch of arrivals.
    const PAST_FAR_STOCK: usize = FAR_STOCK / RX_BUF + 1;

    /// Reads `step` apart that span a stretch of arrivals.
    fn stretch(step: Duration) -> usize {
        (REPLAY_ESCAPE.as_nanos() / step.as_nanos()) as usize
    }

    #[test]
    fn frames_arriving_faster_than_released_end_the_replay_a_stretch_past_the_far_stock() {
        let t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        // The stock the replay began with: arrived before it.
        assert_eq!(reads(&mut p, &[(t + ms(100), t - ms(850))]), [None]);
        // Then a whole buffer every 10 ms (45,500 frames/s) while the
        // replay releases 500/s. While it may be the far end's stock, and
        // for a quarter second of arrivals past it, the replay goes on.
        let step = ms(10);
        let first_judged = PAST_FAR_STOCK - 1 + stretch(step);
        let times = arriving(t + ms(400), ms(5), step, first_judged as u32 + 1);
        let events = reads(&mut p, &times);
        let ended = events.iter().position(Option::is_some);
        assert_eq!(ended, Some(first_judged), "{events:?}");
        let Some(Event::Overtaken(o)) = events[first_judged] else {
            panic!("not ended by live traffic");
        };
        assert!(!p.is_replaying());
        assert_eq!(p.allowance(t + ms(2000)), Allowance::Unlimited);
        assert!(o.replay.frames >= u64::from(REPLAY_BURST));
        assert_eq!(o.arriving / 100, (RX_BUF / 18) as u64, "{o:?}");
        assert_eq!(p.tally().overtaken, 1);
    }

    #[test]
    fn a_version_2_far_end_holds_back_more_before_new_frames_end_the_replay() {
        // Version 2's far end holds more bytes (26-byte messages, a larger
        // send buffer): past version 1's stock, the replay goes on.
        let t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        p.sized_for(StreamSizes::V2);
        assert_eq!(reads(&mut p, &[(t + ms(100), t - ms(850))]), [None]);
        let past_v2 = FAR_STOCK_V2 / RX_BUF + 1;
        assert!(past_v2 > PAST_FAR_STOCK);
        let first_judged = past_v2 - 1 + stretch(ms(10));
        let times = arriving(t + ms(400), ms(5), ms(10), first_judged as u32 + 1);
        let events = reads(&mut p, &times);
        let ended = events.iter().position(Option::is_some);
        assert_eq!(ended, Some(first_judged), "{events:?}");
        // Counted in version 2's frames.
        let Some(Event::Overtaken(o)) = events[first_judged] else {
            panic!("not ended by live traffic");
        };
        assert_eq!(o.arriving / 100, (RX_BUF / 26) as u64, "{o:?}");
        // A lump of version 2's rest bigger than a burst resumes a replay
        // that caught up; one of version 1's size does not.
        let mut t = Instant::now();
        let mut p = caught_up(&mut t);
        p.sized_for(StreamSizes::V2);
        let at = t + ms(500);
        assert_eq!(p.on_read(read(at, Some(at), RESUME_READ + 1)), None);
        let mut p = caught_up(&mut t);
        p.sized_for(StreamSizes::V2);
        let at = t + ms(500);
        assert!(started(p.on_read(read(at, Some(at), RESUME_READ_V2 + 1))).is_some());
    }

    #[test]
    fn past_the_far_stock_it_takes_replay_escape_of_arrivals() {
        let t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        let step = REPLAY_ESCAPE / 4;
        let n = PAST_FAR_STOCK as u32 + 5;
        let events = reads(&mut p, &arriving(t + ms(400), ms(3), ms(1), n - 5));
        assert!(events.iter().all(Option::is_none), "{events:?}");
        // Now past the far end's stock: a quarter second of arrivals more.
        let later = t + ms(400) + ms(1) * (n - 5);
        let events = reads(&mut p, &arriving(later, ms(3), step, 5));
        assert_eq!(
            events.iter().position(Option::is_some),
            Some(4),
            "{events:?}"
        );
    }

    /// After the far end's stock arrived in one lump, reads `step` apart,
    /// each of `frames` classic frames that arrived as it is read, each
    /// after the replay released what it may.
    fn trickle(
        p: &mut Pacer,
        t: Instant,
        frames: usize,
        step: Duration,
        n: u32,
    ) -> Vec<Option<Event>> {
        let lump = t + ms(20);
        let stock = vec![(lump, lump); PAST_FAR_STOCK];
        assert!(reads(p, &stock).iter().all(Option::is_none));
        let first = lump;
        (1..=n)
            .map(|i| {
                let at = first + step * i;
                if let Allowance::Frames(k) = p.allowance(at) {
                    p.sent(at, k);
                }
                let _ = p.allowance(at);
                p.on_read(read(at, Some(at), frames * 18))
            })
            .collect()
    }

    #[test]
    fn frames_arriving_slower_than_released_are_caught_up_with() {
        // 2,000 frames/s released; 1,500/s arrive, read as they come.
        let t = Instant::now();
        let mut p = replaying(Pacing::Fixed(2000), t);
        let events = trickle(&mut p, t, 15, ms(10), 300);
        assert!(events.iter().all(Option::is_none), "{events:?}");
        assert!(p.is_replaying());
        assert_eq!(p.tally().overtaken, 0);
    }

    #[test]
    fn frames_arriving_as_fast_as_released_end_the_replay() {
        // The backlog does not shrink: the pace is below the bus.
        let t = Instant::now();
        let mut p = replaying(Pacing::Fixed(2000), t);
        let events = trickle(&mut p, t, 20, ms(10), 300);
        let ended = events.iter().position(Option::is_some);
        assert!(
            matches!(ended, Some(i) if i <= 2 * stretch(ms(10))),
            "{events:?}"
        );
        let Some(Some(Event::Overtaken(o))) = ended.map(|i| events[i]) else {
            panic!("not ended by live traffic");
        };
        assert!((1900..=2100).contains(&o.arriving), "{o:?}");
    }

    #[test]
    fn new_frames_are_no_sign_once_nothing_waits_its_turn() {
        // Caught up: frames no longer wait, whatever keeps arriving.
        let t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        let first = t + ms(400);
        assert_eq!(p.on_read(read(first, Some(first - ms(300)), RX_BUF)), None);
        let at = first + REPLAY_ESCAPE * 2;
        let _ = p.allowance(first);
        // Nothing was asked for since `first`: nothing was held back.
        let late = at + BACKLOG_SILENCE;
        assert_eq!(p.on_read(read(late, Some(late - ms(300)), RX_BUF)), None);
    }

    #[test]
    fn what_arrives_at_once_after_the_replay_began_is_leftover_stock() {
        // The far end's buffers, sent in one go when the desk reads again:
        // all of it arrived at the same moment, however much it is.
        let t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        let dump = t + ms(50);
        let times: Vec<_> = (1..80u32).map(|i| (dump + ms(200) * i, dump)).collect();
        assert!(reads(&mut p, &times).iter().all(Option::is_none));
        assert!(p.is_replaying());
    }

    #[test]
    fn leftovers_that_arrive_in_lumps_are_no_sign_of_live_traffic() {
        // The far end's buffers come in two lumps 600 ms apart: no more
        // than it holds, however it arrives.
        let t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        let (first, second) = (t + ms(4000), t + ms(4600));
        let mut times: Vec<_> = (1..15u32).map(|i| (first + ms(900) * i, first)).collect();
        times.extend((15..PAST_FAR_STOCK as u32).map(|i| (first + ms(900) * i, second)));
        assert!(reads(&mut p, &times).iter().all(Option::is_none));
        assert!(p.is_replaying());
    }

    #[test]
    fn a_fixed_rate_is_ended_by_live_traffic_too() {
        let t = Instant::now();
        let mut p = replaying(Pacing::Fixed(2000), t);
        let first_judged = PAST_FAR_STOCK - 1 + stretch(ms(10));
        let times = arriving(t + ms(200), ms(5), ms(10), first_judged as u32 + 1);
        let events = reads(&mut p, &times);
        assert!(
            matches!(events[first_judged], Some(Event::Overtaken(_))),
            "{events:?}"
        );
    }

    /// A desk reading through its kernel's receive queue in a replay. The
    /// queue holds `window` frames; what does not fit waits at the far
    /// end, which sends it as soon as `chunk` frames fit (TCP opens its
    /// window by segments, not frame by frame). The bus sends `rate`
    /// frames/s from the start. As the session does, the desk reads all
    /// its kernel holds at every wake-up, into its reservoir, stamped with
    /// the arrival of its newest frame, and releases what the pacer allows.
    /// Runs `secs` seconds; returns how the replay ended (if it did) and
    /// when.
    struct Desk {
        queue: VecDeque<Instant>,
        far: usize,
        window: usize,
        chunk: usize,
        reservoir: usize,
    }

    impl Desk {
        fn refill(&mut self, now: Instant) {
            let room = self.window - self.queue.len();
            if self.far > 0 && room >= self.chunk.min(self.far) {
                let n = room.min(self.far);
                self.far -= n;
                self.queue.extend(std::iter::repeat(now).take(n));
            }
        }
    }

    #[derive(Debug, PartialEq)]
    enum End {
        CaughtUp(Duration),
        Overtaken(Duration),
    }

    fn replay_through(
        p: &mut Pacer,
        desk: &mut Desk,
        t: &mut Instant,
        rate: u64,
        secs: u64,
    ) -> Option<End> {
        let start = *t;
        let step = match rate {
            0 => Duration::from_secs(secs + 1),
            _ => Duration::from_nanos(1_000_000_000 / rate),
        };
        let mut bus = *t;
        while *t - start < Duration::from_secs(secs) {
            while bus + step <= *t {
                bus += step;
                desk.far += 1;
                desk.refill(bus);
            }
            if !desk.queue.is_empty() {
                let n = desk.queue.len();
                let newest = desk.queue.drain(..).next_back();
                desk.reservoir += n;
                if let Some(Event::Overtaken(_)) = p.on_read(read(*t, newest, n * 18)) {
                    return Some(End::Overtaken(*t - start));
                }
                desk.refill(*t);
            }
            match p.allowance(*t) {
                Allowance::Frames(n) => {
                    let n = n.min(desk.reservoir);
                    if n > 0 {
                        p.sent(*t, n);
                        desk.reservoir -= n;
                    } else {
                        *t += ms(1);
                    }
                }
                Allowance::WaitUntil(at) => *t = at,
                Allowance::Unlimited => return Some(End::CaughtUp(*t - start)),
            }
            if p.finish(*t).is_some() {
                return Some(End::CaughtUp(*t - start));
            }
        }
        None
    }

    /// A desk stopped for `stall` while the bus sent `rate` frames/s: its
    /// kernel holds what arrived until the window filled, the far end the
    /// rest; the desk reads again at `t`.
    fn stalled_desk(t: Instant, stall: Duration, rate: u64, window: usize, chunk: usize) -> Desk {
        let sent = (stall.as_secs_f64() * rate as f64) as usize;
        let step = stall / sent as u32;
        let queue = (0..sent.min(window))
            .map(|i| t - stall + step * i as u32)
            .collect();
        Desk {
            queue,
            far: sent.saturating_sub(window),
            window,
            chunk,
            reservoir: 0,
        }
    }

    #[test]
    fn a_stock_from_a_bus_that_stopped_is_replayed_to_the_end() {
        // The case pacing exists for: 1 s of 2,000 frames/s, then nothing.
        let mut t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        let mut desk = stalled_desk(t, ms(1000), 2000, 3500, 3500);
        let end = replay_through(&mut p, &mut desk, &mut t, 0, 30);
        assert!(
            matches!(end, Some(End::CaughtUp(d)) if d > ms(3800)),
            "{end:?}"
        );
        assert_eq!(p.tally().overtaken, 0);
    }

    #[test]
    fn leftovers_sent_at_once_by_the_far_end_are_replayed_to_the_end() {
        // 3 s of 5,000 frames/s: the kernel holds 3,500, the far end sends
        // the rest in one go once there is room for it.
        let mut t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        let mut desk = stalled_desk(t, ms(3000), 5000, 15_000, 11_500);
        desk.window = 15_000;
        desk.far = 11_500;
        desk.queue.truncate(3500);
        let end = replay_through(&mut p, &mut desk, &mut t, 0, 60);
        assert!(
            matches!(end, Some(End::CaughtUp(d)) if d > ms(29_000)),
            "{end:?}"
        );
        assert_eq!(p.tally().overtaken, 0);
    }

    #[test]
    fn a_bus_slower_than_the_pace_is_caught_up_with() {
        let mut t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        let mut desk = stalled_desk(t, ms(1000), 300, 3500, 64);
        let end = replay_through(&mut p, &mut desk, &mut t, 300, 30);
        assert!(matches!(end, Some(End::CaughtUp(_))), "{end:?}");
        assert_eq!(p.tally().overtaken, 0);
    }

    #[test]
    fn a_flood_faster_than_the_pace_ends_the_replay_a_stretch_past_the_far_stock() {
        // Nothing learned (pace: the floor), the bus goes on at 20,000
        // frames/s. The desk reads on, so what the far end held back comes
        // at once, then the flood as it is sent: a quarter second of it
        // past the far end's stock ends the replay.
        let mut t = Instant::now();
        let mut p = replaying(Pacing::Learned, t);
        let mut desk = stalled_desk(t, ms(1000), 20_000, 1000, 100);
        let end = replay_through(&mut p, &mut desk, &mut t, 20_000, 60);
        // The stall's 20,000 frames were more than the far end holds: the
        // stretch begins as soon as they are read.
        assert!(
            matches!(end, Some(End::Overtaken(d)) if d <= REPLAY_ESCAPE + ms(100)),
            "{end:?}"
        );
        assert_eq!(p.tally().overtaken, 1);
    }

    /// Ten seconds of a 20,000 frames/s flood, after a 1 s stall, replayed
    /// at `pace`: how the replay ended, and the desk.
    fn flood_replayed_at(pace: u32) -> (Option<End>, Desk) {
        let mut t = Instant::now();
        let mut p = replaying(Pacing::Fixed(pace), t);
        let mut desk = stalled_desk(t, ms(1000), 20_000, 7000, 3600);
        (replay_through(&mut p, &mut desk, &mut t, 20_000, 10), desk)
    }

    #[test]
    fn a_flood_at_half_the_pace_is_replayed_to_the_end_while_it_goes_on() {
        // Issue 25: replayed at twice the flood's rate, the backlog shrinks
        // by 20,000 frames/s as the desk reads on: caught up in about a
        // second, never ended by the flood, and nothing held back at the
        // far end.
        let (end, desk) = flood_replayed_at(40_000);
        assert!(
            matches!(end, Some(End::CaughtUp(d)) if d < ms(1500)),
            "{end:?}"
        );
        assert!(desk.reservoir < 1000, "{} frames wait", desk.reservoir);
        assert_eq!(desk.far, 0);
    }

    #[test]
    fn a_flood_at_the_pace_ends_the_replay() {
        // Replayed at its own rate the backlog never shrinks: holding the
        // desk there would hold it below the bus.
        let (end, _) = flood_replayed_at(20_000);
        assert!(
            matches!(end, Some(End::Overtaken(d)) if d <= REPLAY_ESCAPE * 2 + ms(100)),
            "{end:?}"
        );
    }
}
