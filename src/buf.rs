//! Where do bytes wait between a socket and a parser? A fixed-capacity byte
//! queue: bytes are appended at the end and consumed from the front, the
//! unread rest is moved down only when space runs out. And the one queue
//! that is not fixed at start-up: a replay's [`Reservoir`].

use heapless::Vec;

/// Fixed buffer of `N` bytes holding the unread range `start..end`.
pub struct ByteBuf<const N: usize> {
    // Kept at full length so the free tail can be handed to read(2) as a
    // slice; its bytes are written once, when the connection is created.
    mem: Vec<u8, N>,
    start: usize,
    end: usize,
}

impl<const N: usize> ByteBuf<N> {
    /// An empty buffer.
    pub fn new() -> Self {
        let mut mem = Vec::new();
        // Cannot fail: the length asked for is the capacity.
        let _ = mem.resize(N, 0);
        Self {
            mem,
            start: 0,
            end: 0,
        }
    }

    /// The unread bytes.
    pub fn data(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }

    /// The unread bytes, mutable (for in-place layout conversion).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.end]
    }

    /// Number of unread bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when nothing is unread.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes that can still be appended (after compaction).
    pub fn free(&self) -> usize {
        N - self.len()
    }

    /// Marks `n` bytes at the front as read.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The free tail, after moving unread bytes to the front if that frees room.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.mem[self.end..]
    }

    /// Marks `n` bytes of the slice returned by [`spare`](Self::spare) as filled.
    pub fn fill(&mut self, n: usize) {
        self.end = (self.end + n).min(N);
    }

    /// Appends `bytes` whole, or nothing if they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.free() {
            return false;
        }
        if N - self.end < bytes.len() {
            self.spare();
        }
        self.mem[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }

    /// Appends `n` bytes for the caller to write (one bounds check for a
    /// message built in place), or `None` if they do not fit.
    // Inline: once per frame towards TCP.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.free() {
            return None;
        }
        if N - self.end < n {
            self.spare();
        }
        let at = self.end;
        self.end += n;
        Some(&mut self.mem[at..at + n])
    }
}

impl<const N: usize> Default for ByteBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a replay keeps what TCP brings while its frames wait their turn
/// (src/pace.rs), so the far end's buffers drain as fast as this end can
/// read them, not as fast as the replay releases frames: held back there,
/// they would make the far end's CAN queue overflow under a busy bus.
///
/// Bounded ([`REPLAY_RESERVOIR`](crate::limits::REPLAY_RESERVOIR)), one
/// allocation when a replay begins and freed when it has drained: the only
/// memory not fixed at start-up, and only a connection writing into a
/// virtual interface (a desk's, or a server's on a vcan) ever takes it.
pub struct Reservoir {
    mem: std::boxed::Box<[u8]>,
    start: usize,
    end: usize,
}

impl Reservoir {
    /// An empty reservoir of `capacity` bytes (the pages are the kernel's
    /// zero pages until written: it costs memory only as it fills).
    pub fn new(capacity: usize) -> Self {
        Self {
            mem: std::vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// True when nothing waits in it.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes waiting in it.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when no read fits in it.
    pub fn is_full(&self) -> bool {
        self.len() == self.mem.len()
    }

    /// The free tail for the next read. What waits is moved down only when
    /// the tail is smaller than a read of the buffer it pours into would
    /// be: a copy of at most the whole reservoir per that many bytes read.
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.mem.len() - self.end < min && self.start > 0 {
            self.mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.mem[self.end..]
    }

    /// Marks `n` bytes of the slice returned by [`spare`](Self::spare) as
    /// filled.
    pub fn fill(&mut self, n: usize) {
        self.end = (self.end + n).min(self.mem.len());
    }

    /// Moves as many waiting bytes, oldest first, as `into` has room for;
    /// returns how many.
    pub fn pour<const N: usize>(&mut self, into: &mut ByteBuf<N>) -> usize {
        let n = self.len().min(into.free());
        if n > 0 && into.push(&self.mem[self.start..self.start + n]) {
            self.start += n;
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            return n;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservoir_pours_oldest_first_as_room_comes() {
        let mut r = Reservoir::new(10);
        r.spare(4)[..6].copy_from_slice(b"abcdef");
        r.fill(6);
        let mut b = ByteBuf::<4>::new();
        assert_eq!(r.pour(&mut b), 4);
        assert_eq!(b.data(), b"abcd");
        assert_eq!(r.pour(&mut b), 0, "no room, nothing moves");
        b.consume(3);
        assert_eq!(r.pour(&mut b), 2);
        assert_eq!(b.data(), b"def");
        assert!(r.is_empty());
        assert_eq!(r.spare(4).len(), 10, "empty: the whole of it again");
    }

    #[test]
    fn a_reservoir_moves_what_waits_down_only_when_its_tail_is_short() {
        let mut r = Reservoir::new(10);
        r.spare(4)[..8].copy_from_slice(b"abcdefgh");
        r.fill(8);
        let mut b = ByteBuf::<4>::new();
        r.pour(&mut b);
        assert_eq!(r.spare(2).len(), 2, "a tail long enough stays");
        let tail = r.spare(3);
        assert_eq!(tail.len(), 6, "moved down");
        tail[..2].copy_from_slice(b"ij");
        r.fill(2);
        b.consume(4);
        r.pour(&mut b);
        b.consume(4);
        r.pour(&mut b);
        assert_eq!(b.data(), b"ij");
        assert!(r.is_empty());
    }

    #[test]
    fn push_consume_and_compact() {
        let mut b = ByteBuf::<8>::new();
        assert!(b.push(b"abcdef"));
        assert!(!b.push(b"xyz"), "all or nothing");
        b.consume(4);
        assert_eq!(b.data(), b"ef");
        assert!(b.push(b"xyz"), "compacts to make room");
        assert_eq!(b.data(), b"efxyz");
        assert_eq!(b.free(), 3);
    }

    #[test]
    fn spare_and_fill() {
        let mut b = ByteBuf::<4>::new();
        b.spare()[..3].copy_from_slice(b"abc");
        b.fill(3);
        b.consume(2);
        let s = b.spare();
        assert_eq!(s.len(), 3);
        s[0] = b'd';
        b.fill(1);
        assert_eq!(b.data(), b"cd");
        b.consume(10);
        assert!(b.is_empty());
    }
}
