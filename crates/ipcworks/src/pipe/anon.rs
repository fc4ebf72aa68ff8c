//! Anonymous pipes (`pipe2`) and handing their ends to child processes.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};

use crate::sys::fdio;
use crate::{Error, Result};

/// Creates an anonymous pipe: `pipe2(O_CLOEXEC)`. Both ends are
/// close-on-exec, so no child inherits them unless asked ([`pass_fd`], or
/// `Command::stdin(reader)` / `stdout(writer)` through `Into<Stdio>`).
#[doc(alias = "pipe2")]
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = crate::sys::pipe::pipe().map_err(|e| Error::io("pipe2", e))?;
    Ok((PipeReader(r), PipeWriter(w)))
}

/// The reading end of a pipe or FIFO. `read` returns 0 (end of stream) once
/// every writer has closed its end; `EINTR` is retried.
#[derive(Debug)]
pub struct PipeReader(pub(crate) OwnedFd);

/// The writing end of a pipe or FIFO. A write after every reader has gone
/// fails with [`io::ErrorKind::BrokenPipe`] (wrapping
/// [`Error::Disconnected`]); `EINTR` is retried.
#[derive(Debug)]
pub struct PipeWriter(pub(crate) OwnedFd);

impl PipeReader {
    /// Duplicates this end (`F_DUPFD_CLOEXEC`).
    pub fn try_clone(&self) -> Result<Self> {
        fdio::dup(self.0.as_fd())
            .map(PipeReader)
            .map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e))
    }

    /// Waits until data (or end of stream) is ready, at most `timeout`.
    /// Returns `false` on timeout.
    pub fn wait_readable(&self, timeout: Option<std::time::Duration>) -> Result<bool> {
        let d = crate::sys::time::Deadline::from_timeout(timeout);
        fdio::wait(self.0.as_fd(), fdio::Ready::Read, d).map_err(|e| Error::io("poll", e))
    }
}

impl PipeWriter {
    /// Duplicates this end (`F_DUPFD_CLOEXEC`).
    pub fn try_clone(&self) -> Result<Self> {
        fdio::dup(self.0.as_fd())
            .map(PipeWriter)
            .map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e))
    }
}

impl From<OwnedFd> for PipeReader {
    /// Wraps a descriptor (a pipe's or FIFO's read end, or any readable one).
    fn from(fd: OwnedFd) -> Self {
        PipeReader(fd)
    }
}

impl From<OwnedFd> for PipeWriter {
    /// Wraps a descriptor (a pipe's or FIFO's write end, or any writable one).
    fn from(fd: OwnedFd) -> Self {
        PipeWriter(fd)
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        fdio::read(self.0.as_fd(), buf).map_err(|e| Error::io("read", e).into())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        fdio::write(self.0.as_fd(), buf).map_err(|e| super::write_error("write", e))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

macro_rules! fd_traits {
    ($t:ty) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.0.as_raw_fd()
            }
        }
        impl From<$t> for OwnedFd {
            fn from(p: $t) -> OwnedFd {
                p.0
            }
        }
        impl From<$t> for Stdio {
            /// For `Command::stdin`/`stdout`/`stderr`: the child gets this
            /// end as that stream (std `dup2`s it, clearing close-on-exec on
            /// the copy only).
            fn from(p: $t) -> Stdio {
                Stdio::from(p.0)
            }
        }
    };
}
fd_traits!(PipeReader);
fd_traits!(PipeWriter);

/// Hands `fd` to the child that `cmd` will spawn and returns the number it
/// has there (the same number as here). Tell the child that number (an
/// argument, or [`pass_fd_env`]); it takes the descriptor with
/// [`take_inherited`] (an `unsafe` call: see its contract). `cmd` owns `fd` until it is dropped, so drop `cmd`
/// after spawning to close the parent's copy (a reader needs that to see end
/// of stream).
///
/// Safe with other threads spawning at the same time: `fd` stays
/// close-on-exec here; only the child's copy has the flag cleared, between
/// `fork` and `exec`, by a single async-signal-safe `fcntl` in a
/// `CommandExt::pre_exec` hook.
pub fn pass_fd(cmd: &mut Command, fd: impl Into<OwnedFd>) -> Result<RawFd> {
    let mut fd: OwnedFd = fd.into();
    if fd.as_raw_fd() <= 2 {
        // 0..=2 are rewired by std for the child's stdio; move above them.
        fd = fdio::dup(fd.as_fd()).map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e))?;
    }
    Ok(crate::sys::pipe::pass_fd(cmd, fd))
}

/// [`pass_fd`], then sets the environment variable `var` of the child to the
/// descriptor's number, for [`take_inherited`].
pub fn pass_fd_env(cmd: &mut Command, fd: impl Into<OwnedFd>, var: &str) -> Result<RawFd> {
    let n = pass_fd(cmd, fd)?;
    cmd.env(var, n.to_string());
    Ok(n)
}

/// In a child process: takes ownership of the descriptor whose number the
/// parent put in environment variable `var` (see [`pass_fd_env`]).
///
/// Checks that the number is an open descriptor above 2, makes it
/// close-on-exec, and refuses to hand out the same number twice in this
/// process (so two owners of one descriptor cannot arise through this
/// function alone).
///
/// # Safety
///
/// The descriptor named by `var` must have been handed to this process
/// for the caller to own (by [`pass_fd_env`] in the parent, or the same
/// contract by other means), and nothing else in this process may own or
/// use that number: no `File`, socket or `OwnedFd` made from it by other
/// code (`from_raw_fd`, another library reading the same variable). An
/// environment variable is only a number; if that number is another
/// object's descriptor, the `OwnedFd` returned would close it under that
/// object, which is the I/O-safety violation Rust forbids in safe code.
/// The checks above catch a closed number and a second take through this
/// function, not a descriptor some other code owns.
///
/// Safe code cannot call it:
///
/// ```compile_fail,E0133
/// let fd = ipcworks::pipe::take_inherited("IPCWORKS_DOC_FD");
/// ```
pub unsafe fn take_inherited(var: &str) -> Result<OwnedFd> {
    let val = std::env::var(var).map_err(|_| Error::NotFound {
        kind: "inherited descriptor variable",
        name: var.to_string(),
    })?;
    let fd: RawFd = val.trim().parse().ok().filter(|&n| n > 2).ok_or_else(|| {
        Error::InvalidArgument(format!("{var}={val:?} is not a descriptor number above 2"))
    })?;
    // SAFETY: the caller guarantees (this function's contract) that the
    // number in `var` was handed over for it to own and nothing else owns
    // it.
    unsafe { fdio::adopt_inherited(fd) }.map_err(|e| match e {
        crate::sys::Errno::BUSY => {
            Error::InvalidArgument(format!("{var}={fd}: descriptor already taken"))
        }
        crate::sys::Errno::BADF => {
            Error::InvalidArgument(format!("{var}={fd}: no such open descriptor"))
        }
        other => Error::io("fcntl(F_SETFD)", other),
    })
}
