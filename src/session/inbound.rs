//! From TCP to the bus: each message decoded once into a [`Head`], frames
//! collected into runs that go out with one call, and what the bus did not
//! take waited for or counted.

use super::*;

/// Where one frame message of a run ends, and how long its frame is (a
/// version 2 `t` carries its stamps behind the frame).
type RunEnd = (usize, usize);

/// The frame inside each frame message of a run whose messages end at
/// `ends` (offsets from the start of the run).
fn run_frames(ends: &[RunEnd]) -> impl Iterator<Item = core::ops::Range<usize>> + '_ {
    let starts = core::iter::once(0).chain(ends.iter().map(|e| e.0));
    starts
        .zip(ends)
        .map(|(start, &(_, len))| start + HEADER_LEN..start + HEADER_LEN + len)
}

/// Converts each frame of a run between wire and host layout.
fn swap_run(data: &mut [u8], ends: &[RunEnd]) {
    for frame in run_frames(ends) {
        wire::swap_layout(&mut data[frame]);
    }
}

/// `--log` lines for the frames of a run the bus took: at the peer's bus
/// time where a version 2 `t` carries it, else at ours now.
fn log_received(log: &mut LogLines, data: &[u8], ends: &[RunEnd]) {
    for frame in run_frames(ends) {
        let stamp = match data[frame.start - HEADER_LEN] {
            v2::PREFIX_STAMPED => data.get(frame.end..frame.end + v2::KERNEL_STAMP_LEN),
            _ => None,
        };
        let us = match stamp {
            Some(b) => u64::from_be_bytes(b.try_into().unwrap_or_default()),
            None => wall_us(),
        };
        log.frame(us, &data[frame], false);
    }
}

/// Decodes with the agreed version's decoder (version 1's until agreement).
// Inline: once per message, and the branch is the same for a connection.
#[inline]
fn decode(buf: &[u8], v2: bool) -> Result<Decoded<'_>, wire::WireError> {
    if v2 {
        v2::decode(buf)
    } else {
        wire::decode(buf)
    }
}

/// What becomes of one frame from TCP before the bus is asked.
#[derive(Clone, Copy)]
pub(super) enum Verdict {
    /// Hand it to the bus.
    Send,
    /// Count it and drop it, with the decoder's detail if it is malformed.
    Drop(DropReason, Option<FrameError>),
}

/// The message at the head of the buffer, decoded once: what it asks for,
/// without holding on to the buffer.
#[derive(Clone, Copy)]
pub(super) enum Head {
    /// No complete message yet.
    Partial,
    /// A version message of this many bytes.
    Version(u32, usize),
    /// A frame message (`d`, or version 2's `t`) of this many bytes, what
    /// becomes of its frame, and the frame's length.
    Frame(Verdict, usize, usize),
    /// A notice from a version 2 peer (it borrows nothing) of this many
    /// bytes.
    Notice(Message<'static>, usize),
}

/// Where each frame message of a run ends (offsets from the buffer's
/// start), with its frame's length: the frames that go to the bus with one
/// call.
type Run = heapless::Vec<RunEnd, CAN_BATCH>;

/// What became of a run offered to the bus.
enum Sent {
    /// The bus took all of it.
    All,
    /// The bus took part of it, and the first frame it did not take was
    /// counted and dropped.
    Short,
    /// The first frame the bus did not take must wait: wake the session so.
    Wait(Wake),
}

impl SessionConfig {
    /// Decides whether `frame` (wire layout) may go to a bus that is
    /// virtual or not.
    fn verdict(&self, frame: &[u8], is_virtual: bool) -> Verdict {
        match wire::check_frame(frame) {
            Err(FrameError::ErrorFrame)
                if self.error_frames && frame.len() == wire::CAN_MTU && is_virtual =>
            {
                if self.read_only {
                    Verdict::Drop(DropReason::ReadOnly, None)
                } else {
                    Verdict::Send
                }
            }
            Err(FrameError::ErrorFrame) => Verdict::Drop(DropReason::ErrorFrame, None),
            Err(e) => Verdict::Drop(DropReason::Invalid, Some(e)),
            Ok(_) if self.read_only => Verdict::Drop(DropReason::ReadOnly, None),
            Ok(_) => Verdict::Send,
        }
    }
}

impl Session {
    /// Decodes the message `at` bytes into the buffer.
    // Inline always: the hot loop's every message, and a call returns its
    // result through memory (measured: left to the compiler, version 2's
    // larger session made it a call, +45 instructions a frame at a desk).
    #[inline(always)]
    pub(super) fn head(&self, at: usize, is_virtual: bool) -> Result<Head, Close> {
        let buf = &self.io.rx.data()[at..];
        match self.frame_at(buf, is_virtual) {
            Some((verdict, used, len)) => Ok(Head::Frame(verdict, used, len)),
            None => self.other_head(buf, is_virtual),
        }
    }

