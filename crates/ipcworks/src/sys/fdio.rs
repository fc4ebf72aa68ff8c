//! Reading, writing and waiting on file descriptors: `read`, `write`,
//! `send(MSG_NOSIGNAL)`, `poll`, `fcntl(F_SETFL, O_NONBLOCK)`, and the
//! process-wide `SIGPIPE` disposition. Every call retries `EINTR`.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use super::time::Deadline;

/// `read(fd, buf)`, retried on `EINTR`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `write(fd, buf)`, retried on `EINTR`. On a pipe whose readers are all
/// gone this returns `EPIPE` — provided `SIGPIPE` is ignored (see
/// [`ignore_sigpipe`]), which Rust programs do by default.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        match rustix::io::write(fd, buf) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `send(fd, buf, MSG_NOSIGNAL)`, retried on `EINTR`: a vanished peer is
/// `EPIPE`, never a `SIGPIPE`, whatever the process's signal disposition.
#[doc(alias = "MSG_NOSIGNAL")]
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        match rustix::net::send(fd, buf, SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `recv(fd, buf, 0)`, retried on `EINTR`; returns the number of bytes
/// received (a datagram longer than `buf` is cut; see [`recv_trunc`]).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match rustix::net::recv(fd, &mut *buf, RecvFlags::empty()) {
            Err(Errno::INTR) => continue,
            Ok((n, _)) => return Ok(n),
            Err(e) => return Err(e),
        }
    }
}

/// `recv(fd, buf, MSG_TRUNC)`: like [`recv`] but returns the datagram's
/// real length, which exceeds `buf.len()` when it was cut.
pub fn recv_trunc(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match rustix::net::recv(fd, &mut *buf, RecvFlags::TRUNC) {
            Err(Errno::INTR) => continue,
            Ok((_, full)) => return Ok(full),
            Err(e) => return Err(e),
        }
    }
}

/// What to wait for in [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// `POLLIN`: data to read (or end of stream).
    Read,
    /// `POLLOUT`: room to write (or the peer is gone).
    Write,
}

/// `poll([fd], events, timeout)` on one descriptor until it is ready or the
/// deadline passes. `EINTR` is retried with the time that is left. Returns
/// `false` on timeout. [`Deadline::Now`] (or one that has passed) polls
/// once without waiting, so a ready descriptor is still reported. Hang-up
/// and error conditions count as ready: the following read or write
/// reports them.
#[doc(alias = "poll")]
pub fn wait(fd: BorrowedFd<'_>, what: Ready, deadline: Deadline) -> Result<bool, Errno> {
    let events = match what {
        Ready::Read => PollFlags::IN,
        Ready::Write => PollFlags::OUT,
    };
    loop {
        let timeout = deadline.remaining().map(timespec);
        let mut fds = [PollFd::new(&fd, events)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
            // Re-check the deadline (timer slack).
            Ok(0) if deadline.expired() => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
        }
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// `fcntl(fd, F_SETFL, O_NONBLOCK on or off)`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let new = if on {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    if new != flags {
        rustix::fs::fcntl_setfl(fd, new)?;
    }
    Ok(())
}

/// `fcntl(fd, F_GETFL)`: whether `O_NONBLOCK` is set on `fd`'s open file
/// description.
#[cfg(feature = "tokio")]
pub fn is_nonblocking(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    Ok(rustix::fs::fcntl_getfl(fd)?.contains(OFlags::NONBLOCK))
}

/// One `fstat(fd)`: whether `fd` is a regular file (which epoll refuses),
/// and the file it is, as its device and inode numbers.
#[cfg(feature = "tokio")]
pub fn regular_file_and_id(fd: BorrowedFd<'_>) -> Result<(bool, (u64, u64)), Errno> {
    let st = super::pipe::fstat(fd)?;
    Ok((st.kind == rustix::fs::FileType::RegularFile, st.dev_ino))
}

