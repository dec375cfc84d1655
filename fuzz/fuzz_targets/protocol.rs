//! Fuzzes the protocol core as the event loop drives it: the streaming
//! decoder over arbitrary bytes, and a session fed arbitrary TCP reads, bus
//! answers, timer ticks, frames from CAN and partial TCP sends.
//!
//! Input: byte 0 picks the role, `--read-only` and whether the bus is
//! virtual (then the desk pacer, src/pace.rs, takes part, and opcode 0x7F
//! is a read that fills all the space offered with a pattern, as a backlog
//! does); then a
//! program of operations, one opcode byte each, taking their operands from
//! the bytes that follow. A session error ends the program, as it ends the
//! connection.
//!
//! Besides "no panic", it checks: the decoder's answer fits the bytes; the
//! bus is only handed valid frames, and never with `--read-only`; `to_can`
//! counts exactly the frames the bus took (paced or not); the TX buffer
//! never exceeds its capacity; everything emitted towards TCP is a well-formed stream of `v`
//! and `d` messages that begins with a version.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use argh::FromArgs;
use libfuzzer_sys::fuzz_target;

mod drive;
use drive::{bus_frame, check_step, peer_takes, take, tcp_read};
use tcpcan::cli::{Args, Config};
use tcpcan::device::{CanSink, CanTx};
use tcpcan::limits::TX_BUF;
use tcpcan::protocol::{Protocol, Timer};
use tcpcan::session::{Role, Session};
use tcpcan::time::Stamp;
use tcpcan::wire::{self, Decoded, Message, CANFD_MTU, CAN_MTU, HEADER_LEN};

/// A bus whose answers follow a mode the program sets.
struct FakeBus {
    mode: u8,
    calls: u64,
    taken: u64,
    virtual_bus: bool,
}

impl CanSink for FakeBus {
    fn send(&mut self, frame: &[u8]) -> CanTx {
        assert!(
            wire::check_frame(frame).is_ok(),
            "an invalid frame reached the bus: {frame:02x?}"
        );
        self.calls += 1;
        let r = match self.mode % 6 {
            0 => CanTx::Sent,
            1 => CanTx::Busy,
            2 => CanTx::Refused,
            3 => CanTx::Down,
            4 if self.calls % 2 == 0 => CanTx::Busy,
            5 if self.calls % 3 != 0 => CanTx::Busy,
            _ => CanTx::Sent,
        };
        if r == CanTx::Sent {
            self.taken += 1;
        }
        r
    }

    fn is_virtual(&self) -> bool {
        self.virtual_bus
    }
}

/// The decoder's answer must be consistent with the bytes it was given.
fn check_decoder(mut buf: &[u8]) {
    loop {
        match wire::decode(buf) {
            Ok(Decoded::Complete(msg, used)) => {
                assert!(used >= HEADER_LEN && used <= buf.len());
                assert_eq!(used, HEADER_LEN + usize::from(buf[1]));
                match msg {
                    Message::Version(v) => {
                        assert_eq!(buf[0], b'v');
                        assert_eq!(&wire::encode_version(v)[..], &buf[..used]);
                    }
                    Message::Data(d) => {
                        assert_eq!(buf[0], b'd');
                        assert_eq!(d, &buf[HEADER_LEN..used]);
                    }
                }
                buf = &buf[used..];
            }
            Ok(Decoded::Partial) => {
                assert!(buf.len() < HEADER_LEN || buf.len() < HEADER_LEN + usize::from(buf[1]));
                return;
            }
            Err(_) => {
                assert!(buf[0] != b'd');
                return;
            }
        }
    }
}

