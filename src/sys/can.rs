//! CAN and BCM sockets: what the socketcan crate has no call for (batched
//! receives with their stamps and drop counts, batched sends, BCM jobs).

use std::io;
use std::mem;
use std::os::fd::{FromRawFd, RawFd};

use super::check;
use crate::limits::CAN_BATCH;
use crate::time::Stamp;
use crate::wire::CANFD_MTU;

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
    set_socket_int(fd, libc::SO_TIMESTAMP, 1)
}

/// Asks the kernel for the driver's hardware receive stamp of each frame
/// `fd` receives (`SO_TIMESTAMPING`, raw hardware time), where the driver
/// gives one; [`CanBatch::recv`] then finds it beside `SO_TIMESTAMP`'s.
/// Asked of the socket only: switching the device's stamping on
/// (`SIOCSHWTSTAMP`) is its administrator's choice, and CAN drivers that
/// stamp do so unasked. A receive without one (vcan) carries no message.
pub fn enable_hw_timestamps(fd: RawFd) -> io::Result<()> {
    let flags = libc::SOF_TIMESTAMPING_RX_HARDWARE | libc::SOF_TIMESTAMPING_RAW_HARDWARE;
    set_socket_int(fd, libc::SO_TIMESTAMPING, flags as libc::c_int)
}

/// Sets the `SOL_SOCKET` option `name` of `fd` to an int `value`.
fn set_socket_int(fd: RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: value is a c_int of the length given, read by the kernel only.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// What the control messages of one receive said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Control {
    /// The socket's kernel drop count (`SO_RXQ_OVFL`), if reported.
    dropped: Option<u32>,
    /// The receive times (`SO_TIMESTAMP`, `SO_TIMESTAMPING`); zero where
    /// there were none.
    stamp: Stamp,
}

/// Reads the control messages the kernel wrote into `h`'s control buffer.
///
/// # Safety
/// `h.msg_control` must point at `h.msg_controllen` readable bytes, as the
/// kernel left them after a receive (or a test laid them out).
unsafe fn read_control(h: &libc::msghdr) -> Control {
    let mut out = Control::default();
    let mut c = libc::CMSG_FIRSTHDR(h);
    while !c.is_null() {
        if (*c).cmsg_level == libc::SOL_SOCKET {
            match (*c).cmsg_type {
                libc::SO_RXQ_OVFL => {
                    out.dropped = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
                }
                libc::SO_TIMESTAMP => {
                    let hw_ns = out.stamp.hw_ns;
                    out.stamp = Stamp {
                        hw_ns,
                        ..read_timeval(c)
                    };
                }
                libc::SO_TIMESTAMPING => out.stamp.hw_ns = read_raw_hw(c),
                _ => {}
            }
        }
        c = libc::CMSG_NXTHDR(h, c);
    }
    out
}

/// Reads what a stream socket holds into `buf` without blocking, with the
/// kernel's receive time of the last data read (seconds, microseconds;
/// zero without `SO_TIMESTAMP`): a read's time at no clock read.
pub fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Stamp)> {
    // Room for SO_TIMESTAMP's message alone, all a stream asked for: a
    // larger buffer is zeroed for nothing on every read.
    let mut cmsg = [0u64; STREAM_CMSG_ROOM / 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut h: libc::msghdr = unsafe { mem::zeroed() };
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = cmsg.as_mut_ptr().cast();
    h.msg_controllen = STREAM_CMSG_ROOM as _;
    // SAFETY: the header points at `buf` and `cmsg`, of the sizes given,
    // which outlive the call.
    let n = check(unsafe { libc::recvmsg(fd, &mut h, libc::MSG_DONTWAIT) })? as usize;
    // SAFETY: the kernel filled msg_control/msg_controllen.
    let stamp = unsafe { read_control(&h) }.stamp;
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
/// header), one `SO_TIMESTAMP` message (a timeval, 32 bytes with its
/// header) and one `SO_TIMESTAMPING` message (three timespecs, 64 bytes
/// with its header) on sockets that asked for them: 120 bytes on a 64-bit
/// target, fewer on a 32-bit one.
const CMSG_ROOM: usize = 128;

/// Room for the one `SO_TIMESTAMP` message a stream socket asked for.
const STREAM_CMSG_ROOM: usize = 64;

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
            // SAFETY: the kernel filled msg_control/msg_controllen.
            let control = unsafe { read_control(&hdr.msg_hdr) };
            *stamp = control.stamp;
            dropped = control.dropped.or(dropped);
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
        Stamp::kernel(sec, usec as u32)
    } else if len >= 8 {
        let sec = std::ptr::read_unaligned(data.cast::<i32>());
        let usec = std::ptr::read_unaligned(data.add(4).cast::<i32>());
        Stamp::kernel(i64::from(sec), usec as u32)
    } else {
        Stamp::default()
    }
}

