//! Which system calls do the standard library and the socket crates not
//! offer us? Thin wrappers over them: the one module allowed `unsafe`, each
//! block with its SAFETY note, and one place (`check`) where a failed call
//! becomes an `io::Error`.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::limits::CAN_BATCH;
use crate::time::Stamp;
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

/// Whether this kernel makes raw CAN sockets at all: `Ok`, or its refusal
/// (`EAFNOSUPPORT`: no CAN; `EPROTONOSUPPORT`: CAN without `can_raw`). Asked
/// only when an interface cannot be found, to say what is really missing.
pub fn can_raw_available() -> io::Result<()> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = check(unsafe {
        libc::socket(
            libc::PF_CAN,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::CAN_RAW,
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns; dropping closes it.
    drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    Ok(())
}

/// A `CAN_BCM` socket connected to interface `index`, non-blocking, with
/// receive timestamps on.
pub fn bcm_open(index: u32) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = check(unsafe {
        libc::socket(
            libc::PF_CAN,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::CAN_BCM,
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_can.
    let mut addr: libc::sockaddr_can = unsafe { mem::zeroed() };
    addr.can_family = libc::AF_CAN as libc::sa_family_t;
    addr.can_ifindex = index as libc::c_int;
    // SAFETY: addr is a sockaddr_can of the length given.
    check(unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_can).cast(),
            mem::size_of::<libc::sockaddr_can>() as libc::socklen_t,
        )
    })?;
    // Frames a receive job passes back carry the time the kernel received
    // them, for socketcand's `< frame >` lines.
    enable_timestamps(fd)?;
    Ok(owned)
}

/// Asks the kernel to stamp what `fd` receives (`SO_TIMESTAMP`): CAN frames
/// each, and a TCP read with the arrival of the last segment it takes.
pub fn enable_timestamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: on is a c_int of the length given, read by the kernel only.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMP,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Reads what a stream socket holds into `buf` without blocking, with the
/// kernel's receive time of the last data read (seconds, microseconds;
/// zero without `SO_TIMESTAMP`): a read's time at no clock read.
pub fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Stamp)> {
    let mut cmsg = [0u64; CMSG_ROOM / 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut h: libc::msghdr = unsafe { mem::zeroed() };
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = cmsg.as_mut_ptr().cast();
    h.msg_controllen = CMSG_ROOM as _;
    // SAFETY: the header points at `buf` and `cmsg`, of the sizes given,
    // which outlive the call.
    let n = check(unsafe { libc::recvmsg(fd, &mut h, libc::MSG_DONTWAIT) })? as usize;
    let mut stamp = Stamp::default();
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG macros
    // walk only within them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMP {
                stamp = read_timeval(c);
            }
            c = libc::CMSG_NXTHDR(&h, c);
        }
    }
    Ok((n, stamp))
}

/// One BCM message with one classic frame, laid out as the kernel reads and
/// writes it (the frame right after the header, both 8-byte aligned):
/// written by [`bcm_write`], read by [`bcm_changed_frame`].
#[repr(C)]
struct BcmOne {
    head: libc::bcm_msg_head,
    frame: libc::can_frame,
}

/// Writes one BCM operation on `fd`: `opcode` with `flags`, the job for
/// `can_id`, sent every `ival` (`ival2`; `count` 0: for ever), with `frame`
/// (16 bytes, host layout) when given.
pub fn bcm_write(
    fd: RawFd,
    opcode: u32,
    flags: u32,
    can_id: u32,
    ival: std::time::Duration,
    frame: Option<&[u8]>,
) -> io::Result<()> {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut msg: BcmOne = unsafe { mem::zeroed() };
    msg.head.opcode = opcode;
    msg.head.flags = flags;
    msg.head.can_id = can_id;
    msg.head.ival2.tv_sec = ival.as_secs() as _;
    msg.head.ival2.tv_usec = ival.subsec_micros() as _;
    let mut len = mem::size_of::<libc::bcm_msg_head>();
    if let Some(f) = frame {
        msg.head.nframes = 1;
        // SAFETY: can_frame is 16 plain bytes; f is 16 bytes (checked by the
        // slice copy, which panics on a mismatch rather than overrun).
        let bytes: &mut [u8; 16] = unsafe { &mut *(&mut msg.frame as *mut libc::can_frame).cast() };
        bytes.copy_from_slice(f);
        len = mem::size_of::<BcmOne>();
    }
    // SAFETY: msg lives across the call and len does not exceed its size.
    let n = check(unsafe { libc::write(fd, (&msg as *const BcmOne).cast(), len) })?;
    if n as usize != len {
        return Err(io::Error::from(io::ErrorKind::WriteZero));
    }
    Ok(())
}

