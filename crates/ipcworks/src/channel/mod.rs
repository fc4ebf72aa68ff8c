//! A lock-free channel over shared memory: the fastest path between two
//! processes, with zero-copy loans, and safe against a broken peer.
//!
//! Messages are variable-size byte strings carried through a ring buffer in
//! a [`Segment`](crate::shm::Segment): once the segment is mapped, the
//! kernel steps out; a message costs two copies (into and out of the ring),
//! or none with [`Sender::loan`] and [`Receiver::recv_ref`]. The API is
//! shaped like [`std::sync::mpsc`]: [`Sender::send`], [`Sender::try_send`],
//! [`Sender::send_timeout`], [`Receiver::recv`], [`Receiver::try_recv`],
//! [`Receiver::recv_timeout`], [`Receiver::iter`], [`Receiver::try_iter`],
//! with crossbeam's per-operation errors
//! ([`TryRecvError`](crate::message::TryRecvError),
//! [`RecvTimeoutError`](crate::message::RecvTimeoutError),
//! [`TrySendError`](crate::message::TrySendError),
//! [`SendTimeoutError`](crate::message::SendTimeoutError)). These
//! are inherent methods, so using a channel needs no trait import; the
//! ends also implement the library's one message interface
//! ([`MessageSender`](crate::message::MessageSender),
//! [`MessageReceiver`](crate::message::MessageReceiver)), whose methods
//! are the same calls, for code that takes any mechanism. [`Receiver::recv_slice`]
//! receives into a buffer of the caller's, the quickest copy-out receive
//! (`cargo bench -p ipcworks --bench channel`: `ping_pong_64b_spin_slice`
//! beside `ping_pong_64b_spin`, which receives with `recv_ref` +
//! `copy_to`, and `same_thread_send_recv_slice_64b` beside
//! `same_thread_send_recv_64b`).
//!
//! # Small messages at a bare ring's pace
//!
//! - **One sender**: a sender that attaches alone reserves without the
//!   reservation lock's compare-and-swap (it holds the lock in *solo
//!   mode*); a second sender takes the lock over on its first send
//!   (`channel/publish.rs` has the protocol, whose take-over issues the
//!   barrier below). Where `membarrier` is missing, every sender takes the
//!   lock per reservation.
//! - **No fence per message**: where the kernel has
//!   `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (Linux 4.16+), a
//!   process registers once and publishes with a plain store; the
//!   consumer, when it starts sleeping, calls `membarrier` once (which
//!   puts the fence into the publishers) and has them fence until it
//!   lifts the request, every 1,024 messages it takes (`channel/wake.rs`,
//!   model-checked by loom). A barrier before *every* sleep was measured
//!   first and cost every sleeping async round trip about 10 µs (an
//!   inter-processor interrupt on the 2-core VM); paid once per sleeping
//!   spell, it costs them nothing measurable, while a spinning consumer
//!   never asks for fences. The consumer's own publication (handing space
//!   back) stays a store with a full fence, so producers that sleep for
//!   room never call `membarrier`.
//! - **Batches**: [`Sender::send_batch`] (and
//!   [`Sender::try_send_batch`]) publish many messages with one store and
//!   one look at whether the receiver sleeps; they arrive as separate
//!   messages, each publication whole or not at all.
//!
//! # Who creates, who removes
//!
//! - Named channel `NAME` (endpoint `shm:NAME`) lives in the segment
//!   `/dev/shm/ipcworks.chan.NAME`, mode 0600. The **receiver creates** it
//!   ([`Builder::create`] then [`Channel::receiver`], or [`Receiver::create`])
//!   and **removes** the name when its [`Channel`] handles drop. Senders open
//!   it ([`Sender::open`]).
//! - Anonymous channel ([`pair`], or [`Builder::anonymous`]): a sealed
//!   `memfd`; hand an end to a child with [`Sender::into_inheritable_fd`]
//!   or [`Receiver::into_inheritable_fd`] (or the whole channel with
//!   [`Channel::inheritable_fd`]), which calls [`Channel::from_fd`] and
//!   takes the end it needs (see [`pair`]). Nothing to remove.
//!
//! One receiver at a time: a second one gets [`Error::Refused`]; the seat of
//! a dead receiver is taken over. Up to [`MAX_SENDERS`] senders.
//!
//! # Capacity and message size
//!
//! Both are fixed at creation. Capacity counts **messages**, as everywhere
//! in ipcworks: [`Builder::capacity`]`(n)` sizes the ring for `n` messages
//! of the largest size ([`Builder::max_message`]) at once, and
//! [`Channel::capacity`] says how many that is. The ring itself is bytes,
//! a power of two ([`Builder::capacity_bytes`] sets it directly, default
//! 1 MiB; [`Channel::capacity_bytes`] reads it): a message of `len` bytes
//! takes a 64-byte header line plus `len` bytes, rounded up to whole
//! 64-byte cache lines — one line in all up to 48 bytes, which share the
//! header's line and cross between the cores with it (the ring's layout
//! is described in its source, `channel/ring.rs`) — so a ring holds more
//! small messages than its capacity counts.
//!
//! # Dead peers and hostile peers
//!
//! A blocked `recv` learns at once that a sender died, even by SIGKILL:
//! before it sleeps it has each attached sender's pidfd watched (opened,
//! then confirmed against the process start time the sender recorded, so
//! a reused pid is never watched) by one watcher thread per process
//! (started on the first such sleep; it sleeps in `epoll_wait` and costs
//! nothing while no sender dies), which wakes the receiver the moment the
//! kernel reports the sender gone — about half a millisecond. Where no
//! pidfd can be had (an old kernel, `/proc` hidden), it still looks every
//! 20 ms whether its senders live (process id *and* start time, see
//! [`Identity`](crate::process::Identity)). Once all are gone (dropped, or
//! killed) and every published message was received, it returns
//! [`Error::Disconnected`]. A [`WaitSet`](crate::waitset::WaitSet) on the
//! receiver is woken the same way. A
//! record whose sender died mid-write is never delivered. A blocked `send`
//! likewise returns `Disconnected` when the receiver is gone.
//!
//! Every index, offset and length read from the segment is checked before
//! use; garbage yields [`Error::Corrupted`], never a panic or an access out
//! of the segment. `channel/ring.rs` describes the protocol.
//!
//! A peer that *truncates* a named channel's segment (`ftruncate` of
//! `/dev/shm/ipcworks.chan.NAME`) gets both ends [`Error::Truncated`],
//! never a `SIGBUS` (see [`shm`](crate::shm)): a copy out of the ring is
//! checked after it is made and before the message is returned or its
//! space handed back; a send, before it reports success (the message may
//! have reached nobody); a blocked end looks at the segment's size every
//! 20 ms. Anonymous channels are sealed: nobody can change their size.
//! What cannot report it is a read through [`MessageRef::as_ptr`] (call
//! [`MessageRef::check_intact`] after it), and a cut inside the segment's
//! last page, which removes no page: to calls that do not wait, that is a
//! peer writing zeros over the tail of the ring (checked, as any
//! scribble).
//!
//! # Copying memory another process may be writing
//!
//! The ring is shared with processes this one cannot trust, and the
//! channel never forms a Rust reference (`&[u8]`, `&mut [u8]`, `&T`) to
//! it: a reference promises the compiler that nobody changes the bytes
//! while it lives (for `&mut`, that nobody else even reads them), and a
//! racing peer would break that promise — undefined behaviour in *our*
//! address space, whatever the bytes. Control words are atomics
//! (`AtomicU64`, `AtomicU32`), which tolerate writers in any process.
//! Payloads move with `ptr::copy_nonoverlapping` between a raw pointer
//! into the mapping and a buffer of ours, in the ring's `Memory::read` and
//! `Memory::write`. That copy is not atomic, and a peer writing the same
//! bytes meanwhile races with it; Rust's memory model speaks of threads of
//! one program and does not cover the other process, but the compiler
//! cannot exploit the race either: the writer is outside the program it
//! sees, the copy goes through a raw pointer it must assume aliased, and
//! bytes have no invalid values. This is the practice of every
//! inter-process shared-memory library.
//!
//! What a racing or hostile peer *can* cause:
//!
//! - torn or garbage bytes in our private copy — a message other than the
//!   one a sender wrote. The values that decide *where* we copy from and
//!   *how much* (the head, the record's stamp and length) are read once,
//!   atomically, and checked against the ring's bounds before the copy; a
//!   peer can change what the bytes are, never where they come from;
//! - messages lost, skipped or made up, [`Error::Corrupted`] when
//!   a check fails, [`Error::Truncated`] when it truncated the segment (the
//!   copy then read zero pages of ours, and the mark checked after it
//!   says so).
//!
//! What it *cannot* cause: a read or write outside the segment, a panic,
//! a hang (every wait has a slice and looks at the peers and the segment),
//! a `SIGBUS`, or undefined behaviour beyond the contents of our own copy.
//! The zero-copy views show the exception in their types:
//! [`MessageRef::as_slice`] is `unsafe` (its caller vouches that no
//! process writes the bytes while the slice lives), [`MessageRef::as_ptr`]
//! and [`Loan::as_mut_ptr`] hand out raw pointers only.
//!
//! # Waiting
//!
//! [`WaitStrategy`] (per end: [`Builder::wait`], [`Sender::set_wait_strategy`],
//! [`Receiver::set_wait_strategy`]): `Spin`, `Block` (futex only), or the
//! default `SpinThenBlock { spin: 100 µs }`. Publishing makes no system call
//! unless the peer announced that it sleeps.
//!
//! # Limits
//!
//! - A receiver that dies holding a [`MessageRef`] has not released it: the
//!   next receiver gets that message again (at-least-once across receiver
//!   crashes; exactly-once otherwise).
//! - A sender killed inside its few-instruction reservation critical section
//!   keeps its sender slot until another sender takes the lock over.
//!
//! ```no_run
//! use ipcworks::channel::{Channel, Sender};
//!
//! # fn main() -> ipcworks::Result<()> {
//! // Process A: create and receive.
//! // Room for 256 messages of up to 4 KiB.
//! let chan = Channel::builder().capacity(256).max_message(4096).create("jobs")?;
//! let mut rx = chan.receiver()?;
//! // Process B: open and send.
//! let mut tx = Sender::open("jobs")?;
//! tx.send(b"hello")?;
//! assert_eq!(rx.recv()?, b"hello");
//! # Ok(())
//! # }
//! ```

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shm::SegmentOptions;
use crate::{Error, Result};

