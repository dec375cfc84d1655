//! Which bytes make a CAN frame as the kernel holds it? The *host layout*
//! view beside the wire's [`Frame`]: the same byte table (see
//! [`frame`](super::frame)), with `can_id` in native byte order. Frames read
//! from a CAN or BCM socket, and frames written to one, are read and built
//! through it, never indexed by hand. No I/O.

use super::frame::Frame;
use libc::CAN_MTU;

/// A typed view over a frame in host layout. Zero-copy, as [`Frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFrame<T: AsRef<[u8]>>(Frame<T>);

impl<T: AsRef<[u8]>> HostFrame<T> {
    /// Wraps a buffer without looking at it; the accessors panic if it is
    /// shorter than a classic frame.
    pub const fn new_unchecked(buffer: T) -> HostFrame<T> {
        HostFrame(Frame::new_unchecked(buffer))
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }

    /// True for a `struct canfd_frame` (72 bytes).
    pub fn is_fd(&self) -> bool {
        self.0.is_fd()
    }

    /// `can_id`: identifier and `CAN_*_FLAG` bits.
    pub fn can_id(&self) -> u32 {
        // Read in the wire's little-endian order, then put in native order:
        // a swap only on a big-endian host.
        let id = self.0.can_id();
        if cfg!(target_endian = "big") {
            id.swap_bytes()
        } else {
            id
        }
    }

    /// The `len` field.
    // The kernel's name for the field, as on `Frame`.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.0.len()
    }

    /// The data bytes the frame carries: `len` of them, at most the field.
    pub fn data(&self) -> &[u8] {
        self.0.data()
    }
}

impl HostFrame<[u8; CAN_MTU]> {
    /// A classic frame for the bus: `can_id` (flags included), its DLC
    /// `len`, and `data` (nothing for a remote request, at most 8 bytes).
    pub fn classic(can_id: u32, len: u8, data: &[u8]) -> Self {
        let mut f = Frame::new_unchecked([0u8; CAN_MTU]);
        f.set_can_id(can_id);
        f.set_len(len);
        f.data_field_mut()[..data.len()].copy_from_slice(data);
        // Built in wire layout; the host's differs only in `can_id`'s order.
        f.swap_layout();
        HostFrame(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_classic_frame_is_built_in_the_kernels_layout() {
        let f = HostFrame::classic(0x123 | libc::CAN_EFF_FLAG, 2, &[0xAB, 0xCD]);
        let bytes = f.into_inner();
        assert_eq!(bytes[..4], (0x123 | libc::CAN_EFF_FLAG).to_ne_bytes());
        assert_eq!(bytes[4], 2);
        assert_eq!(bytes[8..10], [0xAB, 0xCD]);
        assert!(bytes[10..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_kernel_frame_reads_back_its_fields() {
        let mut bytes = [0u8; 72];
        bytes[..4].copy_from_slice(&0x1ABC_DEF0u32.to_ne_bytes());
        bytes[4] = 12;
        bytes[8..20].copy_from_slice(&[7; 12]);
        let f = HostFrame::new_unchecked(&bytes[..]);
        assert!(f.is_fd());
        assert_eq!(f.can_id(), 0x1ABC_DEF0);
        assert_eq!(f.len(), 12);
        assert_eq!(f.data(), &[7; 12]);
        let classic = HostFrame::classic(0x7FF, 8, &[1; 8]);
        assert!(!classic.is_fd());
        assert_eq!(classic.data(), &[1; 8]);
    }
}
