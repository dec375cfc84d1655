//! How fast may a backlog go into a virtual interface? A pure pacer, no
//! I/O, time passed in.
//!
//! A virtual CAN interface (vcan, vxcan) has no flow control: a frame
//! written to it lands in every reader's receive queue at once, and a
//! reader with the kernel's default queue (`candump`, python-can: about
//! 277 classic frames) loses what does not fit. Live traffic is harmless:
//! it comes at the bus's own pace, which the desk's tools keep up with. A
//! backlog is not: when the desk end stalls (a laptop that sleeps, a
//! loaded machine, a TCP path that pauses), frames wait in TCP and then
//! arrive all at once, far faster than any bus sends them.
//!
//! So the pacer learns the rate frames arrive at while traffic is live
//! (the busiest recent window), spots a backlog (a read that fills all the
//! space it was offered after a silence), and releases it no faster than
//! [`REPLAY_MULTIPLE`] times that rate, never below [`REPLAY_FLOOR`], in
//! bursts of at most [`REPLAY_BURST`], until it has caught up and stayed
//! so for [`BACKLOG_SILENCE`] (the rest of a backlog that TCP delivers
//! after a pause is still paced). Outside a replay nothing is limited, so
//! steady traffic and saturation are never slowed.
//!
//! The learned rate can be wrong: the bus may have been quiet before the
//! stall and busy since, faster than the pace. Then the replay would never
//! catch up, and the far end would end up dropping this connection's
//! frames as a slow reader's. From here, a backlog that is merely large (a
//! bus that was busy during the stall and has stopped since) looks the
//! same as one fed by a bus that goes on faster than the pace: TCP keeps
//! delivering either as fast as it is read. What tells them apart is
//! size: a stall can leave no more than the buffers between the bus and
//! this end hold ([`REPLAY_STOCK`]). A replay that has read more than that
//! is being fed faster than it drains, so from then on its pace doubles
//! each [`REPLAY_PATIENCE`] it stays held back, until it catches up. A
//! fixed `--replay-rate` is the user's ceiling and is never raised.
//!
//! Frames held back wait in the session's fixed buffer and then in TCP,
//! as with a slow bus: nothing is dropped, order is kept, memory does not
//! grow. They are not "stale" in the sense of `--tx-timeout`, which counts
//! only time the interface itself refuses a frame.

use core::fmt;
use std::time::{Duration, Instant};

use crate::limits::{
    BACKLOG_READ, BACKLOG_SILENCE, MAX_REPLAY_RATE, PACE_TICK, RATE_MEMORY, RATE_WINDOW,
    REPLAY_BURST, REPLAY_FLOOR, REPLAY_MULTIPLE, REPLAY_PATIENCE, REPLAY_STOCK,
};

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
pub enum Allowance {
    /// As many as there are: no replay is in progress.
    Unlimited,
    /// At most this many (at least one).
    Frames(usize),
    /// None before this time.
    WaitUntil(Instant),
}

/// A replay that just began, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// How long no data had arrived before the backlog.
    pub silence: Duration,
    /// Frames per second it starts at.
    pub rate: u32,
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

/// A read that filled all the space it was offered, and that space was
/// large: the kernel may hold more (a backlog, if a silence came before).
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
    /// How long a replay may stay held back before its pace doubles: about
    /// as long as the stall that left the backlog.
    patience: Duration,
    /// When the pace doubles if frames are still held back then.
    next_raise: Instant,
    /// Bytes read from TCP since the backlog was spotted.
    read: u64,
    /// How many times the pace has doubled.
    raised: u32,
}

/// The pacer of one connection's frames into a virtual interface.
#[derive(Debug, Clone)]
pub struct Pacer {
    pacing: Pacing,
    last_data: Instant,
    window: Option<Window>,
    /// The busiest live window recently seen (frames/s) and when it ended.
    peak: Option<(u32, Instant)>,
    backlog: Option<Backlog>,
}

