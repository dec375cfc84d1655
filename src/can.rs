//! How does tcpcan talk to a CAN interface? The CAN port: a raw SocketCAN
//! socket opened by interface name, with CAN FD enabled where the kernel
//! allows, kernel-side filters, and one place that classifies write errors.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use libc::{c_int, CAN_RAW_FD_FRAMES, CAN_RAW_FILTER, SOL_CAN_RAW, SOL_SOCKET};
use socketcan::{CanSocket, Socket, SocketOptions};

use crate::device::{CanSink, CanTx};
use crate::limits::{CAN_QUEUED_FRAME_COST, CAN_RCVBUF, CAN_SNDBUF, MAX_FILTERS};
use crate::sys::{self, CanBatch};

/// Which data frames a socket receives.
// Built once from the command line and never moved in a hot path, so the
// inline filter table is cheaper than a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filters {
    /// Every frame (the kernel default).
    All,
    /// Only frames matching one of these `CAN_RAW_FILTER` entries.
    List(heapless::Vec<libc::can_filter, MAX_FILTERS>),
    /// No data frames at all (a socket that only wants error frames).
    Nothing,
}

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
    /// Anything else the kernel said.
    Io(io::Error),
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
/// Set once the receive queue the kernel granted was logged: the first
/// socket is opened at start-up, and every later one gets the same.
static RCVBUF_LOGGED: AtomicBool = AtomicBool::new(false);

/// Says once how deep the receive queue is, and how to get the intended
/// depth when the kernel granted less: a shallower queue drops frames
/// sooner when a peer stalls or the loop wakes late.
fn log_rcvbuf(name: &str, granted: usize) {
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
        let index = sys::if_nametoindex(name).ok_or(OpenError::NoSuchInterface)?;
        let sock = CanSocket::open_iface(index).map_err(|e| match e.raw_os_error() {
            // The kernel binds a CAN socket only to an ARPHRD_CAN device.
            Some(libc::ENODEV) => OpenError::NotCan,
            _ => OpenError::Io(e),
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
        if !RCVBUF_LOGGED.swap(true, Ordering::Relaxed) {
            log_rcvbuf(name, sock.as_raw_socket().recv_buffer_size()?);
        }
        // Small on purpose, see limits::CAN_SNDBUF.
        sock.as_raw_socket().set_send_buffer_size(CAN_SNDBUF)?;
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

    #[test]
    fn drop_counts_only_move_forward() {
        assert_eq!(forward_delta(145, 220), 75);
        assert_eq!(forward_delta(220, 145), 0, "stale stamp on a queued frame");
        assert_eq!(forward_delta(u32::MAX - 1, 3), 5, "kernel counter wrapped");
        assert_eq!(forward_delta(7, 7), 0);
    }

    #[test]
    fn missing_interface_is_reported_as_such() {
        let opts = CanOptions {
            filters: Filters::All,
            error_mask: 0,
        };
        assert!(matches!(
            CanPort::open("nosuchcan9", &opts),
            Err(OpenError::NoSuchInterface)
        ));
    }
}
