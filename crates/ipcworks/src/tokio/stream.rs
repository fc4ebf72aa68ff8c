//! Byte streams as tokio's `AsyncRead`/`AsyncWrite`: pipe and FIFO ends,
//! Unix and TCP streams; and listeners that accept asynchronously.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::pipe::{PipeReader, PipeWriter};
use crate::socket::{UnixListener, UnixStream};
use crate::sys::fdio;
use crate::{Error, Result};

pub(super) mod sealed {
    /// A type that owns exactly one descriptor and never changes it (the
    /// streams, the standard descriptors, and `AsyncPacket`'s sockets).
    pub trait Sealed: std::os::fd::AsFd {
        /// Its descriptor leaves async use ([`AsyncStream::into_inner`](super::AsyncStream::into_inner)):
        /// blocking again. The standard descriptors override it: their
        /// open file description may still be needed non-blocking by
        /// another async user (see `tokio/stdio.rs`).
        fn leave_async(&mut self) -> std::io::Result<()> {
            crate::sys::fdio::set_nonblocking(self.as_fd(), false).map_err(Into::into)
        }
    }
}

/// The byte streams [`AsyncStream`] takes: each owns one descriptor and
/// never exchanges it. Sealed.
pub trait Stream: sealed::Sealed + Send + Sync + Unpin {}

/// The streams that read ([`AsyncRead`]): a pipe's read end, sockets.
pub trait ReadStream: Stream + Read {}

/// The streams that write ([`AsyncWrite`]): a pipe's write end, sockets.
pub trait WriteStream: Stream + Write {
    /// `shutdown(SHUT_WR)` for a socket (the peer reads end of stream);
    /// nothing for a pipe end (dropping it is what the reader sees).
    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }
}

impl sealed::Sealed for PipeReader {}
impl sealed::Sealed for PipeWriter {}
impl sealed::Sealed for UnixStream {}
impl sealed::Sealed for std::net::TcpStream {}
impl Stream for PipeReader {}
impl Stream for PipeWriter {}
impl Stream for UnixStream {}
impl Stream for std::net::TcpStream {}
impl ReadStream for PipeReader {}
impl ReadStream for UnixStream {}
impl ReadStream for std::net::TcpStream {}
impl WriteStream for PipeWriter {}
impl WriteStream for UnixStream {
    fn shutdown_write(&self) -> io::Result<()> {
        UnixStream::shutdown_write(self).map_err(Into::into)
    }
}
impl WriteStream for std::net::TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// `T`'s descriptor for tokio (always the one it owns): the inner value
/// of [`AsyncStream`]'s and [`AsyncPacket`](super::AsyncPacket)'s `AsyncFd`.
pub(super) struct Owned<T>(pub(super) T);

impl<T: AsFd> AsRawFd for Owned<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl<T: sealed::Sealed> super::OwnsFd for Owned<T> {}

/// Puts `io`'s descriptor in non-blocking mode and into tokio's reactor.
pub(super) fn register<T: sealed::Sealed>(io: T) -> Result<AsyncFd<Owned<T>>> {
    super::in_runtime()?;
    fdio::set_nonblocking(io.as_fd(), true).map_err(|e| Error::io("fcntl(O_NONBLOCK)", e))?;
    super::register(Owned(io), Interest::READABLE.add(Interest::WRITABLE))
        .map_err(|e| Error::io("register a descriptor with tokio", e))
}

/// A pipe or FIFO end, a Unix or TCP stream as tokio's
/// [`AsyncRead`]/[`AsyncWrite`] (so `tokio::io::copy`, `BufReader`,
/// `AsyncReadExt::read_exact` … work on it), through `AsyncFd` on its
/// own descriptor.
///
/// The descriptor is put in non-blocking mode (`fcntl(O_NONBLOCK)`, which
/// its duplicates share); [`into_inner`](Self::into_inner) puts it back.
/// Reads and writes are single `read`/`recv` and `write`/`send` calls, so
/// tokio's own cancel-safety rules for `AsyncRead`/`AsyncWrite` apply: a
/// cancelled `read` took nothing, a cancelled `write_all` may have written
/// a prefix (use a framed message send for all-or-nothing). Writing to a
/// stream whose reader is gone is `BrokenPipe`, never SIGPIPE.
///
/// ```no_run
/// use ipcworks::socket::UnixStream;
/// use ipcworks::tokio::AsyncStream;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # async fn run() -> std::io::Result<()> {
/// let mut s = AsyncStream::new(UnixStream::connect("/tmp/echo.sock")?)?;
/// s.write_all(b"hello\n").await?;
/// let mut buf = [0u8; 6];
/// s.read_exact(&mut buf).await?;
/// # Ok(())
/// # }
/// ```
pub struct AsyncStream<T: Stream> {
    fd: AsyncFd<Owned<T>>,
}

impl<T: Stream + std::fmt::Debug> std::fmt::Debug for AsyncStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AsyncStream")
            .field(&self.fd.get_ref().0)
            .finish()
    }
}

