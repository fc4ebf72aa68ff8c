//! The shared-memory channel's async ends.

use std::task::{Context, Poll, ready};
use std::time::Instant;

use super::{Backoff, Notifier};
use crate::channel::{Receiver, Sender, WaitStrategy};
use crate::message::{TryRecvError, TrySendError};
use crate::waitset::Object;
use crate::{Error, Result};

/// The async form of a channel [`Receiver`]: `rx.recv().await`.
///
/// Waits as the receiver's [`WaitStrategy`] says: spinning (the task
/// re-polls itself, other tasks still run) for the strategy's spin time,
/// 100 µs by default, then parking on a helper thread's eventfd
/// ([module docs](super)); `WaitStrategy::Block` parks at once,
/// `WaitStrategy::Spin` never parks. A sender killed with SIGKILL ends a
/// parked receive with [`Error::Disconnected`] at once (the helper watches
/// the senders' pidfds).
///
/// Cancel-safe: a message is taken only by the `try_recv` of the poll that
/// returns it.
pub struct AsyncReceiver {
    rx: Receiver,
    notifier: Notifier,
    /// When this wait began spinning.
    spin_since: Option<Instant>,
}

impl std::fmt::Debug for AsyncReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncReceiver")
            .field("rx", &self.rx)
            .finish()
    }
}

impl AsyncReceiver {
    /// Makes `rx` awaitable: starts its helper thread (asleep until a
    /// receive finds the channel empty). Must be called inside a tokio
    /// runtime.
    pub fn new(rx: Receiver) -> Result<AsyncReceiver> {
        let notifier = Notifier::new(Object::Channel(rx.sender_watch()))?;
        Ok(AsyncReceiver {
            rx,
            notifier,
            spin_since: None,
        })
    }

    /// The receiver (for its non-blocking calls, `len`, the wait strategy).
    pub fn get_ref(&self) -> &Receiver {
        &self.rx
    }

    /// The receiver, mutably (`try_recv`, `set_wait_strategy`).
    pub fn get_mut(&mut self) -> &mut Receiver {
        &mut self.rx
    }

    /// The receiver back (the helper thread stops).
    pub fn into_inner(self) -> Receiver {
        self.rx
    }

    /// Polls for the next message: `Ready(Ok)` with it,
    /// `Ready(Err(Error::Disconnected))` once every sender is gone and
    /// everything they sent was received, `Pending` while the channel is
    /// empty (the task is woken when a message may be there).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<u8>>> {
        loop {
            match self.rx.try_recv() {
                Ok(msg) => {
                    self.spin_since = None;
                    return Poll::Ready(Ok(msg));
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Poll::Ready(Err(Error::Disconnected)),
                Err(TryRecvError::Other(e)) => return Poll::Ready(Err(e)),
            }
            let spin = match self.rx.wait_strategy() {
                WaitStrategy::Block => false,
                WaitStrategy::Spin => true,
                WaitStrategy::SpinThenBlock { spin } => {
                    self.spin_since.get_or_insert_with(Instant::now).elapsed() < spin
                }
            };
            if spin {
                // Spin through the scheduler: other tasks run in between.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.notifier.poll_ready(cx))?;
        }
    }

    /// Receives the next message, waiting (asynchronously) while the
    /// channel is empty; [`Error::Disconnected`] once every sender is gone
    /// and all they sent was received. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

/// The async form of a channel [`Sender`]: `tx.send(msg).await`.
///
/// A send that finds the channel full retries on tokio's timer (1 ms,
/// doubling up to 8 ms): room is back-pressure, and the receiver rings
/// no descriptor when it frees some. Cancel-safe: the message is written
/// whole by the `try_send` of the poll that returns `Ready`, or not at
/// all.
#[derive(Debug)]
pub struct AsyncSender {
    tx: Sender,
    backoff: Backoff,
}

impl AsyncSender {
    /// Makes `tx` awaitable.
    pub fn new(tx: Sender) -> Result<AsyncSender> {
        super::in_runtime()?;
        Ok(AsyncSender {
            tx,
            backoff: Backoff::default(),
        })
    }

    /// The sender.
    pub fn get_ref(&self) -> &Sender {
        &self.tx
    }

    /// The sender, mutably.
    pub fn get_mut(&mut self) -> &mut Sender {
        &mut self.tx
    }

    /// The sender back.
    pub fn into_inner(self) -> Sender {
        self.tx
    }

    /// Polls to send `msg`: `Ready(Ok)` once it is in the channel,
    /// `Pending` while the channel is full; [`Error::Disconnected`] when
    /// the receiver is gone, [`Error::MessageTooLarge`] when `msg` never
    /// fits.
    pub fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8]) -> Poll<Result<()>> {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => {
                    self.backoff.reset();
                    return Poll::Ready(Ok(()));
                }
                Err(TrySendError::Full) => {}
                Err(TrySendError::Disconnected) => return Poll::Ready(Err(Error::Disconnected)),
                Err(TrySendError::Other(e)) => return Poll::Ready(Err(e)),
            }
            ready!(self.backoff.poll_nap(cx));
        }
    }

    /// Sends `msg`, waiting (asynchronously) while the channel is full.
    /// Cancel-safe.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_send(cx, msg)).await
    }
}
