//! What does the discovery beacon say, and to whom? socketcand's
//! `<CANBeacon>` datagram (UDP port 42000, at most every 3 s), which
//! python-can's `detect_beacon()` reads, and the subnets it goes to: only
//! that of the listening address (each broadcast-capable interface's own
//! when listening on 0.0.0.0). No I/O.

use core::fmt::Write;
use std::net::Ipv4Addr;

/// The UDP port socketcand clients listen on for beacons.
pub const BEACON_PORT: u16 = 42000;

/// Longest beacon: a host name of 64 bytes, an interface name of 15, an
/// address and a port, with the XML around them.
pub const MAX_BEACON: usize = 320;

/// One beacon: `version` of tcpcan on `host`, the URL of its listener at
/// `ip:port`, one bus.
pub fn write_beacon(
    (host, version): (&str, &str),
    ip: Ipv4Addr,
    port: u16,
    bus: &str,
) -> heapless::String<MAX_BEACON> {
    let mut s = heapless::String::new();
    let _ = s.push_str("<CANBeacon name=\"");
    push_name(&mut s, host);
    let _ = write!(
        s,
        "\" type=\"SocketCAN\" description=\"tcpcan {version}\"><URL>can://{ip}:{port}</URL><Bus name=\""
    );
    push_name(&mut s, bus);
    let _ = s.push_str("\"/></CANBeacon>");
    s
}

/// A name inside an XML attribute: anything but letters, digits, `.`, `-`
/// and `_` becomes `_`, so no quoting can be broken; at most 64 bytes.
fn push_name(s: &mut heapless::String<MAX_BEACON>, name: &str) {
    for c in name.chars().take(64) {
        let ok = c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        let _ = s.push(if ok { c } else { '_' });
    }
}

/// Which (interface address, broadcast address) pairs get a beacon for a
/// listener on `listen`: the one whose address it is, or all of them for
/// the unspecified address.
pub fn targets(
    listen: Ipv4Addr,
    ifaces: &[(Ipv4Addr, Ipv4Addr)],
) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
    ifaces
        .iter()
        .copied()
        .filter(move |(a, _)| listen.is_unspecified() || *a == listen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beacon_names_the_host_the_url_and_the_bus() {
        let b = write_beacon(("gw-1", "1.2.3"), Ipv4Addr::new(10, 0, 0, 1), 29536, "can0");
        assert!(
            b.starts_with(
                "<CANBeacon name=\"gw-1\" type=\"SocketCAN\" description=\"tcpcan 1.2.3\">"
            ),
            "{b}"
        );
        assert!(
            b.ends_with("<URL>can://10.0.0.1:29536</URL><Bus name=\"can0\"/></CANBeacon>"),
            "{b}"
        );
    }

    #[test]
    fn names_cannot_break_the_xml_and_the_longest_beacon_fits() {
        let b = write_beacon(("a\"<b>&c", "1"), Ipv4Addr::new(1, 2, 3, 4), 1, "x");
        assert!(b.contains("name=\"a__b__c\""), "{b}");
        let long = "h".repeat(300);
        let b = write_beacon(
            (&long, "10.20.30-longest.version"),
            Ipv4Addr::new(255, 255, 255, 255),
            65535,
            "vcan0123456789a",
        );
        assert!(b.ends_with("</CANBeacon>"), "{b}");
    }

    #[test]
    fn beacons_go_only_to_the_listening_address_subnet() {
        let a = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 255));
        let b = (
            Ipv4Addr::new(192, 168, 1, 5),
            Ipv4Addr::new(192, 168, 1, 255),
        );
        let ifs = [a, b];
        let only: Vec<_> = targets(Ipv4Addr::new(192, 168, 1, 5), &ifs).collect();
        assert_eq!(only, [b]);
        let all: Vec<_> = targets(Ipv4Addr::UNSPECIFIED, &ifs).collect();
        assert_eq!(all, [a, b]);
        assert_eq!(targets(Ipv4Addr::LOCALHOST, &ifs).count(), 0);
    }
}
