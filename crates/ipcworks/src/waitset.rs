//! One wait for everything: a [`WaitSet`] waits on any mix of shm channel
//! receivers, native queues, native semaphores, POSIX message queues,
//! sockets, pipes, FIFOs, raw descriptors and deadlines, with one `epoll`
//! underneath, and says which are ready.
//!
//! ```no_run
//! use std::time::Duration;
//! use ipcworks::channel::Channel;
//! use ipcworks::message::Deadline;
//! use ipcworks::queue::Queue;
//! use ipcworks::waitset::WaitSet;
//!
//! # fn main() -> ipcworks::Result<()> {
//! let mut rx = Channel::builder().create("events")?.receiver()?;
//! let jobs = Queue::open("jobs")?;
//! let mut set = WaitSet::new()?;
//! set.add_channel(1, &rx)?;
//! set.add_queue(2, &jobs)?;
//! loop {
//!     let ready = set.wait(Deadline::after(Duration::from_secs(5)))?;
//!     if ready.is_empty() {
//!         break; // five seconds without anything
//!     }
//!     for key in ready {
//!         match key {
//!             // A hint: the non-blocking call may find nothing.
//!             1 => while let Ok(m) = rx.try_recv() { println!("event {m:?}") },
//!             2 => while let Ok((m, _prio)) = jobs.try_recv() { println!("job {m:?}") },
//!             _ => unreachable!(),
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # A ready report is a hint
//!
//! Readiness of a shared object can be taken by another process before the
//! caller acts: a permit of a semaphore several processes wait on, a queue
//! message another receiver takes first. So a key in the answer means
//! "try now": the caller's non-blocking call (`try_recv`, `try_wait`) may
//! find nothing, and the next `wait` goes on waiting. Readiness is never
//! lost: an object that is ready when `wait` is called, or becomes ready
//! while it waits, is reported (level-triggered, like `epoll` without
//! `EPOLLET`: an object left ready is reported again by the next `wait`).
//!
//! # How a futex becomes a descriptor
//!
//! The shared-memory objects wait on futex words, which `epoll` cannot
//! watch. Each one added gets a **helper thread** that sleeps on the
//! object's futex word as a blocked call of this process would
//! (registered where a blocked call registers, so the senders' and
//! posters' fast path stays as it is: no system call while nobody
//! sleeps or watches), and signals an `eventfd` in the set's `epoll`
//! when woken to something ready.
//! The helper is armed by [`wait`](WaitSet::wait) and, after it reports,
//! rests until the next `wait`; while armed it sleeps (every helper
//! wakes once a second to look at its segment's size,
//! since a peer's `ftruncate` wakes no futex: no measurable CPU).
//!
//! The choice was measured (wake-up latency from a `FUTEX_WAKE` in one
//! process to the waiter running in another, 2,000 wake-ups, a loaded
//! 2-core VM, three runs each): a plain `FUTEX_WAIT` 7-8 µs (one run 29
//! µs); io_uring's `IORING_OP_FUTEX_WAIT` with the ring's descriptor in
//! epoll 10-16 µs; a helper thread in `FUTEX_WAIT` that writes an
//! `eventfd` in epoll 28-31 µs (one run 310 µs). io_uring is faster by one
//! thread wake-up, but it needs Linux 6.7, is blocked by the seccomp
//! profiles of common container runtimes, and then needs a fallback
//! anyway — this one, which works on every kernel and in every sandbox
//! and makes no named object (no doorbell files, nothing for a peer to
//! squat or forge). An io_uring backend can be added behind the same
//! helper interface where the kernel has it.
//!
//! Wake-ups are never eaten: on the channel only its one receiver sleeps;
//! the helpers of a native semaphore and of a native queue register as
//! *pollers*, which take nothing (neither a permit nor the wake-up meant
//! for a blocked call): a semaphore's post wakes every sleeper while a
//! poller is registered (see `sync::semaphore::raw`'s "Pollers"), and so
//! does a queue's commit (see `queue/wake.rs`), so a blocked `wait` or
//! `recv` of another process is woken as well, whether or not this set's
//! owner ever takes the message. A message or permit left where it is
//! is reported again by the next `wait`, at once; between two calls the
//! helper rests and uses no CPU.
//!
//! `wait` also looks at each shared-memory object itself before it
//! blocks (the same non-consuming look a helper makes first: a message
//! at the channel's head or in a queue slot, a semaphore's count), so
//! what is ready when `wait` is called is reported at once, and
//! `wait(Deadline::Now)` misses nothing that was ready at the call.
//!
//! A channel sender killed with SIGKILL wakes the set at once: the
//! receiver's senders' pidfds are watched (see [`crate::process`]), and
//! the receiver's `try_recv` then returns `Disconnected`.
//!
//! What is watched: a channel receiver and a native queue for receiving
//! (not senders for room), a native semaphore for a permit, any
//! descriptor ([`add_fd`](WaitSet::add_fd): POSIX message queues, sockets,
//! pipes, FIFOs, eventfds, pidfds) for reading or writing, and deadlines.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::channel::Receiver;
use crate::message::Deadline;
use crate::queue::Queue;
use crate::sync::Semaphore;
use crate::sys::{Errno, poll};
use crate::{Error, Result};

