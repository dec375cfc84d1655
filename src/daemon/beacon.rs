//! Who hears that the gateway serves socketcand? `--beacon`: every
//! [`BEACON_INTERVAL`] one UDP broadcast per subnet of the socketcand
//! listener, so python-can's `detect_beacon()` finds it. Interfaces are
//! looked up at each beacon, so an address that comes late (DHCP) is used.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Instant;

use super::time::Now;
use crate::limits::{BEACON_INTERVAL, MAX_BEACON_IFACES};
use crate::socketcand::beacon::{targets, write_beacon, BEACON_PORT};
use crate::sys;

/// The beacon's socket and schedule.
pub struct Beacon {
    sock: UdpSocket,
    listen: Ipv4Addr,
    port: u16,
    host: heapless::String<64>,
    next: Instant,
    warned: bool,
}

impl Beacon {
    /// A beacon for a socketcand listener on `listen`, first sent at once.
    pub fn new(listen: SocketAddr, now: Instant) -> std::io::Result<Beacon> {
        let ip = match listen.ip() {
            IpAddr::V4(ip) => ip,
            // The beacon is IPv4 broadcast; a dual-stack `::` listener also
            // takes IPv4 clients on every interface.
            IpAddr::V6(ip) if ip.is_unspecified() => Ipv4Addr::UNSPECIFIED,
            IpAddr::V6(ip) => ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::LOCALHOST),
        };
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        sock.set_broadcast(true)?;
        sock.set_nonblocking(true)?;
        let mut host = heapless::String::new();
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            for c in h.trim().chars() {
                if host.push(c).is_err() {
                    break;
                }
            }
        }
        if host.is_empty() {
            let _ = host.push_str("tcpcan");
        }
        log::info!(
            "sending socketcand beacons to UDP port {BEACON_PORT} every {} s",
            BEACON_INTERVAL.as_secs()
        );
        Ok(Beacon {
            sock,
            listen: ip,
            port: listen.port(),
            host,
            next: now,
            warned: false,
        })
    }

    /// When the next beacon is due.
    pub fn due_at(&self) -> Instant {
        self.next
    }

    /// Sends the beacons if due.
    pub fn on_timer(&mut self, bus: &str, now: &Now) {
        if !now.reached(Some(self.next)) {
            return;
        }
        self.next = now.get() + BEACON_INTERVAL;
        let mut ifaces = heapless::Vec::<_, MAX_BEACON_IFACES>::new();
        if let Err(e) = sys::ipv4_broadcasts(&mut ifaces) {
            self.warn_once(format_args!("cannot list interfaces: {e}"));
            return;
        }
        for (addr, brd) in targets(self.listen, &ifaces) {
            let text = write_beacon((&self.host, crate::VERSION), addr, self.port, bus);
            if let Err(e) = self.sock.send_to(text.as_bytes(), (brd, BEACON_PORT)) {
                self.warn_once(format_args!("to {brd}: {e}"));
            }
        }
    }

    /// One warning for the daemon's life: a beacon that cannot be sent
    /// now will not be sendable in 2 s either.
    fn warn_once(&mut self, what: core::fmt::Arguments<'_>) {
        if !self.warned {
            self.warned = true;
            log::warn!("socketcand beacon not sent: {what}");
        }
    }
}
