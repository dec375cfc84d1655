//! Where do `--log` lines go without ever holding up the tunnel? A writer
//! thread that copies them to the file, fed through a local socket the loop
//! writes without blocking: a disk that stalls fills the socket, then the
//! connection's fixed line buffer, and then lines are dropped and counted
//! ([`LogLines`]), never frames. The loop stays the only thread that
//! touches sockets of the tunnel; this one only waits on the disk, which
//! poll(2) cannot wait for (a regular file is always "ready").

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::counters::RateLimit;
use crate::error::Error;
use crate::framelog::LogLines;
use crate::limits::LOG_SOCKET_BUF;

/// The loop's end of the `--log` writer.
pub struct LogWriter {
    path: String,
    tx: UnixStream,
    thread: Option<JoinHandle<()>>,
    /// Lines dropped, as last warned of.
    warned: u64,
    warn: RateLimit,
    failed: bool,
}

impl LogWriter {
    /// Opens `path` for appending and starts its writer thread.
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
        let name = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || copy(rx, file, &name))
            .map_err(fail)?;
        Ok(LogWriter {
            path: path.to_owned(),
            tx,
            thread: Some(thread),
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
                    // The thread has said why; the lines have nowhere to go.
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
    /// Ends the stream and waits for the thread to write what it holds.
    fn drop(&mut self) {
        let _ = self.tx.shutdown(Shutdown::Write);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: copies lines to the file until the loop ends the stream.
fn copy(mut rx: UnixStream, mut file: File, path: &str) {
    if let Err(e) = io::copy(&mut rx, &mut file) {
        log::warn!("--log {path}: {e}; no more lines are written");
    }
}