/// The frame (host layout) an `RX_CHANGED` message read from a BCM socket
/// carries, or `None` for any other message: read here, beside [`BcmOne`],
/// where the message's layout is known. The frame is the message's last 16
/// bytes: the head's size differs between targets, its end does not.
pub fn bcm_changed_frame(msg: &[u8]) -> Option<&[u8]> {
    let opcode = u32::from_ne_bytes(msg.get(..4)?.try_into().ok()?);
    let head = mem::size_of::<libc::bcm_msg_head>();
    if opcode != libc::RX_CHANGED || msg.len() != head + libc::CAN_MTU {
        return None;
    }
    Some(&msg[head..])
}

/// Room for one `SO_RXQ_OVFL` control message (a u32, 24 bytes with its
/// header) and one `SO_TIMESTAMP` message (a timeval, 32 bytes with its
/// header) on sockets that asked for one.
const CMSG_ROOM: usize = 64;

/// Reusable buffers for reading CAN frames in batches with `recvmmsg`.
pub struct CanBatch {
    /// The frames read by the last call, `lens[i]` bytes of `frames[i]`.
    pub frames: [[u8; CANFD_MTU]; CAN_BATCH],
    /// Length of each frame read (16 or 72).
    pub lens: [usize; CAN_BATCH],
    /// Kernel receive time of each frame read, seconds and microseconds,
    /// on a socket with `SO_TIMESTAMP` on (else zero).
    pub stamps: [Stamp; CAN_BATCH],
    cmsg: [[u64; CMSG_ROOM / 8]; CAN_BATCH],
}

impl CanBatch {
    /// Zeroed buffers.
    pub fn new() -> Self {
        CanBatch {
            frames: [[0; CANFD_MTU]; CAN_BATCH],
            lens: [0; CAN_BATCH],
            stamps: [Stamp::default(); CAN_BATCH],
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
        let stamps = self.stamps.iter_mut();
        for ((len, stamp), hdr) in self.lens.iter_mut().zip(stamps).zip(&hdrs[..n]) {
            *len = hdr.msg_len as usize;
            *stamp = Stamp::default();
            let h = &hdr.msg_hdr;
            // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG
            // macros walk only within them.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(h);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                        dropped = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
                    }
                    if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMP {
                        *stamp = read_timeval(c);
                    }
                    c = libc::CMSG_NXTHDR(h, c);
                }
            }
        }
        Ok((n, dropped))
    }
}

/// The timeval of a `SO_TIMESTAMP` control message, whichever size the
/// kernel wrote: two 64-bit fields (64-bit targets, and 32-bit ones whose
/// libc asks for `SO_TIMESTAMP_NEW`) or two 32-bit ones (`SO_TIMESTAMP_OLD`
/// on a 32-bit target).
///
/// # Safety
/// `c` must be a control message header the kernel filled in.
unsafe fn read_timeval(c: *const libc::cmsghdr) -> Stamp {
    let data = libc::CMSG_DATA(c);
    // cmsg_len is a usize on glibc and a u32 on musl: the cast is needed there.
    #[allow(clippy::unnecessary_cast)]
    let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
    if len >= 16 {
        let sec = std::ptr::read_unaligned(data.cast::<i64>());
        let usec = std::ptr::read_unaligned(data.add(8).cast::<i64>());
        Stamp {
            sec,
            usec: usec as u32,
        }
    } else if len >= 8 {
        let sec = std::ptr::read_unaligned(data.cast::<i32>());
        let usec = std::ptr::read_unaligned(data.add(4).cast::<i32>());
        Stamp {
            sec: i64::from(sec),
            usec: usec as u32,
        }
    } else {
        Stamp::default()
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

/// A copy of one of our standard descriptors (0, 1), close-on-exec: the
/// link of `--stdio` owns it, and nothing else in the process writes to the
/// peer's stream by mistake.
pub fn dup_std(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor, which we own at once.
    let new = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `new` was just opened and nothing else holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both were just opened and nothing else holds them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A command started by [`spawn_shell`]: its pid and our ends of its pipes.
pub struct Spawned {
    /// Its process id, which leads its own session and process group.
    pub pid: libc::pid_t,
    /// Its standard input (we write).
    pub stdin: OwnedFd,
    /// Its standard output (we read).
    pub stdout: OwnedFd,
    /// Its standard error (we read).
    pub stderr: OwnedFd,
}

/// Runs `/bin/sh -c CMD` with its standard input, output and error on
/// pipes, leading a session of its own: no controlling terminal (ssh cannot
/// stop on a prompt that no one sees; it fails and says so), and its own
/// process group, which [`kill_group`] ends as a whole and a terminal's
/// Ctrl-C does not reach (tcpcan ends it itself). A plain fork and exec
/// rather than `std::process::Command`, whose general machinery would cost
/// the small builds some 40 KiB for one fixed use. The shell's own failure
/// to start is its exit status 127, as a shell reports a missing command.
pub fn spawn_shell(cmd: &std::ffi::CStr) -> io::Result<Spawned> {
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Everything the child needs is ready before the fork: it must not
    // allocate or take a lock between fork and exec.
    let sh = b"/bin/sh\0".as_ptr().cast::<libc::c_char>();
    let argv = [
        b"sh\0".as_ptr().cast::<libc::c_char>(),
        b"-c\0".as_ptr().cast(),
        cmd.as_ptr(),
        std::ptr::null(),
    ];
    let child_fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
    // SAFETY: the loop is single-threaded, so no lock can be held by
    // another thread at the fork; the child calls only async-signal-safe
    // functions (setsid, dup2, fcntl, signal, execv, _exit) on data
    // prepared above, and never returns.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: as above; in the child only.
        unsafe {
            libc::setsid();
            for (target, fd) in child_fds.into_iter().enumerate() {
                let target = target as libc::c_int;
                if fd == target {
                    // Already in place (our own 0-2 were closed): keep it
                    // open across exec.
                    libc::fcntl(fd, libc::F_SETFD, 0);
                } else {
                    libc::dup2(fd, target);
                }
            }
            // std ignores SIGPIPE in tcpcan; an ignored signal stays
            // ignored across exec, and the command expects the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execv(sh, argv.as_ptr());
            libc::_exit(127);
        }
    }
    Ok(Spawned {
        pid,
        stdin: in_w,
        stdout: out_r,
        stderr: err_r,
    })
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Status(i32),
    /// A signal ended it.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Status(n) => write!(f, "exit status: {n}"),
            Exit::Signal(n) => write!(f, "signal: {n}"),
        }
    }
}

