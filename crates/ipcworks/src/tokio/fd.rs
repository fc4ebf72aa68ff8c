//! Any message mechanism made awaitable through its own descriptor (POSIX
//! queues, framed byte streams), or tokio's timer where it has none
//! (System V queues).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::task::{Context, Poll, ready};

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

use super::Backoff;
use crate::message::{Deadline, MessageReceiver, MessageSender, Meta};
use crate::sys::{Errno, fdio};
use crate::{Error, Result};

/// How readiness is learnt.
#[derive(Debug)]
enum Source {
    /// The mechanism's descriptor (a duplicate) in tokio's reactor.
    Fd(AsyncFd<OwnedFd>),
    /// No descriptor (System V), or one epoll refuses (a regular file):
    /// retry on tokio's timer.
    Timer(Backoff),
}

/// A message mechanism of the [message interface](crate::message) made
/// awaitable: a [`mq::posix::Queue`](crate::mq::posix::Queue), a
/// [`FramedReceiver`](crate::stream::FramedReceiver) or
/// [`FramedSender`](crate::stream::FramedSender) over a pipe, FIFO or
/// socket, a System V [`Receiver`](crate::mq::sysv::Receiver) or
/// [`Queue`](crate::mq::sysv::Queue), any `Box<dyn MessageReceiver>`.
///
/// Where the mechanism has a descriptor
/// ([`MessageReceiver::pollable_fd`]), a duplicate of it goes into tokio's
/// reactor (`AsyncFd`, `epoll`), and each poll makes one non-blocking
/// attempt (`recv_until(Deadline::Now)`: `mq_timedreceive` with an
/// expired deadline, a `poll` of zero then a read), waiting for readiness
/// between attempts. Without one (System V), it retries on tokio's timer,
/// 1 ms doubling to 8 ms (see the [module docs](super)).
///
/// Cancel-safe: a message is taken only by the attempt of the poll that
/// returns it. A framed byte stream's receive reads what the descriptor
/// has and keeps a partial frame buffered in the receiver for the next
/// poll (it never waits inside a poll for the rest of a frame), so a
/// cancelled receive loses nothing either.
///
/// # Framed sends
///
/// A framed byte stream's send never blocks the task's thread: the
/// stream's descriptor is put in non-blocking mode (`O_NONBLOCK`, on the
/// open file description its duplicates share; the mode it had is put
/// back when the `Async` is dropped or [`into_inner`](Self::into_inner)
/// is called), the message's frame is written as far as the stream takes
/// it, and the rest is kept here and written by later polls as a slow
/// reader makes room. The description is shared: for standard output
/// (the `-` endpoint) that is std's `io::stdout()` too, whose writes may
/// then fail with `WouldBlock` (see [`stdout`](super::stdout)); do not
/// wrap one stream in two `Async`s.
///
/// A byte stream cannot take half a message back. So a send cancelled
/// *before* the stream took any byte of its frame sent nothing; one
/// cancelled *after* the stream took some is not undone: the rest of its
/// frame is written first by the next send (or by
/// [`flush`](Self::flush)), and the reader gets that message whole, then
/// the next one: the framing is never corrupted, and the stream is not
/// poisoned. (Sending again the same message after such a cancel just
/// finishes it: it is not sent twice.) An `Async` dropped with a frame
/// unfinished leaves the reader a truncated frame at the end of the
/// stream, which it reports (`disconnected mid-message`), never a wrong
/// message.
#[derive(Debug)]
pub struct Async<T> {
    inner: T,
    source: Source,
    /// A byte stream's descriptor put in non-blocking mode (and back, on
    /// drop), and the frame being written.
    stream: Option<StreamState>,
}

/// A framed stream sender's state between polls.
#[derive(Debug)]
struct StreamState {
    /// A duplicate of the stream's descriptor; puts blocking mode back
    /// when dropped.
    fd: NonBlocking,
    /// The stream is a socket (`send(MSG_NOSIGNAL)`), else a pipe or FIFO
    /// (`write`).
    socket: bool,
    /// The frame being written: its bytes, how many the stream took, and
    /// where the message is in it.
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    bytes: Vec<u8>,
    at: usize,
    payload: std::ops::Range<usize>,
}

