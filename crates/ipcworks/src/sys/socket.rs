//! Unix-domain sockets: `socket`, `socketpair`, `bind`, `listen`, `accept4`,
//! `connect` (blocking, and a non-blocking probe), `sendmsg`/`recvmsg` with
//! `SCM_RIGHTS`, `getsockopt(SO_PEERCRED)`, and a handle on a socket file
//! (`open(O_PATH)`). The file-system steps of creating a socket file safely
//! are in [`privdir`](super::privdir). Every call retries `EINTR`; every
//! send uses `MSG_NOSIGNAL`.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use super::fdio::{self, Ready};

/// The three kinds of Unix-domain socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SOCK_STREAM`: a reliable byte stream, like a pipe in both directions.
    Stream,
    /// `SOCK_DGRAM`: messages with boundaries; reliable on Unix domain.
    Datagram,
    /// `SOCK_SEQPACKET`: a connection carrying messages with boundaries, in order.
    Seqpacket,
}

impl Kind {
    fn raw(self) -> SocketType {
        match self {
            Kind::Stream => SocketType::STREAM,
            Kind::Datagram => SocketType::DGRAM,
            Kind::Seqpacket => SocketType::SEQPACKET,
        }
    }
}

/// The largest number of descriptors sent or received in one message.
pub const MAX_FDS: usize = 16;

/// `socket(AF_UNIX, kind | SOCK_CLOEXEC, 0)`.
pub fn socket(kind: Kind) -> Result<OwnedFd, Errno> {
    rustix::net::socket_with(AddressFamily::UNIX, kind.raw(), SocketFlags::CLOEXEC, None)
}

/// `socketpair(AF_UNIX, kind | SOCK_CLOEXEC, 0)`: two connected sockets.
pub fn pair(kind: Kind) -> Result<(OwnedFd, OwnedFd), Errno> {
    rustix::net::socketpair(AddressFamily::UNIX, kind.raw(), SocketFlags::CLOEXEC, None)
}

fn addr(path: &Path) -> Result<SocketAddrUnix, Errno> {
    // Fails with EINVAL when the path does not fit sun_path (108 bytes).
    SocketAddrUnix::new(path)
}

/// `bind(fd, sockaddr_un{path})`.
pub fn bind(fd: BorrowedFd<'_>, path: &Path) -> Result<(), Errno> {
    rustix::net::bind(fd, &addr(path)?)
}

/// `listen(fd, backlog)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> Result<(), Errno> {
    rustix::net::listen(fd, backlog)
}

/// `connect(fd, sockaddr_un{path})`. On `EINTR` the connection goes on in
/// the kernel, so we wait for it (`poll(POLLOUT)`) and read its outcome
/// (`SO_ERROR`) rather than calling `connect` again.
pub fn connect(fd: BorrowedFd<'_>, path: &Path) -> Result<(), Errno> {
    match rustix::net::connect(fd, &addr(path)?) {
        Err(Errno::INTR) => {
            fdio::wait(fd, Ready::Write, super::time::Deadline::Never)?;
            rustix::net::sockopt::socket_error(fd)?
        }
        other => other,
    }
}

/// `accept4(fd, SOCK_CLOEXEC [| SOCK_NONBLOCK])`, retried on `EINTR` and on
/// `ECONNABORTED` (a client that left before we took it).
pub fn accept(fd: BorrowedFd<'_>, nonblocking: bool) -> Result<OwnedFd, Errno> {
    let mut flags = SocketFlags::CLOEXEC;
    if nonblocking {
        flags |= SocketFlags::NONBLOCK;
    }
    loop {
        match rustix::net::accept_with(fd, flags) {
            Err(Errno::INTR) | Err(Errno::CONNABORTED) => continue,
            other => return other,
        }
    }
}

