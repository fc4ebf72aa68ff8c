//! Unix-domain sockets: stream, datagram and seqpacket, descriptor passing
//! (`SCM_RIGHTS`) and peer credentials (`SO_PEERCRED`).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

#[cfg(feature = "serde")]
use serde::Serialize;
#[cfg(feature = "serde")]
use serde::de::DeserializeOwned;

use crate::sys::Errno;
use crate::sys::fdio::{self, Ready};
use crate::sys::socket::{self as sys, Kind};
use crate::sys::time::Deadline;
use crate::{Error, Result};

/// The credentials of the process at the other end of a connected Unix
/// socket (`SO_PEERCRED`), as the kernel recorded them when it connected:
/// they cannot be forged by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(alias = "SO_PEERCRED")]
#[doc(alias = "ucred")]
pub struct PeerCred {
    /// The peer's process id.
    pub pid: u32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

pub(crate) fn peer_cred(fd: BorrowedFd<'_>) -> Result<PeerCred> {
    let c = sys::peer_cred(fd).map_err(|e| Error::io("getsockopt(SO_PEERCRED)", e))?;
    Ok(PeerCred {
        pid: c.pid,
        uid: c.uid,
        gid: c.gid,
    })
}

pub(crate) fn connect_error(e: Errno, path: &Path) -> Error {
    let name = path.display().to_string();
    match e {
        Errno::NOENT => Error::NotFound {
            kind: "Unix socket",
            name,
        },
        Errno::CONNREFUSED => Error::Refused {
            name,
            reason: "nothing is listening on it (connection refused)".into(),
        },
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied { name },
        Errno::INVAL if path.as_os_str().len() >= 108 => Error::InvalidArgument(format!(
            "socket path {name:?} is longer than the 107 bytes a Unix socket address holds"
        )),
        other => Error::io("connect", other),
    }
}

fn connect(kind: Kind, path: &Path) -> Result<OwnedFd> {
    let fd = sys::socket(kind).map_err(|e| Error::io("socket", e))?;
    sys::connect(fd.as_fd(), path).map_err(|e| connect_error(e, path))?;
    Ok(fd)
}

fn io_err(op: &'static str, e: Errno) -> io::Error {
    match e {
        Errno::PIPE | Errno::CONNRESET => {
            io::Error::new(io::ErrorKind::BrokenPipe, Error::Disconnected)
        }
        other => Error::io(op, other).into(),
    }
}

fn msg_err(op: &'static str, e: Errno) -> Error {
    match e {
        Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN => Error::Disconnected,
        Errno::AGAIN => Error::WouldBlock,
        other => Error::io(op, other),
    }
}

/// The error for a message the kernel refused with `EMSGSIZE` on a Unix
/// datagram or seqpacket socket, naming the socket's real limit: its send
/// buffer (`SO_SNDBUF`) less what the kernel keeps back.
fn too_large(fd: BorrowedFd<'_>, len: usize) -> Error {
    match sys::send_buffer(fd) {
        Ok(buf) => Error::MessageTooLarge {
            len,
            max: buf.saturating_sub(sys::DATAGRAM_RESERVE),
        },
        Err(e) => Error::io("getsockopt(SO_SNDBUF)", e),
    }
}

/// Sends `data` and duplicates of `fds` (`SCM_RIGHTS`); `data` must not be
/// empty when `fds` is not (the kernel needs a byte to carry them).
fn send_fds(fd: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
    if fds.len() > sys::MAX_FDS {
        return Err(Error::InvalidArgument(format!(
            "at most {} descriptors go in one message",
            sys::MAX_FDS
        )));
    }
    if data.is_empty() && !fds.is_empty() {
        return Err(Error::InvalidArgument(
            "descriptors must travel with at least one byte of data".into(),
        ));
    }
    sys::send_with_fds(fd, data, fds).map_err(|e| match e {
        Errno::MSGSIZE => too_large(fd, data.len()),
        e => msg_err("sendmsg", e),
    })
}

fn recv_fds(fd: BorrowedFd<'_>, buf: &mut [u8], datagram: bool) -> Result<(usize, Vec<OwnedFd>)> {
    let r = sys::recv_with_fds(fd, buf).map_err(|e| msg_err("recvmsg", e))?;
    if r.fds_truncated {
        return Err(Error::LimitExceeded {
            limit: "descriptors per message".into(),
            value: sys::MAX_FDS.to_string(),
            hint: "the peer sent more descriptors than fit; they were closed by the kernel".into(),
        });
    }
    if datagram && r.len > buf.len() {
        return Err(Error::MessageTooLarge {
            len: r.len,
            max: buf.len(),
        });
    }
    Ok((r.len.min(buf.len()), r.fds))
}

/// A connected Unix-domain stream socket (`SOCK_STREAM`): a reliable,
/// bidirectional byte stream between two processes on this machine, which
/// can also carry descriptors and tells who the peer is.
///
/// Writes use `send(MSG_NOSIGNAL)`: a vanished peer is an error
/// ([`io::ErrorKind::BrokenPipe`]), never `SIGPIPE`. For messages over the
/// stream, wrap it in [`FrameReader`](crate::frame::FrameReader) /
/// [`FrameWriter`](crate::frame::FrameWriter).
#[derive(Debug)]
pub struct UnixStream(pub(crate) OwnedFd);

impl UnixStream {
    /// `connect` to the socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        connect(Kind::Stream, path.as_ref()).map(UnixStream)
    }

