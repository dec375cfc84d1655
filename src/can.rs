//! How does tcpcan talk to a CAN interface? The CAN port: a raw SocketCAN
//! socket opened by interface name, with CAN FD enabled where the kernel
//! allows, kernel-side filters, and one place that classifies write errors.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use libc::{c_int, CAN_RAW_FD_FRAMES, CAN_RAW_FILTER, SOL_CAN_RAW, SOL_SOCKET};
use socketcan::{CanSocket, Socket, SocketOptions};

use crate::device::{CanSink, CanTx};
use crate::filter::Filters;
use crate::limits::{CAN_QUEUED_FRAME_COST, CAN_RCVBUF, CAN_SNDBUF};
use crate::protocol::IfStats;
use crate::sys::{self, CanBatch};
use crate::wire::HostFrame;

/// How to set up each CAN socket.
#[derive(Debug, Clone)]
pub struct CanOptions {
    /// Data frame filter.
    pub filters: Filters,
    /// `CAN_RAW_ERR_FILTER` mask: which error frames to receive (0: none).
    pub error_mask: u32,
}

/// Why an interface could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// No interface of that name exists.
    NoSuchInterface,
    /// The interface exists but is not a CAN interface.
    NotCan,
    /// The kernel cannot make raw CAN sockets at all, so no interface name
    /// could work: it lacks CAN, or its raw sockets.
    NoCanSupport(CanSupport),
    /// Anything else the kernel said.
    Io(io::Error),
}

/// What a kernel that refuses raw CAN sockets lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanSupport {
    /// No `AF_CAN` at all (`can` not loaded nor built in, as in many
    /// containers and WSL kernels).
    NoFamily,
    /// `AF_CAN` without raw sockets (`can` loaded, `can_raw` not).
    NoRaw,
}

/// What the kernel's answer to a raw CAN socket says is missing, if anything.
pub fn missing_support(errno: Option<i32>) -> Option<CanSupport> {
    match errno? {
        libc::EAFNOSUPPORT => Some(CanSupport::NoFamily),
        libc::EPROTONOSUPPORT => Some(CanSupport::NoRaw),
        _ => None,
    }
}

/// What a failed read says about the interface.
#[derive(Debug)]
pub enum ReadError {
    /// The interface went down (ENETDOWN); the socket stays usable.
    Down,
    /// The interface disappeared (ENODEV); the socket must be reopened.
    Gone,
    /// Anything else.
    Io(io::Error),
}

/// A raw CAN socket bound to one interface, non-blocking.
pub struct CanPort {
    sock: CanSocket,
    /// vcan/vxcan: no real bus behind it (see [`CanSink::is_virtual`]).
    virtual_bus: bool,
    /// The kernel's cumulative drop count last seen (`SO_RXQ_OVFL`).
    overflow_seen: u32,
}

/// Set once the kernel refused CAN FD, so the warning is not repeated per socket.
static FD_REFUSED: AtomicBool = AtomicBool::new(false);
/// The receive queue the kernel granted the first socket, in bytes (0 until
/// one is open); every later socket gets the same.
static RCVBUF_GRANTED: AtomicUsize = AtomicUsize::new(0);
/// Set once that was logged.
static RCVBUF_LOGGED: AtomicBool = AtomicBool::new(false);

/// Says once, after start-up succeeded (a start-up error stays the only
/// line), how deep the CAN receive queue is, and how to get the intended
/// depth when the kernel granted less: a shallower queue drops frames
/// sooner when a peer stalls or the loop wakes late. Nothing before the
/// first socket is open.
pub fn log_receive_queue(name: &str) {
    let granted = RCVBUF_GRANTED.load(Ordering::Relaxed);
    if granted == 0 || RCVBUF_LOGGED.swap(true, Ordering::Relaxed) {
        return;
    }
    // The kernel reports (and grants) twice what is asked for.
    let wanted = 2 * CAN_RCVBUF;
    let frames = granted / CAN_QUEUED_FRAME_COST;
    if granted >= wanted {
        log::info!("{name}: CAN receive queue {granted} bytes (~{frames} frames)");
    } else {
        log::warn!(
            "{name}: CAN receive queue is {granted} bytes (~{frames} frames), not the {wanted} asked for: \
             without CAP_NET_ADMIN the kernel caps it at net.core.rmem_max; \
             set net.core.rmem_max={CAN_RCVBUF} (docs/packaging.md)"
        );
    }
}

