//! How does a desk reach a gateway with no port open (`--via CMD`)? By
//! running CMD (ssh, usually) through `/bin/sh -c` and speaking protocol v1
//! over its standard input and output. When CMD ends it is started again,
//! as a lost TCP connection is dialed again: at once after a link that
//! worked, a second later after one that never said anything, and never
//! twice within a second. On the way out it is ended and reaped.
//!
//! CMD's stderr is read here, in the poll loop, and logged line by line
//! ("via: ..."), rather than inherited: so each line is one log record
//! (under an init system, one syslog line), and an attempt that fails the
//! same way as the one before (a refused key, a missing command: one line
//! per second) is logged at debug level only, as the dialer does for TCP.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::time::Now;
use crate::error::Error;
use crate::limits::{
    READS_PER_WAKEUP, RETRY_INTERVAL, VIA_END_GRACE, VIA_LINE, VIA_LINES_REMEMBERED,
};
use crate::link::Link;
use crate::sys::{self, Exit};

/// Hashes of the stderr lines of one attempt.
type Lines = heapless::Vec<u64, VIA_LINES_REMEMBERED>;

/// The command, its running instance, and when to start it again.
pub struct Via {
    cmd: String,
    /// The same, for exec.
    cmd_c: CString,
    retry: bool,
    /// The running command's pid, until it is reaped.
    child: Option<libc::pid_t>,
    stderr: Option<File>,
    /// The stderr line being read.
    line: heapless::Vec<u8, VIA_LINE>,
    started: Option<Instant>,
    retry_at: Option<Instant>,
    /// What this attempt said, and what the one before said.
    said: Lines,
    said_before: Lines,
    /// This attempt said something the one before did not.
    news: bool,
    /// How the attempt before ended, to tell a new failure from the same.
    ended_before: Option<Exit>,
}

impl Via {
    /// Runs `cmd` on the first turn of the loop; `retry` is false with
    /// `--no-retry`.
    pub fn new(cmd: String, retry: bool, now: Instant) -> Via {
        // From the command line, which cannot hold a NUL.
        let cmd_c = CString::new(cmd.as_str()).unwrap_or_default();
        Via {
            cmd,
            cmd_c,
            retry,
            child: None,
            stderr: None,
            line: heapless::Vec::new(),
            started: None,
            retry_at: Some(now),
            said: Lines::new(),
            said_before: Lines::new(),
            news: false,
            ended_before: None,
        }
    }