/// Reaps child `pid` if it has ended (`block`: waits until it has): how it
/// ended, or `None` while it runs.
pub fn reap(pid: libc::pid_t, block: bool) -> io::Result<Option<Exit>> {
    let mut status: libc::c_int = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: waitpid writes the status into the c_int it is given.
        match check(unsafe { libc::waitpid(pid, &mut status, flags) }) {
            Ok(0) => return Ok(None),
            Ok(_) if libc::WIFSIGNALED(status) => {
                return Ok(Some(Exit::Signal(libc::WTERMSIG(status))))
            }
            Ok(_) => return Ok(Some(Exit::Status(libc::WEXITSTATUS(status)))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sends `sig` to every process of the group that `pid` leads: a `--via`
/// command and whatever it started (`sh -c` need not exec its command).
/// The caller must not have reaped `pid` yet, so the group cannot be
/// another's.
pub fn kill_group(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers; a negative pid names a group.
    match check(unsafe { libc::kill(-pid, sig) }) {
        // Just forked, the child has not made its group yet (nor started
        // anything): it alone is signalled.
        // SAFETY: as above.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => check(unsafe { libc::kill(pid, sig) })?,
        r => r?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_rx_changed_message_carries_a_frame_for_the_client() {
        let head = std::mem::size_of::<libc::bcm_msg_head>();
        let mut msg = vec![0u8; head + libc::CAN_MTU];
        msg[..4].copy_from_slice(&libc::RX_CHANGED.to_ne_bytes());
        msg[head..head + 4].copy_from_slice(&0x123u32.to_ne_bytes());
        let frame = bcm_changed_frame(&msg).unwrap();
        assert_eq!(frame.len(), libc::CAN_MTU);
        assert_eq!(frame[..4], 0x123u32.to_ne_bytes());
        msg[..4].copy_from_slice(&libc::RX_TIMEOUT.to_ne_bytes());
        assert_eq!(bcm_changed_frame(&msg), None);
        assert_eq!(bcm_changed_frame(&msg[..3]), None);
        let mut short = msg[..head].to_vec();
        short[..4].copy_from_slice(&libc::RX_CHANGED.to_ne_bytes());
        assert_eq!(bcm_changed_frame(&short), None, "no frame after the head");
    }

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
    fn a_shell_command_runs_on_pipes_and_its_end_is_reaped() {
        use std::io::{Read, Write};
        let cmd = std::ffi::CString::new("read x; echo \"got $x\"; echo oops >&2; exit 3").unwrap();
        let c = spawn_shell(&cmd).unwrap();
        std::fs::File::from(c.stdin).write_all(b"hi\n").unwrap();
        let mut out = String::new();
        std::fs::File::from(c.stdout)
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        std::fs::File::from(c.stderr)
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("got hi\n", "oops\n"));
        assert_eq!(reap(c.pid, true).unwrap(), Some(Exit::Status(3)));
        assert_eq!(Exit::Status(3).to_string(), "exit status: 3");
    }

    #[test]
    fn a_command_group_is_ended_by_a_signal() {
        let cmd = std::ffi::CString::new("sleep 10; sleep 10").unwrap();
        let c = spawn_shell(&cmd).unwrap();
        assert_eq!(reap(c.pid, false).unwrap(), None, "still running");
        kill_group(c.pid, libc::SIGTERM).unwrap();
        assert_eq!(
            reap(c.pid, true).unwrap(),
            Some(Exit::Signal(libc::SIGTERM))
        );
    }

    #[test]
    fn other_returns_pass_through() {
        assert_eq!(check::<libc::c_int>(0).ok(), Some(0));
        assert_eq!(check::<libc::ssize_t>(72).ok(), Some(72));
        assert_eq!(poll(&mut [], Some(Duration::ZERO)).ok(), Some(0));
    }
}
