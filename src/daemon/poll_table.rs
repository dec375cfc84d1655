//! What does this turn of the loop wait on? The descriptors handed to
//! poll(2) and, beside each, what it stands for, kept in one type so they
//! cannot fall out of step.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::limits::MAX_CLIENTS;
use crate::sys::{self, PollFd};
use crate::time::earliest;

/// Signal pipe, two listeners (v1, socketcand), monitor, dialing socket,
/// then per client (of either protocol: they share the capacity) TCP + CAN,
/// and a BCM socket while it holds subscriptions. A pipe link (`--stdio`,
/// `--via`: one connection, no listener, no dialing) has a second
/// descriptor, and `--via` its command's stderr: well within the sum.
pub const MAX_POLL: usize = 5 + 3 * MAX_CLIENTS;

/// What an entry of the poll table stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The signal self-pipe.
    Signal,
    /// Listening socket `n` of a server (protocol v1's, socketcand's).
    Listener(usize),
    /// The bus-state monitor's CAN socket.
    Monitor,
    /// A client's connection attempt in progress.
    Dial,
    /// The stderr of the command `--via` runs.
    Stderr,
    /// The TCP stream of connection `n`, or the read end of its pipes.
    Tcp(usize),
    /// The write end of connection `n`'s pipes (`--stdio`, `--via`).
    Tx(usize),
    /// The CAN socket of connection `n`.
    Can(usize),
    /// The BCM socket of connection `n`, while frames come back through it
    /// (socketcand's subscriptions).
    Bcm(usize),
}

/// One descriptor poll found ready.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// What it stands for.
    pub slot: Slot,
    /// The descriptor polled (to tell a reused slot from the one polled).
    pub fd: RawFd,
    /// What poll reported.
    pub revents: i16,
}

/// The poll table of one turn: rebuilt every turn, never reallocated.
#[derive(Default)]
pub struct PollTable {
    fds: heapless::Vec<PollFd, MAX_POLL>,
    slots: heapless::Vec<Slot, MAX_POLL>,
    /// The shortest coalescing wait of an entry left unread this turn.
    wait: Option<Duration>,
    /// Beside each entry: left unread this turn by a coalescing wait.
    held: heapless::Vec<bool, MAX_POLL>,
}

impl PollTable {
    /// Empties the table for the next turn.
    pub fn clear(&mut self) {
        self.fds.clear();
        self.slots.clear();
        self.held.clear();
        self.wait = None;
    }

    /// Adds `fd`, waited on for `events`; a negative `fd` is skipped by poll.
    pub fn push(&mut self, fd: RawFd, events: i16, slot: Slot) {
        self.push_held(fd, events, None, slot);
    }

    /// Adds `fd` as [`push`](Self::push) does, but if it is to be read
    /// (`events` has POLLIN) and `hold` is a coalescing wait, leaves it
    /// unread for at most that wait: the poll ends by then, and reports it
    /// readable.
    pub fn push_held(&mut self, fd: RawFd, mut events: i16, hold: Option<Duration>, slot: Slot) {
        let hold = hold.filter(|_| events & libc::POLLIN != 0);
        if let Some(wait) = hold {
            events &= !libc::POLLIN;
            self.wait = earliest(self.wait, Some(wait));
        }
        // Cannot overflow: MAX_POLL covers every descriptor we can own.
        let _ = self.fds.push(PollFd {
            fd,
            events,
            revents: 0,
        });
        let _ = self.slots.push(slot);
        let _ = self.held.push(hold.is_some());
    }