/// Everything emitted towards TCP: versions and whole frames only.
fn check_emitted(mut out: &[u8]) {
    let mut first = true;
    loop {
        match wire::decode(out) {
            Ok(Decoded::Complete(msg, used)) => {
                match msg {
                    Message::Version(v) => assert_eq!(v, 1, "we only ever speak version 1"),
                    Message::Data(d) => {
                        assert!(!first, "data sent before any version message");
                        assert!(d.len() == CAN_MTU || d.len() == CANFD_MTU);
                    }
                }
                first = false;
                out = &out[used..];
            }
            Ok(Decoded::Partial) => return,
            Err(e) => panic!("emitted an undecodable stream: {e}"),
        }
    }
}

fn config(read_only: bool) -> Config {
    let mut flags = vec!["--tx-timeout", "100", "--handshake-timeout", "5"];
    if read_only {
        flags.push("--read-only");
    }
    flags.push("vcan0");
    let args = Args::from_args(&["tcpcan"], &flags).expect("valid flags");
    Config::from_args(args).expect("valid config")
}

/// Both configurations, parsed once rather than per input.
fn configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| [config(false), config(true)])
}

fuzz_target!(|input: &[u8]| {
    check_decoder(input);

    let Some((&setup, mut prog)) = input.split_first() else {
        return;
    };
    let role = if setup & 1 != 0 {
        Role::Client
    } else {
        Role::Server
    };
    let read_only = setup & 2 != 0;
    let virtual_bus = setup & 4 != 0;
    let cfg = &configs()[usize::from(read_only)];
    let peer: SocketAddr = "192.0.2.1:20010".parse().unwrap();
    let mut now = Instant::now();
    let mut session = Session::new(peer, role, cfg.session, now);
    let mut bus = FakeBus {
        mode: 0,
        calls: 0,
        taken: 0,
        virtual_bus,
    };
    let mut emitted = Vec::new();

    while let Some((&op, rest)) = prog.split_first() {
        prog = rest;
        let result = match op {
            // A virtual bus's backlog: a read that fills all the space
            // offered with a pattern over and over (a length byte, then
            // 1..=256 bytes).
            0x7F if virtual_bus => {
                let len = take(&mut prog, 1)
                    .first()
                    .map_or(0, |&l| usize::from(l) + 1);
                let bytes = take(&mut prog, len);
                let spare = session.rx_spare();
                let n = if bytes.is_empty() { 0 } else { spare.len() };
                for (i, b) in spare.iter_mut().enumerate().take(n) {
                    *b = bytes[i % bytes.len()];
                }
                session.rx_filled(n);
                session.process(now, &mut bus).map(|_| ())
            }
            // A TCP read of 1..=128 bytes.
            0x00..=0x7F => {
                tcp_read(&mut session, take(&mut prog, usize::from(op) + 1));
                session.process(now, &mut bus).map(|_| ())
            }
            // The bus changes how it answers.
            0x80..=0x9F => {
                bus.mode = op & 0x1F;
                Ok(())
            }
            // Time passes; a parked frame (or a replay's next frames) may be due.
            0xA0..=0xBF => {
                now += Duration::from_millis(u64::from(op & 0x1F) * 20);
                match session.on_timer(now) {
                    Timer::RetryParked | Timer::ReplayDue => {
                        session.process(now, &mut bus).map(|_| ())
                    }
                    Timer::Idle | Timer::Stats => Ok(()),
                    Timer::Close(e) => Err(e),
                }
            }
            // A frame read from CAN, classic or FD.
            0xC0..=0xDF => {
                let (frame, size) = bus_frame(&mut prog, op);
                if session.tx_has_room() {
                    assert!(session.queue_frame(&frame[..size], Stamp::default()));
                }
                Ok(())
            }
            // The TCP peer takes some of what is queued for it.
            0xE0..=0xFF => {
                peer_takes(&mut session, op, &mut emitted);
                Ok(())
            }
        };
        check_step(&mut session, (bus.taken, bus.calls), read_only, TX_BUF);
        if result.is_err() {
            break;
        }
    }
    emitted.extend_from_slice(session.tx_pending());
    check_emitted(&emitted);
});
