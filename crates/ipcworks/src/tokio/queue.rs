//! The native queue's async form.

use std::future::Future;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use super::{Backoff, Notifier};
use crate::message::{Meta, TryRecvError, TrySendError};
use crate::queue::Queue;
use crate::waitset::Object;
use crate::{Error, Result};

struct Inner {
    queue: Queue,
    notifier: Notifier,
    /// Of this process's tasks receiving, the one holding the gate waits
    /// on the helper; the others wait for the gate, in order.
    gate: ::tokio::sync::Mutex<()>,
    /// The senders' helper (waiting for a free slot), started when a send
    /// first finds the queue full.
    room: std::sync::Mutex<Option<Arc<Notifier>>>,
    /// The senders' gate, as the receivers'.
    send_gate: ::tokio::sync::Mutex<()>,
}

impl Inner {
    /// The senders' helper, started on first use.
    fn room(&self) -> Result<Arc<Notifier>> {
        let mut room = self.room.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = room.as_ref() {
            return Ok(n.clone());
        }
        let fd = self
            .queue
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", e))?;
        let n = Arc::new(Notifier::new(Object::QueueRoom(Queue::from_fd(fd)?))?);
        *room = Some(n.clone());
        Ok(n)
    }
}

type RecvFuture = Pin<Box<dyn Future<Output = Result<(Vec<u8>, u32)>> + Send>>;
type SendFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// The async form of a native [`Queue`]: `q.recv().await`,
/// `q.send(msg, prio).await`.
///
/// Cheap to clone: clones share one helper thread, one eventfd and one
/// gate (see the [module docs](super)), so any number of tasks can
/// receive from one `AsyncQueue` at the cost of one thread. Receives are
/// cancel-safe (a message is taken only by the `try_recv` of the poll that
/// returns it), and so are sends (the message goes in whole or not at
/// all).
///
/// A send that finds the queue full parks on a descriptor, as a receive
/// does on an empty one: a second helper thread (started at the first
/// such wait, shared by the clones) is registered as a *poller* on the
/// senders' side (`free`), so a receive's commit wakes it without it
/// taking anything (no slot, no wake-up meant for a blocked `send` of
/// another process); one task of this process at a time waits on it, the
/// others for a gate, in order. An idle awaiting send uses no CPU. A
/// report that finds no slot after all (another sender took it) is
/// followed by a short nap on tokio's timer before the wait goes on.
///
/// Through the `dyn` interface ([`AsyncMessageReceiver::poll_recv`](super::AsyncMessageReceiver::poll_recv),
/// [`AsyncMessageSender::poll_send`](super::AsyncMessageSender::poll_send))
/// a waiting receive or send is kept in this `AsyncQueue` between polls,
/// with its place at the gate, which the clones wait behind. The futures
/// of [`AsyncMessageReceiverExt`](super::AsyncMessageReceiverExt) and
/// [`AsyncMessageSenderExt`](super::AsyncMessageSenderExt) give it up
/// when they are dropped unfinished (a timeout, a `select!` branch that
/// lost); a caller of the poll methods who stops polling before `Ready`
/// must call `abandon_recv`/`abandon_send` (or drop this `AsyncQueue`),
/// else the clones' waits stay behind it.
pub struct AsyncQueue {
    inner: Arc<Inner>,
    /// The pending receive of [`AsyncMessageReceiver::poll_recv`](super::AsyncMessageReceiver::poll_recv)
    /// (in a `Mutex` only to keep `AsyncQueue` `Sync`; reached through
    /// `&mut self`, so never locked).
    pending: std::sync::Mutex<Option<RecvFuture>>,
    /// The pending send of [`AsyncMessageSender::poll_send`](super::AsyncMessageSender::poll_send),
    /// with a copy of its message and priority (made only once the queue
    /// was found full).
    pending_send: std::sync::Mutex<Option<PendingSend>>,
}

/// A pending send: its message (shared with its future), its priority
/// and the future.
type PendingSend = (Arc<[u8]>, u32, SendFuture);

impl std::fmt::Debug for AsyncQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncQueue")
            .field("queue", &self.inner.queue.name())
            .finish()
    }
}

impl Clone for AsyncQueue {
    fn clone(&self) -> Self {
        AsyncQueue {
            inner: self.inner.clone(),
            pending: std::sync::Mutex::new(None),
            pending_send: std::sync::Mutex::new(None),
        }
    }
}