/// What a helper thread waits on: one shared-memory object.
pub(crate) enum Object {
    Channel(Arc<crate::channel::SenderWatch>),
    Queue(Queue),
    Semaphore(Semaphore),
    /// Room in a channel for a waiting async send (feature `tokio`).
    #[cfg(feature = "tokio")]
    ChannelRoom(Arc<crate::channel::RoomWatch>),
    /// A free slot in a native queue for a waiting async send.
    #[cfg(feature = "tokio")]
    QueueRoom(Queue),
}

impl Object {
    /// Blocks until the object may be ready (`true`) or `stop` is set and
    /// [`interrupt`](Self::interrupt) was called (`false`).
    fn wait(&self, stop: &AtomicBool) -> bool {
        match self {
            Object::Channel(w) => w.poll_wait(stop),
            Object::Queue(q) => q.poll_wait(stop),
            Object::Semaphore(s) => s.poll_wait(stop),
            #[cfg(feature = "tokio")]
            Object::ChannelRoom(w) => w.poll_wait(stop),
            #[cfg(feature = "tokio")]
            Object::QueueRoom(q) => q.poll_room_wait(stop),
        }
    }

    /// Whether the object is ready now: the helper's own non-consuming
    /// look before it sleeps, made by `wait` itself (a hint, as any).
    fn ready(&self) -> bool {
        match self {
            Object::Channel(w) => w.ready(),
            Object::Queue(q) => q.poll_ready(),
            Object::Semaphore(s) => s.poll_ready(),
            #[cfg(feature = "tokio")]
            Object::ChannelRoom(w) => w.ready(),
            #[cfg(feature = "tokio")]
            Object::QueueRoom(q) => q.poll_room_ready(),
        }
    }