impl Pacer {
    /// A pacer for a connection that starts now.
    pub fn new(pacing: Pacing, now: Instant) -> Self {
        Pacer {
            pacing,
            last_data: now,
            window: None,
            peak: None,
            backlog: None,
        }
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

    /// True if a TCP read of `got` bytes into `offered` bytes of space
    /// needs the time it was read at: one that could reveal a backlog, or
    /// any read during a replay. Any other read may be timed by when its
    /// data arrived (the kernel's receive stamp), which tells the same
    /// about live traffic: its rate, and that data still flows.
    pub fn needs_read_time(&self, got: usize, offered: usize) -> bool {
        self.is_replaying() || could_be_backlog(got, offered)
    }

    /// Records a TCP read of `got` bytes into `offered` bytes of space;
    /// `Some` if it revealed a backlog and a replay begins.
    pub fn on_read(&mut self, now: Instant, got: usize, offered: usize) -> Option<Started> {
        if got == 0 {
            return None;
        }
        let silence = now.saturating_duration_since(self.last_data);
        // Reads timed by arrival and by the clock mix: never go back.
        self.last_data = self.last_data.max(now);
        if let Some(b) = self.backlog.as_mut() {
            b.read += got as u64;
        }
        let backlog = could_be_backlog(got, offered) && silence >= BACKLOG_SILENCE;
        if !backlog || self.pacing == Pacing::Off || self.backlog.is_some() {
            return None;
        }
        // The live window the silence interrupted is too short to trust.
        self.window = None;
        // Half as long again as the stall: a replay at twice a bus that
        // goes on at its learned rate catches up in about the stall.
        let patience = (silence + silence / 2).clamp(REPLAY_PATIENCE.0, REPLAY_PATIENCE.1);
        self.backlog = Some(Backlog {
            started: now,
            frames: 0,
            last_sent: now,
            paid_until: now,
            last_held: now,
            patience,
            next_raise: now + patience,
            read: got as u64,
            raised: 0,
        });
        Some(Started {
            silence,
            rate: self.rate(),
        })
    }

    /// The pace of a replay, in frames per second.
    fn rate(&self) -> u32 {
        match self.pacing {
            Pacing::Off => u32::MAX,
            Pacing::Fixed(rate) => rate.max(1),
            Pacing::Learned => {
                let raised = self.backlog.map_or(0, |b| b.raised);
                let base = self
                    .learned()
                    .unwrap_or(0)
                    .saturating_mul(REPLAY_MULTIPLE)
                    .max(REPLAY_FLOOR);
                // Doubled `raised` times, without overflowing the shift.
                let factor = 1u32.checked_shl(raised).unwrap_or(u32::MAX);
                base.saturating_mul(factor).min(MAX_REPLAY_RATE)
            }
        }
    }

    /// Doubles the pace of a learned replay that has read more than a
    /// stall can leave and is still held back after its patience ran out
    /// (the bus is busier than was learned): returns the new pace, for the
    /// log. Call it before [`allowance`](Self::allowance).
    pub fn escalate(&mut self, now: Instant) -> Option<u32> {
        let rate = self.rate();
        let b = self.backlog.as_mut()?;
        if self.pacing != Pacing::Learned
            || b.read <= REPLAY_STOCK as u64
            || now < b.next_raise
            || rate >= MAX_REPLAY_RATE
        {
            return None;
        }
        b.next_raise = now + b.patience;
        // Caught up within the last period: it is about to end, not behind.
        if now.saturating_duration_since(b.last_held) >= BACKLOG_SILENCE {
            return None;
        }
        b.raised += 1;
        Some(self.rate())
    }

    /// How many frames may be written now.
    pub fn allowance(&mut self, now: Instant) -> Allowance {
        let interval = interval(self.rate());
        let Some(b) = self.backlog.as_mut() else {
            return Allowance::Unlimited;
        };
        let burst = interval * (REPLAY_BURST - 1);
        let base = b.paid_until.max(now);
        if base > now + burst {
            b.last_held = now;
            // The next frame is paid for at `base - burst`; wait a tick
            // longer if that is sooner, so frames leave in batches.
            let first = base - burst;
            return Allowance::WaitUntil(first.max((now + PACE_TICK).min(base)));
        }
        let ahead = (now + burst).saturating_duration_since(base);
        let n = ahead.as_nanos() / interval.as_nanos() + 1;
        Allowance::Frames(n.min(u128::from(REPLAY_BURST)) as usize)
    }

    /// Records `n` frames written to the interface.
    pub fn sent(&mut self, now: Instant, n: usize) {
        if n == 0 {
            return;
        }
        let n = n as u64;
        if let Some(mut b) = self.backlog {
            b.frames += n;
            b.last_sent = now;
            b.paid_until = b.paid_until.max(now) + interval(self.rate()) * n as u32;
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
    /// delivers after a pause of its own is paced too. Returns its figures,
    /// unless it released nothing (the interface went away meanwhile).
    pub fn finish(&mut self, now: Instant) -> Option<Replay> {
        if self.deadline().map_or(true, |t| t > now) {
            return None;
        }
        let done = self.progress().filter(|r| r.frames > 0);
        self.backlog = None;
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Live traffic at `rate` frames/s for `secs` seconds, one frame per read.
    fn live(p: &mut Pacer, t: &mut Instant, rate: u64, secs: u64) {
        let step = Duration::from_nanos(1_000_000_000 / rate);
        for _ in 0..rate * secs {
            *t += step;
            assert_eq!(p.on_read(*t, 18, RX_BUF), None);
            assert_eq!(p.allowance(*t), Allowance::Unlimited);
            p.sent(*t, 1);
        }
    }

    /// A stall: nothing for `silence`, then a read that fills the buffer.
    fn backlog(p: &mut Pacer, t: &mut Instant, silence: Duration) -> Option<Started> {
        *t += silence;
        p.on_read(*t, RX_BUF, RX_BUF)
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

    #[test]
    fn live_traffic_is_never_limited() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 2000, 2);
        assert_eq!(p.learned(), Some(2000));
        assert_eq!(p.allowance(t), Allowance::Unlimited);
    }

    #[test]
    fn full_reads_without_a_silence_are_saturation_not_a_backlog() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        for _ in 0..1000 {
            t += ms(1);
            assert_eq!(p.on_read(t, RX_BUF, RX_BUF), None);
            assert_eq!(p.allowance(t), Allowance::Unlimited);
            p.sent(t, 455);
        }
    }

    #[test]
    fn a_short_read_after_a_silence_is_live_traffic_starting() {
        let t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        assert_eq!(p.on_read(t + ms(5000), 180, RX_BUF), None);
        assert_eq!(p.allowance(t + ms(5000)), Allowance::Unlimited);
    }

    #[test]
    fn a_full_read_after_a_silence_starts_a_replay() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        let started = backlog(&mut p, &mut t, ms(1000)).expect("a backlog");
        assert_eq!(started.silence, ms(1000));
        assert_eq!(started.rate, REPLAY_FLOOR);
        // A second full read during the replay is the same backlog.
        assert_eq!(p.on_read(t + ms(1), RX_BUF, RX_BUF), None);
    }

    #[test]
    fn a_small_buffer_filled_is_not_proof_of_a_backlog() {
        let t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        assert_eq!(p.on_read(t + ms(1000), 100, 100), None);
    }

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
    fn a_pause_in_the_middle_of_a_backlog_does_not_end_the_replay() {
        // TCP itself may pause (a retransmission timer) while the backlog
        // drains: what it delivers next is the same backlog.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        backlog(&mut p, &mut t, ms(1000));
        drain(&mut p, &mut t, 500);
        t += BACKLOG_SILENCE / 2;
        assert_eq!(p.finish(t), None);
        assert_eq!(p.on_read(t, RX_BUF, RX_BUF), None, "not a new replay");
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
    fn sigusr1_sees_a_replay_in_progress() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        assert_eq!(p.progress(), None);
        backlog(&mut p, &mut t, ms(1000));
        drain(&mut p, &mut t, 500);
        let now = p.progress().unwrap();
        assert_eq!(now.frames, 500);
        assert!(now.took > ms(400));
    }

    /// Like [`drain`], while the bus keeps sending at `rate` frames/s
    /// (classic frames, 18 bytes each in protocol v1) into the backlog,
    /// for `secs` seconds or until the replay ends; each release is read
    /// from TCP first. Returns the paces it was raised to and how long the
    /// replay lasted.
    fn drain_while_the_bus_sends(
        p: &mut Pacer,
        t: &mut Instant,
        backlog: u64,
        rate: u64,
        secs: u64,
    ) -> (Vec<u32>, Option<Duration>) {
        let start = *t;
        // A bus that sends nothing: its next frame is after the end.
        let step = match rate {
            0 => Duration::from_secs(secs + 1),
            _ => Duration::from_nanos(1_000_000_000 / rate),
        };
        let (mut held, mut arrived_at, mut raised) = (backlog, *t, Vec::new());
        while *t - start < Duration::from_secs(secs) {
            while arrived_at + step <= *t {
                arrived_at += step;
                // What does not fit in the buffers is dropped far away.
                held = (held + 1).min(backlog.max(REPLAY_STOCK as u64 / 18));
            }
            if let Some(r) = p.escalate(*t) {
                raised.push(r);
            }
            match p.allowance(*t) {
                Allowance::Frames(n) => {
                    // As the daemon does: what is allowed goes out, and
                    // the pacer is asked again while frames are held.
                    let n = (n as u64).min(held);
                    if n > 0 {
                        assert_eq!(p.on_read(*t, n as usize * 18, RX_BUF), None);
                    }
                    p.sent(*t, n as usize);
                    held -= n;
                    if held == 0 {
                        *t += Duration::from_millis(1);
                    }
                }
                Allowance::WaitUntil(at) => *t = at,
                Allowance::Unlimited => return (raised, Some(*t - start)),
            }
            if p.finish(*t).is_some() {
                return (raised, Some(*t - start));
            }
        }
        (raised, None)
    }

    #[test]
    fn a_bus_busier_than_learned_raises_the_pace_once_more_was_read_than_a_stall_leaves() {
        // Learned at 100 frames/s (pace: the floor, 500), the bus then
        // sends 3,000 frames/s: at 500 the replay would never catch up.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 100, 1);
        backlog(&mut p, &mut t, ms(1000));
        let start = t;
        let (raised, took) = drain_while_the_bus_sends(&mut p, &mut t, 3000, 3000, 300);
        // The floor takes REPLAY_STOCK / 18 / 500 s (about a minute) to
        // read more than any stall leaves. Meanwhile the buffers filled
        // (~31,800 frames held, the rest dropped far away); the pace then
        // doubles each patience (1.5 s): at 1,000 and 2,000 the buffers
        // stay full, at 4,000 they drain by 1,500, at 8,000 by 7,500, at
        // 16,000 by 19,500, and at 32,000 the rest is gone.
        assert_eq!(raised, [1000, 2000, 4000, 8000, 16000, 32000]);
        let took = took.expect("the replay caught up");
        let stock_at_floor = REPLAY_STOCK as u64 / 18 / u64::from(REPLAY_FLOOR);
        assert!(
            took > Duration::from_secs(stock_at_floor)
                && took < Duration::from_secs(stock_at_floor + 10),
            "{took:?}"
        );
        assert!(t > start);
        assert_eq!(p.allowance(t), Allowance::Unlimited);
    }

    #[test]
    fn a_big_backlog_from_a_bus_that_stopped_is_never_raised() {
        // 15,000 frames left by 3 s at 5,000 frames/s, nothing since, and
        // nothing learned: a slow replay at the floor, but readers keep up.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        backlog(&mut p, &mut t, ms(3000));
        let (raised, took) = drain_while_the_bus_sends(&mut p, &mut t, 15_000, 0, 60);
        assert_eq!(raised, [], "took {took:?}");
        let took = took.expect("the replay caught up");
        assert!(took > Duration::from_secs(29), "{took:?}");
    }

    #[test]
    fn a_replay_at_twice_the_bus_rate_is_never_raised() {
        // The bus goes on at the learned rate: a stall of one second drains
        // in about a second at twice that, within the replay's patience.
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Learned, t);
        live(&mut p, &mut t, 1000, 1);
        backlog(&mut p, &mut t, ms(3000));
        let (raised, took) = drain_while_the_bus_sends(&mut p, &mut t, 3000, 1000, 60);
        assert_eq!(raised, [], "took {took:?}");
        assert!(took.is_some());
    }