    /// Waits up to `timeout` (`None`: no limit), and no longer than the
    /// shortest wait of a [held](Self::push_held) entry, for any entry to
    /// be ready. A poll
    /// that ends with nothing ready has ended a wait: the held entries are
    /// then reported readable, so they are read at once rather than polled
    /// again (one system call fewer per wait; an empty socket answers
    /// EAGAIN, and the next turn polls it as usual). A poll that something
    /// else ended leaves them for the next turn, which polls them.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let timeout = earliest(timeout, self.wait);
        let ready = sys::poll(&mut self.fds, timeout)?;
        if ready > 0 || self.wait.is_none() {
            return Ok(ready);
        }
        let mut held = 0;
        for (fd, _) in self.fds.iter_mut().zip(&self.held).filter(|(_, h)| **h) {
            fd.revents |= libc::POLLIN;
            held += 1;
        }
        Ok(held)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Entry `i`, if poll reported anything for it.
    pub fn ready(&self, i: usize) -> Option<Ready> {
        let fd = self.fds.get(i)?;
        (fd.revents != 0).then(|| Ready {
            slot: self.slots[i],
            fd: fd.fd,
            revents: fd.revents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ready_descriptor_comes_with_its_slot() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        let mut t = PollTable::default();
        t.push(a.as_raw_fd(), libc::POLLIN, Slot::Signal);
        t.push(b.as_raw_fd(), libc::POLLOUT, Slot::Tcp(3));
        assert_eq!(t.poll(Some(Duration::ZERO)).unwrap(), 1);
        assert!(t.ready(0).is_none(), "nothing to read yet");
        let r = t.ready(1).unwrap();
        assert_eq!((r.slot, r.fd), (Slot::Tcp(3), b.as_raw_fd()));
        assert!(r.revents & libc::POLLOUT != 0);
        t.clear();
        assert!(t.is_empty());
    }

    #[test]
    fn a_hold_ends_the_poll_by_its_time_and_the_next_turn_forgets_it() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        let (b, _c) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut t = PollTable::default();
        let held = |us| Some(Duration::from_micros(us));
        t.push_held(b.as_raw_fd(), libc::POLLIN, held(30_000), Slot::Can(1));
        t.push_held(a.as_raw_fd(), libc::POLLIN, held(300), Slot::Can(0));
        let start = std::time::Instant::now();
        assert_eq!(t.poll(None).unwrap(), 2, "the shortest hold ended it");
        assert!(start.elapsed() < Duration::from_millis(30));
        t.clear();
        t.push(a.as_raw_fd(), 0, Slot::Can(0));
        let start = std::time::Instant::now();
        t.poll(Some(Duration::from_millis(5))).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(5), "no hold left");
    }

    #[test]
    fn a_held_entry_is_reported_readable_when_its_wait_ends() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        let mut t = PollTable::default();
        t.push(c.as_raw_fd(), libc::POLLIN, Slot::Tcp(0));
        let wait = Some(Duration::from_micros(200));
        t.push_held(a.as_raw_fd(), libc::POLLIN, wait, Slot::Can(0));
        assert_eq!(t.poll(None).unwrap(), 1);
        assert!(t.ready(0).is_none(), "only the held entry");
        let r = t.ready(1).unwrap();
        assert_eq!(r.slot, Slot::Can(0));
        assert!(
            r.revents & libc::POLLIN != 0,
            "read it without polling again"
        );
    }

    #[test]
    fn a_held_entry_waits_for_the_next_turn_when_something_else_woke_the_poll() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, mut d) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::io::Write;
        use std::os::fd::AsRawFd;
        d.write_all(b"x").unwrap();
        let mut t = PollTable::default();
        t.push(c.as_raw_fd(), libc::POLLIN, Slot::Tcp(0));
        let wait = Some(Duration::from_millis(30));
        t.push_held(a.as_raw_fd(), libc::POLLIN, wait, Slot::Can(0));
        assert_eq!(t.poll(None).unwrap(), 1);
        assert_eq!(t.ready(0).unwrap().slot, Slot::Tcp(0));
        assert!(t.ready(1).is_none(), "its wait has not ended");
    }

    #[test]
    fn an_entry_that_is_not_to_be_read_is_not_held() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        let mut t = PollTable::default();
        let wait = Some(Duration::from_millis(30));
        t.push_held(a.as_raw_fd(), 0, wait, Slot::Can(0));
        assert_eq!(t.poll(Some(Duration::ZERO)).unwrap(), 0);
        assert!(t.ready(0).is_none(), "no wait: nothing to report");
    }
}
