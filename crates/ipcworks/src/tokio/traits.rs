//! The async forms' implementations of the async message traits
//! ([`message::AsyncMessageReceiver`](crate::message::AsyncMessageReceiver),
//! [`message::AsyncMessageSender`](crate::message::AsyncMessageSender)).

use std::task::{Context, Poll};

use super::{Async, AsyncQueue, AsyncReceiver, AsyncSender};
use crate::Result;
use crate::message::{
    AsyncMessageReceiver, AsyncMessageSender, MessageReceiver, MessageSender, Meta,
};

impl AsyncMessageReceiver for AsyncReceiver {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        AsyncReceiver::poll_recv(self, cx).map(|r| r.map(|m| (m, Meta::default())))
    }
}

impl AsyncMessageSender for AsyncSender {
    fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], _meta: Meta) -> Poll<Result<()>> {
        AsyncSender::poll_send(self, cx, msg)
    }
}

impl AsyncMessageReceiver for AsyncQueue {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        self.poll_recv_meta(cx)
    }

    /// Drops the pending receive, and with it this queue's place at the
    /// receivers' gate (nothing was received).
    fn abandon_recv(&mut self) {
        self.abandon_recv_meta();
    }
}

impl AsyncMessageSender for AsyncQueue {
    fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>> {
        self.poll_send_meta(cx, msg, meta)
    }

    /// Drops the pending send, and with it this queue's place at the
    /// senders' gate (nothing was sent).
    fn abandon_send(&mut self) {
        self.abandon_send_meta();
    }
}

impl<R: MessageReceiver> AsyncMessageReceiver for Async<R> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        Async::poll_recv(self, cx)
    }
}

impl<S: MessageSender> AsyncMessageSender for Async<S> {
    fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8], meta: Meta) -> Poll<Result<()>> {
        Async::poll_send(self, cx, msg, meta)
    }
}