    /// The agreed version's frame message at the start of `buf`, read from
    /// its header alone: what becomes of its frame, the message's length
    /// and the frame's.
    #[inline(always)]
    fn frame_at(&self, buf: &[u8], is_virtual: bool) -> Option<(Verdict, usize, usize)> {
        let (len, used) = wire::frame_message(buf, self.frames)?;
        let frame = &buf[HEADER_LEN..HEADER_LEN + len];
        Some((self.cfg.verdict(frame, is_virtual), used, len))
    }

    /// Any message at the start of `buf` but the agreed version's frame
    /// message: none yet, or what the agreed version's decoder says.
    #[inline(always)]
    fn other_head(&self, buf: &[u8], is_virtual: bool) -> Result<Head, Close> {
        // The end of every pass: no call into the decoder for it.
        if buf.is_empty() {
            return Ok(Head::Partial);
        }
        self.decode_head(buf, is_virtual)
    }

    /// Any other message at the start of `buf`, by the agreed version's
    /// decoder.
    // Never inline: rare (a version, a notice, the cut message a read ended
    // in, a frame of a length no frame has); [`head`], inlined everywhere,
    // stays small.
    #[inline(never)]
    fn decode_head(&self, buf: &[u8], is_virtual: bool) -> Result<Head, Close> {
        let frame = |frame: &[u8], used| {
            Head::Frame(self.cfg.verdict(frame, is_virtual), used, frame.len())
        };
        Ok(match decode(buf, self.v2)? {
            Decoded::Partial => Head::Partial,
            Decoded::Complete(Message::Version(v), used) => Head::Version(v, used),
            Decoded::Complete(Message::Data(f) | Message::Stamped(f, _), used) => frame(f, used),
            Decoded::Complete(Message::Loss(n), used) => Head::Notice(Message::Loss(n), used),
            Decoded::Complete(Message::WriteFail(n), used) => {
                Head::Notice(Message::WriteFail(n), used)
            }
            Decoded::Complete(Message::State(s, at), used) => {
                Head::Notice(Message::State(s, at), used)
            }
        })
    }
    /// The one way from TCP to the bus: writes the run that the head frame
    /// (`head`: its message's bytes and its frame's, decoded and to be
    /// sent) starts, as many frames as a
    /// replay's pace allows. Returns the message that follows, decoded, or
    /// `None` if the session parked because a frame must wait.
    pub(super) fn deliver(
        &mut self,
        clock: &impl Clock,
        head: RunEnd,
        can: &mut dyn CanSink,
        was_parked: Option<Wake>,
    ) -> Result<Option<Head>, Close> {
        let is_virtual = can.is_virtual();
        // Waiting for its turn is not waiting for the bus: `busy_since`
        // (and so --tx-timeout) is left alone.
        let limit = match self.pacer.limit(clock) {
            Ok(n) => n,
            Err(t) => return Ok(self.park(Wake::At(t))),
        };
        // Filled in place: a run returned by value is copied, 264 bytes on
        // every pass (measured: a sixth more instructions per frame).
        let mut run = Run::new();
        let next = self.collect(&mut run, head, limit, is_virtual);
        match self.send_run(clock, &run, can, was_parked) {
            Sent::All => next.unwrap_or_else(|| self.head(0, is_virtual)).map(Some),
            Sent::Short => self.head(0, is_virtual).map(Some),
            Sent::Wait(wake) => Ok(self.park(wake)),
        }
    }

    fn park(&mut self, wake: Wake) -> Option<Head> {
        self.parked = Some(wake);
        None
    }

    /// Collects a run: the head frame (`head`) and the frames right
    /// behind it that may go too, up to [`CAN_BATCH`] and `limit`, so a
    /// read costs one system call instead of one per frame. Each message is
    /// decoded once: the one that ended the run is returned, unless the run
    /// ended full.
    fn collect(
        &self,
        run: &mut Run,
        (used, len): RunEnd,
        limit: usize,
        is_virtual: bool,
    ) -> Option<Result<Head, Close>> {
        let mut at = used;
        let _ = run.push((at, len));
        while !run.is_full() && run.len() < limit {
            // No Head for the frames that join the run: built, it goes
            // through memory (measured: 25 instructions a frame).
            let buf = &self.io.rx.data()[at..];
            match self.frame_at(buf, is_virtual) {
                Some((Verdict::Send, used, len)) => {
                    at += used;
                    let _ = run.push((at, len));
                }
                // Taken up from the buffer's start once the run is gone.
                Some((drop, used, len)) => return Some(Ok(Head::Frame(drop, used, len))),
                None => return Some(self.other_head(buf, is_virtual)),
            }
        }
        None
    }

