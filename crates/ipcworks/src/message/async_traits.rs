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
}

impl<R: AsyncMessageReceiver + ?Sized> AsyncMessageReceiver for Box<R> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        (**self).poll_recv(cx)
    }
}

impl<R: AsyncMessageReceiver + ?Sized> AsyncMessageReceiver for &mut R {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        (**self).poll_recv(cx)
    }
}

impl<S: AsyncMessageSender + ?Sized> AsyncMessageSender for Box<S> {
    fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>> {
        (**self).poll_send(cx, msg, meta)
    }
}

impl<S: AsyncMessageSender + ?Sized> AsyncMessageSender for &mut S {
    fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>> {
        (**self).poll_send(cx, msg, meta)
    }
}

/// `.await` helpers over any [`AsyncMessageReceiver`], `dyn` ones too. The
/// futures are `Send` and cancel-safe.
pub trait AsyncMessageReceiverExt: AsyncMessageReceiver {
    /// Receives the next message.
    fn recv(&mut self) -> Recv<'_, Self> {
        Recv { rx: self }
    }

    /// Receives the next message and its [`Meta`].
    fn recv_with_meta(&mut self) -> RecvWithMeta<'_, Self> {
        RecvWithMeta { rx: self }
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
        }
    }

    /// Sends `msg` with `meta` (a priority, a System V type).
    fn send_with<'a>(&'a mut self, msg: &'a [u8], meta: Meta) -> SendMsg<'a, Self> {
        SendMsg {
            tx: self,
            msg,
            meta,
        }
    }
}

impl<S: AsyncMessageSender + ?Sized> AsyncMessageSenderExt for S {}

/// The future of [`AsyncMessageReceiverExt::recv`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, R: ?Sized> {
    rx: &'a mut R,
}

impl<R: AsyncMessageReceiver + ?Sized> Future for Recv<'_, R> {
    type Output = Result<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().rx.poll_recv(cx).map(|r| r.map(|(m, _)| m))
    }
}

/// The future of [`AsyncMessageReceiverExt::recv_with_meta`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct RecvWithMeta<'a, R: ?Sized> {
    rx: &'a mut R,
}

impl<R: AsyncMessageReceiver + ?Sized> Future for RecvWithMeta<'_, R> {
    type Output = Result<(Vec<u8>, Meta)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().rx.poll_recv(cx)
    }
}

/// The future of [`AsyncMessageSenderExt::send`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct SendMsg<'a, S: ?Sized> {
    tx: &'a mut S,
    msg: &'a [u8],
    meta: Meta,
}

impl<S: AsyncMessageSender + ?Sized> Future for SendMsg<'_, S> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        me.tx.poll_send(cx, me.msg, me.meta)
    }
}
