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
//! Byte 0's bit 3 pins `--protocol 1`; without it a server agrees on
//! version 2 when the program's client side proposes it, and the TCP reads
//! may then carry version 2's messages.
//!
//! Besides "no panic", it checks: both decoders' answers fit the bytes (a
//! version 2 message decoded encodes back to the same bytes); the
//! bus is only handed valid frames, and never with `--read-only`; `to_can`
//! counts exactly the frames the bus took (paced or not); the TX buffer
//! never exceeds its capacity; everything emitted towards TCP is a
//! well-formed stream that begins with a version: `v` and `d` only, unless
//! version 2 was agreed.
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
use tcpcan::wire::{self, v2, Decoded, Message, CANFD_MTU, CAN_MTU, HEADER_LEN};

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
                    other => panic!("version 1 decoded a version 2 message: {other:?}"),
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

/// Version 2's decoder: what it decodes encodes back to the same bytes.
fn check_decoder_v2(mut buf: &[u8]) {
    loop {
        match v2::decode(buf) {
            Ok(Decoded::Complete(msg, used)) => {
                assert_eq!(used, HEADER_LEN + usize::from(buf[1]));
                let whole = &buf[..used];
                match msg {
                    Message::Version(_) | Message::Data(_) => {
                        assert_eq!(wire::decode(whole), Ok(Decoded::Complete(msg, used)))
                    }
                    Message::Stamped(frame, times) => {
                        let mut m = v2::stamped_header(frame.len(), times.hw_ns.is_some()).to_vec();
                        m.extend(frame);
                        m.extend(v2::stamp_bytes(times.kernel_us));
                        m.extend(times.hw_ns.map(v2::stamp_bytes).unwrap_or_default());
                        assert_eq!(m, whole);
                    }
                    Message::Loss(n) => assert_eq!(v2::encode_notice(b'l', &n), whole),
                    Message::WriteFail(n) => assert_eq!(v2::encode_notice(b'w', &n), whole),
                    Message::State(st, at) => assert_eq!(v2::encode_state(st, at), whole),
                }
                buf = &buf[used..];
            }
            Ok(Decoded::Partial) => {
                assert!(buf.len() < HEADER_LEN || buf.len() < HEADER_LEN + usize::from(buf[1]));
                return;
            }
            Err(_) => return,
        }
    }
}

/// Everything emitted towards TCP: versions, whole frames and (after
/// version 2 is agreed) its notices.
fn check_emitted(mut out: &[u8]) {
    let mut first = true;
    let mut version = 0;
    loop {
        let decoded = match version {
            2 => v2::decode(out),
            _ => wire::decode(out),
        };
        match decoded {
            Ok(Decoded::Complete(msg, used)) => {
                match msg {
                    Message::Version(v) => {
                        assert!(v == 1 || v == 2, "we only speak versions 1 and 2");
                        // What we send last before data is what was agreed.
                        version = v;
                    }
                    Message::Data(d) | Message::Stamped(d, _) => {
                        assert!(!first, "data sent before any version message");
                        assert!(d.len() == CAN_MTU || d.len() == CANFD_MTU);
                    }
                    _ => assert!(!first, "a notice before any version message"),
                }
                first = false;
                out = &out[used..];
            }
            Ok(Decoded::Partial) => return,
            Err(e) => panic!("emitted an undecodable stream: {e}"),
        }
    }
}

fn config(read_only: bool, pinned: bool) -> Config {
    let mut flags = vec!["--tx-timeout", "100", "--handshake-timeout", "5"];
    if read_only {
        flags.push("--read-only");
    }
    if pinned {
        flags.extend(["--protocol", "1"]);
    }
    flags.push("vcan0");
    let args = Args::from_args(&["tcpcan"], &flags).expect("valid flags");
    Config::from_args(args).expect("valid config")
}

/// Every configuration, parsed once rather than per input.
fn configs() -> &'static [Config; 4] {
    static CONFIGS: OnceLock<[Config; 4]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [
            config(false, false),
            config(true, false),
            config(false, true),
            config(true, true),
        ]
    })
}

fuzz_target!(|input: &[u8]| {
    check_decoder(input);
    check_decoder_v2(input);

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
    let pinned = setup & 8 != 0;
    let cfg = &configs()[usize::from(read_only) + 2 * usize::from(pinned)];
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
                    // Odd ops: a receive with a hardware stamp too.
                    let stamp = Stamp {
                        hw_ns: u64::from(op & 1) * (u64::from(op) << 20),
                        ..Stamp::kernel(i64::from(op), 0)
                    };
                    assert!(session.queue_frame(&frame[..size], stamp));
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