    /// When the command is to be started (again).
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The command's stderr, for poll, while it is open.
    pub fn stderr_fd(&self) -> Option<RawFd> {
        self.stderr.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// At the due time: starts the command, and returns the link over its
    /// pipes. A failure to start is an attempt that failed.
    // Cold, here and below: kept out of the loop's hot body, whose
    // inlining (and so its cost per frame) they would otherwise change.
    #[cold]
    pub fn start(&mut self, now: &Now) -> Result<Option<Link>, Error> {
        self.retry_at = None;
        self.started = Some(now.get());
        match self.spawn() {
            Ok(link) => Ok(Some(link)),
            Err(e) => {
                // A command started whose pipes then failed goes at once.
                let status = self.end();
                self.stderr = None;
                let text = format!("cannot run `{}`: {e}", self.cmd);
                if !self.retry {
                    return Err(Error::Via(text));
                }
                let h = hash(text.as_bytes());
                self.news |= !self.said_before.contains(&h);
                let _ = self.said.push(h);
                self.end_attempt(status, false, &text, now.get());
                Ok(None)
            }
        }
    }

    fn spawn(&mut self) -> io::Result<Link> {
        let c = sys::spawn_shell(&self.cmd_c)?;
        // The child is ours from here: ended and reaped even if the pipes
        // cannot be set up.
        self.child = Some(c.pid);
        sys::set_nonblocking(c.stderr.as_raw_fd())?;
        self.stderr = Some(File::from(c.stderr));
        log::debug!("via: started `{}`", self.cmd);
        Link::pipes(c.stdout, c.stdin)
    }

    /// The command's stderr is readable: log its complete lines.
    #[cold]
    pub fn on_stderr(&mut self) {
        let Some(mut stderr) = self.stderr.take() else {
            return;
        };
        let mut chunk = [0u8; 512];
        // A few reads per wake-up, as for every descriptor: a command that
        // writes without end cannot hold the loop.
        for _ in 0..READS_PER_WAKEUP {
            match stderr.read(&mut chunk) {
                Ok(0) => {
                    self.flush_line();
                    return; // closed: dropped
                }
                Ok(n) => {
                    for &b in &chunk[..n] {
                        if b == b'\n' {
                            self.flush_line();
                        } else if self.line.push(b).is_err() {
                            self.flush_line();
                            let _ = self.line.push(b);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!("via: reading the command's stderr: {e}");
                    return;
                }
            }
        }
        self.stderr = Some(stderr);
    }

    /// Logs the stderr line read so far: at info level, unless this
    /// attempt or the one before said the same (then at debug level).
    fn flush_line(&mut self) {
        let raw = core::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_end_matches('\r');
        if text.is_empty() {
            return;
        }
        let h = hash(text.as_bytes());
        if self.said.contains(&h) {
            // Said already by this attempt.
            log::debug!("via: {text}");
            return;
        }
        // Remembered as this attempt's, for the next to compare with.
        let _ = self.said.push(h);
        if self.said_before.contains(&h) {
            log::debug!("via: {text}");
        } else {
            log::info!("via: {text}");
            self.news = true;
        }
    }

    /// The link ended (`heard`: after the command had sent something): end
    /// and reap the command, say how it ended, and plan the next start;
    /// with `--no-retry` that is fatal.
    #[cold]
    pub fn lost(&mut self, heard: bool, now: Instant) -> Result<(), Error> {
        let status = self.end();
        // What it wrote before it ended comes before the line that says so.
        self.on_stderr();
        self.flush_line();
        self.stderr = None;
        let how = match status {
            Some(s) => format!("`{}` ended ({s})", self.cmd),
            None => format!("`{}` ended", self.cmd),
        };
        if !self.retry {
            return Err(Error::Via(how));
        }
        self.end_attempt(status, heard, &how, now);
        Ok(())
    }

    /// Plans the next start after an attempt that ended with `status`,
    /// and says so: warned if it is news, else at debug level.
    fn end_attempt(&mut self, status: Option<Exit>, heard: bool, how: &str, now: Instant) {
        let started = self.started.unwrap_or(now);
        let (at, when) = if heard {
            // A link that worked: at once, but not twice within a second.
            (now.max(started + RETRY_INTERVAL), "again")
        } else {
            (now + RETRY_INTERVAL, "again every second")
        };
        self.retry_at = Some(at);
        let same = !heard && !self.news && self.ended_before == status;
        let level = match (same, heard) {
            (true, _) => log::Level::Debug,
            (false, true) => log::Level::Info,
            (false, false) => log::Level::Warn,
        };
        log::log!(level, "via: {how}; starting it {when}");
        // A link that worked makes the next failure news again.
        self.ended_before = if heard { None } else { status };
        self.said_before = match heard {
            true => Lines::new(),
            false => core::mem::take(&mut self.said),
        };
        self.said.clear();
        self.news = false;
    }

    /// Ends the command, if it runs, and reaps it: SIGTERM to its process
    /// group (so ssh goes even where `sh -c` did not exec it), SIGKILL after
    /// [`VIA_END_GRACE`]. Its exit status, if it could be had.
    fn end(&mut self) -> Option<Exit> {
        let pid = self.child.take()?;
        if let Ok(Some(status)) = sys::reap(pid, false) {
            return Some(status);
        }
        let _ = sys::kill_group(pid, libc::SIGTERM);
        let deadline = Instant::now() + VIA_END_GRACE;
        loop {
            match sys::reap(pid, false) {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    // A poll on nothing: the loop's one way to sleep.
                    let _ = sys::poll(&mut [], Some(Duration::from_millis(2)));
                }
                Ok(None) => {
                    log::warn!(
                        "via: `{}` still runs {} ms after SIGTERM: killing it",
                        self.cmd,
                        VIA_END_GRACE.as_millis()
                    );
                    let _ = sys::kill_group(pid, libc::SIGKILL);
                    return sys::reap(pid, true).ok().flatten();
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Via {
    /// tcpcan stops (a signal, or an error): the command goes with it,
    /// leaving no zombie and no orphan.
    fn drop(&mut self) {
        if self.child.is_some() {
            log::debug!("via: ending `{}`", self.cmd);
            self.end();
        }
    }
}

/// FNV-1a: enough to tell lines apart, and a few bytes of code.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