/// One non-blocking receive: `None` when the queue is empty.
fn try_once(queue: &Queue) -> Result<Option<(Vec<u8>, u32)>> {
    match queue.try_recv() {
        Ok(m) => Ok(Some(m)),
        Err(TryRecvError::Empty) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn recv_inner(inner: &Inner) -> Result<(Vec<u8>, u32)> {
    if let Some(m) = try_once(&inner.queue)? {
        return Ok(m);
    }
    let _leader = inner.gate.lock().await;
    loop {
        if let Some(m) = try_once(&inner.queue)? {
            return Ok(m);
        }
        inner.notifier.ready().await?;
    }
}

impl AsyncQueue {
    /// Makes `queue` awaitable: starts its helper thread (asleep until a
    /// receive finds the queue empty), which maps the queue once more. Must
    /// be called inside a tokio runtime.
    pub fn new(queue: Queue) -> Result<AsyncQueue> {
        super::in_runtime()?;
        let fd = queue
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", e))?;
        let notifier = Notifier::new(Object::Queue(Queue::from_fd(fd)?))?;
        Ok(AsyncQueue {
            inner: Arc::new(Inner {
                queue,
                notifier,
                gate: ::tokio::sync::Mutex::new(()),
                room: std::sync::Mutex::new(None),
                send_gate: ::tokio::sync::Mutex::new(()),
            }),
            pending: std::sync::Mutex::new(None),
            pending_send: std::sync::Mutex::new(None),
        })
    }

    /// The queue (its non-blocking calls, `depth`, `stats`).
    pub fn get_ref(&self) -> &Queue {
        &self.inner.queue
    }

    /// Receives the highest-priority message and its priority, waiting
    /// (asynchronously) while the queue is empty. Cancel-safe.
    pub async fn recv(&self) -> Result<(Vec<u8>, u32)> {
        recv_inner(&self.inner).await
    }

    /// Sends `msg` with `priority`, waiting (asynchronously) while the
    /// queue is full. Cancel-safe.
    pub async fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        send_inner(&self.inner, msg, priority).await
    }

    pub(crate) fn poll_recv_meta(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, Meta)>> {
        let pending = self.pending.get_mut().unwrap_or_else(|p| p.into_inner());
        let fut = pending.get_or_insert_with(|| {
            let inner = self.inner.clone();
            Box::pin(async move { recv_inner(&inner).await })
        });
        let r = ready!(fut.as_mut().poll(cx));
        *pending = None;
        Poll::Ready(r.map(|(m, p)| (m, Meta::with_priority(p))))
    }

    /// Drops the pending `dyn` receive (and the gate it may hold).
    pub(crate) fn abandon_recv_meta(&mut self) {
        *self.pending.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Drops the pending `dyn` send (and the senders' gate it may hold).
    pub(crate) fn abandon_send_meta(&mut self) {
        *self
            .pending_send
            .get_mut()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(crate) fn poll_send_meta(
        &mut self,
        cx: &mut Context<'_>,
        msg: &[u8],
        meta: Meta,
    ) -> Poll<Result<()>> {
        let pending = self
            .pending_send
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        // A different message than the pending one's (against the trait's
        // rule): the pending send is given up (it sent nothing).
        if pending
            .as_ref()
            .is_some_and(|(m, p, _)| &m[..] != msg || *p != meta.priority)
        {
            *pending = None;
        }
        let fut = match pending {
            Some((_, _, fut)) => fut,
            None => {
                if try_send_once(&self.inner.queue, msg, meta.priority)? {
                    return Poll::Ready(Ok(()));
                }
                // One copy, shared by the future and the check above;
                // the queue was just found full, so the future starts at
                // the gate.
                let m: Arc<[u8]> = msg.into();
                let (inner, mine) = (self.inner.clone(), m.clone());
                let fut: SendFuture =
                    Box::pin(async move { send_gated(&inner, &mine, meta.priority).await });
                &mut pending.insert((m, meta.priority, fut)).2
            }
        };
        let r = ready!(fut.as_mut().poll(cx));
        *pending = None;
        Poll::Ready(r)
    }
}

/// One non-blocking send: `false` when the queue is full.
fn try_send_once(queue: &Queue, msg: &[u8], priority: u32) -> Result<bool> {
    match queue.try_send(msg, priority) {
        Ok(()) => Ok(true),
        Err(TrySendError::Full) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A send: at once if there is room, else (holding the senders' gate)
/// waiting on the senders' helper; after a report that found no slot, a
/// nap before the next wait.
async fn send_inner(inner: &Inner, msg: &[u8], priority: u32) -> Result<()> {
    if try_send_once(&inner.queue, msg, priority)? {
        return Ok(());
    }
    send_gated(inner, msg, priority).await
}

/// [`send_inner`] past its first look: holding the senders' gate, a look
/// and a wait on the senders' helper in turn.
async fn send_gated(inner: &Inner, msg: &[u8], priority: u32) -> Result<()> {
    let _leader = inner.send_gate.lock().await;
    let room = inner.room()?;
    let mut backoff = Backoff::default();
    let mut reported = false;
    loop {
        if try_send_once(&inner.queue, msg, priority)? {
            return Ok(());
        }
        if reported {
            std::future::poll_fn(|cx| backoff.poll_nap(cx)).await;
            reported = false;
            continue;
        }
        room.ready().await?;
        reported = true;
    }
}
