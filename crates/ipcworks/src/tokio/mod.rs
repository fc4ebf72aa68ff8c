//! Async forms of the blocking calls, on tokio (feature `tokio`): every
//! receive, send and acquire can be `.await`ed, bounded by
//! `tokio::time::timeout` and cancelled at any await point.
//!
//! | blocking | async | readiness source |
//! |---|---|---|
//! | [`channel::Receiver`](crate::channel::Receiver) | [`AsyncReceiver`] | a helper thread on the futex word + eventfd in `AsyncFd` |
//! | [`channel::Sender`](crate::channel::Sender) | [`AsyncSender`] (waiting for room) | a helper thread on the producers' futex word + eventfd (started at the first full channel) |
//! | [`queue::Queue`](crate::queue::Queue) | [`AsyncQueue`] | a helper thread (one per queue per process) + eventfd; a second one for room, started at the first full queue |
//! | [`sync::Semaphore`](crate::sync::Semaphore) | [`AsyncSemaphore`] | a helper thread (one per semaphore per process) + eventfd |
//! | [`mq::posix::Queue`](crate::mq::posix::Queue), framed streams | [`Async`] | `AsyncFd` on the object's own descriptor |
//! | [`mq::sysv`](crate::mq::sysv) queues | [`Async`] | `IPC_NOWAIT` retried on tokio's timer |
//! | pipe and FIFO ends, [`UnixStream`](crate::socket::UnixStream), `std::net::TcpStream` | [`AsyncStream`] (`AsyncRead`/`AsyncWrite`) | `AsyncFd` on the stream's own descriptor |
//! | [`pipe::Duplex`](crate::pipe::Duplex) | [`AsyncDuplex`] (`AsyncRead`/`AsyncWrite`) | `AsyncFd` on each pipe end |
//! | standard input and output | [`stdin`], [`stdout`] ([`AsyncStream`]) | `AsyncFd` on duplicates of descriptors 0 and 1 (see [`stdin`] on the shared `O_NONBLOCK`) |
//! | [`UnixDatagram`](crate::socket::UnixDatagram), [`UnixSeqpacket`](crate::socket::UnixSeqpacket) | [`AsyncPacket`] (one send = one message) | `AsyncFd` on the socket's own descriptor |
//! | [`UnixListener`](crate::socket::UnixListener), `std::net::TcpListener` | [`AsyncListener`] | `AsyncFd` on the listening descriptor |
//! | [`socket::Server`](crate::socket::Server) (feature `server`) | [`AsyncServer`] (each client a task) | `AsyncFd` on the listening and the connected descriptors |
//!
//! ```no_run
//! use ipcworks::channel::Channel;
//! use ipcworks::tokio::AsyncReceiver;
//!
//! # async fn run() -> ipcworks::Result<()> {
//! let chan = Channel::builder().create("events")?;
//! let mut rx = AsyncReceiver::new(chan.receiver()?)?;
//! while let Ok(msg) = rx.recv().await {
//!     println!("{msg:?}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # How a shared-memory object becomes awaitable
//!
//! tokio waits on descriptors; the channel, the native queue and the
//! semaphore sleep on futex words in shared memory. The bridge is the
//! [`WaitSet`](crate::waitset::WaitSet)'s: a **helper thread per object**
//! that sleeps on the futex word exactly as a blocked call of this process
//! would (so senders and posters keep their fast path: no system call while
//! nobody sleeps) and signals an `eventfd`, which tokio watches through
//! `AsyncFd`. The helper is armed only when a task found nothing and is
//! about to return `Pending`; armed, it looks at the object before it
//! sleeps, so a message or permit that came between the task's look and
//! the arming is reported at once (nothing is lost); idle or armed, it uses
//! no CPU.
//!
//! **One helper per object per process, never one per future.** An
//! [`AsyncSemaphore`] or [`AsyncQueue`] is a cheap `Clone` (an `Arc`)
//! sharing one helper, one eventfd and one gate: 10,000 tasks awaiting one
//! semaphore cost one thread and one descriptor. Of the tasks of one
//! process waiting on one object, one at a time (the *leader*, who holds a
//! fair `tokio::sync::Mutex` gate) waits on the helper; the others wait,
//! in FIFO order, for the gate. A task that gets the gate first tries the
//! non-blocking call again. So a post wakes one task of this process, not
//! all of them (no thundering herd), and the order in which a process's
//! tasks get permits is the order they came in.
//!
//! Readiness is edge-triggered (tokio registers the eventfd with
//! `EPOLLET`) and treated as a hint, as the WaitSet's: after a report the
//! task drains the eventfd, clears tokio's readiness (tokio's tick makes a
//! report that came in meanwhile survive the clear) and tries the
//! non-blocking call again; if that finds nothing (another process took
//! the permit first) the helper is armed again before `Pending`. A report
//! is never lost and a spurious one costs one `try_` call.
//!
//! **Spin, then park.** A shm channel receive by default first re-polls
//! itself for a short time (the receiver's
//! [`WaitStrategy`](crate::channel::WaitStrategy), 100 µs by default: the
//! task wakes itself and returns `Pending`, so other tasks on the same
//! runtime still run), then parks on the helper. `WaitStrategy::Block`
//! parks at once.
//!
//! # Cancel safety
//!
//! Every future here commits only inside one non-blocking call
//! (`try_recv`, `try_send`, `try_acquire`, `mq_timedreceive` with an
//! expired deadline, `msgrcv(IPC_NOWAIT)`) that completes within the poll
//! that returns `Ready`. Between polls nothing is taken, so dropping a
//! future at any await point (a `select!` branch that lost, a
//! `tokio::time::timeout` that fired) leaves the message in its queue or
//! channel, takes no permit and sends nothing. A send sent the whole
//! message or nothing. A framed byte stream's receive keeps a partial frame
//! buffered between polls; its send writes the frame as the stream takes
//! it, over several polls, never blocking the thread. A byte stream
//! cannot take half a message back, so the one exception is a framed send
//! cancelled after the stream took part of its frame: that message is
//! finished by the next send (or [`Async::flush`]) and arrives whole; the
//! framing is never corrupted (see [`Async`], "Framed sends").
//!
//! # Waiting for room
//!
//! A send that finds a channel or a native queue full parks the same way:
//! a helper thread sleeps on the senders' side of the object (a
//! channel's producers' futex word, which the receiver's release wakes;
//! a queue's `free` semaphore as a poller, which a receive's commit
//! wakes) and signals an eventfd. It looks for room for the waiting
//! message before each sleep, takes nothing, and never eats a blocked
//! send's wake-up. A report that finds no room after all (another
//! sender took it) costs a nap of 1-8 ms on tokio's timer before the
//! wait goes on. The timer alone remains only where there is no
//! descriptor and no futex to watch: System V queues.
//!
//! # System V queues
//!
//! A System V queue has no descriptor. Its async form ([`Async`] over
//! [`mq::sysv`](crate::mq::sysv) receivers and senders) tries
//! `msgrcv`/`msgsnd` with `IPC_NOWAIT` and, finding nothing, sleeps on
//! tokio's timer, from 1 ms doubling to 8 ms, then tries again. The cost:
//! up to 8 ms of added latency while a queue stays empty and a timer
//! wake-up per try (no thread is held). A blocking pool (`spawn_blocking`
//! with `msgrcv` in it) would answer at once but is not cancel-safe (a
//! `msgrcv` that completes after its future was dropped takes a message
//! nobody receives) and holds a pool thread per waiting task.
//!
//! # The mutex
//!
//! There is no async [`Mutex`](crate::sync::Mutex): a robust mutex's owner
//! is a *thread* (the kernel's robust list and `OwnerDead` are per
//! thread), while a task moves between threads at every await. A guard
//! held across an await would then be unlocked by a thread that does not
//! own it. Use an [`AsyncSemaphore`] of one permit for async mutual
//! exclusion between processes (its permits are owned by the process and
//! come back when the process dies), and lock the mutex only inside
//! synchronous code that does not await.
//!
//! # Through `dyn`
//!
//! [`AsyncMessageReceiver`] and [`AsyncMessageSender`] are the async twins
//! of the [message interface](crate::message), poll-based so they are
//! object safe; [`AsyncMessageReceiverExt`] and [`AsyncMessageSenderExt`]
//! add `recv().await` and `send(msg).await` returning `Send` futures.
//! [`open_receiver`] and [`open_sender`] open an
//! [endpoint](crate::endpoint) as a `Box<dyn AsyncMessageReceiver>` or
//! `Box<dyn AsyncMessageSender>`. A pending `dyn` receive or send that
//! is given up (its `recv()`/`send()` future dropped before `Ready`) lets
//! go of what it held between polls through
//! [`abandon_recv`](AsyncMessageReceiver::abandon_recv) and
//! [`abandon_send`](AsyncMessageSender::abandon_send) (an
//! [`AsyncQueue`]'s place at the gate its clones wait behind).
//!
//! Everything here must be created inside a tokio runtime (with its I/O
//! and time drivers: `Runtime::new()`, `Builder::enable_all`); outside one
//! the constructors return [`Error::InvalidArgument`].

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::task::{Context, Poll, ready};

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