mod fault;
mod publish;
mod receiver;
mod recovery;
mod ring;
#[cfg(feature = "tokio")]
mod room;
mod sender;
mod shared;
mod wait;
mod wake;
mod watch;
#[cfg(feature = "tokio")]
pub(crate) use room::RoomWatch;
pub(crate) use watch::SenderWatch;

pub use receiver::{Iter, MessageRef, Receiver, TryIter};
pub use sender::{Loan, Sender};
pub(crate) use shared::Header;
pub use shared::MAX_SENDERS;
pub use wait::WaitStrategy;

use shared::Shared;

/// Default largest message: 64 KiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;
/// Default ring size: 1 MiB (15 messages of the default largest size).
///
/// Changed in this version: renamed from `DEFAULT_CAPACITY`, since
/// capacities count messages.
pub const DEFAULT_CAPACITY_BYTES: usize = 1 << 20;

/// How a ring is sized: for a number of messages, or in bytes.
#[derive(Debug, Clone, Copy)]
enum Capacity {
    Messages(usize),
    Bytes(usize),
}

/// Options for creating or opening a channel.
///
/// Changed in this version: [`capacity`](Self::capacity) counts messages
/// of the largest size; the ring's size in bytes is
/// [`capacity_bytes`](Self::capacity_bytes) (which `capacity` was).
#[derive(Debug, Clone)]
pub struct Builder {
    capacity: Capacity,
    max_message: usize,
    mode: u32,
    wait: WaitStrategy,
    open_wait: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            capacity: Capacity::Bytes(DEFAULT_CAPACITY_BYTES),
            max_message: DEFAULT_MAX_MESSAGE,
            mode: 0o600,
            wait: WaitStrategy::default(),
            open_wait: Duration::from_secs(1),
        }
    }
}

