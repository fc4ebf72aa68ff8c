//! Any message mechanism made awaitable through its own descriptor (POSIX
//! queues, framed byte streams), or tokio's timer where it has none
//! (System V queues).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::task::{Context, Poll, ready};

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

use super::Backoff;
use crate::message::{Deadline, MessageReceiver, MessageSender, Meta};
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
/// cancelled receive loses nothing either. A framed *send* writes a
/// started message whole: once the stream takes its first bytes, the rest
/// is written in the same poll, blocking the task's thread while a slow
/// reader leaves no room (a byte stream cannot take half a message back).
#[derive(Debug)]
pub struct Async<T> {
    inner: T,
    source: Source,
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
        Ok(Async { inner, source })
    }

    /// The mechanism.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The mechanism, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The mechanism back.
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
    pub fn sender(tx: S) -> Result<Async<S>> {
        let fd = tx.pollable_fd().map(|fd| fd.try_clone_to_owned());
        let fd = fd.transpose().map_err(|e| Error::io("dup", e))?;
        Async::with_fd(tx, fd.as_ref().map(std::os::fd::AsFd::as_fd))
    }

    /// Polls to send `msg` with `meta`.
    pub fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>> {
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
