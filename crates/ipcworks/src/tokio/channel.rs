//! The shared-memory channel's async ends.

use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use super::{Backoff, Notifier};
use crate::channel::{Loan, MessageRef, Receiver, RoomWatch, Sender, WaitStrategy};
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

    /// Borrows the next message in place (zero copy), waiting
    /// asynchronously while the channel is empty: the async form of
    /// [`Receiver::recv_ref`], with the same [`MessageRef`] and the same
    /// contract. Its accessors copy out ([`MessageRef::copy_to`],
    /// [`read_at`](MessageRef::read_at), [`to_vec`](MessageRef::to_vec),
    /// [`read_pod`](MessageRef::read_pod)); a `&[u8]` over the ring is
    /// only the `unsafe` [`MessageRef::as_slice`], since a hostile sender
    /// process could write the bytes while they are borrowed. The space
    /// goes back to the senders when the `MessageRef` drops.
    ///
    /// The `MessageRef` borrows this receiver, so no other receive can
    /// run while it lives; it may be held across an `.await` (it holds no
    /// lock, only the ring space, which senders then wait for: keep it
    /// short).
    ///
    /// Cancel-safe: the waiting takes nothing (the message stays at the
    /// head until a `MessageRef` of it is dropped); a `MessageRef` is made
    /// by the poll that finds the message.
    #[doc(alias = "zero-copy")]
    pub async fn recv_ref(&mut self) -> Result<MessageRef<'_>> {
        let slot = std::future::poll_fn(|cx| self.poll_with(cx, |rx| rx.peek_now())).await?;
        Ok(self.rx.ref_of(slot))
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

/// How a full channel's async send waits for room: parked on a helper
/// thread that sleeps on the producers' futex word (started at the first
/// wait), with a timer nap only after a report that found no room after
/// all.
struct Room {
    watch: Arc<RoomWatch>,
    /// The helper and its eventfd, started when a send first waits.
    notifier: Option<Notifier>,
    /// The helper reported since the last attempt.
    reported: bool,
    /// This send has waited (a report of room came): its attempts take
    /// the producers' lock over from a dead holder.
    waited: bool,
    /// Naps after a report that found no room (another sender took it
    /// first, or held the producers' lock), doubling up to 8 ms.
    backoff: Backoff,
}

impl Room {
    fn new(tx: &Sender) -> Room {
        Room {
            watch: tx.room_watch(),
            notifier: None,
            reported: false,
            waited: false,
            backoff: Backoff::default(),
        }
    }

    fn done(&mut self) {
        self.reported = false;
        self.waited = false;
        self.backoff.reset();
    }

    /// After an attempt found the ring full: waits for the helper's
    /// report that a record of `len` bytes may fit (or that the receiver
    /// closed or died). A report that came to nothing (the attempt after
    /// it found no room) is followed by a look at the receiver through
    /// `/proc` (a receiver killed with SIGKILL: [`Error::Disconnected`])
    /// and a nap on the timer before the helper is armed again, so a
    /// report that keeps coming to nothing cannot spin.
    fn poll_room(&mut self, tx: &Sender, len: usize, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.reported {
            tx.look_at_receiver()?;
            ready!(self.backoff.poll_nap(cx));
            self.reported = false;
            return Poll::Ready(Ok(()));
        }
        let n = match &mut self.notifier {
            Some(n) => n,
            none => none.insert(Notifier::new(Object::ChannelRoom(self.watch.clone()))?),
        };
        self.watch.want(len);
        ready!(n.poll_ready(cx))?;
        self.reported = true;
        self.waited = true;
        if self.watch.receiver_died() {
            tx.look_at_receiver()?;
        }
        Poll::Ready(Ok(()))
    }
}

/// The async form of a channel [`Sender`]: `tx.send(msg).await`.
///
/// A send that finds the channel full parks on a descriptor: a helper
/// thread (started at the first such wait, one per `AsyncSender`) sleeps
/// on the producers' futex word as a blocked send would, and signals an
/// eventfd in tokio's reactor when the receiver frees room for the
/// message (its release wakes the sleepers on that word), or closes, or
/// dies (its pidfd is watched: a receiver killed with SIGKILL ends the
/// wait with [`Error::Disconnected`] at once). An idle awaiting send uses
/// no CPU. A report that finds no room after all (another sender took it
/// first) is followed by a short nap on tokio's timer before the wait
/// goes on. Cancel-safe: the message is written whole by the `try_send`
/// of the poll that returns `Ready`, or not at all.
pub struct AsyncSender {
    tx: Sender,
    room: Room,
}

impl std::fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSender").field("tx", &self.tx).finish()
    }
}

impl AsyncSender {
    /// Makes `tx` awaitable.
    pub fn new(tx: Sender) -> Result<AsyncSender> {
        super::in_runtime()?;
        let room = Room::new(&tx);
        Ok(AsyncSender { tx, room })
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
            // After a wait that came to nothing, the attempt also takes the
            // producers' lock over from a dead holder (as a blocked send
            // does), so a producer killed inside it cannot stop us.
            let r = match self.room.waited {
                true => self
                    .tx
                    .try_send_taking_over(msg)
                    .map_err(TrySendError::from),
                false => self.tx.try_send(msg),
            };
            match r {
                Ok(()) => {
                    self.room.done();
                    return Poll::Ready(Ok(()));
                }
                Err(TrySendError::Full) => {}
                Err(TrySendError::Disconnected) => return Poll::Ready(Err(Error::Disconnected)),
                Err(TrySendError::Other(e)) => return Poll::Ready(Err(e)),
            }
            ready!(self.room.poll_room(&self.tx, msg.len(), cx))?;
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
        let room = &mut self.room;
        let slot = std::future::poll_fn(|cx| {
            loop {
                let r = match room.waited {
                    true => tx.reserve_now_taking_over(len),
                    false => tx.reserve_now(len),
                };
                match r {
                    Ok(slot) => {
                        room.done();
                        return Poll::Ready(Ok(slot));
                    }
                    Err(Error::WouldBlock) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                ready!(room.poll_room(tx, len, cx))?;
            }
        })
        .await?;
        Ok(self.tx.loan_of(slot))
    }
}