    fn interrupt(&self) {
        match self {
            Object::Channel(w) => w.poll_interrupt(),
            Object::Queue(q) => q.poll_interrupt(),
            Object::Semaphore(s) => s.poll_interrupt(),
            #[cfg(feature = "tokio")]
            Object::ChannelRoom(w) => w.poll_interrupt(),
            #[cfg(feature = "tokio")]
            Object::QueueRoom(q) => q.poll_room_interrupt(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Resting: reported, or not armed yet.
    Idle,
    /// Waiting on the object.
    Armed,
    /// Leaving.
    Exit,
}

/// A helper thread's shared state.
struct Control {
    object: Object,
    /// Signalled when the object may be ready; in the set's epoll.
    efd: OwnedFd,
    phase: Mutex<Phase>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Control {
    fn run(&self) {
        loop {
            {
                let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
                while *phase == Phase::Idle {
                    phase = self.cv.wait(phase).unwrap_or_else(|p| p.into_inner());
                }
                if *phase == Phase::Exit {
                    return;
                }
            }
            let ready = self.object.wait(&self.stop);
            // Rest *before* reporting: the set's next `wait`, which may
            // come as soon as the report is read, must find the helper
            // resting to arm it again (else it would arm one about to
            // rest, and the readiness of the next round would be lost).
            {
                let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
                if *phase == Phase::Armed {
                    *phase = Phase::Idle;
                }
            }
            if ready {
                poll::eventfd_signal(&self.efd);
            }
        }
    }
}

/// A helper thread and its state (also the readiness source of the
/// async forms, feature `tokio`).
pub(crate) struct Helper {
    ctl: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    pub(crate) fn start(object: Object) -> Result<Helper> {
        let efd = poll::eventfd().map_err(|e| Error::io("eventfd", e))?;
        let ctl = Arc::new(Control {
            object,
            efd,
            phase: Mutex::new(Phase::Idle),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let run = ctl.clone();
        let thread = std::thread::Builder::new()
            .name("ipcworks-waitset".into())
            .spawn(move || run.run())
            .map_err(|e| Error::io("spawn a WaitSet helper thread", e))?;
        Ok(Helper {
            ctl,
            thread: Some(thread),
        })
    }

    /// Arms a resting helper (one that is armed stays so).
    pub(crate) fn arm(&self) {
        let mut phase = self.ctl.phase.lock().unwrap_or_else(|p| p.into_inner());
        if *phase == Phase::Idle {
            *phase = Phase::Armed;
            self.ctl.cv.notify_one();
        }
    }
}

impl Helper {
    /// The eventfd the helper signals when its object may be ready.
    #[cfg(feature = "tokio")]
    pub(crate) fn eventfd(&self) -> &OwnedFd {
        &self.ctl.efd
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        *self.ctl.phase.lock().unwrap_or_else(|p| p.into_inner()) = Phase::Exit;
        self.ctl.stop.store(true, SeqCst);
        self.ctl.cv.notify_one();
        // Set `stop` first, then interrupt: a helper about to sleep either
        // sees `stop` or sleeps on a value the interrupt changed.
        self.ctl.object.interrupt();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one key stands for.
enum Entry {
    /// A descriptor of the caller's (duplicated: the set keeps its own).
    Fd(OwnedFd),
    /// A shared-memory object and its helper.
    Object(Helper),
    /// A deadline: reported once when it has passed, then removed.
    Deadline(Instant),
}

/// One wait over many things (see the [module docs](self)).
///
/// Each thing is added under a caller's key (a `usize`);
/// [`wait`](Self::wait) returns the keys of those that are ready, in no
/// particular order. Keys are unique: adding under a key in use is
/// [`Error::AlreadyExists`].
pub struct WaitSet {
    epoll: OwnedFd,
    entries: HashMap<usize, Entry>,
}

impl std::fmt::Debug for WaitSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.entries.keys().collect();
        keys.sort();
        f.debug_struct("WaitSet").field("keys", &keys).finish()
    }
}

impl WaitSet {
    /// An empty set (`epoll_create1`).
    #[doc(alias = "epoll_create1")]
    pub fn new() -> Result<WaitSet> {
        Ok(WaitSet {
            epoll: poll::epoll_create().map_err(|e| Error::io("epoll_create1", e))?,
            entries: HashMap::new(),
        })
    }

    /// How many things are in the set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn free(&self, key: usize) -> Result<()> {
        match self.entries.contains_key(&key) {
            true => Err(Error::AlreadyExists {
                kind: "WaitSet key",
                name: key.to_string(),
            }),
            false => Ok(()),
        }
    }

    /// Adds a descriptor, ready when it can be read without blocking (or
    /// has hung up): a POSIX message queue
    /// ([`mq::posix::Queue`](crate::mq::posix::Queue)), a socket, a pipe or
    /// FIFO end, an eventfd, a pidfd (ready when the process exits). The
    /// set keeps a duplicate (`dup`), so closing the caller's descriptor
    /// does not remove it: [`remove`](Self::remove) does.
    ///
    /// Not for the shared-memory objects, whose descriptor is a memory
    /// segment (never "ready"): use [`add_channel`](Self::add_channel),
    /// [`add_queue`](Self::add_queue), [`add_semaphore`](Self::add_semaphore).
    #[doc(alias = "epoll_ctl")]
    pub fn add_fd(&mut self, key: usize, fd: impl AsFd) -> Result<()> {
        self.add_fd_for(key, fd, false)
    }

    /// [`add_fd`](Self::add_fd), ready when the descriptor can be
    /// written without blocking (`EPOLLOUT`).
    pub fn add_fd_writable(&mut self, key: usize, fd: impl AsFd) -> Result<()> {
        self.add_fd_for(key, fd, true)
    }

    fn add_fd_for(&mut self, key: usize, fd: impl AsFd, out: bool) -> Result<()> {
        self.free(key)?;
        let fd = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", e))?;
        poll::epoll_add(&self.epoll, &fd, key as u64, out).map_err(|e| match e {
            // A regular file (a shared-memory segment among them).
            Errno::PERM => Error::InvalidArgument(
                "this descriptor cannot be waited on (a regular file or shared-memory segment; \
                 add channels, queues and semaphores with their own add_ method)"
                    .into(),
            ),
            e => Error::io("epoll_ctl", e),
        })?;
        self.entries.insert(key, Entry::Fd(fd));
        Ok(())
    }

    fn add_object(&mut self, key: usize, object: Object) -> Result<()> {
        self.free(key)?;
        let helper = Helper::start(object)?;
        poll::epoll_add(&self.epoll, &helper.ctl.efd, key as u64, false)
            .map_err(|e| Error::io("epoll_ctl", e))?;
        self.entries.insert(key, Entry::Object(helper));
        Ok(())
    }

    /// Adds a shared-memory channel's receiving end: ready when a message
    /// may be there, or the last sender is gone (then
    /// [`try_recv`](Receiver::try_recv) says
    /// [`Disconnected`](crate::message::TryRecvError::Disconnected); a
    /// sender killed with SIGKILL is noticed at once, through its pidfd).
    /// The receiver stays the caller's.
    pub fn add_channel(&mut self, key: usize, rx: &Receiver) -> Result<()> {
        self.add_object(key, Object::Channel(rx.sender_watch()))
    }

    /// Adds a native queue: ready when a message may be there to receive.
    /// The set maps the queue once more (from a duplicate of its
    /// descriptor); `queue` stays the caller's.
    pub fn add_queue(&mut self, key: usize, queue: &Queue) -> Result<()> {
        let q = Queue::from_fd(duplicate(queue)?)?;
        self.add_object(key, Object::Queue(q))
    }

    /// Adds a native semaphore: ready when a permit may be there (the set
    /// takes none: [`try_wait`](Semaphore::try_wait) takes it, and may
    /// find it gone).
    pub fn add_semaphore(&mut self, key: usize, sem: &Semaphore) -> Result<()> {
        let s = Semaphore::from_fd(duplicate(sem)?)?;
        self.add_object(key, Object::Semaphore(s))
    }

    /// Adds a deadline: `key` is reported once `at` has passed (and then
    /// removed from the set).
    pub fn add_deadline(&mut self, key: usize, at: Instant) -> Result<()> {
        self.free(key)?;
        self.entries.insert(key, Entry::Deadline(at));
        Ok(())
    }

    /// Removes `key` (its helper thread, if any, stops); whether it was
    /// there.
    pub fn remove(&mut self, key: usize) -> bool {
        match self.entries.remove(&key) {
            None => false,
            Some(Entry::Fd(fd)) => {
                let _ = poll::epoll_del(&self.epoll, &fd);
                true
            }
            Some(Entry::Object(h)) => {
                let _ = poll::epoll_del(&self.epoll, &h.ctl.efd);
                true
            }
            Some(Entry::Deadline(_)) => true,
        }
    }

    /// Waits until something in the set is ready or `deadline` passes
    /// (`epoll_wait`), and returns the keys of what is ready (a hint, see
    /// the [module docs](self)); empty when the deadline passed first.
    /// Signals do not cut the wait short (`EINTR` is retried with the time
    /// left).
    ///
    /// Before it blocks, `wait` looks at each shared-memory object itself
    /// (the same look its helper makes first), so an object ready when
    /// `wait` is called is reported at once, without waiting for its
    /// helper; [`Deadline::Now`] thus sees every object and descriptor
    /// ready at the call. A helper's report of something taken since
    /// the set last reported it (by this caller, or another process) is
    /// looked at again and dropped if nothing is there.
    #[doc(alias = "epoll_wait")]
    pub fn wait(&mut self, deadline: Deadline) -> Result<Vec<usize>> {
        // Armed first, looked at after: what becomes ready after our look
        // is the helper's to see (it looks before it sleeps).
        let mut keys = Vec::new();
        for (&k, e) in &self.entries {
            if let Entry::Object(h) = e {
                h.arm();
                if h.ctl.object.ready() {
                    keys.push(k);
                }
            }
        }
        let mut ready = Vec::new();
        // Objects whose stale report was dropped in this call (once each,
        // so a helper that keeps reporting is reported, never spun on).
        let mut dropped: Vec<usize> = Vec::new();
        loop {
            let now = Instant::now();
            // The set's own deadlines bound the wait too.
            let mut until = deadline;
            for (&k, e) in &self.entries {
                if let Entry::Deadline(at) = e {
                    if *at <= now {
                        keys.push(k);
                    }
                    until = until.min(Deadline::At(*at));
                }
            }
            let timeout = match keys.is_empty() {
                true => until.remaining(),
                false => Some(std::time::Duration::ZERO),
            };
            match poll::epoll_wait(&self.epoll, &mut ready, timeout) {
                Ok(()) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::io("epoll_wait", e)),
            }
            for r in ready.drain(..) {
                let key = r.token as usize;
                if let Some(Entry::Object(h)) = self.entries.get(&key) {
                    // Reported: the helper rests until the next wait.
                    poll::eventfd_clear(&h.ctl.efd);
                    // A report for something no longer there (taken
                    // since the helper looked: by this caller after the
                    // set reported it directly, or by another process):
                    // dropped, once per call, and the helper, cleared
                    // first, armed again to look for itself.
                    if !keys.contains(&key) && !dropped.contains(&key) && !h.ctl.object.ready() {
                        dropped.push(key);
                        h.arm();
                        continue;
                    }
                }
                keys.push(key);
            }
            // The caller's deadline ends the wait; one of the set's own
            // deadlines that passed is collected by the next turn.
            if !keys.is_empty() || deadline.expired() {
                break;
            }
        }
        for k in &keys {
            if matches!(self.entries.get(k), Some(Entry::Deadline(_))) {
                self.entries.remove(k);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
}

/// The set's `epoll` descriptor: readable while [`wait`](WaitSet::wait)
/// would report something, so the whole set can be waited on by another
/// event loop (an outer `epoll`, `poll`, tokio's `AsyncFd`): when it turns
/// readable, call `wait(Deadline::Now)`, which collects the keys and arms
/// the helpers of the objects it reports for the next round (arm them once
/// at the start the same way). It may return nothing: a helper's report
/// for something taken since is dropped (and the descriptor no longer
/// readable for it).
impl AsFd for WaitSet {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

/// A duplicate of a shared-memory object's segment descriptor.
fn duplicate(obj: &impl AsFd) -> Result<OwnedFd> {
    obj.as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("dup", e))
}