    /// Two connected sockets (`socketpair`), e.g. one for a child process.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = sys::pair(Kind::Stream).map_err(|e| Error::io("socketpair", e))?;
        Ok((UnixStream(a), UnixStream(b)))
    }

    /// Who is at the other end (`SO_PEERCRED`).
    pub fn peer_cred(&self) -> Result<PeerCred> {
        peer_cred(self.0.as_fd())
    }

    /// Sends `data` with duplicates of `fds` (`SCM_RIGHTS`): a shared memory
    /// segment, a pipe end, a socket … The peer receives its own descriptors
    /// for the same open files. Returns the bytes sent.
    #[doc(alias = "SCM_RIGHTS")]
    pub fn send_fds(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        send_fds(self.0.as_fd(), data, fds)
    }

    /// Receives bytes and any descriptors sent with them, close-on-exec.
    /// Returns `(0, [])` at end of stream.
    pub fn recv_fds(&self, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>)> {
        recv_fds(self.0.as_fd(), buf, false)
    }

    /// Waits at most `timeout` for data or end of stream; `false` on timeout.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        fdio::wait(self.0.as_fd(), Ready::Read, Deadline::from_timeout(timeout))
            .map_err(|e| Error::io("poll", e))
    }

    /// `shutdown(SHUT_WR)`: the peer reads end of stream; we can still read.
    pub fn shutdown_write(&self) -> Result<()> {
        rustix_shutdown(self.0.as_fd())
    }

    /// Duplicates the socket (`F_DUPFD_CLOEXEC`), e.g. to read and write from
    /// two threads.
    pub fn try_clone(&self) -> Result<Self> {
        fdio::dup(self.0.as_fd())
            .map(UnixStream)
            .map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e))
    }
}

fn rustix_shutdown(fd: BorrowedFd<'_>) -> Result<()> {
    crate::sys::socket::shutdown_write(fd).map_err(|e| Error::io("shutdown", e))
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        fdio::recv(self.0.as_fd(), buf).map_err(|e| io_err("recv", e))
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        fdio::recv(self.0.as_fd(), buf).map_err(|e| io_err("recv", e))
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        fdio::send(self.0.as_fd(), buf).map_err(|e| io_err("send", e))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        fdio::send(self.0.as_fd(), buf).map_err(|e| io_err("send", e))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Methods shared by the message-oriented sockets (datagram, seqpacket).
macro_rules! message_socket {
    ($t:ident, $kind:expr) => {
        impl $t {
            /// Two connected sockets (`socketpair`).
            pub fn pair() -> Result<(Self, Self)> {
                let (a, b) = sys::pair($kind).map_err(|e| Error::io("socketpair", e))?;
                Ok(($t(a), $t(b)))
            }

            /// Sends one message (`send(MSG_NOSIGNAL)`); it arrives whole or
            /// not at all. A message longer than the socket's send buffer
            /// (`SO_SNDBUF`) less 32 bytes is [`Error::MessageTooLarge`]
            /// with that limit.
            pub fn send(&self, msg: &[u8]) -> Result<()> {
                fdio::send(self.0.as_fd(), msg)
                    .map(|_| ())
                    .map_err(|e| match e {
                        Errno::MSGSIZE => too_large(self.0.as_fd(), msg.len()),
                        e => msg_err("send", e),
                    })
            }

            /// Receives one message into `buf`, returning its length. A
            /// message longer than `buf` is [`Error::MessageTooLarge`] (its
            /// tail is lost). 0 may mean end of stream on seqpacket.
            pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
                let n = fdio::recv_trunc(self.0.as_fd(), buf).map_err(|e| msg_err("recv", e))?;
                if n > buf.len() {
                    return Err(Error::MessageTooLarge {
                        len: n,
                        max: buf.len(),
                    });
                }
                Ok(n)
            }

            /// [`recv`](Self::recv), waiting at most `timeout`
            /// ([`Error::Timeout`]).
            pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
                let ready = fdio::wait(self.0.as_fd(), Ready::Read, Deadline::after(timeout))
                    .map_err(|e| Error::io("poll", e))?;
                if !ready {
                    return Err(Error::Timeout);
                }
                self.recv(buf)
            }

            /// Sends one message with duplicates of `fds` (`SCM_RIGHTS`).
            #[doc(alias = "SCM_RIGHTS")]
            pub fn send_fds(&self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
                send_fds(self.0.as_fd(), msg, fds).map(|_| ())
            }

            /// Receives one message and the descriptors sent with it.
            pub fn recv_fds(&self, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>)> {
                recv_fds(self.0.as_fd(), buf, true)
            }

            /// Sends a serde value, postcard-encoded, as one message.
            #[cfg(feature = "serde")]
            #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
            pub fn send_value<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
                let bytes = postcard::to_stdvec(value)
                    .map_err(|e| Error::InvalidArgument(format!("value does not encode: {e}")))?;
                self.send(&bytes)
            }

            /// Receives one message of at most `max` bytes and decodes it.
            #[cfg(feature = "serde")]
            #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
            pub fn recv_value<T: DeserializeOwned>(&self, max: usize) -> Result<T> {
                let mut buf = vec![0u8; max];
                let n = self.recv(&mut buf)?;
                postcard::from_bytes(&buf[..n]).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "message does not decode as the expected type: {e}"
                    ))
                })
            }

            /// Who is at the other end (`SO_PEERCRED`; connected sockets).
            pub fn peer_cred(&self) -> Result<PeerCred> {
                peer_cred(self.0.as_fd())
            }
        }

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
            fn from(s: $t) -> OwnedFd {
                s.0
            }
        }
        impl From<OwnedFd> for $t {
            /// Wraps a descriptor that must be a Unix socket of this kind
            /// (e.g. one received with `SCM_RIGHTS` or inherited).
            fn from(fd: OwnedFd) -> Self {
                $t(fd)
            }
        }
    };
}