/// The raw hardware time (nanoseconds) of a `SO_TIMESTAMPING` control
/// message: the third of its three timespecs, 64-bit fields (64-bit
/// targets, `SO_TIMESTAMPING_NEW`) or 32-bit ones (`SO_TIMESTAMPING_OLD` on
/// a 32-bit target); 0 if it has none.
///
/// # Safety
/// `c` must be a control message header the kernel filled in.
unsafe fn read_raw_hw(c: *const libc::cmsghdr) -> u64 {
    let data = libc::CMSG_DATA(c);
    // cmsg_len is a usize on glibc and a u32 on musl: the cast is needed there.
    #[allow(clippy::unnecessary_cast)]
    let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
    let (sec, nsec) = if len >= 48 {
        let sec = std::ptr::read_unaligned(data.add(32).cast::<i64>());
        let nsec = std::ptr::read_unaligned(data.add(40).cast::<i64>());
        (sec, nsec)
    } else if len >= 24 {
        let sec = std::ptr::read_unaligned(data.add(16).cast::<i32>());
        let nsec = std::ptr::read_unaligned(data.add(20).cast::<i32>());
        (i64::from(sec), i64::from(nsec))
    } else {
        return 0;
    };
    (sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(nsec as u64)
}

impl Default for CanBatch {
    fn default() -> Self {
        Self::new()
    }
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

    /// Control messages (type, payload) laid out as the kernel writes
    /// them, read back by [`read_control`].
    fn control_of(msgs: &[(libc::c_int, &[u8])]) -> Control {
        let mut buf = [0u64; CMSG_ROOM / 8];
        // SAFETY: all-zero is a valid msghdr.
        let mut h: libc::msghdr = unsafe { mem::zeroed() };
        h.msg_control = buf.as_mut_ptr().cast();
        h.msg_controllen = CMSG_ROOM as _;
        let mut used = 0;
        // SAFETY: the CMSG macros walk within `buf` (CMSG_ROOM bytes, which
        // the payloads given here fit), and each payload is copied into the
        // data of a header sized for it.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&h);
            for &(ty, data) in msgs {
                assert!(!c.is_null(), "the test's messages fit CMSG_ROOM");
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = ty;
                (*c).cmsg_len = libc::CMSG_LEN(data.len() as u32) as _;
                std::ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(c), data.len());
                used += libc::CMSG_SPACE(data.len() as u32) as usize;
                c = libc::CMSG_NXTHDR(&h, c);
            }
            h.msg_controllen = used as _;
            read_control(&h)
        }
    }

    fn ne64(fields: &[i64]) -> Vec<u8> {
        fields.iter().flat_map(|f| f.to_ne_bytes()).collect()
    }

    fn ne32(fields: &[i32]) -> Vec<u8> {
        fields.iter().flat_map(|f| f.to_ne_bytes()).collect()
    }

    #[test]
    fn a_receive_without_control_messages_has_no_stamps_and_no_drop_count() {
        assert_eq!(control_of(&[]), Control::default());
    }

    #[test]
    fn drops_kernel_time_and_hardware_time_are_read_from_their_messages() {
        let timeval = ne64(&[1_700_000_000, 654_321]);
        // software, (deprecated), raw hardware
        let timestamping = ne64(&[1_700_000_000, 654_321_000, 0, 0, 12, 345]);
        let c = control_of(&[
            (libc::SO_RXQ_OVFL, &7u32.to_ne_bytes()),
            (libc::SO_TIMESTAMP, &timeval),
            (libc::SO_TIMESTAMPING, &timestamping),
        ]);
        assert_eq!(c.dropped, Some(7));
        assert_eq!(
            c.stamp,
            Stamp {
                hw_ns: 12_000_000_345,
                ..Stamp::kernel(1_700_000_000, 654_321)
            }
        );
        // In the other order, neither stamp is lost.
        let c = control_of(&[
            (libc::SO_TIMESTAMPING, &timestamping),
            (libc::SO_TIMESTAMP, &timeval),
        ]);
        assert_eq!((c.stamp.usec, c.stamp.hw_ns), (654_321, 12_000_000_345));
    }

    #[test]
    fn a_32_bit_targets_old_layouts_are_read_too() {
        let c = control_of(&[
            (libc::SO_TIMESTAMP, &ne32(&[1_700_000_000, 5])),
            (libc::SO_TIMESTAMPING, &ne32(&[0, 0, 0, 0, 3, 4])),
        ]);
        assert_eq!(
            c.stamp,
            Stamp {
                hw_ns: 3_000_000_004,
                ..Stamp::kernel(1_700_000_000, 5)
            }
        );
    }

    #[test]
    fn a_stamping_message_without_a_hardware_time_leaves_it_zero() {
        // A driver without hardware stamps, if the kernel sends the message
        // for a software stamp asked elsewhere; and one cut short.
        let software_only = ne64(&[1_700_000_000, 1, 0, 0, 0, 0]);
        assert_eq!(
            control_of(&[(libc::SO_TIMESTAMPING, &software_only)]).stamp,
            Stamp::default()
        );
        let cut = [0u8; 4];
        assert_eq!(control_of(&[(libc::SO_TIMESTAMPING, &cut)]).stamp.hw_ns, 0);
    }

    #[test]
    fn hardware_stamps_can_be_asked_of_a_can_socket_and_a_bad_descriptor_is_named() {
        assert_eq!(
            enable_hw_timestamps(-1).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

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
}