/// `fstat(fd)`: whether `fd` is a socket.
#[cfg(feature = "tokio")]
pub fn is_socket(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    Ok(super::pipe::fstat(fd)?.kind == rustix::fs::FileType::Socket)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 3)`: a duplicate, close-on-exec, numbered 3
/// or above (never a standard stream's number).
pub fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3)
}

/// `fcntl(fd, F_GETFD)`: whether `fd` is an open descriptor of this process.
pub fn is_open(fd: std::os::fd::RawFd) -> bool {
    if fd < 0 {
        return false;
    }
    // SAFETY: the borrowed descriptor is only used for `fcntl(F_GETFD)`,
    // which is harmless on any number: an unused one fails with `EBADF`.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(b).is_ok()
}

/// Sets `SIGPIPE` to ignored for the whole process (`sigaction(SIGPIPE,
/// SIG_IGN)`), so writing to a pipe whose readers are gone fails with
/// `EPIPE` instead of killing the process.
///
/// The Rust runtime already does this before `main` in every Rust
/// executable (unless built with `-Zon-broken-pipe=kill`); this is for
/// programs that restored the default, and for embedding hosts. Sockets do
/// not depend on it: ipcworks sends with `MSG_NOSIGNAL`. Children spawned
/// with `std::process::Command` get the default disposition back (std
/// resets it before `exec`), so programs like `head` behave as usual.
#[doc(alias = "SIGPIPE")]
pub fn ignore_sigpipe() -> Result<(), Errno> {
    // SAFETY: installing SIG_IGN runs no code of ours in signal context; it
    // only changes the disposition, which is process-wide state that the
    // kernel manages. `sigaction` is given a fully initialised struct.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut())
    };
    if rc == 0 { Ok(()) } else { Err(Errno::INVAL) }
}

/// Takes ownership of descriptor number `fd`, inherited from the parent
/// process, once: checks it is open (`F_GETFD`), sets close-on-exec, and
/// refuses a number already adopted through this function in this process
/// (`EBUSY`), so it never creates two owners of one descriptor by itself.
/// Numbers 0–2 (the standard streams, owned by std) are refused (`EINVAL`).
///
/// # Safety
///
/// `fd` must be a descriptor handed to this process for the caller to own
/// (inherited across `exec` for it), and no other code in this process may
/// own or use it (as a `File`, socket or `OwnedFd` made with
/// `from_raw_fd`). The checks cannot tell such an owner apart: the
/// returned `OwnedFd` would close its descriptor under it.
pub unsafe fn adopt_inherited(fd: std::os::fd::RawFd) -> Result<OwnedFd, Errno> {
    use std::collections::HashSet;
    use std::os::fd::FromRawFd;
    use std::sync::Mutex;
    static TAKEN: Mutex<Option<HashSet<std::os::fd::RawFd>>> = Mutex::new(None);
    if fd <= 2 {
        return Err(Errno::INVAL);
    }
    if !is_open(fd) {
        return Err(Errno::BADF);
    }
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    if !taken.get_or_insert_with(HashSet::new).insert(fd) {
        return Err(Errno::BUSY);
    }
    // SAFETY: the descriptor is open (checked above); the caller guarantees
    // (this function's contract) it was handed down for it to own and no
    // other code owns it; and this function adopts each number at most
    // once per process.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

/// `open("/dev/null", O_RDONLY | O_CLOEXEC)`: a spare descriptor a server
/// holds so that, out of descriptors (`EMFILE`), it can close this one to
/// accept a waiting client and close it cleanly, then take it again.
#[cfg(feature = "server")]
pub fn reserve() -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        "/dev/null",
        OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
}

/// Raises this process's soft limit on open descriptors (`RLIMIT_NOFILE`)
/// to its hard limit, for servers with many clients; returns the new limit.
#[doc(alias = "setrlimit")]
#[cfg(feature = "server")]
pub fn raise_fd_limit() -> Result<u64, Errno> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim)?;
    }
    Ok(lim.current.unwrap_or(u64::MAX))
}