    /// Writes a run with one call (`sendmmsg` on a real socket) and
    /// accounts for what the bus took and for the first frame it did not.
    fn send_run(
        &mut self,
        clock: &impl Clock,
        run: &[RunEnd],
        can: &mut dyn CanSink,
        was_parked: Option<Wake>,
    ) -> Sent {
        // The bus takes host layout; the buffer keeps wire layout for the
        // log lines and for a frame that must be tried again.
        swap_run(self.io.rx.data_mut(), run);
        let (sent, result) = {
            let data = self.io.rx.data();
            let mut frames: heapless::Vec<&[u8], CAN_BATCH> = heapless::Vec::new();
            for frame in run_frames(run) {
                let _ = frames.push(&data[frame]);
            }
            can.send_batch(&frames)
        };
        swap_run(self.io.rx.data_mut(), run);
        let sent = sent.min(run.len());
        if sent > 0 {
            if log::log_enabled!(log::Level::Trace) {
                for frame in run_frames(&run[..sent]) {
                    let text = FrameText(&self.io.rx.data()[frame]);
                    log::trace!("{}: tcp->can {text}", self.peer);
                }
            }
            if let Some(log) = self.log.as_deref_mut() {
                log_received(log, self.io.rx.data(), &run[..sent]);
            }
            self.io.rx.consume(run[sent - 1].0);
            self.io.counters.to_can += sent as u64;
            self.io.bus_moved();
            self.pacer.released(clock, sent);
        }
        if sent == run.len() {
            return Sent::All;
        }
        // The frame now at the head is the one the bus did not take. A sink
        // that stopped short without a reason breaks its contract; waiting
        // is the answer that can never spin.
        let result = if result == CanTx::Sent {
            CanTx::Busy
        } else {
            result
        };
        let (end, len) = run[sent];
        let used = end - if sent > 0 { run[sent - 1].0 } else { 0 };
        match self.after_send(clock, len, result, was_parked) {
            Some(wake) => Sent::Wait(wake),
            None => {
                self.io.rx.consume(used);
                Sent::Short
            }
        }
    }

    /// Handles the head frame (`len` bytes) the bus did not take; `Some` if
    /// it must wait, else it was counted as dropped.
    fn after_send(
        &mut self,
        clock: &impl Clock,
        len: usize,
        result: CanTx,
        was_parked: Option<Wake>,
    ) -> Option<Wake> {
        let why = match result {
            CanTx::Sent => return None,
            CanTx::Refused => DropReason::Refused,
            CanTx::Down => DropReason::BusDown,
            CanTx::Busy => {
                let now = clock.now();
                if self.io.may_wait(now, self.cfg.tx_timeout) {
                    // Woken by POLLOUT yet still full: the full queue is not
                    // our socket's (a qdisc, another writer), so poll cannot
                    // tell us when it drains. Fall back to a short timer.
                    return Some(match was_parked {
                        Some(_) => Wake::At(now + ENOBUFS_RETRY),
                        None => Wake::CanWritable,
                    });
                }
                DropReason::Stale
            }
        };
        self.drop_frame(clock, why, len, None);
        None
    }

    /// Counts and drops the head frame (`len` bytes), telling a version 2
    /// peer.
    pub(super) fn drop_frame(
        &mut self,
        clock: &impl Clock,
        why: DropReason,
        len: usize,
        detail: Option<FrameError>,
    ) {
        self.io.counters.count_drop(why);
        if self.v2 {
            self.notices.write_failed(why);
        }
        if let Some(suppressed) = self.warn.allow(clock.now()) {
            let frame = &self.io.rx.data()[HEADER_LEN..HEADER_LEN + len];
            let peer = self.peer;
            match detail {
                Some(e) => log::warn!(
                    "{peer}: dropped frame from TCP: {e} ({suppressed} similar warnings suppressed)"
                ),
                None => log::warn!(
                    "{peer}: dropped frame {} from TCP: {} ({suppressed} similar warnings suppressed)",
                    FrameText(frame),
                    why.name()
                ),
            }
        }
    }
}