impl Builder {
    /// Room for `messages` messages of the largest size
    /// ([`max_message`](Self::max_message)) at once: the ring is made at
    /// least that large (then rounded up to a power of two). Replaces
    /// [`capacity_bytes`](Self::capacity_bytes), and the other way round.
    ///
    /// Changed in this version: `capacity` took bytes of ring; that is
    /// [`capacity_bytes`](Self::capacity_bytes) now.
    pub fn capacity(&mut self, messages: usize) -> &mut Self {
        self.capacity = Capacity::Messages(messages);
        self
    }

    /// Ring size in bytes (rounded up to a power of two, at least two
    /// messages of the largest size; default [`DEFAULT_CAPACITY_BYTES`]).
    /// Replaces [`capacity`](Self::capacity), and the other way round.
    ///
    /// Changed in this version: renamed from `capacity`, which counts
    /// messages now.
    pub fn capacity_bytes(&mut self, bytes: usize) -> &mut Self {
        self.capacity = Capacity::Bytes(bytes);
        self
    }

    /// The ring's size in bytes.
    fn ring_bytes(&self) -> Result<u64> {
        let requested = match self.capacity {
            Capacity::Bytes(bytes) => bytes,
            Capacity::Messages(n) => shared::bytes_for(n, self.max_message)?,
        };
        shared::capacity_for(requested, self.max_message)
    }