/// `sendto(fd, buf, MSG_NOSIGNAL, sockaddr_un{path})`, for unconnected
/// datagram sockets.
pub fn send_to(fd: BorrowedFd<'_>, buf: &[u8], path: &Path) -> Result<usize, Errno> {
    let a = addr(path)?;
    loop {
        match rustix::net::sendto(fd, buf, SendFlags::NOSIGNAL, &a) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `sendmsg(fd, [buf], SCM_RIGHTS(fds), MSG_NOSIGNAL)`: sends bytes and
/// duplicates of `fds` to the peer. At least one byte must go with them.
#[doc(alias = "SCM_RIGHTS")]
pub fn send_with_fds(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, Errno> {
    if fds.len() > MAX_FDS || (buf.is_empty() && !fds.is_empty()) {
        return Err(Errno::INVAL);
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::INVAL);
    }
    let iov = [IoSlice::new(buf)];
    loop {
        match rustix::net::sendmsg(fd, &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// What [`recv_with_fds`] received.
#[derive(Debug)]
pub struct Received {
    /// Bytes placed in the buffer (for datagrams: the real length, which is
    /// larger than the buffer if the message was cut).
    pub len: usize,
    /// Descriptors that came with the bytes, close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// Some descriptors were dropped by the kernel (`MSG_CTRUNC`).
    pub fds_truncated: bool,
}

/// `recvmsg(fd, [buf], MSG_CMSG_CLOEXEC)`: receives bytes and any
/// descriptors sent with `SCM_RIGHTS`, as owned descriptors.
pub fn recv_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, Errno> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        let mut iov = [IoSliceMut::new(&mut *buf)];
        match rustix::net::recvmsg(
            fd,
            &mut iov,
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC,
        ) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
            Ok(m) => break m,
        }
    };
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(it) = m {
            fds.extend(it);
        }
    }
    Ok(Received {
        len: msg.bytes,
        fds,
        fds_truncated: msg.flags.contains(rustix::net::ReturnFlags::CTRUNC),
    })
}

/// The credentials of the process at the other end of a connected Unix
/// socket, as the kernel recorded them at `connect` (or `socketpair`) time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cred {
    /// Process id.
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// `getsockopt(fd, SOL_SOCKET, SO_PEERCRED)`.
#[doc(alias = "SO_PEERCRED")]
pub fn peer_cred(fd: BorrowedFd<'_>) -> Result<Cred, Errno> {
    let c = rustix::net::sockopt::socket_peercred(fd)?;
    Ok(Cred {
        pid: c.pid.as_raw_nonzero().get() as u32,
        uid: c.uid.as_raw(),
        gid: c.gid.as_raw(),
    })
}

/// `getsockopt(fd, SOL_SOCKET, SO_SNDBUF)`: the send buffer in bytes, as
/// the kernel keeps it (twice what `setsockopt` asked, for its overhead).
#[doc(alias = "SO_SNDBUF")]
pub fn send_buffer(fd: BorrowedFd<'_>) -> Result<usize, Errno> {
    rustix::net::sockopt::socket_send_buffer_size(fd)
}

/// Bytes of the send buffer that `unix_dgram_sendmsg` keeps back: a Unix
/// datagram or seqpacket message longer than `SO_SNDBUF` less this is
/// refused with `EMSGSIZE` (`net/unix/af_unix.c`).
pub const DATAGRAM_RESERVE: usize = 32;

/// `shutdown(fd, SHUT_WR)`.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::net::shutdown(fd, rustix::net::Shutdown::Write)
}

/// `open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC)`: a handle on whatever is
/// at `path` (a symlink itself, not its target), which reads nothing and
/// opens nothing (a FIFO or socket is not touched), but pins the inode:
/// while it is open, its device and inode numbers name it and no other.
pub fn open_path(path: &Path) -> Result<OwnedFd, Errno> {
    use rustix::fs::OFlags;
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What [`probe`] found at a socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A server listens there: the connection was made, or its backlog is
    /// full (`EAGAIN`), which only a live listener has.
    Live,
    /// A socket file with nobody behind it (`ECONNREFUSED`).
    Stale,
    /// Nothing there any more (`ENOENT`).
    Gone,
}

/// Whether a server listens at `path`: a `connect` on a non-blocking
/// socket of `kind`, which never waits (a blocking one waits for ever on a
/// listener whose backlog is full). The probe connection, if made, is
/// closed at once.
pub fn probe(kind: Kind, path: &Path) -> Result<Probe, Errno> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        kind.raw(),
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let a = addr(path)?;
    loop {
        return match rustix::net::connect(&fd, &a) {
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => Ok(Probe::Live),
            Err(Errno::CONNREFUSED) => Ok(Probe::Stale),
            Err(Errno::NOENT) => Ok(Probe::Gone),
            Err(Errno::INTR) => continue,
            Err(e) => Err(e),
        };
    }
}