use crate::sys::poll;
use crate::waitset::{Helper, Object};
use crate::{Error, Result};

mod channel;
mod endpoint;
mod fd;
mod packet;
mod queue;
mod semaphore;
#[cfg(feature = "server")]
mod server;
mod stdio;
mod stream;
mod traits;

/// The async message traits (defined in [`message`](crate::message)),
/// here too for one import.
pub use crate::message::{
    AsyncMessageReceiver, AsyncMessageReceiverExt, AsyncMessageSender, AsyncMessageSenderExt,
};
pub use channel::{AsyncReceiver, AsyncSender};
pub use endpoint::{open_receiver, open_sender};
pub use fd::Async;
pub use packet::{AsyncPacket, PacketSocket};
pub use queue::AsyncQueue;
pub use semaphore::AsyncSemaphore;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use server::{AsyncHandler, AsyncServer, AsyncShutdown};
pub use stdio::{AsyncDuplex, Stdin, Stdout, stdin, stdout};
pub use stream::{AsyncListener, AsyncStream, Listener, ReadStream, Stream, WriteStream};

/// Fails unless called inside a tokio runtime.
pub(crate) fn in_runtime() -> Result<()> {
    match ::tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::InvalidArgument(
            "the async forms of ipcworks must be created inside a tokio runtime \
             (with its I/O and time drivers enabled)"
                .into(),
        )),
    }
}

