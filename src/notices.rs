//! What does a version 2 connection owe its peer about losses and the bus,
//! and what did the peer tell it? The bookkeeping of loss, write-failure and
//! bus-state notices: which counts are not yet told, since when, and the
//! totals the peer reported. Pure but for the realtime clock read when a
//! frame from the peer is dropped (a drop is rare; its "since" must be the
//! wall-clock time the peer can compare with its own log).

use core::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::buf::ByteBuf;
use crate::busstate::BusState;
use crate::counters::{Counters, DropReason, RateLimit};
use crate::peer::Peer;
use crate::wire::v2::{self, Notice, Reason, State};
use crate::wire::Message;

/// How many reasons a notice can name.
const REASONS: usize = Reason::ALL.len();

/// The counter that counts `r`.
fn total(c: &Counters, r: Reason) -> u64 {
    match r {
        Reason::Invalid => c.drop_invalid,
        Reason::Refused => c.drop_refused,
        Reason::BusDown => c.drop_bus_down,
        Reason::Stale => c.drop_stale,
        Reason::ReadOnly => c.drop_read_only,
        Reason::ErrorFrame => c.drop_error_frame,
        Reason::KernelOverflow => c.drop_kernel_overflow,
    }
}

/// The notice reason of a frame from TCP that was dropped.
fn reason(why: DropReason) -> Reason {
    match why {
        DropReason::Invalid => Reason::Invalid,
        DropReason::Refused => Reason::Refused,
        DropReason::BusDown => Reason::BusDown,
        DropReason::Stale => Reason::Stale,
        DropReason::ReadOnly => Reason::ReadOnly,
        DropReason::ErrorFrame => Reason::ErrorFrame,
    }
}

/// The state a notice tells for a state the monitor saw: a restart after
/// bus-off is the return to error-active.
pub fn state_of(s: BusState) -> State {
    match s {
        BusState::ErrorActive | BusState::Restarted => State::ErrorActive,
        BusState::ErrorWarning => State::ErrorWarning,
        BusState::ErrorPassive => State::ErrorPassive,
        BusState::BusOff => State::BusOff,
    }
}

/// Microseconds since the epoch now.
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `sec.usec`, as candump writes times.
pub struct WallTime(pub u64);

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The notices of one connection.
#[derive(Debug, Default)]
pub struct Notices {
    /// Per reason, the total the peer was last told.
    told: [u64; REASONS],
    /// Per reason, when the first untold loss happened (µs; 0: none).
    since: [u64; REASONS],
    /// A dropped frame from the peer is not yet told.
    write_failures: bool,
    /// A bus state not yet told, and when it began.
    state: Option<(State, u64)>,
    /// Per reason, the totals the peer reported.
    peer: [u64; REASONS],
    warn: RateLimit,
}

impl Notices {
    /// A version was agreed: only losses from now on are the peer's news.
    pub fn agreed(&mut self, c: &Counters) {
        for r in Reason::ALL {
            self.told[r as usize - 1] = total(c, r);
        }
        self.write_failures = false;
    }

    /// True if the kernel dropped frames for the peer since it was told:
    /// the notice goes before the next frame.
    // Inline: asked for every frame.
    #[inline]
    pub fn loss_due(&self, c: &Counters) -> bool {
        c.drop_kernel_overflow != self.told[Reason::KernelOverflow as usize - 1]
    }

    /// True if anything is owed to the peer: asked after every read.
    // Inline: a few loads where nothing is owed, instead of a call.
    #[inline]
    pub fn owed(&self, c: &Counters) -> bool {
        self.write_failures || self.state.is_some() || self.loss_due(c)
    }

    /// The kernel's drops were reported with a frame received at `us`.
    pub fn kernel_loss_seen(&mut self, us: u64) {
        let since = &mut self.since[Reason::KernelOverflow as usize - 1];
        if *since == 0 {
            *since = if us != 0 { us } else { wall_us() };
        }
    }

    /// A frame from the peer was dropped for `why`.
    pub fn write_failed(&mut self, why: DropReason) {
        self.write_failures = true;
        let since = &mut self.since[reason(why) as usize - 1];
        if *since == 0 {
            *since = wall_us();
        }
    }

    /// The bus changed state at `at_us`.
    pub fn state_changed(&mut self, state: State, at_us: u64) {
        self.state = Some((state, at_us));
    }

    /// Queues what is owed into `tx` while it has room: the kernel's losses
    /// only if `loss_only` (before a frame), else every loss, write failure
    /// and the bus state. What does not fit stays owed.
    pub fn flush<const N: usize>(&mut self, tx: &mut ByteBuf<N>, c: &Counters, loss_only: bool) {
        if loss_only {
            self.tell(tx, c, Reason::KernelOverflow);
            return;
        }
        if self.write_failures || self.loss_due(c) {
            let mut all = true;
            for r in Reason::ALL {
                all &= self.tell(tx, c, r);
            }
            self.write_failures = !all;
        }
        if let Some((state, at)) = self.state {
            if tx.push(&v2::encode_state(state, at)) {
                self.state = None;
            }
        }
    }

    /// Tells the untold losses for `r`; false if there was no room.
    fn tell<const N: usize>(&mut self, tx: &mut ByteBuf<N>, c: &Counters, r: Reason) -> bool {
        let i = r as usize - 1;
        let now = total(c, r);
        if now == self.told[i] {
            return true;
        }
        let since = match self.since[i] {
            0 => wall_us(),
            t => t,
        };
        let prefix = match r {
            Reason::KernelOverflow => v2::PREFIX_LOSS,
            _ => v2::PREFIX_WRITE_FAIL,
        };
        let notice = Notice {
            reason: r,
            count: u32::try_from(now - self.told[i]).unwrap_or(u32::MAX),
            total: now,
            since,
        };
        if !tx.push(&v2::encode_notice(prefix, &notice)) {
            return false;
        }
        self.told[i] = now;
        self.since[i] = 0;
        true
    }