/// Puts back, when dropped, the blocking mode its descriptor had.
#[derive(Debug)]
struct NonBlocking {
    fd: OwnedFd,
    was: bool,
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        let _ = fdio::set_nonblocking(self.fd.as_fd(), self.was);
    }
}

impl<T> Async<T> {
    fn with_fd(inner: T, fd: Option<BorrowedFd<'_>>) -> Result<Async<T>> {
        super::in_runtime()?;
        let source = match fd {
            None => Source::Timer(Backoff::default()),
            Some(fd) => {
                let fd = fd.try_clone_to_owned().map_err(|e| Error::io("dup", e))?;
                let interest = Interest::READABLE.add(Interest::WRITABLE);
                match super::register(fd, interest) {
                    Ok(afd) => Source::Fd(afd),
                    // A regular file: always ready, epoll refuses it.
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        Source::Timer(Backoff::default())
                    }
                    Err(e) => return Err(Error::io("register a descriptor with tokio", e)),
                }
            }
        };
        Ok(Async {
            inner,
            source,
            stream: None,
        })
    }

    /// The mechanism.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The mechanism, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The mechanism back (a framed stream's descriptor in blocking mode
    /// again; a frame left unfinished by a cancelled send stays so: see
    /// [Framed sends](Self#framed-sends)).
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Waits for the next chance (readable or writable, or a nap).
    fn poll_wait(&mut self, cx: &mut Context<'_>, write: bool) -> Poll<Result<()>> {
        match &mut self.source {
            Source::Fd(afd) => {
                let mut guard = match write {
                    false => ready!(afd.poll_read_ready(cx)),
                    true => ready!(afd.poll_write_ready(cx)),
                }
                .map_err(|e| Error::io("tokio readiness", e))?;
                // Cleared, then the caller tries again: readiness that
                // came in meanwhile has a new tick and survives.
                guard.clear_ready();
            }
            Source::Timer(b) => ready!(b.poll_nap(cx)),
        }
        Poll::Ready(Ok(()))
    }

    fn done(&mut self) {
        if let Source::Timer(b) = &mut self.source {
            b.reset();
        }
    }
}

impl<R: MessageReceiver> Async<R> {
    /// Makes receiver `rx` awaitable. Must be called inside a tokio
    /// runtime.
    pub fn receiver(rx: R) -> Result<Async<R>> {
        // The duplicate is made before `rx` moves.
        let fd = rx.pollable_fd().map(|fd| fd.try_clone_to_owned());
        let fd = fd.transpose().map_err(|e| Error::io("dup", e))?;
        Async::with_fd(rx, fd.as_ref().map(std::os::fd::AsFd::as_fd))
    }