impl CanPort {
    /// Opens a raw socket on interface `name`.
    pub fn open(name: &str, opts: &CanOptions) -> Result<CanPort, OpenError> {
        let Some(index) = sys::if_nametoindex(name) else {
            // A kernel without CAN has no CAN interface of any name: say
            // that, not "no such interface", or the user creates vcan0 and
            // fails again.
            let support = sys::can_raw_available().err();
            return Err(
                match missing_support(support.and_then(|e| e.raw_os_error())) {
                    Some(what) => OpenError::NoCanSupport(what),
                    None => OpenError::NoSuchInterface,
                },
            );
        };
        let sock = CanSocket::open_iface(index).map_err(|e| match e.raw_os_error() {
            // The kernel binds a CAN socket only to an ARPHRD_CAN device.
            Some(libc::ENODEV) => OpenError::NotCan,
            errno => match missing_support(errno) {
                Some(what) => OpenError::NoCanSupport(what),
                None => OpenError::Io(e),
            },
        })?;
        let port = CanPort {
            sock,
            virtual_bus: sys::if_is_virtual(name),
            overflow_seen: 0,
        };
        port.configure(name, opts).map_err(OpenError::Io)?;
        Ok(port)
    }

    fn configure(&self, name: &str, opts: &CanOptions) -> io::Result<()> {
        const ON: c_int = 1;
        let sock = &self.sock;
        sock.set_nonblocking(true)?;
        // The crate's CanFdSocket would close the socket when the kernel
        // refuses FD; we keep it for classic frames, so FD mode is set here.
        match sock.set_socket_option(SOL_CAN_RAW, CAN_RAW_FD_FRAMES, &ON) {
            Ok(()) => {}
            // Old kernels (and qemu-user) answer ENOPROTOOPT: carry classic
            // frames only rather than refusing to run.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
                if !FD_REFUSED.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "{name}: kernel refuses CAN FD frames ({e}); carrying classic frames only"
                    );
                }
            }
            Err(e) => return Err(e),
        }
        match &opts.filters {
            Filters::All => {}
            // The list already is the kernel's array; `set_filters` would
            // copy it into a Vec on every reopen.
            Filters::List(list) => {
                sock.set_socket_option_mult(SOL_CAN_RAW, CAN_RAW_FILTER, list.as_slice())?
            }
            Filters::Nothing => sock.set_filter_drop_all()?,
        }
        if opts.error_mask != 0 {
            sock.set_error_filter(opts.error_mask)?;
        }
        // Lets us count frames the kernel drops when we fall behind.
        sock.set_socket_option(SOL_SOCKET, libc::SO_RXQ_OVFL, &ON)?;
        // A deep receive queue rides out bursts and scheduling stalls; it
        // costs memory only while frames wait. Forcing needs CAP_NET_ADMIN;
        // without it the kernel caps the request at net.core.rmem_max.
        let forced = CAN_RCVBUF as c_int;
        if sock
            .set_socket_option(SOL_SOCKET, libc::SO_RCVBUFFORCE, &forced)
            .is_err()
        {
            sock.as_raw_socket().set_recv_buffer_size(CAN_RCVBUF)?;
        }
        if RCVBUF_GRANTED.load(Ordering::Relaxed) == 0 {
            let granted = sock.as_raw_socket().recv_buffer_size()?;
            RCVBUF_GRANTED.store(granted, Ordering::Relaxed);
        }
        // Small on purpose, see limits::CAN_SNDBUF.
        sock.as_raw_socket().set_send_buffer_size(CAN_SNDBUF)?;
        Ok(())
    }

    /// Asks the kernel to stamp each frame read with its receive time
    /// (`SO_TIMESTAMP`, in [`CanBatch::stamps`]): for socketcand's `< frame >`
    /// lines, protocol v2's `t` messages, and to time coalescing. Also the
    /// driver's hardware stamp where it gives one (`SO_TIMESTAMPING`), for
    /// `t`: best effort, a kernel that refuses it loses nothing else.
    pub fn enable_timestamps(&self) -> io::Result<()> {
        sys::enable_timestamps(self.fd())?;
        if let Err(e) = sys::enable_hw_timestamps(self.fd()) {
            log::debug!("no hardware receive stamps asked: {e}");
        }
        Ok(())
    }

    /// The socket's descriptor, for poll.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Takes the socket's pending error (SO_ERROR), which also clears it.
    pub fn take_error(&self) -> Option<ReadError> {
        let e = match self.sock.as_raw_socket().take_error() {
            Ok(Some(e)) | Err(e) => e,
            Ok(None) => return None,
        };
        Some(classify_read_error(e))
    }

    /// Moves the drop count seen forward to `total`, returning the increase.
    fn advance_drops(&mut self, total: u32) -> u32 {
        let d = forward_delta(self.overflow_seen, total);
        self.overflow_seen = self.overflow_seen.wrapping_add(d);
        d
    }

    /// Frames the kernel dropped on this socket since last counted. The
    /// per-frame `SO_RXQ_OVFL` report only arrives with the next frame, so
    /// a stalled reader asks here before it logs or resumes.
    pub fn new_drops(&mut self) -> u32 {
        match sys::socket_drops(self.fd()) {
            Ok(total) => self.advance_drops(total),
            Err(_) => 0,
        }
    }

    /// Reads up to `max` frames into `batch`. Returns how many, and how many
    /// frames the kernel dropped on this socket since the last read.
    pub fn recv(&mut self, batch: &mut CanBatch, max: usize) -> Result<(usize, u32), ReadError> {
        match batch.recv(self.fd(), max) {
            Ok((n, overflow)) => {
                let new = overflow.map_or(0, |total| self.advance_drops(total));
                Ok((n, new))
            }
            Err(e) => Err(classify_read_error(e)),
        }
    }
}