    /// A notice from the peer: kept for SIGUSR1 and logged (losses with a
    /// rate limit; every bus state change).
    pub fn heard(&mut self, peer: Peer, msg: &Message<'_>) {
        match *msg {
            Message::Loss(n) | Message::WriteFail(n) => {
                let i = n.reason as usize - 1;
                self.peer[i] = self.peer[i].max(n.total);
                let Some(s) = self.warn.allow(Instant::now()) else {
                    return;
                };
                let what = if matches!(msg, Message::Loss(_)) {
                    "peer lost frames on their way here"
                } else {
                    "peer's bus did not take our frames"
                };
                log::warn!(
                    "{peer}: {what}: {} {} since {} ({} in all; {s} similar warnings suppressed)",
                    n.count,
                    n.reason.name(),
                    WallTime(n.since),
                    n.total
                );
            }
            Message::State(state, at) => match state {
                State::ErrorActive => {
                    log::info!("{peer}: peer's bus is {state} since {}", WallTime(at))
                }
                _ => log::warn!("{peer}: peer's bus is {state} since {}", WallTime(at)),
            },
            _ => {}
        }
    }

    /// The totals the peer reported, for a counters line.
    pub fn peer_totals(&self) -> PeerTotals<'_> {
        PeerTotals(&self.peer)
    }
}

/// The peer's loss totals as `peer_name=count` pairs.
pub struct PeerTotals<'a>(&'a [u64; REASONS]);

impl fmt::Display for PeerTotals<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names of their own, so a reader of the line (or a script
        // splitting it at `=`) never takes the peer's count for ours.
        let mut sep = "";
        for r in Reason::ALL {
            write!(f, "{sep}peer_{}={}", r.name(), self.0[r as usize - 1])?;
            sep = " ";
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Decoded, HEADER_LEN};

    fn told(tx: &ByteBuf<512>) -> std::vec::Vec<Message<'_>> {
        let mut out = std::vec::Vec::new();
        let mut buf = tx.data();
        while let Ok(Decoded::Complete(m, used)) = v2::decode(buf) {
            out.push(m);
            buf = &buf[used..];
        }
        out
    }

    #[test]
    fn a_kernel_loss_is_told_once_with_its_count_total_and_time() {
        let mut n = Notices::default();
        let mut c = Counters {
            drop_kernel_overflow: 5,
            ..Counters::default()
        };
        n.agreed(&c);
        assert!(!n.loss_due(&c), "losses before agreement are nobody's news");
        c.drop_kernel_overflow = 12;
        assert!(n.loss_due(&c));
        n.kernel_loss_seen(1_000);
        n.kernel_loss_seen(2_000);
        let mut tx = ByteBuf::<512>::new();
        n.flush(&mut tx, &c, true);
        assert!(!n.loss_due(&c));
        let notice = Notice {
            reason: Reason::KernelOverflow,
            count: 7,
            total: 12,
            since: 1_000,
        };
        assert_eq!(told(&tx), [Message::Loss(notice)]);
        n.flush(&mut tx, &c, false);
        assert_eq!(tx.len(), v2::NOTICE_MESSAGE, "told once");
    }

    #[test]
    fn write_failures_are_told_by_reason_and_what_does_not_fit_stays_owed() {
        let mut n = Notices::default();
        let mut c = Counters::default();
        n.agreed(&c);
        for why in [
            DropReason::ReadOnly,
            DropReason::ReadOnly,
            DropReason::Stale,
        ] {
            c.count_drop(why);
            n.write_failed(why);
        }
        let mut small = ByteBuf::<{ v2::NOTICE_MESSAGE }>::new();
        n.flush(&mut small, &c, false);
        assert_eq!(small.len(), v2::NOTICE_MESSAGE, "one fits");
        let mut tx = ByteBuf::<512>::new();
        n.flush(&mut tx, &c, false);
        let m = told(&tx);
        assert_eq!(m.len(), 1, "the other follows when there is room");
        let Message::WriteFail(w) = m[0] else {
            panic!("{m:?}")
        };
        assert_eq!((w.reason, w.count, w.total), (Reason::ReadOnly, 2, 2));
        assert_eq!(small.data()[0], b'w');
        assert_eq!(small.data()[HEADER_LEN], Reason::Stale as u8);
    }

    #[test]
    fn a_state_change_is_told_and_the_latest_wins_while_owed() {
        let mut n = Notices::default();
        n.state_changed(State::BusOff, 10);
        n.state_changed(State::ErrorActive, 20);
        let mut tx = ByteBuf::<512>::new();
        n.flush(&mut tx, &Counters::default(), false);
        assert_eq!(told(&tx), [Message::State(State::ErrorActive, 20)]);
        n.flush(&mut tx, &Counters::default(), false);
        assert_eq!(tx.len(), v2::STATE_MESSAGE);
    }

    #[test]
    fn the_peers_totals_are_kept_for_the_counters_line() {
        let mut n = Notices::default();
        let peer = Peer::from("192.0.2.1:1".parse::<std::net::SocketAddr>().unwrap());
        let loss = Notice {
            reason: Reason::KernelOverflow,
            count: 3,
            total: 9,
            since: 1,
        };
        n.heard(peer, &Message::Loss(loss));
        n.heard(peer, &Message::Loss(Notice { total: 4, ..loss }));
        assert!(n
            .peer_totals()
            .to_string()
            .ends_with("peer_error_frames=0 peer_kernel_overflow=9"));
        assert_eq!(
            WallTime(1_700_000_000_000_042).to_string(),
            "1700000000.000042"
        );
    }
}
