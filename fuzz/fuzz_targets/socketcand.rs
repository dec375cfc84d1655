//! Fuzzes socketcand's protocol core as the event loop drives it: the line
//! cutter and parser over arbitrary bytes, and a session fed arbitrary TCP
//! reads, bus answers, timer ticks, frames from the bus and from the BCM,
//! and partial TCP sends.
//!
//! Input: byte 0 sets `--read-only` and `--error-frames`; then a program of
//! operations, one opcode byte each, taking their operands from the bytes
//! that follow. A session error ends the program, as it ends the
//! connection.
//!
//! Besides "no panic", it checks: `next_line` answers within the bytes it
//! was given; the bus is only handed classic frames that obey its rules
//! (DLC at most 8, a standard ID within 11 bits), and never with
//! `--read-only`; `to_can` counts exactly the frames the bus took; a job is
//! never asked of the BCM in control mode; the output never exceeds its
//! capacity; everything sent towards TCP is a run of `< … >` lines of
//! printable ASCII, starting with `< hi >`.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;

mod drive;
use drive::{bus_frame, check_step, peer_takes, take, tcp_read};
use tcpcan::device::{CanSink, CanTx, CyclicSink};
use tcpcan::filter::Filters;
use tcpcan::limits::SCD_TX_BUF;
use tcpcan::protocol::{Protocol, Timer};
use tcpcan::socketcand::session::{Mode, ScdConfig, ScdSession};
use tcpcan::socketcand::{next_line, parse};
use tcpcan::time::Stamp;
use tcpcan::wire::{HostFrame, CAN_EFF_FLAG, CAN_MTU};

/// Identifier bits of a standard and of an extended ID (`linux/can.h`).
const CAN_SFF_MASK: u32 = 0x7FF;
const CAN_EFF_MASK: u32 = 0x1FFF_FFFF;

/// A bus whose answers follow a mode the program sets.
struct FakeBus {
    mode: u8,
    taken: u64,
    calls: u64,
}

/// Checks a frame the session built for the bus (or the BCM).
fn check_frame(frame: &[u8]) {
    assert_eq!(frame.len(), CAN_MTU, "only classic frames");
    let f = HostFrame::new_unchecked(frame);
    assert!(f.len() <= 8, "DLC above 8 reached the bus: {frame:02x?}");
    let id = f.can_id();
    if id & CAN_EFF_FLAG == 0 {
        assert!(id & CAN_EFF_MASK <= CAN_SFF_MASK, "standard ID above 7FF");
    }
}

impl CanSink for FakeBus {
    fn send(&mut self, frame: &[u8]) -> CanTx {
        check_frame(frame);
        self.calls += 1;
        let r = match self.mode % 5 {
            0 => CanTx::Sent,
            1 => CanTx::Busy,
            2 => CanTx::Refused,
            3 => CanTx::Down,
            _ if self.calls % 2 == 0 => CanTx::Busy,
            _ => CanTx::Sent,
        };
        if r == CanTx::Sent {
            self.taken += 1;
        }
        r
    }
}

/// A broadcast manager that takes every job, and counts them.
#[derive(Default)]
struct FakeBcm {
    jobs: u64,
    refuse: bool,
}

impl FakeBcm {
    fn answer(&mut self) -> std::io::Result<()> {
        self.jobs += 1;
        match self.refuse {
            true => Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)),
            false => Ok(()),
        }
    }
}

impl CyclicSink for FakeBcm {
    fn setup(&mut self, frame: &[u8], _interval: Option<Duration>) -> std::io::Result<()> {
        check_frame(frame);
        self.answer()
    }

    fn delete(&mut self, _can_id: u32) -> std::io::Result<()> {
        self.answer()
    }

    fn rx_setup(
        &mut self,
        _id: u32,
        _throttle: Duration,
        mask: Option<&[u8]>,
    ) -> std::io::Result<()> {
        if let Some(m) = mask {
            check_frame(m);
        }
        self.answer()
    }