    /// Largest message in bytes (default 64 KiB).
    pub fn max_message(&mut self, bytes: usize) -> &mut Self {
        self.max_message = bytes;
        self
    }

    /// Permission bits of a named channel's segment (default 0600).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Wait strategy of the ends made from the channel.
    pub fn wait(&mut self, wait: WaitStrategy) -> &mut Self {
        self.wait = wait;
        self
    }

    /// How long [`open`](Self::open) waits for a channel that does not
    /// exist yet, or whose creator is still initializing it (default 1 s).
    pub fn open_wait(&mut self, wait: Duration) -> &mut Self {
        self.open_wait = wait;
        self
    }

    fn segment_options(&self) -> SegmentOptions {
        let mut o = SegmentOptions::new();
        o.mode(self.mode);
        o
    }

    /// Creates the named channel `name` (segment `ipcworks.chan.NAME`,
    /// exclusive); the name is removed when the last handle made from the
    /// returned [`Channel`] in this process drops.
    #[doc(alias = "shm_open")]
    pub fn create(&self, name: &str) -> Result<Channel> {
        let cap = self.ring_bytes()?;
        let shared = Shared::create(
            &self.segment_options(),
            Some(name),
            cap,
            self.max_message as u64,
        )?;
        Ok(Channel {
            shared,
            wait: self.wait,
        })
    }

    /// Opens the existing named channel `name`, waiting up to
    /// [`open_wait`](Self::open_wait) for it to appear.
    pub fn open(&self, name: &str) -> Result<Channel> {
        let start = Instant::now();
        loop {
            match Shared::open(&self.segment_options(), name, self.open_wait) {
                Err(Error::NotFound { .. }) if start.elapsed() < self.open_wait => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(Error::NotFound { .. }) => {
                    return Err(Error::NotFound {
                        kind: "shared-memory channel",
                        name: name.to_string(),
                    });
                }
                other => {
                    return other.map(|shared| Channel {
                        shared,
                        wait: self.wait,
                    });
                }
            }
        }
    }

    /// Creates an anonymous channel (`memfd_create`, sealed), to share with
    /// a child process through [`Channel::inheritable_fd`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(&self) -> Result<Channel> {
        let cap = self.ring_bytes()?;
        let shared = Shared::create(&self.segment_options(), None, cap, self.max_message as u64)?;
        Ok(Channel {
            shared,
            wait: self.wait,
        })
    }

    /// Maps a channel from an inherited descriptor (see
    /// [`Channel::inheritable_fd`]).
    pub fn from_fd(&self, fd: OwnedFd) -> Result<Channel> {
        Ok(Channel {
            shared: Shared::from_fd(fd)?,
            wait: self.wait,
        })
    }
}

/// A mapped channel, from which the ends are made.
///
/// Changed in this version: [`capacity`](Self::capacity) counts messages
/// (the ring's bytes are [`capacity_bytes`](Self::capacity_bytes)), and
/// [`len`](Self::len) and [`is_empty`](Self::is_empty) are new.
#[derive(Debug, Clone)]
pub struct Channel {
    shared: Arc<Shared>,
    wait: WaitStrategy,
}

impl Channel {
    /// Options for creating or opening a channel.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Maps a channel from an inherited descriptor, default options.
    pub fn from_fd(fd: OwnedFd) -> Result<Channel> {
        Builder::default().from_fd(fd)
    }

    /// Attaches a new sender.
    pub fn sender(&self) -> Result<Sender> {
        Sender::attach(self.shared.clone(), self.wait)
    }

    /// Takes the receiver seat ([`Error::Refused`] if a live receiver has it).
    pub fn receiver(&self) -> Result<Receiver> {
        Receiver::attach(self.shared.clone(), self.wait)
    }