/// A descriptor that owns its descriptor number for as long as it lives
/// and always answers the same one: what tokio's `AsyncFd` needs.
pub(crate) trait OwnsFd: AsRawFd {}

impl OwnsFd for std::os::fd::OwnedFd {}
impl OwnsFd for HelperFd {}

/// `AsyncFd::register_with_interest`: puts `inner`'s descriptor into
/// tokio's reactor (`epoll_ctl(EPOLL_CTL_ADD)`).
pub(crate) fn register<T: OwnsFd>(inner: T, interest: Interest) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `T: OwnsFd` is an `OwnedFd` or a `HelperFd`, each of which
    // owns its descriptor (the `HelperFd`'s eventfd lives in the helper's
    // state, closed only when the helper drops) and returns the same
    // number from every `as_raw_fd` call; the `AsyncFd` owns `inner`, and
    // we never swap it through `get_mut`, so the descriptor stays open and
    // the same open file description for the `AsyncFd`'s whole life.
    unsafe { AsyncFd::register_with_interest(inner, interest) }.map_err(Into::into)
}

/// The helper's eventfd, as tokio registers it.
struct HelperFd(Helper);

impl AsRawFd for HelperFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.eventfd().as_raw_fd()
    }
}

/// One shared-memory object's readiness, as tokio sees it: the
/// WaitSet's helper thread and its eventfd in an `AsyncFd` (see the
/// [module docs](self)). Polled by one task at a time (the channel's one
/// receiver, or the leader of a gate).
pub(crate) struct Notifier {
    fd: AsyncFd<HelperFd>,
}

impl Notifier {
    pub(crate) fn new(object: Object) -> Result<Notifier> {
        in_runtime()?;
        let helper = Helper::start(object)?;
        let fd = register(HelperFd(helper), Interest::READABLE)
            .map_err(|e| Error::io("register an eventfd with tokio", e))?;
        Ok(Notifier { fd })
    }

    /// Arms the helper (the caller found nothing) and polls for its report.
    /// `Ready` means "try again" (a hint); `Pending` registers the task's
    /// waker with tokio.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.fd.get_ref().0.arm();
        let mut guard =
            ready!(self.fd.poll_read_ready(cx)).map_err(|e| Error::io("tokio readiness", e))?;
        // Drain, then clear: a report after the drain carries a new tick,
        // which the clear leaves standing.
        poll::eventfd_clear(self.fd.get_ref().0.eventfd().as_fd());
        guard.clear_ready();
        Poll::Ready(Ok(()))
    }

    /// [`poll_ready`](Self::poll_ready) as a future.
    pub(crate) async fn ready(&self) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }
}

/// Backoff of the timer-driven waits (System V; a sender whose report of
/// room came to nothing): first and longest nap.
pub(crate) const NAP_FIRST: std::time::Duration = std::time::Duration::from_millis(1);
pub(crate) const NAP_MAX: std::time::Duration = std::time::Duration::from_millis(8);

/// A timer backoff for the waits that have no descriptor: polled, it
/// sleeps the current nap (doubling up to [`NAP_MAX`]).
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    sleep: Option<std::pin::Pin<Box<::tokio::time::Sleep>>>,
    nap: std::time::Duration,
}

impl Backoff {
    /// Sleeps one nap; `Ready` when it is over (then: try again).
    pub(crate) fn poll_nap(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.sleep.is_none() {
            self.nap = match self.nap.is_zero() {
                true => NAP_FIRST,
                false => (self.nap * 2).min(NAP_MAX),
            };
            self.sleep = Some(Box::pin(::tokio::time::sleep(self.nap)));
        }
        if let Some(s) = self.sleep.as_mut() {
            ready!(s.as_mut().poll(cx));
        }
        self.sleep = None;
        Poll::Ready(())
    }

    /// After a success: the next wait starts with the shortest nap.
    pub(crate) fn reset(&mut self) {
        self.sleep = None;
        self.nap = std::time::Duration::ZERO;
    }
}

use std::future::Future as _;
