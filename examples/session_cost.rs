//! Host harness for the per-frame cost of protocol versions 1 and 2 (issue
//! 24), for callgrind: a gateway's session queues frames from the bus, a
//! desk's session carries them to a fake virtual interface, with no system
//! call in between. Compare instruction counts of a run with N frames and
//! one with none:
//!
//!   cargo build --release --example session_cost
//!   valgrind --tool=callgrind target/release/examples/session_cost VERSION N
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tcpcan::device::{CanSink, CanTx};
use tcpcan::pace::Pacing;
use tcpcan::protocol::Protocol;
use tcpcan::session::{Role, Session, SessionConfig};
use tcpcan::time::Stamp;
use tcpcan::wire;

/// A vcan that takes every frame.
struct Vcan(u64);

impl CanSink for Vcan {
    fn send(&mut self, frame: &[u8]) -> CanTx {
        self.0 += u64::from(frame[0]);
        CanTx::Sent
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

/// Frames per TCP read and per bus read: about what 5 kfps brings per
/// wake-up.
const PER_READ: usize = 5;

fn feed(s: &mut Session, bytes: &[u8]) {
    let spare = s.rx_spare();
    spare[..bytes.len()].copy_from_slice(bytes);
    s.rx_filled(bytes.len());
}

fn main() {
    let mut args = std::env::args().skip(1);
    let version: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let frames: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cfg = SessionConfig {
        read_only: false,
        error_frames: false,
        tx_timeout: Duration::from_millis(100),
        handshake_timeout: Duration::from_secs(10),
        pacing: Pacing::Learned,
        protocol: version,
    };
    let peer: SocketAddr = "127.0.0.1:20000".parse().unwrap();
    let t = Instant::now();
    let mut bus = Vcan(0);
    let mut gateway = Session::new(peer, Role::Server, cfg, t);
    let mut desk = Session::new(peer, Role::Client, cfg, t);
    // Negotiation: the desk proposes, the gateway answers.
    let hello = desk.tx_pending().to_vec();
    desk.tx_sent(hello.len());
    feed(&mut gateway, &hello);
    gateway.process(t, &mut bus).unwrap();
    let ack = gateway.tx_pending().to_vec();
    gateway.tx_sent(ack.len());
    feed(&mut desk, &ack);
    desk.process(t, &mut bus).unwrap();
    assert_eq!(desk.agreed_version(), Some(version));

    let mut frame = [0u8; wire::CAN_MTU];
    frame[0] = 0x23;
    frame[4] = 8;
    let mut out = Vec::with_capacity(4096);
    for i in 0..frames {
        frame[8] = i as u8;
        let stamp = Stamp::kernel(1_700_000_000 + (i / 1000) as i64, (i % 1000) as u32);
        assert!(gateway.queue_frame(black_box(&frame), stamp));
        if i % PER_READ == PER_READ - 1 || i + 1 == frames {
            out.clear();
            out.extend_from_slice(gateway.tx_pending());
            gateway.tx_sent(out.len());
            feed(&mut desk, black_box(&out));
            desk.rx_arrived(t);
            desk.process(t, &mut bus).unwrap();
        }
    }
    println!("version {version}: {frames} frames, checksum {}", bus.0);
}
