//! Which system calls do the standard library and the socket crates not
//! offer us? Thin wrappers over them: the one module allowed `unsafe`, each
//! block with its SAFETY note, and one place (`check`) where a failed call
//! becomes an `io::Error`.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::RawFd;

use crate::limits::CAN_BATCH;
use crate::wire::CANFD_MTU;

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

/// Waits for readiness. An interrupted wait (EINTR) reports no events.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: the pointer and length describe a valid, exclusively borrowed slice.
    let r = check(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) });
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

/// Room for one `SO_RXQ_OVFL` control message (a u32).
const CMSG_ROOM: usize = 32;

/// Reusable buffers for reading CAN frames in batches with `recvmmsg`.
pub struct CanBatch {
    /// The frames read by the last call, `lens[i]` bytes of `frames[i]`.
    pub frames: [[u8; CANFD_MTU]; CAN_BATCH],
    /// Length of each frame read (16 or 72).
    pub lens: [usize; CAN_BATCH],
    cmsg: [[u64; CMSG_ROOM / 8]; CAN_BATCH],
}

impl CanBatch {
    /// Zeroed buffers.
    pub fn new() -> Self {
        CanBatch {
            frames: [[0; CANFD_MTU]; CAN_BATCH],
            lens: [0; CAN_BATCH],
            cmsg: [[0; CMSG_ROOM / 8]; CAN_BATCH],
        }
    }

    /// Reads up to `max` frames without blocking. Returns how many were read
    /// and the socket's latest kernel drop count (`SO_RXQ_OVFL`), if reported.
    pub fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<(usize, Option<u32>)> {
        let max = max.min(CAN_BATCH);
        if max == 0 {
            return Ok((0, None));
        }
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iov: [libc::iovec; CAN_BATCH] = unsafe { mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; CAN_BATCH] = unsafe { mem::zeroed() };
        for i in 0..max {
            iov[i].iov_base = self.frames[i].as_mut_ptr().cast();
            iov[i].iov_len = CANFD_MTU;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsg[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_ROOM as _;
        }
        // SAFETY: every header points at live buffers of the sizes given,
        // which outlive the call.
        let n = check(unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                max as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        })? as usize;
        let mut dropped = None;
        for (len, hdr) in self.lens.iter_mut().zip(&hdrs[..n]) {
            *len = hdr.msg_len as usize;
            let h = &hdr.msg_hdr;
            // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG
            // macros walk only within them.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(h);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                        dropped = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
                    }
                    c = libc::CMSG_NXTHDR(h, c);
                }
            }
        }
        Ok((n, dropped))
    }
}

impl Default for CanBatch {
    fn default() -> Self {
        Self::new()
    }
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

/// The socket's cumulative count of packets dropped on receive (the same
/// counter `SO_RXQ_OVFL` reports, read without waiting for the next frame).
pub fn socket_drops(fd: RawFd) -> io::Result<u32> {
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: info is a writable buffer of len bytes; the kernel writes at most len.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    Ok(info[libc::SK_MEMINFO_DROPS as usize])
}

/// Writes up to [`CAN_BATCH`] datagrams (CAN frames) with one `sendmmsg`
/// call, without blocking. Returns how many were written; an error means
/// the first one was not.
pub fn send_frames(fd: RawFd, frames: &[&[u8]]) -> io::Result<usize> {
    let n = frames.len().min(CAN_BATCH);
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut iov: [libc::iovec; CAN_BATCH] = unsafe { mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; CAN_BATCH] = unsafe { mem::zeroed() };
    for i in 0..n {
        iov[i].iov_base = frames[i].as_ptr() as *mut libc::c_void;
        iov[i].iov_len = frames[i].len();
        hdrs[i].msg_hdr.msg_iov = &mut iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at a live iovec describing a live frame;
    // the kernel only reads them.
    let sent =
        check(unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as _, libc::MSG_DONTWAIT as _) })?;
    Ok(sent as usize)
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
        assert_eq!(poll(&mut [], 0).ok(), Some(0));
    }
}