    #[test]
    fn patience_is_the_stall_within_bounds() {
        for (silence, patience) in [
            (ms(200), REPLAY_PATIENCE.0),
            (ms(2000), ms(3000)),
            (ms(3_600_000), REPLAY_PATIENCE.1),
        ] {
            let mut t = Instant::now();
            let mut p = Pacer::new(Pacing::Learned, t);
            backlog(&mut p, &mut t, silence);
            // Far more frames than the pace allows and than a stall leaves:
            // held back throughout.
            assert_eq!(p.on_read(t, REPLAY_STOCK, REPLAY_STOCK * 2), None);
            p.sent(t, 100_000);
            let before = t + patience - ms(1);
            assert!(matches!(p.allowance(before), Allowance::WaitUntil(_)));
            assert_eq!(p.escalate(before), None);
            assert_eq!(p.escalate(t + patience), Some(2 * REPLAY_FLOOR));
        }
    }

    #[test]
    fn a_fixed_rate_is_never_raised() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Fixed(500), t);
        backlog(&mut p, &mut t, ms(1000));
        let (raised, took) = drain_while_the_bus_sends(&mut p, &mut t, 3000, 3000, 20);
        assert_eq!((raised, took), (vec![], None), "the user's ceiling holds");
    }

    #[test]
    fn off_never_paces() {
        let mut t = Instant::now();
        let mut p = Pacer::new(Pacing::Off, t);
        assert_eq!(backlog(&mut p, &mut t, ms(1000)), None);
        assert_eq!(p.allowance(t), Allowance::Unlimited);
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
}