    /// A duplicate of the segment's descriptor without close-on-exec, for a
    /// child to inherit and pass to [`Channel::from_fd`]. Drop it in the
    /// parent after spawning.
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        self.shared.segment().inheritable_fd()
    }

    /// How many messages of the largest size the channel holds at once
    /// for sure (at least what [`Builder::capacity`] asked for; more
    /// smaller ones fit).
    ///
    /// Changed in this version: this was the ring's size in bytes, which
    /// is [`capacity_bytes`](Self::capacity_bytes) now.
    pub fn capacity(&self) -> usize {
        shared::messages_in(self.shared.cap, self.shared.max) as usize
    }

    /// The ring's size in bytes (a power of two).
    ///
    /// Changed in this version: renamed from `capacity`, which counts
    /// messages now.
    pub fn capacity_bytes(&self) -> usize {
        self.shared.cap as usize
    }

    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.shared.max as usize
    }

    /// Makes this process remove the channel's name when its last handle
    /// drops, although another process created it: for a receiver that
    /// took over a channel whose creator died.
    pub fn remove_on_drop(&self) {
        self.shared
            .adopted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The channel's segment name in `/dev/shm` (named channels only).
    pub fn segment_name(&self) -> Option<&str> {
        self.shared.segment().name()
    }

    /// How many messages wait to be received (a snapshot, racy by nature;
    /// see [`Receiver::len`]).
    pub fn len(&self) -> Result<usize> {
        self.shared.or_truncated(self.shared.looking()?.queued())
    }

    /// Whether no message waits to be received (a snapshot).
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }
}

/// An anonymous channel (a sealed `memfd`, see [`Builder::anonymous`])
/// with room for `capacity` messages of up to [`DEFAULT_MAX_MESSAGE`]
/// bytes, and both its ends: for a parent and the child it starts, or for
/// two threads. New in this version.
///
/// To give an end to a child, hand it over with
/// [`Sender::into_inheritable_fd`] (or [`Receiver::into_inheritable_fd`]),
/// pass the descriptor to the child and tell it the number
/// ([`pipe::pass_fd_env`](crate::pipe::pass_fd_env) does both), spawn it,
/// and drop the parent's copy; the child takes it
/// ([`pipe::take_inherited`](crate::pipe::take_inherited)), maps the
/// channel with [`Channel::from_fd`] and attaches its end
/// ([`Channel::sender`] or [`Channel::receiver`]). Handing over, rather
/// than dropping the parent's copy of the end, keeps the channel from
/// looking disconnected before the child has attached. The README's
/// library example, `examples/quickstart.rs`, does this with a real child:
///
/// ```no_run
/// use std::process::Command;
///
/// use ipcworks::channel::{self, Channel};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// if std::env::var_os("CHILD_CHANNEL_FD").is_some() {
///     // The child: take the inherited descriptor and send.
///     // SAFETY: the parent handed this descriptor over for us to own.
///     let fd = unsafe { ipcworks::pipe::take_inherited("CHILD_CHANNEL_FD")? };
///     Channel::from_fd(fd)?.sender()?.send(b"hello from the child")?;
///     return Ok(());
/// }
/// let (tx, mut rx) = channel::pair(16)?;
/// let mut command = Command::new(std::env::current_exe()?);
/// ipcworks::pipe::pass_fd_env(&mut command, tx.into_inheritable_fd()?, "CHILD_CHANNEL_FD")?;
/// let mut child = command.spawn()?;
/// drop(command); // and with it the parent's copy of the descriptor
/// assert_eq!(rx.recv()?, b"hello from the child");
/// child.wait()?;
/// # Ok(())
/// # }
/// ```
pub fn pair(capacity: usize) -> Result<(Sender, Receiver)> {
    let chan = Builder::default().capacity(capacity).anonymous()?;
    Ok((chan.sender()?, chan.receiver()?))
}

impl Sender {
    /// Opens the named channel `name` (created by its receiver) and attaches
    /// a sender, default options.
    pub fn open(name: &str) -> Result<Sender> {
        Builder::default().open(name)?.sender()
    }
}

impl Receiver {
    /// Creates the named channel `name` with default options and takes its
    /// receiver seat; the name is removed when the receiver drops.
    pub fn create(name: &str) -> Result<Receiver> {
        Builder::default().create(name)?.receiver()
    }

    /// Opens the existing named channel `name` as its receiver.
    pub fn open(name: &str) -> Result<Receiver> {
        Builder::default().open(name)?.receiver()
    }
}

/// Removes the named channel `name` from `/dev/shm` (for a channel left by
/// a creator that was killed).
pub fn remove(name: &str) -> Result<()> {
    Shared::remove(name)
}
