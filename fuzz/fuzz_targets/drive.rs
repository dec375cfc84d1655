//! What both fuzz targets do to a session of either protocol, as its
//! connection would: read TCP into it, let the peer take part of its
//! output, and check after each step what must always hold.

use tcpcan::protocol::Protocol;
use tcpcan::wire::{CANFD_MTU, CAN_MTU};

/// The next `n` bytes of the program (fewer at its end).
pub fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(n.min(data.len()));
    *data = rest;
    head
}

/// A frame read from the bus, its bytes the program's next: classic when
/// `op` is even, FD when odd. Returns the buffer and the frame's size.
pub fn bus_frame(prog: &mut &[u8], op: u8) -> ([u8; CANFD_MTU], usize) {
    let size = if op & 1 == 0 { CAN_MTU } else { CANFD_MTU };
    let mut frame = [0u8; CANFD_MTU];
    let bytes = take(prog, size);
    frame[..bytes.len()].copy_from_slice(bytes);
    (frame, size)
}

/// A TCP read bringing `bytes`, as much of them as the session has room for.
pub fn tcp_read(s: &mut impl Protocol, bytes: &[u8]) {
    let spare = s.rx_spare();
    let n = bytes.len().min(spare.len());
    spare[..n].copy_from_slice(&bytes[..n]);
    s.rx_filled(n);
}

/// The peer takes up to `op`'s share of what is queued for it, into `emitted`.
pub fn peer_takes(s: &mut impl Protocol, op: u8, emitted: &mut Vec<u8>) {
    let n = s.tx_pending().len().min(usize::from(op & 0x1F) * 16 + 1);
    emitted.extend_from_slice(&s.tx_pending()[..n]);
    s.tx_sent(n);
}

/// What holds after every step: the bus took exactly what `to_can` counts,
/// `--read-only` never reached it, the output stays within `tx_cap`, and a
/// parked session takes no input.
pub fn check_step(
    s: &mut impl Protocol,
    (taken, calls): (u64, u64),
    read_only: bool,
    tx_cap: usize,
) {
    assert_eq!(
        s.counters().to_can,
        taken,
        "to_can differs from what the bus took"
    );
    assert!(s.tx_pending().len() <= tx_cap);
    if read_only {
        assert_eq!(calls, 0, "--read-only wrote to the bus");
    }
    if s.parked().is_some() {
        assert!(s.rx_spare().is_empty(), "reading TCP while parked");
    }
}
