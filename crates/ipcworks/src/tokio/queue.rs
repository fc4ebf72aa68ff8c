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
}

type RecvFuture = Pin<Box<dyn Future<Output = Result<(Vec<u8>, u32)>> + Send>>;

/// The async form of a native [`Queue`]: `q.recv().await`,
/// `q.send(msg, prio).await`.
///
/// Cheap to clone: clones share one helper thread, one eventfd and one
/// gate (see the [module docs](super)), so any number of tasks can
/// receive from one `AsyncQueue` at the cost of one thread. Receives are
/// cancel-safe (a message is taken only by the `try_recv` of the poll that
/// returns it), and so are sends (a full queue is retried on tokio's timer,
/// 1 ms doubling to 8 ms; the message goes in whole or not at all).
pub struct AsyncQueue {
    inner: Arc<Inner>,
    /// The pending receive of [`AsyncMessageReceiver::poll_recv`](super::AsyncMessageReceiver::poll_recv)
    /// (in a `Mutex` only to keep `AsyncQueue` `Sync`; reached through
    /// `&mut self`, so never locked).
    pending: std::sync::Mutex<Option<RecvFuture>>,
    backoff: Backoff,
}

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
            backoff: Backoff::default(),
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
            }),
            pending: std::sync::Mutex::new(None),
            backoff: Backoff::default(),
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
        let mut backoff = Backoff::default();
        std::future::poll_fn(|cx| poll_send(&self.inner.queue, &mut backoff, cx, msg, priority))
            .await
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

    pub(crate) fn poll_send_meta(
        &mut self,
        cx: &mut Context<'_>,
        msg: &[u8],
        meta: Meta,
    ) -> Poll<Result<()>> {
        poll_send(&self.inner.queue, &mut self.backoff, cx, msg, meta.priority)
    }
}

fn poll_send(
    queue: &Queue,
    backoff: &mut Backoff,
    cx: &mut Context<'_>,
    msg: &[u8],
    priority: u32,
) -> Poll<Result<()>> {
    loop {
        match queue.try_send(msg, priority) {
            Ok(()) => {
                backoff.reset();
                return Poll::Ready(Ok(()));
            }
            Err(TrySendError::Full) => {}
            Err(e) => return Poll::Ready(Err(e.into())),
        }
        ready!(backoff.poll_nap(cx));
    }
}