impl CanSink for CanPort {
    fn send(&mut self, frame: &[u8]) -> CanTx {
        match self.sock.as_raw_socket().send(frame) {
            Ok(_) => CanTx::Sent,
            Err(e) => classify_write_error(&e),
        }
    }

    fn is_virtual(&self) -> bool {
        self.virtual_bus
    }

    fn send_batch(&mut self, frames: &[&[u8]]) -> (usize, CanTx) {
        // A lone frame (most wake-ups below saturation) goes with send(2):
        // the same one system call, without building CAN_BATCH headers.
        if let [frame] = frames {
            return match self.send(frame) {
                CanTx::Sent => (1, CanTx::Sent),
                other => (0, other),
            };
        }
        let mut done = 0;
        while done < frames.len() {
            match sys::send_frames(self.fd(), &frames[done..]) {
                // sendmmsg reports an error only for the first message and
                // keeps quiet about why it stopped later: asking again for
                // the rest makes the frame left over give its own answer.
                Ok(n) if n > 0 => done += n,
                Ok(_) => match self.send(frames[done]) {
                    CanTx::Sent => done += 1,
                    other => return (done, other),
                },
                Err(e) => return (done, classify_write_error(&e)),
            }
        }
        (done, CanTx::Sent)
    }
}

/// How far a wrapping u32 counter moved from `seen` to `total`. Frames still
/// queued carry the count stamped when they were queued, which can be older
/// than one already read with `SO_MEMINFO`: a step backwards is no progress,
/// not four billion drops. Half the range tells a stale stamp from a wrap.
fn forward_delta(seen: u32, total: u32) -> u32 {
    let d = total.wrapping_sub(seen);
    if d < 1 << 31 {
        d
    } else {
        0
    }
}

/// What a failed CAN read (or a pending socket error) says about the interface.
fn classify_read_error(e: io::Error) -> ReadError {
    match e.raw_os_error() {
        Some(libc::ENETDOWN) => ReadError::Down,
        Some(libc::ENODEV) | Some(libc::ENXIO) => ReadError::Gone,
        _ => ReadError::Io(e),
    }
}

/// A `CAN_BCM` socket for socketcand's cyclic sends, opened on first use
/// and closed with its connection, which ends every job it set up.
pub struct BcmPort {
    fd: Option<std::os::fd::OwnedFd>,
    index: u32,
}

