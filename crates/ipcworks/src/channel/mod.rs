//! A lock-free channel over shared memory: the fastest path between two
//! processes, with zero-copy loans, and safe against a broken peer.
//!
//! Messages are variable-size byte strings carried through a ring buffer in
//! a [`Segment`](crate::shm::Segment): once the segment is mapped, the
//! kernel steps out; a message costs two copies (into and out of the ring),
//! or none with [`Sender::loan`] and [`Receiver::recv_ref`]. The API is
//! shaped like [`std::sync::mpsc`]: [`Sender::send`], [`Sender::try_send`],
//! [`Sender::send_timeout`], [`Receiver::recv`], [`Receiver::try_recv`],
//! [`Receiver::recv_timeout`], [`Receiver::iter`]; [`Receiver::recv_slice`]
//! receives into a buffer of the caller's, the quickest copy-out receive
//! (`cargo bench -p ipcworks --bench channel`: `ping_pong_64b_spin_slice`
//! beside `ping_pong_64b_spin`, which receives with `recv_ref` +
//! `copy_to`, and `same_thread_send_recv_slice_64b` beside
//! `same_thread_send_recv_64b`).
//!
//! # Who creates, who removes
//!
//! - Named channel `NAME` (endpoint `shm:NAME`) lives in the segment
//!   `/dev/shm/ipcworks.chan.NAME`, mode 0600. The **receiver creates** it
//!   ([`Builder::create`] then [`Channel::receiver`], or [`Receiver::create`])
//!   and **removes** the name when its [`Channel`] handles drop. Senders open
//!   it ([`Sender::open`]).
//! - Anonymous channel ([`Builder::anonymous`]): a sealed `memfd`; hand it to
//!   a child with [`Channel::inheritable_fd`], which calls
//!   [`Channel::from_fd`] and takes the end it needs. Nothing to remove.
//!
//! One receiver at a time: a second one gets [`Error::Refused`]; the seat of
//! a dead receiver is taken over. Up to [`MAX_SENDERS`] senders.
//!
//! # Capacity and message size
//!
//! Both are fixed at creation. `capacity` is in **bytes** of ring (rounded
//! up to a power of two, at least two records of the largest message); a
//! message of `len` bytes takes a 64-byte header line plus `len` bytes,
//! rounded up to whole 64-byte cache lines (the ring's layout and protocol
//! are described in its source, `channel/ring.rs`).
//!
//! # Dead peers and hostile peers
//!
//! A blocked `recv` looks every 20 ms whether its senders still live
//! (process id *and* start time, see [`Identity`](crate::process::Identity));
//! once all are gone (dropped, or killed even by SIGKILL) and every
//! published message was received, it returns [`Error::Disconnected`]. A
//! record whose sender died mid-write is never delivered. A blocked `send`
//! likewise returns `Disconnected` when the receiver is gone.
//!
//! Every index, offset and length read from the segment is checked before
//! use; garbage yields [`Error::Corrupted`], never a panic or an access out
//! of the segment. (A peer that *truncates* a named segment can still make
//! our accesses fault with `SIGBUS`; anonymous channels are sealed against
//! that.) `channel/ring.rs` describes the protocol.
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
//! let chan = Channel::builder().capacity(1 << 20).max_message(4096).create("jobs")?;
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

mod endpoint;
mod receiver;
mod ring;
mod sender;
mod shared;
mod wait;

pub use endpoint::{open_receiver, open_sender};
pub use receiver::{Iter, MessageRef, Receiver};
pub use sender::{Loan, Sender};
pub use shared::MAX_SENDERS;
pub use wait::WaitStrategy;

use shared::Shared;

/// Default largest message: 64 KiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;
/// Default ring capacity: 1 MiB.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// Options for creating or opening a channel.
#[derive(Debug, Clone)]
pub struct Builder {
    capacity: usize,
    max_message: usize,
    mode: u32,
    wait: WaitStrategy,
    open_wait: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            capacity: DEFAULT_CAPACITY,
            max_message: DEFAULT_MAX_MESSAGE,
            mode: 0o600,
            wait: WaitStrategy::default(),
            open_wait: Duration::from_secs(1),
        }
    }
}

impl Builder {
    /// Ring size in bytes (rounded up to a power of two; default 1 MiB).
    pub fn capacity(&mut self, bytes: usize) -> &mut Self {
        self.capacity = bytes;
        self
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
        let cap = shared::capacity_for(self.capacity, self.max_message)?;
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
        let cap = shared::capacity_for(self.capacity, self.max_message)?;
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

    /// Capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
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
    crate::shm::Segment::remove(&shared::segment_name(name)?)
}