impl<T: Stream> AsyncStream<T> {
    /// Makes `io` awaitable. Must be called inside a tokio runtime.
    pub fn new(io: T) -> Result<AsyncStream<T>> {
        Ok(AsyncStream { fd: register(io)? })
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        &self.fd.get_ref().0
    }

    /// The stream back, in blocking mode again — but for [`stdin`](super::stdin)
    /// and [`stdout`](super::stdout), whose open file description other
    /// async users in this process may share: it turns blocking again
    /// only when the last of them is gone (until then reads of the
    /// returned stream may fail with `WouldBlock`).
    pub fn into_inner(self) -> Result<T> {
        let mut io = self.fd.into_inner().0;
        io.leave_async().map_err(|e| Error::io("fcntl", e))?;
        Ok(io)
    }
}

impl<T: ReadStream> AsyncRead for AsyncStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            let mut guard = ready!(me.fd.poll_read_ready_mut(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| fd.get_mut().0.read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl<T: WriteStream> AsyncWrite for AsyncStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        loop {
            let mut guard = ready!(me.fd.poll_write_ready_mut(cx))?;
            match guard.try_io(|fd| fd.get_mut().0.write(data)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// `shutdown(SHUT_WR)` on a socket; nothing on a pipe end.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.fd.get_ref().0.shutdown_write())
    }
}

/// A listener that accepts asynchronously: [`UnixListener`] or
/// `std::net::TcpListener`, each accepted connection an [`AsyncStream`].
///
/// ```no_run
/// use ipcworks::socket::UnixListener;
/// use ipcworks::tokio::AsyncListener;
///
/// # async fn run() -> ipcworks::Result<()> {
/// let server = AsyncListener::new(UnixListener::bind("/tmp/echo.sock")?)?;
/// loop {
///     let mut conn = server.accept().await?;
///     tokio::spawn(async move {
///         let (mut r, mut w) = tokio::io::split(&mut conn);
///         tokio::io::copy(&mut r, &mut w).await
///     });
/// }
/// # }
/// ```
pub struct AsyncListener<L: Listener> {
    fd: AsyncFd<Owned<L>>,
}

impl<L: Listener + std::fmt::Debug> std::fmt::Debug for AsyncListener<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AsyncListener")
            .field(&self.fd.get_ref().0)
            .finish()
    }
}

/// The listeners [`AsyncListener`] takes. Sealed.
pub trait Listener: sealed::Sealed + Send + Sync + Unpin {
    /// The connected stream an accept gives.
    type Stream: ReadStream + WriteStream;
    /// One `accept4` (non-blocking: `WouldBlock` when nobody waits).
    fn accept_once(&self) -> io::Result<Self::Stream>;
}

impl sealed::Sealed for UnixListener {}
impl sealed::Sealed for std::net::TcpListener {}

impl Listener for UnixListener {
    type Stream = UnixStream;
    fn accept_once(&self) -> io::Result<UnixStream> {
        // The kernel's error itself, so a caller can tell `EMFILE`.
        self.accept().map_err(|e| match e {
            Error::Io { error, .. } => error,
            e => e.into(),
        })
    }
}

impl Listener for std::net::TcpListener {
    type Stream = std::net::TcpStream;
    fn accept_once(&self) -> io::Result<std::net::TcpStream> {
        self.accept().map(|(s, _)| s)
    }
}

impl<L: Listener> AsyncListener<L> {
    /// Makes `listener` accept asynchronously (its descriptor turns
    /// non-blocking). Must be called inside a tokio runtime.
    pub fn new(listener: L) -> Result<AsyncListener<L>> {
        Ok(AsyncListener {
            fd: register(listener)?,
        })
    }

    /// The listener.
    pub fn get_ref(&self) -> &L {
        &self.fd.get_ref().0
    }

    /// Waits for a client and returns its connection, awaitable
    /// (`accept4`). Cancel-safe: a connection is accepted only by the poll
    /// that returns it.
    #[doc(alias = "accept4")]
    pub async fn accept(&self) -> Result<AsyncStream<L::Stream>> {
        let s = std::future::poll_fn(|cx| self.poll_accept(cx)).await?;
        AsyncStream::new(s)
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<L::Stream>> {
        self.poll_accept_io(cx).map_err(|e| Error::io("accept4", e))
    }

    /// [`accept`](Self::accept)'s poll, with the kernel's error as it
    /// came (the server tells `EMFILE` from the rest). An error other
    /// than `WouldBlock` leaves tokio's readiness set: a caller that
    /// cannot act on it at once must wait otherwise (the server waits for
    /// a client to leave, or a tick) and call [`accept_now`](Self::accept_now).
    pub(crate) fn poll_accept_io(&self, cx: &mut Context<'_>) -> Poll<io::Result<L::Stream>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| fd.get_ref().0.accept_once()) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    /// One non-blocking `accept4`, without tokio's readiness
    /// (`WouldBlock` when nobody waits).
    #[cfg(feature = "server")]
    pub(crate) fn accept_now(&self) -> io::Result<L::Stream> {
        self.fd.get_ref().0.accept_once()
    }
}