impl BcmPort {
    /// Cyclic sends on interface `name` (its index is looked up now).
    pub fn new(name: &str) -> BcmPort {
        BcmPort {
            fd: None,
            index: sys::if_nametoindex(name).unwrap_or(0),
        }
    }

    fn fd(&mut self) -> io::Result<RawFd> {
        // Index 0 (the interface was absent when the client came) would
        // bind the socket to every CAN interface: a receive job would then
        // pass frames of buses this instance does not serve.
        if self.index == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        if self.fd.is_none() {
            self.fd = Some(sys::bcm_open(self.index)?);
        }
        Ok(self.fd.as_ref().map_or(-1, |f| f.as_raw_fd()))
    }

    /// The socket's descriptor once it is open, for poll.
    pub fn open_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// Reads up to `max` BCM messages into `batch` (each fits a slot: a
    /// message head and one classic frame are at most 72 bytes), with the
    /// kernel's receive time of the frame each carries.
    pub fn recv(&mut self, batch: &mut CanBatch, max: usize) -> io::Result<usize> {
        let fd = self.open_fd().ok_or(io::ErrorKind::WouldBlock)?;
        batch.recv(fd, max).map(|(n, _)| n)
    }
}

impl crate::device::CyclicSink for BcmPort {
    fn setup(&mut self, frame: &[u8], interval: Option<std::time::Duration>) -> io::Result<()> {
        let fd = self.fd()?;
        let can_id = HostFrame::new_unchecked(frame).can_id();
        let (flags, ival) = match interval {
            // The first frame goes at once, then every `ival`, for ever.
            Some(ival) => (libc::SETTIMER | libc::STARTTIMER | libc::TX_ANNOUNCE, ival),
            None => (0, std::time::Duration::ZERO),
        };
        sys::bcm_write(fd, libc::TX_SETUP, flags, can_id, ival, Some(frame))
    }

    fn delete(&mut self, can_id: u32) -> io::Result<()> {
        let fd = self.fd()?;
        sys::bcm_write(
            fd,
            libc::TX_DELETE,
            0,
            can_id,
            std::time::Duration::ZERO,
            None,
        )
    }

    fn rx_setup(
        &mut self,
        can_id: u32,
        throttle: std::time::Duration,
        mask: Option<&[u8]>,
    ) -> io::Result<()> {
        let fd = self.fd()?;
        // SETTIMER sets the throttle (ival2); no ival1, so no RX_TIMEOUT.
        // RX_FILTER_ID: every frame of the ID, content not compared.
        let flags = match mask {
            Some(_) => libc::SETTIMER,
            None => libc::SETTIMER | libc::RX_FILTER_ID,
        };
        sys::bcm_write(fd, libc::RX_SETUP, flags, can_id, throttle, mask)
    }

    fn rx_delete(&mut self, can_id: u32) -> io::Result<()> {
        let fd = self.fd()?;
        let zero = std::time::Duration::ZERO;
        sys::bcm_write(fd, libc::RX_DELETE, 0, can_id, zero, None)
    }

    fn end_all(&mut self) {
        // Closing the socket ends its jobs in the kernel, at once and
        // without one message per job; the next job opens a new one.
        self.fd = None;
    }
}

/// The interface's statistics (sysfs): received bytes and packets, sent
/// bytes and packets; 0 for one unreadable (the interface is gone: a
/// vanished interface counts nothing).
pub fn if_stats(canif: &str) -> IfStats {
    ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"].map(|name| if_stat(canif, name))
}

