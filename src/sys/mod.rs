//! Which system calls do the standard library and the socket crates not
//! offer us? Thin wrappers over them: the one module allowed `unsafe`, each
//! block with its SAFETY note, and one place (`check`) where a failed call
//! becomes an `io::Error`. Here: polling, interfaces and descriptors; CAN
//! and BCM sockets in [`can`]; shell commands on pipes in [`process`].
#![allow(unsafe_code)]

mod can;
mod process;

pub use can::*;
pub use process::*;

use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::time::Duration;

pub use libc::pollfd as PollFd;

/// What a system call returns: -1 on failure, with the reason in errno.
trait SyscallReturn: Copy + PartialEq {
    const FAILED: Self;
}

impl SyscallReturn for libc::c_int {
    const FAILED: Self = -1;
}

impl SyscallReturn for libc::ssize_t {
    const FAILED: Self = -1;
}

/// Turns a system call's -1 into the `io::Error` errno names, and passes
/// any other return value through. Must run straight after the call, before
/// anything else can overwrite errno.
fn check<T: SyscallReturn>(ret: T) -> io::Result<T> {
    if ret == T::FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Waits up to `timeout` (`None`: no limit) for readiness. An interrupted
/// wait (EINTR) reports no events.
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    // ppoll, not poll: a coalescing wait (`--latency-budget`) is shorter
    // than poll's millisecond.
    // `as _`: time_t is 32 or 64 bits by target and libc version; no wait
    // is longer than a minute (time::ms_until), so either holds it.
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the pointer and length describe a valid, exclusively borrowed
    // slice; `ts_ptr` is null or points at `ts`, alive until the call returns;
    // a null signal mask leaves the mask as it is, as poll does.
    let r = check(unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    });
    match r {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Interface index of `name`, or `None` if there is no such interface.
/// Needs no allocation, so reopening an interface costs none.
pub fn if_nametoindex(name: &str) -> Option<u32> {
    let mut buf = [0u8; libc::IF_NAMESIZE + 1];
    if name.is_empty() || name.len() > libc::IF_NAMESIZE || name.contains('\0') {
        return None;
    }
    buf[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: buf is NUL-terminated (zeroed beyond name, name has no NUL).
    let idx = unsafe { libc::if_nametoindex(buf.as_ptr().cast()) };
    (idx != 0).then_some(idx)
}

/// The IPv4 address and broadcast address of every interface that is up
/// and has one (loopback has none), at most `N`, for the socketcand beacon.
pub fn ipv4_broadcasts<const N: usize>(
    out: &mut heapless::Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr), N>,
) -> io::Result<()> {
    out.clear();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head to the pointer given; on success
    // it is released with freeifaddrs below, after the last use.
    check(unsafe { libc::getifaddrs(&mut list) })?;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, not yet freed;
        // the address pointers are null or point at sockaddrs of the family
        // they say, and AF_INET ones are sockaddr_in.
        let (next, pair) = unsafe {
            let ifa = &*cur;
            let flags = ifa.ifa_flags as libc::c_int;
            let wanted = flags & libc::IFF_UP != 0 && flags & libc::IFF_BROADCAST != 0;
            let addr = ifa.ifa_addr;
            let brd = ifa.ifa_ifu;
            let pair = if wanted
                && !addr.is_null()
                && !brd.is_null()
                && (*addr).sa_family as libc::c_int == libc::AF_INET
                && (*brd).sa_family as libc::c_int == libc::AF_INET
            {
                let a = &*(addr as *const libc::sockaddr_in);
                let b = &*(brd as *const libc::sockaddr_in);
                Some((
                    std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    std::net::Ipv4Addr::from(u32::from_be(b.sin_addr.s_addr)),
                ))
            } else {
                None
            };
            (ifa.ifa_next, pair)
        };
        if let Some(p) = pair {
            if out.push(p).is_err() {
                break;
            }
        }
        cur = next;
    }
    // SAFETY: list came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(())
}

/// True if interface `name` is administratively up (`IFF_UP`), asked through
/// any open socket `fd` (SIOCGIFFLAGS works on every socket family).
pub fn if_is_up(fd: RawFd, name: &str) -> io::Result<bool> {
    if name.len() >= libc::IF_NAMESIZE {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: req is a valid, NUL-terminated ifreq the kernel fills in.
    check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) })?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(i32::from(flags) & libc::IFF_UP != 0)
}

/// True if network interface `name` is a virtual device (vcan, vxcan):
/// its sysfs node lives under /sys/devices/virtual/. Allocation-free.
pub fn if_is_virtual(name: &str) -> bool {
    const PREFIX: &[u8] = b"/sys/class/net/";
    let mut path = [0u8; PREFIX.len() + libc::IF_NAMESIZE + 1];
    if name.is_empty() || name.len() >= libc::IF_NAMESIZE || name.contains(['/', '\0']) {
        return false;
    }
    path[..PREFIX.len()].copy_from_slice(PREFIX);
    path[PREFIX.len()..PREFIX.len() + name.len()].copy_from_slice(name.as_bytes());
    let mut target = [0u8; 256];
    // SAFETY: path is NUL-terminated; target is a writable buffer of its length.
    let n = match check(unsafe {
        libc::readlink(
            path.as_ptr().cast(),
            target.as_mut_ptr().cast(),
            target.len(),
        )
    }) {
        Ok(n) if n > 0 => n as usize,
        // No such interface, or an empty link: not one we can call virtual.
        _ => return false,
    };
    target[..n].windows(9).any(|w| w == b"/virtual/")
}

/// Makes reads and writes on `fd` return `EAGAIN` instead of blocking: the
/// loop's pipe ends (`--stdio`, `--via`), which std opens blocking.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL take and change only the descriptor's
    // status flags; a bad descriptor is an error, not undefined behaviour.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_reports_its_errno() {
        let ebadf = Some(libc::EBADF);
        assert_eq!(socket_drops(-1).unwrap_err().raw_os_error(), ebadf);
        assert_eq!(if_is_up(-1, "lo").unwrap_err().raw_os_error(), ebadf);
        let frame = [0u8; crate::wire::CAN_MTU];
        let e = send_frames(-1, &[&frame[..]]).unwrap_err();
        assert_eq!(e.raw_os_error(), ebadf);
    }

    #[test]
    fn other_returns_pass_through() {
        assert_eq!(check::<libc::c_int>(0).ok(), Some(0));
        assert_eq!(check::<libc::ssize_t>(72).ok(), Some(72));
        assert_eq!(poll(&mut [], Some(Duration::ZERO)).ok(), Some(0));
    }
}