    /// Polls for the next message and its [`Meta`].
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        loop {
            match self.inner.recv_until(Deadline::Now) {
                Err(Error::WouldBlock) => {}
                r => {
                    self.done();
                    return Poll::Ready(r);
                }
            }
            ready!(self.poll_wait(cx, false))?;
        }
    }

    /// Receives the next message and its [`Meta`], waiting asynchronously.
    pub async fn recv(&mut self) -> Result<(Vec<u8>, Meta)> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<S: MessageSender> Async<S> {
    /// Makes sender `tx` awaitable. Must be called inside a tokio runtime.
    /// A framed byte stream's descriptor turns non-blocking (see
    /// [Framed sends](Self#framed-sends)).
    pub fn sender(tx: S) -> Result<Async<S>> {
        let fd = tx.pollable_fd().map(|fd| fd.try_clone_to_owned());
        let fd = fd.transpose().map_err(|e| Error::io("dup", e))?;
        let stream = match (&fd, tx.frame(b"")) {
            (Some(fd), Some(_)) => {
                let dup = fd.try_clone().map_err(|e| Error::io("dup", e))?;
                let was = fdio::is_nonblocking(dup.as_fd())
                    .map_err(|e| Error::io("fcntl(F_GETFL)", e))?;
                fdio::set_nonblocking(dup.as_fd(), true)
                    .map_err(|e| Error::io("fcntl(O_NONBLOCK)", e))?;
                let socket = fdio::is_socket(dup.as_fd()).map_err(|e| Error::io("fstat", e))?;
                Some(StreamState {
                    fd: NonBlocking { fd: dup, was },
                    socket,
                    partial: None,
                })
            }
            _ => None,
        };
        let mut me = Async::with_fd(tx, fd.as_ref().map(std::os::fd::AsFd::as_fd))?;
        if matches!(me.source, Source::Fd(_)) {
            me.stream = stream;
        }
        Ok(me)
    }

    /// Writes as much of the pending frame as the stream takes now;
    /// `Ready(Ok)` once it is all written.
    fn poll_partial(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            let Some(st) = self.stream.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let Some(p) = st.partial.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if p.at == p.bytes.len() {
                st.partial = None;
                return Poll::Ready(Ok(()));
            }
            let rest = &p.bytes[p.at..];
            let r = match st.socket {
                true => fdio::send(st.fd.fd.as_fd(), rest),
                false => fdio::write(st.fd.fd.as_fd(), rest),
            };
            match r {
                Ok(n) => p.at += n,
                Err(Errno::AGAIN) => ready!(self.poll_wait(cx, true))?,
                Err(Errno::PIPE | Errno::CONNRESET) => {
                    st.partial = None;
                    return Poll::Ready(Err(Error::Disconnected));
                }
                Err(e) => {
                    st.partial = None;
                    return Poll::Ready(Err(Error::io("write", e)));
                }
            }
        }
    }

    /// Polls to finish a frame that a cancelled send left half written
    /// (see [Framed sends](Self#framed-sends)); `Ready(Ok)` at once when
    /// there is none.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_partial(cx)
    }

    /// Finishes a frame that a cancelled send left half written, waiting
    /// asynchronously for the reader to make room. Cancel-safe (what is
    /// written stays written; the rest waits for the next call).
    pub async fn flush(&mut self) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// A framed stream's send: the frame written as the stream takes it,
    /// over as many polls as it needs.
    fn poll_send_stream(&mut self, cx: &mut Context<'_>, msg: &[u8]) -> Poll<Result<()>> {
        let Some(st) = self.stream.as_mut() else {
            return Poll::Ready(Err(Error::InvalidArgument("not a byte stream".into())));
        };
        if let Some(p) = &st.partial {
            let same = p.bytes.get(p.payload.clone()) == Some(msg);
            if p.at == 0 {
                // Not started: nothing of it is on the stream.
                st.partial = None;
            } else {
                // Started (by this send, or by one cancelled since): it
                // is finished first.
                ready!(self.poll_partial(cx))?;
                if same {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        let bytes = match self.inner.frame(msg) {
            Some(r) => r?,
            None => return Poll::Ready(Err(Error::InvalidArgument("not a byte stream".into()))),
        };
        // A length prefix before the message, or a newline after it (a
        // line never ends with one).
        let start = match bytes.ends_with(msg) {
            true => bytes.len() - msg.len(),
            false => 0,
        };
        if let Some(st) = self.stream.as_mut() {
            st.partial = Some(Partial {
                bytes,
                at: 0,
                payload: start..start + msg.len(),
            });
        }
        let r = self.poll_partial(cx);
        if r.is_pending()
            && let Some(st) = self.stream.as_mut()
            && st.partial.as_ref().is_some_and(|p| p.at == 0)
        {
            // Nothing taken yet: a cancel now sent nothing.
            st.partial = None;
        }
        r
    }

    /// Polls to send `msg` with `meta`.
    pub fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>> {
        if self.stream.is_some() {
            return self.poll_send_stream(cx, msg);
        }
        loop {
            match self.inner.send_until(msg, meta, Deadline::Now) {
                Err(Error::WouldBlock) => {}
                r => {
                    self.done();
                    return Poll::Ready(r);
                }
            }
            ready!(self.poll_wait(cx, true))?;
        }
    }

    /// Sends `msg` with `meta`, waiting asynchronously for room.
    pub async fn send_with(&mut self, msg: &[u8], meta: Meta) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_send(cx, msg, meta)).await
    }
}