fn if_stat(canif: &str, name: &str) -> u64 {
    use core::fmt::Write;
    use std::io::Read;
    let mut path = heapless::String::<80>::new();
    if write!(path, "/sys/class/net/{canif}/statistics/{name}").is_err() {
        return 0;
    }
    let mut buf = [0u8; 24];
    let n = std::fs::File::open(path.as_str())
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    core::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// The one place that decides what a failed CAN write means.
pub fn classify_write_error(e: &io::Error) -> CanTx {
    match e.raw_os_error() {
        // The queue is full: wait and resend, never drop, never spin.
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => CanTx::Busy,
        Some(libc::ENETDOWN) | Some(libc::ENODEV) | Some(libc::ENXIO) => CanTx::Down,
        // EINVAL (FD frame on a classic interface, bad len), EMSGSIZE, EPERM…
        _ => CanTx::Refused,
    }
}

/// A sink for a connection whose interface is currently absent.
pub struct NoBus;

impl CanSink for NoBus {
    fn send(&mut self, _frame: &[u8]) -> CanTx {
        CanTx::Down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_are_classified() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(classify_write_error(&e(libc::ENOBUFS)), CanTx::Busy);
        assert_eq!(classify_write_error(&e(libc::EAGAIN)), CanTx::Busy);
        assert_eq!(classify_write_error(&e(libc::ENETDOWN)), CanTx::Down);
        assert_eq!(classify_write_error(&e(libc::ENODEV)), CanTx::Down);
        assert_eq!(classify_write_error(&e(libc::EINVAL)), CanTx::Refused);
    }

    fn list(entries: &[(u32, u32)]) -> Filters {
        let mut l = heapless::Vec::new();
        for &(can_id, can_mask) in entries {
            l.push(libc::can_filter { can_id, can_mask }).unwrap();
        }
        Filters::List(l)
    }

    #[test]
    fn filters_admit_an_id_as_the_kernel_would() {
        let f = list(&[(0x123, 0x7FF), (0x200, 0x700)]);
        assert!(f.admits(0x123) && f.admits(0x2AB));
        assert!(!f.admits(0x124));
        let eff = libc::CAN_EFF_FLAG;
        let ext = list(&[(0x1AAA_AAAA | eff, libc::CAN_EFF_MASK | eff)]);
        assert!(ext.admits(0x1AAA_AAAA | eff));
        assert!(!ext.admits(0x0AA), "a standard ID is not the extended one");
        let inv = list(&[(0x123 | libc::CAN_INV_FILTER, 0x7FF)]);
        assert!(!inv.admits(0x123) && inv.admits(0x124));
        assert!(Filters::All.admits(0x7FF) && !Filters::Nothing.admits(0x7FF));
    }

    #[test]
    fn a_bcm_port_for_an_absent_interface_never_binds_to_every_interface() {
        use crate::device::CyclicSink;
        let mut bcm = BcmPort::new("nosuchcan9");
        let e = bcm.rx_setup(0x123, std::time::Duration::ZERO, None);
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::ENODEV));
        assert_eq!(bcm.open_fd(), None, "no socket opened");
    }

    #[test]
    fn drop_counts_only_move_forward() {
        assert_eq!(forward_delta(145, 220), 75);
        assert_eq!(forward_delta(220, 145), 0, "stale stamp on a queued frame");
        assert_eq!(forward_delta(u32::MAX - 1, 3), 5, "kernel counter wrapped");
        assert_eq!(forward_delta(7, 7), 0);
    }

    #[test]
    fn missing_interface_is_reported_as_such_where_the_kernel_has_can() {
        let opts = CanOptions {
            filters: Filters::All,
            error_mask: 0,
        };
        let result = CanPort::open("nosuchcan9", &opts);
        // Both kinds of host run this: the kernel-level tests show the
        // other kind's answer on a kernel with CAN.
        match sys::can_raw_available() {
            Ok(()) => assert!(matches!(result, Err(OpenError::NoSuchInterface))),
            Err(e) => {
                let what = missing_support(e.raw_os_error()).expect("a CAN-less kernel's errno");
                assert!(matches!(result, Err(OpenError::NoCanSupport(w)) if w == what));
            }
        }
    }

    #[test]
    fn a_refused_address_family_means_no_can_at_all() {
        assert_eq!(
            missing_support(Some(libc::EAFNOSUPPORT)),
            Some(CanSupport::NoFamily)
        );
    }

    #[test]
    fn a_refused_protocol_means_can_without_raw_sockets() {
        assert_eq!(
            missing_support(Some(libc::EPROTONOSUPPORT)),
            Some(CanSupport::NoRaw)
        );
    }

    #[test]
    fn other_refusals_are_not_about_can_support() {
        assert_eq!(missing_support(Some(libc::EMFILE)), None);
        assert_eq!(missing_support(Some(libc::EPERM)), None);
        assert_eq!(missing_support(None), None);
    }
}
