//! How do signals reach the loop? Through a self-pipe that wakes poll, with
//! flags that say which arrived (the signal-hook recipe).

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The self-pipe and the flags set by the handlers.
pub struct Signals {
    pipe: UnixStream,
    term: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
}

impl Signals {
    /// Installs handlers for SIGINT, SIGTERM (stop) and SIGUSR1 (log counters).
    pub fn install() -> io::Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        use signal_hook::{flag, low_level::pipe};
        let (pipe_rx, pipe_tx) = UnixStream::pair()?;
        pipe_rx.set_nonblocking(true)?;
        pipe_tx.set_nonblocking(true)?;
        let term = Arc::new(AtomicBool::new(false));
        let usr1 = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // A second signal while we are already stopping ends us at once.
            flag::register_conditional_shutdown(sig, 1, Arc::clone(&term))?;
            flag::register(sig, Arc::clone(&term))?;
            pipe::register(sig, pipe_tx.try_clone()?)?;
        }
        flag::register(SIGUSR1, Arc::clone(&usr1))?;
        pipe::register(SIGUSR1, pipe_tx)?;
        Ok(Signals {
            pipe: pipe_rx,
            term,
            usr1,
        })
    }

    /// The read end of the pipe, for poll.
    pub fn fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// Empties the pipe, so poll stops reporting it (drain first, then act).
    pub fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!((&self.pipe).read(&mut buf), Ok(n) if n > 0) {}
    }

    /// True once SIGINT or SIGTERM arrived.
    pub fn stop_requested(&self) -> bool {
        self.term.load(Ordering::Relaxed)
    }

    /// True if SIGUSR1 arrived since the last call.
    pub fn take_usr1(&self) -> bool {
        self.usr1.swap(false, Ordering::Relaxed)
    }
}
