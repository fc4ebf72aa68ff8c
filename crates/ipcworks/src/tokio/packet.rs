//! Message-oriented Unix sockets (datagram, seqpacket) on tokio: each
//! send one whole message, each receive one whole message.

use std::io;
use std::path::Path;
use std::task::{Context, Poll, ready};

use ::tokio::io::unix::AsyncFd;

use super::stream::{Owned, register, sealed};
use crate::socket::{UnixDatagram, UnixSeqpacket};
use crate::{Error, Result};

/// The sockets [`AsyncPacket`] takes: [`UnixDatagram`] and
/// [`UnixSeqpacket`]. Sealed.
pub trait PacketSocket: sealed::Sealed + Send + Sync + Unpin {
    /// One `send` of one whole message.
    fn send_one(&self, msg: &[u8]) -> Result<()>;
    /// One `recv` of one whole message.
    fn recv_one(&self, buf: &mut [u8]) -> Result<usize>;
}

impl sealed::Sealed for UnixDatagram {}
impl sealed::Sealed for UnixSeqpacket {}

impl PacketSocket for UnixDatagram {
    fn send_one(&self, msg: &[u8]) -> Result<()> {
        self.send(msg)
    }
    fn recv_one(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv(buf)
    }
}

impl PacketSocket for UnixSeqpacket {
    fn send_one(&self, msg: &[u8]) -> Result<()> {
        self.send(msg)
    }
    fn recv_one(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv(buf)
    }
}

/// A Unix datagram or seqpacket socket made awaitable (`AsyncFd` on its
/// descriptor, which is put in non-blocking mode): `send(msg).await`
/// sends one whole message, `recv(&mut buf).await` receives one, message
/// boundaries kept.
///
/// Cancel-safe: a message is sent by one `send` (`MSG_NOSIGNAL`) in the
/// poll that returns `Ready`, whole (the kernel takes a datagram or a
/// seqpacket record whole or not at all), so one completed `send` is one
/// message and a cancelled one sent nothing; a message is received only
/// by the poll that returns it. The errors are the blocking calls'
/// ([`Error::MessageTooLarge`] for a message over the socket's limit or
/// a buffer too small, [`Error::Disconnected`] when the peer is gone).
///
/// ```no_run
/// use ipcworks::socket::UnixSeqpacket;
/// use ipcworks::tokio::AsyncPacket;
///
/// # async fn run() -> ipcworks::Result<()> {
/// let (a, b) = UnixSeqpacket::pair()?;
/// let (a, b) = (AsyncPacket::new(a)?, AsyncPacket::new(b)?);
/// a.send(b"one record").await?;
/// let mut buf = [0u8; 64];
/// let n = b.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"one record");
/// # Ok(())
/// # }
/// ```
pub struct AsyncPacket<T: PacketSocket> {
    fd: AsyncFd<Owned<T>>,
}

impl<T: PacketSocket + std::fmt::Debug> std::fmt::Debug for AsyncPacket<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AsyncPacket")
            .field(&self.fd.get_ref().0)
            .finish()
    }
}

impl<T: PacketSocket> AsyncPacket<T> {
    /// Makes `socket` awaitable (its descriptor turns non-blocking). Must
    /// be called inside a tokio runtime.
    pub fn new(socket: T) -> Result<AsyncPacket<T>> {
        Ok(AsyncPacket {
            fd: register(socket)?,
        })
    }

    /// The socket.
    pub fn get_ref(&self) -> &T {
        &self.fd.get_ref().0
    }

    /// The socket back, in blocking mode again.
    pub fn into_inner(self) -> Result<T> {
        let mut s = self.fd.into_inner().0;
        s.leave_async().map_err(|e| Error::io("fcntl", e))?;
        Ok(s)
    }

    /// Runs `op` when the socket is ready for `write` (or reading),
    /// again while it would block.
    fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        write: bool,
        mut op: impl FnMut(&T) -> Result<R>,
    ) -> Poll<Result<R>> {
        loop {
            let mut guard = match write {
                true => ready!(self.fd.poll_write_ready(cx)),
                false => ready!(self.fd.poll_read_ready(cx)),
            }
            .map_err(|e| Error::io("tokio readiness", e))?;
            let mut out = None;
            // `try_io` clears tokio's readiness on `WouldBlock` only; the
            // call's own error goes back to the caller as it was.
            let r = guard.try_io(|fd| match op(&fd.get_ref().0) {
                Err(Error::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
                r => {
                    out = Some(r);
                    Ok(())
                }
            });
            if let (Ok(_), Some(r)) = (r, out) {
                return Poll::Ready(r);
            }
        }
    }

    /// Polls to send `msg` as one message.
    pub fn poll_send(&self, cx: &mut Context<'_>, msg: &[u8]) -> Poll<Result<()>> {
        self.poll_op(cx, true, |s| s.send_one(msg))
    }

    /// Polls to receive one message into `buf`: its length.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize>> {
        self.poll_op(cx, false, |s| s.recv_one(buf))
    }

    /// Sends `msg` as one message (`send(MSG_NOSIGNAL)`), waiting
    /// asynchronously for room in the socket's buffer. Cancel-safe.
    pub async fn send(&self, msg: &[u8]) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_send(cx, msg)).await
    }

    /// Receives one message into `buf` and returns its length (`recv`),
    /// waiting asynchronously. A message longer than `buf` is
    /// [`Error::MessageTooLarge`] (its tail is lost, as with the blocking
    /// call); 0 from a seqpacket socket means the peer closed.
    /// Cancel-safe.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        std::future::poll_fn(|cx| self.poll_recv(cx, buf)).await
    }
}

impl AsyncPacket<UnixDatagram> {
    /// Sends `msg` as one datagram to the socket bound at `path`
    /// (`sendto`), waiting asynchronously for room. Cancel-safe.
    #[doc(alias = "sendto")]
    pub async fn send_to(&self, msg: &[u8], path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::future::poll_fn(|cx| self.poll_op(cx, true, |s| s.send_to(msg, path))).await
    }
}
