//! Where do `--log` lines go without ever holding up the tunnel? A child
//! process that copies them to the file (`sys::spawn_copier`), fed through
//! a local socket the loop writes without blocking: a disk that stalls
//! fills the socket, then the connection's fixed line buffer, and then
//! lines are dropped and counted ([`LogLines`]), never frames. Only the
//! copier waits on the disk, which poll(2) cannot wait for (a regular file
//! is always "ready").

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use crate::counters::RateLimit;
use crate::error::Error;
use crate::framelog::LogLines;
use crate::limits::LOG_SOCKET_BUF;
use crate::sys;

/// The loop's end of the `--log` writer.
pub struct LogWriter {
    path: String,
    tx: UnixStream,
    /// The copier, until it was waited for.
    copier: Option<libc::pid_t>,
    /// Lines dropped, as last warned of.
    warned: u64,
    warn: RateLimit,
    failed: bool,
}

impl LogWriter {
    /// Opens `path` for appending and starts its copier: before anything
    /// else is opened, so the child holds nothing of the tunnel.
    pub fn open(path: &str) -> Result<LogWriter, Error> {
        let fail = |e| Error::LogFile(path.to_owned(), e);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail)?;
        let (tx, rx) = UnixStream::pair().map_err(fail)?;
        tx.set_nonblocking(true).map_err(fail)?;
        // Best effort: the default still works, only with less slack.
        let _ = socket2::SockRef::from(&tx).set_send_buffer_size(LOG_SOCKET_BUF);
        let pid =
            sys::spawn_copier(rx.as_raw_fd(), file.as_raw_fd(), tx.as_raw_fd()).map_err(fail)?;
        // The parent's copies of the copier's ends close here.
        drop((rx, file));
        Ok(LogWriter {
            path: path.to_owned(),
            tx,
            copier: Some(pid),
            warned: 0,
            warn: RateLimit::default(),
            failed: false,
        })
    }

    /// Hands the thread what `lines` holds, as much as the socket takes now.
    pub fn drain(&mut self, lines: &mut LogLines) {
        while !lines.pending().is_empty() {
            match (&self.tx).write(lines.pending()) {
                Ok(n) => lines.written(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The copier could not write: the lines have nowhere to go.
                    if !self.failed {
                        log::warn!(
                            "--log {}: writer gone ({e}); lines are discarded",
                            self.path
                        );
                        self.failed = true;
                    }
                    let n = lines.pending().len();
                    lines.written(n);
                }
            }
        }
        if lines.dropped() > self.warned {
            if let Some(s) = self.warn.allow(Instant::now()) {
                log::warn!(
                    "--log {}: the disk is not keeping up: {} lines dropped so far, frames are not ({s} similar warnings suppressed)",
                    self.path,
                    lines.dropped()
                );
            }
            self.warned = lines.dropped();
        }
    }

    /// At the end: waits for the socket to take everything left in `lines`.
    pub fn finish(&mut self, lines: &mut LogLines) {
        let _ = self.tx.set_nonblocking(false);
        self.drain(lines);
        let _ = self.tx.set_nonblocking(true);
    }
}

impl Drop for LogWriter {
    /// Ends the stream and waits for the copier to write what it holds.
    fn drop(&mut self) {
        let _ = self.tx.shutdown(Shutdown::Write);
        if let Some(pid) = self.copier.take() {
            // Its stream has ended: it exits, whatever it says.
            let _ = sys::reap(pid, true);
        }
    }
}
