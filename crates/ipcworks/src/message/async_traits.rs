//! The async twins of the message interface (feature `tokio`), object
//! safe, and their `.await` helpers. Implemented in
//! [`ipcworks::tokio`](crate::tokio) by every mechanism's async form.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Meta;
use crate::Result;

/// The async twin of [`MessageReceiver`](crate::message::MessageReceiver):
/// one poll method, object safe, so endpoints open as
/// `Box<dyn AsyncMessageReceiver>` ([`tokio::open_receiver`](crate::tokio::open_receiver)).
/// `.await` it through [`AsyncMessageReceiverExt`].
pub trait AsyncMessageReceiver: std::marker::Send {
    /// Polls for the next message and its [`Meta`]: `Pending` while there
    /// is none (the task is woken when one may be there), the errors of
    /// [`MessageReceiver::recv_until`](crate::message::MessageReceiver::recv_until)
    /// otherwise ([`Error::Disconnected`](crate::Error::Disconnected) once
    /// the sender is gone and everything was received).
    ///
    /// Cancel-safe: a message is taken only by a poll that returns it.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>>;

    /// Gives up a receive that [`poll_recv`](Self::poll_recv) left
    /// `Pending`: the futures of [`AsyncMessageReceiverExt`] call it when
    /// they are dropped before they returned `Ready` (a `select!` branch
    /// that lost, a timeout that fired). An implementation that keeps a
    /// waiting place between polls (an [`AsyncQueue`](crate::tokio::AsyncQueue)'s
    /// gate, which its clones wait behind) lets it go here; nothing was
    /// received. Callers of `poll_recv` who stop polling before `Ready`
    /// should call it too. The default does nothing.
    fn abandon_recv(&mut self) {}
}

/// The async twin of [`MessageSender`](crate::message::MessageSender): one
/// poll method, object safe. `.await` it through [`AsyncMessageSenderExt`].
pub trait AsyncMessageSender: std::marker::Send {
    /// Polls to send `msg` with `meta` (pass the same message to every poll
    /// until `Ready`): `Pending` while there is no room.
    ///
    /// Cancel-safe: the poll that returns `Ready(Ok)` sent the whole
    /// message; no other poll sent any of it.
    fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>>;

    /// Gives up a send that [`poll_send`](Self::poll_send) left `Pending`
    /// (nothing of it was sent): the futures of [`AsyncMessageSenderExt`]
    /// call it when they are dropped before they returned `Ready`. An
    /// implementation that keeps a waiting place between polls (an
    /// [`AsyncQueue`](crate::tokio::AsyncQueue)'s senders' gate, which its
    /// clones wait behind) lets it go here. Callers of `poll_send` who
    /// stop polling before `Ready` should call it too. The default does
    /// nothing.
    fn abandon_send(&mut self) {}
}

impl<R: AsyncMessageReceiver + ?Sized> AsyncMessageReceiver for Box<R> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        (**self).poll_recv(cx)
    }

    fn abandon_recv(&mut self) {
        (**self).abandon_recv()
    }
}

impl<R: AsyncMessageReceiver + ?Sized> AsyncMessageReceiver for &mut R {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        (**self).poll_recv(cx)
    }

    fn abandon_recv(&mut self) {
        (**self).abandon_recv()
    }
}

impl<S: AsyncMessageSender + ?Sized> AsyncMessageSender for Box<S> {
    fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>> {
        (**self).poll_send(cx, msg, meta)
    }
    fn abandon_send(&mut self) {
        (**self).abandon_send()
    }
}

impl<S: AsyncMessageSender + ?Sized> AsyncMessageSender for &mut S {
    fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>> {
        (**self).poll_send(cx, msg, meta)
    }
    fn abandon_send(&mut self) {
        (**self).abandon_send()
    }
}

/// `.await` helpers over any [`AsyncMessageReceiver`], `dyn` ones too. The
/// futures are `Send` and cancel-safe.
pub trait AsyncMessageReceiverExt: AsyncMessageReceiver {
    /// Receives the next message.
    fn recv(&mut self) -> Recv<'_, Self> {
        Recv {
            rx: self,
            pending: false,
        }
    }

    /// Receives the next message and its [`Meta`].
    fn recv_with_meta(&mut self) -> RecvWithMeta<'_, Self> {
        RecvWithMeta {
            rx: self,
            pending: false,
        }
    }
}

impl<R: AsyncMessageReceiver + ?Sized> AsyncMessageReceiverExt for R {}

/// `.await` helpers over any [`AsyncMessageSender`], `dyn` ones too. The
/// futures are `Send` and cancel-safe.
pub trait AsyncMessageSenderExt: AsyncMessageSender {
    /// Sends `msg`.
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> SendMsg<'a, Self> {
        SendMsg {
            tx: self,
            msg,
            meta: Meta::default(),
            pending: false,
        }
    }

    /// Sends `msg` with `meta` (a priority, a System V type).
    fn send_with<'a>(&'a mut self, msg: &'a [u8], meta: Meta) -> SendMsg<'a, Self> {
        SendMsg {
            tx: self,
            msg,
            meta,
            pending: false,
        }
    }
}

impl<S: AsyncMessageSender + ?Sized> AsyncMessageSenderExt for S {}

/// The future of [`AsyncMessageReceiverExt::recv`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, R: AsyncMessageReceiver + ?Sized> {
    rx: &'a mut R,
    /// A poll returned `Pending` and none `Ready` since.
    pending: bool,
}

impl<R: AsyncMessageReceiver + ?Sized> Future for Recv<'_, R> {
    type Output = Result<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        let r = me.rx.poll_recv(cx);
        me.pending = r.is_pending();
        r.map(|r| r.map(|(m, _)| m))
    }
}

/// Dropped while pending: [`AsyncMessageReceiver::abandon_recv`].
impl<R: AsyncMessageReceiver + ?Sized> Drop for Recv<'_, R> {
    fn drop(&mut self) {
        if self.pending {
            self.rx.abandon_recv();
        }
    }
}

/// The future of [`AsyncMessageReceiverExt::recv_with_meta`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct RecvWithMeta<'a, R: AsyncMessageReceiver + ?Sized> {
    rx: &'a mut R,
    /// A poll returned `Pending` and none `Ready` since.
    pending: bool,
}

impl<R: AsyncMessageReceiver + ?Sized> Future for RecvWithMeta<'_, R> {
    type Output = Result<(Vec<u8>, Meta)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        let r = me.rx.poll_recv(cx);
        me.pending = r.is_pending();
        r
    }
}

/// Dropped while pending: [`AsyncMessageReceiver::abandon_recv`].
impl<R: AsyncMessageReceiver + ?Sized> Drop for RecvWithMeta<'_, R> {
    fn drop(&mut self) {
        if self.pending {
            self.rx.abandon_recv();
        }
    }
}

/// The future of [`AsyncMessageSenderExt::send`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct SendMsg<'a, S: AsyncMessageSender + ?Sized> {
    tx: &'a mut S,
    msg: &'a [u8],
    meta: Meta,
    /// A poll returned `Pending` and none `Ready` since.
    pending: bool,
}

impl<S: AsyncMessageSender + ?Sized> Future for SendMsg<'_, S> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        let r = me.tx.poll_send(cx, me.msg, me.meta);
        me.pending = r.is_pending();
        r
    }
}

/// Dropped while pending: [`AsyncMessageSender::abandon_send`].
impl<S: AsyncMessageSender + ?Sized> Drop for SendMsg<'_, S> {
    fn drop(&mut self) {
        if self.pending {
            self.tx.abandon_send();
        }
    }
}
