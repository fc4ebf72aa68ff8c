//! The shared-memory channel's async ends.

use std::task::{Context, Poll, ready};
use std::time::Instant;

use super::{Backoff, Notifier};
use crate::channel::{Loan, Receiver, Sender, WaitStrategy};
use crate::message::{Deadline, MessageReceiver, TrySendError};
use crate::waitset::Object;
use crate::{Error, Result};

/// The longest a spinning receive keeps its thread before it lets the
/// runtime's other tasks run.
const SPIN_SLICE: std::time::Duration = std::time::Duration::from_micros(5);

/// The async form of a channel [`Receiver`]: `rx.recv().await`.
///
/// Waits as the receiver's [`WaitStrategy`] says: spinning for the
/// strategy's spin time, 100 µs by default (in slices of 5 µs inside a
/// poll, one load per turn; between slices the task wakes itself and
/// returns `Pending`, so other tasks on its thread wait at most a slice),
/// then parking on a helper thread's eventfd
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
        self.poll_with(cx, |rx| rx.try_recv().map_err(Error::from))
    }

    /// [`poll_recv`](Self::poll_recv) into `buf` (replacing its contents,
    /// reusing its allocation: one copy, straight from the ring).
    pub fn poll_recv_into(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<Result<()>> {
        self.poll_with(cx, |rx| {
            MessageReceiver::recv_into_until(rx, buf, Deadline::Now).map(drop)
        })
    }

    /// Receives the next message into `buf` (replacing its contents,
    /// reusing its allocation), waiting asynchronously. Cancel-safe.
    pub async fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_recv_into(cx, buf)).await
    }

    /// Spins up to [`SPIN_SLICE`] probing the head; whether a record may
    /// be there.
    fn spin_slice(&self) -> bool {
        let start = Instant::now();
        let mut turns: u32 = 0;
        loop {
            if self.rx.head_ready() {
                return true;
            }
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(32) && start.elapsed() >= SPIN_SLICE {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Retries `attempt` (`Error::WouldBlock`: nothing yet), waiting as
    /// the strategy says in between.
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut attempt: impl FnMut(&mut Receiver) -> Result<T>,
    ) -> Poll<Result<T>> {
        loop {
            match attempt(&mut self.rx) {
                Ok(v) => {
                    self.spin_since = None;
                    return Poll::Ready(Ok(v));
                }
                Err(Error::WouldBlock) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            let spin = match self.rx.wait_strategy() {
                WaitStrategy::Block => false,
                WaitStrategy::Spin => true,
                WaitStrategy::SpinThenBlock { spin } => {
                    self.spin_since.get_or_insert_with(Instant::now).elapsed() < spin
                }
            };
            if spin {
                // Spin in place for a short slice (one load per turn), then
                // through the scheduler, so other tasks on this thread wait
                // at most a slice.
                if !self.spin_slice() {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
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

/// Waits one nap for room, then, about every 20 ms of waiting (the
/// blocking send's cadence), looks at the receiver: a receiver killed with
/// SIGKILL leaves a full channel full and rings nothing, and only this look
/// turns the wait into [`Error::Disconnected`].
fn poll_room(
    tx: &Sender,
    backoff: &mut Backoff,
    looked: &mut Option<Instant>,
    cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    ready!(backoff.poll_nap(cx));
    let last = *looked.get_or_insert_with(Instant::now);
    if last.elapsed() >= LOOK_EVERY {
        *looked = Some(Instant::now());
        tx.look_at_receiver()?;
    }
    Poll::Ready(Ok(()))
}

/// How often a waiting async send looks at its receiver through `/proc`.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// The async form of a channel [`Sender`]: `tx.send(msg).await`.
///
/// A send that finds the channel full retries on tokio's timer (1 ms,
/// doubling up to 8 ms): room is back-pressure, and the receiver rings
/// no descriptor when it frees some. While it waits it looks at the
/// receiver every 20 ms, as the blocking send does: a receiver killed with
/// SIGKILL ends the wait with [`Error::Disconnected`]. Cancel-safe: the message is written
/// whole by the `try_send` of the poll that returns `Ready`, or not at
/// all.
#[derive(Debug)]
pub struct AsyncSender {
    tx: Sender,
    backoff: Backoff,
    /// When this wait last looked at the receiver through `/proc`.
    looked: Option<Instant>,
}

impl AsyncSender {
    /// Makes `tx` awaitable.
    pub fn new(tx: Sender) -> Result<AsyncSender> {
        super::in_runtime()?;
        Ok(AsyncSender {
            tx,
            backoff: Backoff::default(),
            looked: None,
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

    fn done(&mut self) {
        self.backoff.reset();
        self.looked = None;
    }

    /// Polls to send `msg`: `Ready(Ok)` once it is in the channel,
    /// `Pending` while the channel is full; [`Error::Disconnected`] when
    /// the receiver is gone, [`Error::MessageTooLarge`] when `msg` never
    /// fits.
    pub fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8]) -> Poll<Result<()>> {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => {
                    self.done();
                    return Poll::Ready(Ok(()));
                }
                Err(TrySendError::Full) => {}
                Err(TrySendError::Disconnected) => return Poll::Ready(Err(Error::Disconnected)),
                Err(TrySendError::Other(e)) => return Poll::Ready(Err(e)),
            }
            ready!(poll_room(&self.tx, &mut self.backoff, &mut self.looked, cx))?;
        }
    }

    /// Sends `msg`, waiting (asynchronously) while the channel is full.
    /// Cancel-safe.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_send(cx, msg)).await
    }

    /// Borrows a writable slot of `len` bytes in the ring, waiting
    /// (asynchronously) while the channel is full: write the message in
    /// place and [`publish`](Loan::publish) it ([`Sender::loan`], zero
    /// copy). Cancel-safe: the slot is reserved by the poll that returns
    /// the loan; a loan dropped unpublished is given back.
    pub async fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let tx = &mut self.tx;
        let backoff = &mut self.backoff;
        let looked = &mut self.looked;
        let slot = std::future::poll_fn(|cx| {
            loop {
                match tx.reserve_now(len) {
                    Ok(slot) => {
                        backoff.reset();
                        *looked = None;
                        return Poll::Ready(Ok(slot));
                    }
                    Err(Error::WouldBlock) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                ready!(poll_room(tx, backoff, looked, cx))?;
            }
        })
        .await?;
        Ok(self.tx.loan_of(slot))
    }
}
