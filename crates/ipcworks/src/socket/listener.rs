//! The listening Unix-domain socket: `socket`, `bind` (through
//! [`file`](super::file), which creates the socket file safely), `listen`,
//! then `accept` for each client.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::file::{SocketFile, bind_path};
use super::unix::{UnixSeqpacket, UnixStream};
use crate::sys::socket::{self as sys, Kind};
use crate::{Error, Result};

/// A listening Unix-domain socket (`socket`, `bind`, `listen`): each
/// [`accept`](Self::accept) gives a new connected socket for one client.
///
/// The socket file is created with mode `0600` (exactly, whatever the
/// umask; see [`bind_with_mode`](Self::bind_with_mode)), a stale one left
/// by a dead server is replaced, a live one is never displaced, and the
/// file is removed on drop.
#[derive(Debug)]
pub struct UnixListener {
    fd: OwnedFd,
    file: SocketFile,
    kind: Kind,
}

impl UnixListener {
    /// Binds a stream listener at `path`, mode `0600`.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::bind_with_mode(path, 0o600)
    }

    /// Binds a stream listener at `path` with exactly `mode`.
    pub fn bind_with_mode(path: impl AsRef<Path>, mode: u32) -> Result<Self> {
        let (fd, file) = bind_path(path.as_ref(), Kind::Stream, mode)?;
        Ok(UnixListener {
            fd,
            file,
            kind: Kind::Stream,
        })
    }

    /// Binds a seqpacket listener at `path`, mode `0600`; accept with
    /// [`accept_seqpacket`](Self::accept_seqpacket).
    pub fn bind_seqpacket(path: impl AsRef<Path>) -> Result<Self> {
        let (fd, file) = bind_path(path.as_ref(), Kind::Seqpacket, 0o600)?;
        Ok(UnixListener {
            fd,
            file,
            kind: Kind::Seqpacket,
        })
    }

    fn accept_fd(&self, want: Kind) -> Result<OwnedFd> {
        if self.kind != want {
            return Err(Error::InvalidArgument(format!(
                "this listener accepts {:?} connections, not {want:?}",
                self.kind
            )));
        }
        sys::accept(self.fd.as_fd(), false).map_err(|e| Error::io("accept4", e))
    }

    /// Waits for a client and returns its connected stream (`accept4`).
    pub fn accept(&self) -> Result<UnixStream> {
        self.accept_fd(Kind::Stream).map(UnixStream)
    }

    /// Waits for a client of a seqpacket listener.
    pub fn accept_seqpacket(&self) -> Result<UnixSeqpacket> {
        self.accept_fd(Kind::Seqpacket).map(UnixSeqpacket::from)
    }

    /// Waits at most `timeout` for a client to be waiting; `false` on timeout.
    pub fn wait_acceptable(&self, timeout: Option<std::time::Duration>) -> Result<bool> {
        crate::sys::fdio::wait(
            self.fd.as_fd(),
            crate::sys::fdio::Ready::Read,
            crate::sys::time::Deadline::from_timeout(timeout),
        )
        .map_err(|e| Error::io("poll", e))
    }

    /// The socket file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Leave the socket file behind on drop.
    pub fn persist(&mut self) {
        self.file.persist();
    }

    /// Splits into the descriptor and the file guard (for event loops).
    pub fn into_parts(self) -> (OwnedFd, SocketFile) {
        (self.fd, self.file)
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
