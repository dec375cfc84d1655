//! Shell commands on pipes (`--via`) and the standard descriptors
//! (`--stdio`): spawned, signalled and reaped without `std::process`, which
//! would have cost 24 KiB more on ARMv6 (docs/embedded.md).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::check;

/// A copy of one of our standard descriptors (0, 1), close-on-exec: the
/// link of `--stdio` owns it, and nothing else in the process writes to the
/// peer's stream by mistake.
pub fn dup_std(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor, which we own at once.
    let new = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `new` was just opened and nothing else holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both were just opened and nothing else holds them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A command started by [`spawn_shell`]: its pid and our ends of its pipes.
pub struct Spawned {
    /// Its process id, which leads its own session and process group.
    pub pid: libc::pid_t,
    /// Its standard input (we write).
    pub stdin: OwnedFd,
    /// Its standard output (we read).
    pub stdout: OwnedFd,
    /// Its standard error (we read).
    pub stderr: OwnedFd,
}

/// Runs `/bin/sh -c CMD` with its standard input, output and error on
/// pipes, leading a session of its own: no controlling terminal (ssh cannot
/// stop on a prompt that no one sees; it fails and says so), and its own
/// process group, which [`kill_group`] ends as a whole and a terminal's
/// Ctrl-C does not reach (tcpcan ends it itself). A plain fork and exec
/// rather than `std::process::Command`, whose general machinery would cost
/// the small builds some 40 KiB for one fixed use. The shell's own failure
/// to start is its exit status 127, as a shell reports a missing command.
pub fn spawn_shell(cmd: &std::ffi::CStr) -> io::Result<Spawned> {
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Everything the child needs is ready before the fork: it must not
    // allocate or take a lock between fork and exec.
    let sh = b"/bin/sh\0".as_ptr().cast::<libc::c_char>();
    let argv = [
        b"sh\0".as_ptr().cast::<libc::c_char>(),
        b"-c\0".as_ptr().cast(),
        cmd.as_ptr(),
        std::ptr::null(),
    ];
    let child_fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
    // SAFETY: the loop is single-threaded, so no lock can be held by
    // another thread at the fork; the child calls only async-signal-safe
    // functions (setsid, dup2, fcntl, signal, execv, _exit) on data
    // prepared above, and never returns.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: as above; in the child only.
        unsafe {
            libc::setsid();
            for (target, fd) in child_fds.into_iter().enumerate() {
                let target = target as libc::c_int;
                if fd == target {
                    // Already in place (our own 0-2 were closed): keep it
                    // open across exec.
                    libc::fcntl(fd, libc::F_SETFD, 0);
                } else {
                    libc::dup2(fd, target);
                }
            }
            // std ignores SIGPIPE in tcpcan; an ignored signal stays
            // ignored across exec, and the command expects the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execv(sh, argv.as_ptr());
            libc::_exit(127);
        }
    }
    Ok(Spawned {
        pid,
        stdin: in_w,
        stdout: out_r,
        stderr: err_r,
    })
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Status(i32),
    /// A signal ended it.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Status(n) => write!(f, "exit status: {n}"),
            Exit::Signal(n) => write!(f, "signal: {n}"),
        }
    }
}

/// Reaps child `pid` if it has ended (`block`: waits until it has): how it
/// ended, or `None` while it runs.
pub fn reap(pid: libc::pid_t, block: bool) -> io::Result<Option<Exit>> {
    let mut status: libc::c_int = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: waitpid writes the status into the c_int it is given.
        match check(unsafe { libc::waitpid(pid, &mut status, flags) }) {
            Ok(0) => return Ok(None),
            Ok(_) if libc::WIFSIGNALED(status) => {
                return Ok(Some(Exit::Signal(libc::WTERMSIG(status))))
            }
            Ok(_) => return Ok(Some(Exit::Status(libc::WEXITSTATUS(status)))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Starts the `--log` writer: a child process that copies `rx` to `file`
/// until the stream ends, then exits; `tx`, the loop's end, is closed in
/// the child so that the end comes. A process, not a thread: std's threads
/// cost the static builds 28 KiB (measured on x86_64), fork(2) almost
/// nothing. Call it before opening anything else: the child holds every
/// descriptor open at that moment. Returns the child's pid.
pub fn spawn_copier(rx: RawFd, file: RawFd, tx: RawFd) -> io::Result<libc::pid_t> {
    // SAFETY: fork(2) takes no pointers. The daemon has one thread, so no
    // lock can be held by another thread at the fork; the child runs only
    // copy_until_eof, which makes system calls and touches no allocator,
    // lock or Rust object, and ends with _exit.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        copy_until_eof(rx, file, tx);
    }
    Ok(pid)
}

/// The copier's life: signals that end the daemon do not end it (the
/// daemon hands it its last lines before closing the stream, then waits
/// for it), the loop's end is closed, and the stream is copied to the file.
fn copy_until_eof(rx: RawFd, file: RawFd, tx: RawFd) -> ! {
    let mut buf = [0u8; 16 * 1024];
    // SAFETY: signal(2) with SIG_IGN installs no handler code; close(2) of
    // the child's copy of the loop's end. Neither takes a pointer.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::close(tx);
    }
    let status = loop {
        // SAFETY: buf is a writable buffer of buf.len() bytes.
        let n = unsafe { libc::read(rx, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            break 0;
        }
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break 1;
        }
        let mut done = 0;
        while done < n as usize {
            let left = &buf[done..n as usize];
            // SAFETY: left is a readable buffer of left.len() bytes.
            let w = unsafe { libc::write(file, left.as_ptr().cast(), left.len()) };
            if w < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if w <= 0 {
                // SAFETY: _exit(2) ends the process; it takes no pointer.
                unsafe { libc::_exit(1) }
            }
            done += w as usize;
        }
    };
    // SAFETY: as above; _exit, not exit: the parent's atexit handlers and
    // buffers are the parent's.
    unsafe { libc::_exit(status) }
}

/// Sends `sig` to every process of the group that `pid` leads: a `--via`
/// command and whatever it started (`sh -c` need not exec its command).
/// The caller must not have reaped `pid` yet, so the group cannot be
/// another's.
pub fn kill_group(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers; a negative pid names a group.
    match check(unsafe { libc::kill(-pid, sig) }) {
        // Just forked, the child has not made its group yet (nor started
        // anything): it alone is signalled.
        // SAFETY: as above.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => check(unsafe { libc::kill(pid, sig) })?,
        r => r?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_command_runs_on_pipes_and_its_end_is_reaped() {
        use std::io::{Read, Write};
        let cmd = std::ffi::CString::new("read x; echo \"got $x\"; echo oops >&2; exit 3").unwrap();
        let c = spawn_shell(&cmd).unwrap();
        std::fs::File::from(c.stdin).write_all(b"hi\n").unwrap();
        let mut out = String::new();
        std::fs::File::from(c.stdout)
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        std::fs::File::from(c.stderr)
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("got hi\n", "oops\n"));
        assert_eq!(reap(c.pid, true).unwrap(), Some(Exit::Status(3)));
        assert_eq!(Exit::Status(3).to_string(), "exit status: 3");
    }

    #[test]
    fn a_command_group_is_ended_by_a_signal() {
        let cmd = std::ffi::CString::new("sleep 10; sleep 10").unwrap();
        let c = spawn_shell(&cmd).unwrap();
        assert_eq!(reap(c.pid, false).unwrap(), None, "still running");
        kill_group(c.pid, libc::SIGTERM).unwrap();
        assert_eq!(
            reap(c.pid, true).unwrap(),
            Some(Exit::Signal(libc::SIGTERM))
        );
    }
}