/// A Unix-domain datagram socket (`SOCK_DGRAM`): separate messages, each
/// delivered whole; on Unix domain they are reliable and ordered.
#[derive(Debug)]
pub struct UnixDatagram(OwnedFd);
message_socket!(UnixDatagram, Kind::Datagram);

impl UnixDatagram {
    /// An unbound socket, to [`send_to`](Self::send_to) a bound one.
    pub fn unbound() -> Result<Self> {
        sys::socket(Kind::Datagram)
            .map(UnixDatagram)
            .map_err(|e| Error::io("socket", e))
    }

    /// Binds a receiving socket at `path` with mode exactly `0600`, the same
    /// safe way as [`UnixListener::bind`](super::UnixListener::bind). The
    /// returned guard removes the file on drop.
    pub fn bind(path: impl AsRef<Path>) -> Result<(Self, super::SocketFile)> {
        let (fd, file) = super::file::bind_path(path.as_ref(), Kind::Datagram, 0o600)?;
        Ok((UnixDatagram(fd), file))
    }

    /// Connects to the bound socket at `path`: later `send`s go there.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        connect(Kind::Datagram, path.as_ref()).map(UnixDatagram)
    }

    /// Sends one message to the socket bound at `path`.
    pub fn send_to(&self, msg: &[u8], path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        sys::send_to(self.0.as_fd(), msg, path)
            .map(|_| ())
            .map_err(|e| match e {
                Errno::NOENT | Errno::CONNREFUSED | Errno::ACCESS => connect_error(e, path),
                Errno::MSGSIZE => too_large(self.0.as_fd(), msg.len()),
                e => msg_err("sendto", e),
            })
    }
}

/// A Unix-domain sequenced-packet socket (`SOCK_SEQPACKET`): a connection,
/// like a stream, that keeps message boundaries, like datagrams. Accept
/// them with [`UnixListener::bind_seqpacket`](super::UnixListener::bind_seqpacket).
#[derive(Debug)]
pub struct UnixSeqpacket(OwnedFd);
message_socket!(UnixSeqpacket, Kind::Seqpacket);

impl UnixSeqpacket {
    /// `connect` to the seqpacket listener at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        connect(Kind::Seqpacket, path.as_ref()).map(UnixSeqpacket)
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
impl From<UnixStream> for OwnedFd {
    fn from(s: UnixStream) -> OwnedFd {
        s.0
    }
}
impl From<OwnedFd> for UnixStream {
    /// Wraps a descriptor that must be a connected Unix stream socket.
    fn from(fd: OwnedFd) -> Self {
        UnixStream(fd)
    }
}