    fn rx_delete(&mut self, _can_id: u32) -> std::io::Result<()> {
        self.answer()
    }

    fn end_all(&mut self) {}
}

/// Everything sent towards TCP: `< … >` lines of printable ASCII, the
/// first one the greeting.
fn check_emitted(out: &[u8]) {
    assert!(out.starts_with(b"< hi >"), "no greeting first");
    let mut rest = out;
    while !rest.is_empty() {
        assert_eq!(
            rest[0],
            b'<',
            "output outside a line: {:?}",
            String::from_utf8_lossy(rest)
        );
        let end = rest
            .iter()
            .position(|&b| b == b'>')
            .expect("an unterminated line");
        assert!(rest[..end]
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' '));
        rest = &rest[end + 1..];
    }
}

fuzz_target!(|data: &[u8]| {
    // The cutter and parser alone, over the whole input.
    if let Ok(Some((text, used))) = next_line(data) {
        assert!(used <= data.len() && text.len() < used);
        let _ = parse(text);
    }

    let Some((&setup, mut prog)) = data.split_first() else {
        return;
    };
    let cfg = ScdConfig {
        read_only: setup & 1 != 0,
        error_frames: setup & 2 != 0,
        tx_timeout: Duration::from_millis(100),
        filters: Filters::All,
        bus: "vcan0".into(),
    };
    let read_only = cfg.read_only;
    let peer: SocketAddr = "192.0.2.1:29536".parse().unwrap();
    let mut now = Instant::now();
    let mut s = ScdSession::new(peer, cfg);
    let mut bus = FakeBus {
        mode: 0,
        taken: 0,
        calls: 0,
    };
    let mut bcm = FakeBcm::default();
    let mut emitted = Vec::new();

    while let Some((&op, rest)) = prog.split_first() {
        prog = rest;
        let jobs_before = bcm.jobs;
        let mode_before = s.mode();
        let result = match op {
            // A TCP read of 1..=128 bytes.
            0x00..=0x7F => {
                tcp_read(&mut s, take(&mut prog, usize::from(op) + 1));
                s.process(now, &mut bus, &mut bcm).map(|_| ())
            }
            // The bus (and the BCM) change how they answer.
            0x80..=0x9F => {
                bus.mode = op & 0x0F;
                bcm.refuse = op & 0x10 != 0;
                Ok(())
            }
            // Time passes; a parked frame or statistics may be due.
            0xA0..=0xBF => {
                now += Duration::from_millis(u64::from(op & 0x1F) * 20);
                match s.on_timer(now) {
                    Timer::RetryParked | Timer::ReplayDue => {
                        s.process(now, &mut bus, &mut bcm).map(|_| ())
                    }
                    Timer::Stats => {
                        s.queue_stats([1, 2, 3, u64::MAX]);
                        Ok(())
                    }
                    Timer::Idle => Ok(()),
                    Timer::Close(e) => Err(e),
                }
            }
            // A frame read from the bus (classic or FD), or passed back by
            // the BCM (classic), while there is room for it.
            0xC0..=0xDF => {
                let (frame, size) = bus_frame(&mut prog, op);
                let stamp = Stamp::kernel(i64::from(op), 999_999);
                if s.tx_has_room() {
                    if op & 2 == 0 {
                        assert!(s.queue_frame(&frame[..size], stamp));
                    } else {
                        assert!(s.queue_subscribed(&frame[..CAN_MTU], stamp));
                    }
                }
                Ok(())
            }
            // The TCP peer takes some of what is queued for it.
            0xE0..=0xFF => {
                peer_takes(&mut s, op, &mut emitted);
                Ok(())
            }
        };
        check_step(&mut s, (bus.taken, bus.calls), read_only, SCD_TX_BUF);
        if mode_before == Mode::Control && s.mode() == Mode::Control {
            assert_eq!(bcm.jobs, jobs_before, "a BCM job asked in control mode");
        }
        if result.is_err() {
            break;
        }
    }
    emitted.extend_from_slice(s.tx_pending());
    check_emitted(&emitted);
});
