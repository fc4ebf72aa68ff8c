//! The native message queue: a bounded multi-producer, multi-consumer
//! priority queue in one shared-memory segment — the textbook *bounded
//! buffer*, with this crate's counting semaphores as the place where
//! senders and receivers sleep and its robust mutex guarding recovery.
//!
//! A receiver gets the oldest message of the highest priority
//! (0 ..= [`MAX_PRIORITY`], the same range as POSIX queues); a sender
//! waits while the queue is full, a receiver while it is empty. The fast
//! path is lock-free and makes no system call: a send or a receive is a
//! look at the slot words, one compare-and-swap to claim a slot, the copy,
//! and one compare-and-swap to commit it. A caller that must wait spins
//! first (100 µs by default, [`QueueOptions::spin`]; adaptively: not
//! again soon after a spin that did not pay), then sleeps on a semaphore.
//!
//! # How it works
//!
//! The segment holds one slot per message: a 48-byte record (a state word,
//! the owner, the sequence, priority, length and the message's origin)
//! followed by the payload,
//! each slot starting a cache line, so a message and its state travel
//! between the cores together. The state word (see `slots.rs`) holds the
//! state — `FREE`, `WRITING` (a sender copies in), `READY`, `READING` (a
//! receiver copies out, or holds a two-phase receive's claim) — with the owner's pid and the slot's count of
//! completed receives, so every step is one atomic operation:
//!
//! - send: find a `FREE` slot (each handle goes round the slots like a
//!   ring) → CAS `FREE → WRITING(me)` → record my identity → take the next
//!   sequence number → write priority, length and the payload → CAS
//!   `WRITING(me) → READY` (the commit) → V(filled) if a receiver sleeps.
//! - receive: find the `READY` slot of highest priority and lowest
//!   sequence → CAS `READY → READING(me)` → record my identity → copy out
//!   → CAS `READING(me) → FREE`, receive count + 1 (the commit) → V(free)
//!   if a sender sleeps.
//! - a *direct* receive, for a message of at most 256 bytes (`DIRECT_MAX`):
//!   find it as above → copy it out while it is still `READY` → CAS
//!   `READY → FREE`, receive count + 1 (the claim and the commit in one
//!   step) → V(free) if a sender sleeps. If another receiver took the
//!   message first (and a sender may already be refilling the slot), the
//!   word has moved on, the CAS fails, the copy is dropped and the look
//!   starts over. Such payloads are written and read as 8-byte atomic
//!   words, because that refill races with the losing copy. One
//!   compare-and-swap fewer per message: in alternating bench runs, 64 B
//!   messages/s rose from 3.4–3.7 M to 4.1–4.4 M and the poll round trip
//!   fell by about 5 %.
//!
//! - a *two-phase* receive ([`Queue::recv_claim`]): find the message as
//!   above → CAS `READY → READING(me)` → record my identity → copy out,
//!   and stop there: the message stays in its slot, claimed, while the
//!   caller works with the copy (a relay hands it to its destination).
//!   [`Claim::commit`] is the receive's commit, `READING(me) → FREE`,
//!   receive count + 1; [`Claim::release`] (or dropping the claim) gives
//!   it back, `READING(me) → READY` with its record untouched, so it is
//!   again the first of its priority. A claimant killed while it holds
//!   the claim is a receiver killed mid-receive: recovery (below) makes
//!   the message ready again, at once for a waiter watching its pidfd.
//!
//! Every message also carries a [`MessageId`]: the origin id of the
//! queue it was first sent into (64 random bits chosen when that queue
//! was created) and its sequence number there. Both live in the slot's
//! record, so they survive the death of any process, and a relay that
//! forwards a message into another native queue
//! ([`Queue::send_relayed`]) passes them on: a far side can tell a
//! message it already has from a new one. A queue remembers the ids relays
//! delivered into it, in a bounded table in its own segment
//! ([`QueueOptions::relay_window`]) updated in the same step that
//! publishes the message, so a relayed send of an id it already has is
//! refused ([`Delivery::AlreadyDelivered`]) even after the sender was
//! killed between the two; the table's protocol and why it is exactly
//! once are in `dedup.rs` and `relayed.rs`, with a loom model
//! (`a_dead_relayed_senders_entry_says_what_was_published`).
//!
//! A receiver's look reads the slot words round from the slot after the
//! last one it took. One pass is not a snapshot (it could read slot A
//! just before a message m1 is committed there and slot B just after a
//! later m2 of the same sender is, and take m2 first), so a candidate is
//! taken only after every other slot, read after it was seen, holds
//! nothing better: every message committed before the candidate is
//! visible to those reads (the claim's CAS fails if the candidate itself
//! changed meanwhile, and the look starts over). With one sender going
//! round the slots the candidate is usually the first slot read:
//! `capacity` reads, one cache line each, most of them cached.
//!
//! A `try_` receive that keeps finding nothing does not read every slot
//! each time: after a look that found every slot free it watches
//! `next_seq` alone, which a send takes right after its claim, and looks
//! again only once that changes (and every 64th poll anyway). A send
//! numbered before the watcher's read had claimed its slot before, so the
//! look saw it; one numbered after changes `next_seq`. An empty poll costs
//! one load instead of `capacity` (`cargo bench -p ipcworks --bench queue`:
//! `native_try_recv_empty`, 14 ns median with 8 slots, beside 302 ns for
//! `posix_try_recv_empty` in the same run; it was about 100 ns with 10
//! slots before this shortcut), and polling no longer pulls the slot lines
//! away from a sender writing them. Loom checks this too
//! (`quiet_polling_never_hides_a_message`).
//!
//! These steps live in `slots.rs`, pure over a table of atomics, and are
//! model-checked under loom (`loom_model.rs`: send order kept, exactly
//! once with two senders and two receivers, payloads published by the
//! commits, a dead sender's or receiver's claim undone and never a live
//! one's, direct receivers racing a refill taking each message once and
//! whole):
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ipcworks --lib --release queue`.
//!
//! ## How the textbook bounded buffer maps onto it
//!
//! The textbook has P(empty) → lock → put → unlock → V(full), with the
//! semaphores counting free slots and messages and the mutex guarding the
//! buffer. Here each slot's state word says whether it holds a message,
//! and claiming it by compare-and-swap gives the mutual exclusion the
//! textbook's mutex gives (per slot instead of for the whole buffer), so
//! the common case needs no semaphore operation and no lock: each would
//! be one more shared cache line moving between the cores per message.
//! The two semaphores, `free` (textbook `empty`) and `filled` (textbook
//! `full`), are where a waiter sleeps: a caller that finds nothing (after
//! its spin) registers as a sleeper, looks once more, and P()s; a commit
//! that makes a slot or a message available V()s when a sleeper is
//! registered and not every registered sleeper already has a permit.
//! A [`WaitSet`](crate::waitset::WaitSet) watching the queue registers
//! as a *poller* instead, which takes nothing: a commit that finds a
//! poller asleep wakes every sleeper (and the poller), so the poller
//! never takes the wake-up a blocked receiver needed (`wake.rs`, with its
//! loom models in `loom_wake.rs`).
//! Registration (a SeqCst add, then a SeqCst fence) and commit (a SeqCst
//! CAS) each come before the other side's word is read with SeqCst
//! (Dekker), so either the commit sees the sleeper or the sleeper's last
//! look sees the commit: no wake-up is lost.
//! The semaphores' counts are thus wake-up permits, bounded by the number
//! of registered sleepers, not slot counts. The robust mutex serializes
//! recovery, so two processes never judge and repair the same slot at
//! once; a recoverer killed mid-way is detected by it (`OwnerDead`), and
//! the next one simply runs again (each repair is one idempotent CAS).
//!
//! # Crash robustness (a process killed by SIGKILL at any instruction)
//!
//! The slot words are the truth. Recovery (under the mutex) runs when a
//! waiter's 50 ms sleep slice passes while some slot is busy — or at once
//! when the busy slot's owner dies: a waiter that sleeps with a slot busy
//! has that owner's pidfd watched (by the process's watcher thread, as a
//! blocked channel receive has its senders' — see [`crate::channel`]) and
//! is woken by its death — and when a
//! `try_` call finds nothing but busy slots that do not settle within
//! 20 µs. For each `WRITING` or `READING` slot it judges the owner: by the
//! identity in the record (pid plus start time, which a reused pid cannot
//! fake) when that names the word's pid, else — in the instant between a
//! claim and its record store, or after the record is cleared just before
//! a commit — by the pid alone. A dead owner's `WRITING` slot goes back to
//! `FREE` (that send never committed: the half-written message is never
//! delivered), its `READING` slot back to `READY` with the message's
//! original sequence (the receive never committed: the message goes to the
//! next receiver, ahead of later messages of its priority); each is one
//! CAS from the word it judged, so it cannot undo a newer claim. A
//! direct receiver holds no slot: killed while it copies, it leaves the
//! message `READY` for the next receiver, with nothing to recover.
//!
//! A crash between a commit and the V after it leaves a sleeper without
//! its wake-up: it wakes at the end of its slice and looks itself, so a
//! lost V costs at most one slice of latency, never a hang. A sleeper
//! killed while registered stays counted: later commits may post one
//! useless permit (the count stays at most the number registered), and
//! the next sleeper takes it, finds nothing and sleeps again.
//!
//! What is guaranteed, with a send's commit point being the CAS that
//! marks its slot `READY` and a receive's the CAS that marks it `FREE`
//! (and counts the receive, in the same word):
//!
//! - a `send` that returned `Ok` committed its message, exactly once; one
//!   that was killed before its commit left nothing (never a half-written
//!   message); one killed after its commit but before returning did send.
//! - every committed message is committed-received exactly once. A
//!   receiver killed before its commit leaves the message to the next
//!   receiver; one killed after its commit but before returning took the
//!   message with it (like any queue whose receive returns into a process
//!   that then dies).
//! - within one priority, messages come out in the order of the sequence
//!   numbers their sends took (so one sender's messages in its send
//!   order; of two concurrent sends, the one that commits first may come
//!   out first), except that one recovered from a dead receiver comes out
//!   late relative to any message of its priority that another receiver
//!   took meanwhile.
//!
//! Every value read from the segment (geometry, priorities, lengths,
//! semaphore counts, sleeper registers) is checked; a bad one is
//! [`Error::Corrupted`], or is ignored where it can only cost a wake-up
//! (an absurd sleeper register wakes nobody; sleepers still look every
//! slice). Liveness is judged by process id plus start time, so all users
//! must share a pid namespace (and pids must be below 2^22, the kernel's
//! limit).
//!
//! # Truncation
//!
//! A peer that truncates the queue's segment (`ftruncate` of
//! `/dev/shm/ipcworks.queue.NAME`) gets every process using it
//! [`Error::Truncated`], never a `SIGBUS` (see [`shm`]): a
//! receive checks after its copy, before it commits (a message read from
//! lost pages stays in its slot, and no zeros are returned); a send,
//! after its commit, before it reports success; a look that finds
//! nothing, before it waits; a waiter looks at the segment's size after
//! every sleep slice without a wake-up. A cut inside the segment's last
//! page removes no page: to calls that do not wait, it is a peer writing
//! zeros over the last slot (checked, as any scribble). Anonymous queues
//! are sealed against resizing.
//!
//! # Copying memory another process may be writing
//!
//! No Rust reference to the segment's bytes is ever formed (a `&[u8]` or
//! `&mut [u8]` promises the compiler that nobody else writes them, which
//! a racing peer would break: undefined behaviour in our address space).
//! Slot words, records and short payloads (up to 256 bytes, which a
//! direct receive copies while a refill may race with it) are atomics.
//! Long payloads move with `ptr::copy_nonoverlapping` between a raw
//! pointer into the slot and a buffer of ours, while the slot is claimed
//! (`WRITING` or `READING`), so a correct peer never touches them; a
//! hostile one may, and that copy is a race the compiler cannot see or
//! exploit (the writer is another process; the copy goes through a raw
//! pointer; bytes have no invalid values), the practice of every
//! inter-process shared-memory library. What such a peer can cause: torn
//! or garbage bytes *in our private copy*, a message lost or made up,
//! [`Error::Corrupted`] when a check fails, [`Error::Truncated`] when it
//! truncated the segment. What it cannot: a copy out of bounds (the
//! length is read once, atomically, and checked against the slot and the
//! caller's buffer before the copy; what a peer writes into the record
//! afterwards is never read), a panic, a hang, or undefined behaviour
//! beyond the contents of our copy.
//!
//! ```no_run
//! use ipcworks::queue::Queue;
//!
//! # fn main() -> ipcworks::Result<()> {
//! // /dev/shm/ipcworks.queue.jobs: 64 messages of at most 8 KiB, mode 0600.
//! let q = Queue::options().capacity(64).max_message(8192).open_or_create("jobs")?.0;
//! q.send(b"low", 1)?;
//! q.send(b"high", 5)?;
//! assert_eq!(q.recv()?, (b"high".to_vec(), 5));
//! # Ok(())
//! # }
//! ```

mod claim;
pub(crate) mod dedup;
mod layout;
mod ops;
mod poll;
mod relayed;
pub(crate) mod slots;
mod wake;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
use std::time::Duration;

pub use claim::{Claim, MessageId};
pub(crate) use layout::Header;
pub use layout::{DEFAULT_RELAY_WINDOW, MAX_CAPACITY, MAX_MESSAGE, MAX_RELAY_WINDOW};
use layout::{Geometry, Slot};
pub use relayed::Delivery;
pub use slots::MAX_PRIORITY;

#[cfg(doc)]
use crate::Error;
use crate::message::{
    Deadline, MessageReceiver, MessageSender, Meta, RecvTimeoutError, SendTimeoutError,
    TryRecvError, TrySendError,
};
use crate::shm::{self, Named, Segment, SegmentOptions};
use crate::sync::{RawMutex, RawSemaphore};
use crate::{Result, name};

/// Prefix of a named queue's segment in `/dev/shm`.
pub const SEGMENT_PREFIX: &str = <Header as shm::Header>::PREFIX;
/// Default capacity in messages.
pub const DEFAULT_CAPACITY: usize = 64;
/// Default maximum message size in bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 8192;
/// How long a waiter sleeps before it looks at the slot table itself.
const SLICE: Duration = Duration::from_millis(50);
/// How long a waiter spins by default before it sleeps (see
/// [`QueueOptions::spin`]).
pub const DEFAULT_SPIN: Duration = Duration::from_micros(100);

/// A native shared-memory priority queue (see the [module docs](self)).
///
/// `Queue` is `Send + Sync`: threads of one process may share it, and
/// every process maps the segment with its own `Queue`.
#[derive(Debug)]
#[doc(alias = "bounded buffer")]
pub struct Queue {
    seg: Named<Header>,
    /// A copy of the segment's checked layout.
    geo: Geometry,
    name: String,
    /// How long a blocking call spins before it sleeps.
    spin: Duration,
    /// Blocking waits left that skip spinning (this process only): set
    /// after a spin that found no permit, so spinning stops when it does
    /// not pay (e.g. more runnable processes than CPUs).
    spin_skip: AtomicU32,
    /// The current length of that pause (see `ops::spin`).
    spin_backoff: AtomicU32,
    /// Where this handle's next look for a free slot starts (after the
    /// last slot it filled, so one sender goes round like a ring).
    next_free: AtomicUsize,
    /// Where this handle's next look for a message starts (after the last
    /// slot it took).
    next_ready: AtomicUsize,
    /// `next_seq + 1` as read just before this handle's last look for a
    /// message, if that look found every slot free; 0 otherwise. While
    /// `next_seq` still holds that value no message can have appeared
    /// since, and a `try_` receive answers without looking (see
    /// `ops::Queue::still_empty`).
    quiet: AtomicU64,
    /// `try_` receives answered that way since the last look.
    quiet_polls: AtomicU32,
    /// The queue's origin id, read from the header when this handle was
    /// made (see [`MessageId`]).
    origin: u64,
}

/// Options for creating or opening a [`Queue`].
#[derive(Debug, Clone)]
pub struct QueueOptions {
    capacity: usize,
    max_message: usize,
    mode: u32,
    remove_on_drop: bool,
    spin: Duration,
    relay_window: usize,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            capacity: DEFAULT_CAPACITY,
            max_message: DEFAULT_MAX_MESSAGE,
            relay_window: DEFAULT_RELAY_WINDOW,
            mode: 0o600,
            remove_on_drop: false,
            spin: DEFAULT_SPIN,
        }
    }
}

/// A snapshot of a queue for monitoring ([`Queue::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Slots in the queue.
    pub capacity: usize,
    /// Messages ready to be received.
    pub depth: usize,
    /// Payload bytes of those messages (each length as its slot records
    /// it, capped at the queue's maximum).
    pub bytes: u64,
    /// Slots a sender is filling right now.
    pub writing: usize,
    /// Slots a receiver is emptying right now, or holds as a two-phase
    /// receive's [`Claim`] (not counted in `depth`).
    pub reading: usize,
    /// Senders asleep waiting for a free slot.
    pub blocked_senders: u32,
    /// Receivers asleep waiting for a message.
    pub blocked_receivers: u32,
    /// Completed sends since creation (`received + depth + reading`).
    pub sent: u64,
    /// Completed receives since creation (each slot counts its own, in the
    /// same store that commits a receive, so a crash cannot skew it).
    pub received: u64,
    /// Half-done sends of dead processes undone (slot freed).
    pub recovered_sends: u64,
    /// Half-done receives of dead processes undone (message made ready again).
    pub recovered_recvs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Send,
    Recv,
}

impl Side {
    /// The slot state this side claims: a FREE slot to write, a READY
    /// message to read.
    fn takes(self) -> u32 {
        match self {
            Side::Send => slots::FREE,
            Side::Recv => slots::READY,
        }
    }
}

impl QueueOptions {
    /// Defaults: 64 messages of at most 8 KiB, mode 0600, persistent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most messages a created queue holds (1 ..= [`MAX_CAPACITY`]).
    pub fn capacity(&mut self, messages: usize) -> &mut Self {
        self.capacity = messages;
        self
    }

    /// Largest message of a created queue in bytes (1 ..= [`MAX_MESSAGE`]).
    pub fn max_message(&mut self, bytes: usize) -> &mut Self {
        self.max_message = bytes;
        self
    }

    /// Permission bits of a created queue, exactly, whatever the umask
    /// (default 0600). When opening, a looser queue is refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Whether the creator removes the name when its `Queue` drops
    /// (default `false`: named queues persist until removed, like the
    /// kernel's).
    pub fn remove_on_drop(&mut self, remove: bool) -> &mut Self {
        self.remove_on_drop = remove;
        self
    }

    /// How long a blocking call of this handle spins, watching for a slot
    /// or a message, before it sleeps on the queue's semaphore (default
    /// [`DEFAULT_SPIN`], 100 µs; zero: sleep at once). A peer on another
    /// core answers in a microsecond or two, far sooner than a futex
    /// wake-up arrives; spinning stops adapting when it keeps failing
    /// (see the module docs). Applies to this process's handle only.
    pub fn spin(&mut self, spin: Duration) -> &mut Self {
        self.spin = spin;
        self
    }

    /// How many relayed messages a created queue remembers at once
    /// (1 ..= [`MAX_RELAY_WINDOW`], default [`DEFAULT_RELAY_WINDOW`]): the
    /// size of its table of ids delivered by relays
    /// ([`Queue::send_relayed`]), which refuses a message delivered twice.
    /// Relays into the queue keep at most this many messages in flight
    /// between them; a full table makes relayed sends wait (32 bytes of
    /// shared memory per entry).
    pub fn relay_window(&mut self, messages: usize) -> &mut Self {
        self.relay_window = messages;
        self
    }

    fn segment(&self) -> SegmentOptions {
        let mut o = Segment::options();
        o.mode(self.mode).persist(!self.remove_on_drop);
        o
    }

    /// Creates a named queue (`/dev/shm/ipcworks.queue.NAME`); fails with
    /// [`Error::AlreadyExists`] if the name is taken.
    pub fn create(&self, name: &str) -> Result<Queue> {
        name::validate(name)?;
        let geo = Geometry::new(self.capacity, self.max_message, self.relay_window)?;
        let seg = Named::create(&self.segment(), name, geo, |_| Ok(()))?;
        Ok(Queue::handle(seg, "", self.spin))
    }

    /// Opens an existing named queue after the segment checks (regular
    /// file, ours, mode no looser than [`mode`](Self::mode)). Its capacity
    /// and message size are the creator's.
    pub fn open(&self, name: &str) -> Result<Queue> {
        let seg = Named::open(&self.segment(), name, shm::PUBLISH_WAIT)?;
        Ok(Queue::handle(seg, "", self.spin))
    }

    /// Opens the named queue, or creates it. Returns the queue and whether
    /// this call created it.
    pub fn open_or_create(&self, name: &str) -> Result<(Queue, bool)> {
        name::open_or_create("shm_open", || self.create(name), || self.open(name))
    }

    /// Creates an anonymous queue (memfd) for threads, or for child
    /// processes that inherit it ([`Queue::inheritable_fd`]).
    pub fn anonymous(&self) -> Result<Queue> {
        let geo = Geometry::new(self.capacity, self.max_message, self.relay_window)?;
        let seg = Named::anonymous(&self.segment(), geo, |_| Ok(()))?;
        Ok(Queue::handle(seg, "(anonymous)", self.spin))
    }
}

/// A look at the named queue for `ipcworks ls`: its stats, or `None` when
/// it cannot be opened. A queue whose header is not published (a creator
/// still at work, or one that died creating it) is skipped at once rather
/// than waited for, as an open would.
pub(crate) fn inspect(bare: &str) -> Option<Stats> {
    use std::io::Read;
    let path = format!("{}/{}", crate::sys::mem::SHM_DIR, segment_name(bare));
    let mut first = [0u8; 8];
    std::fs::File::open(path)
        .ok()?
        .read_exact(&mut first)
        .ok()?;
    if u64::from_ne_bytes(first) != <Header as shm::Header>::MAGIC {
        return None;
    }
    // Any mode: this only looks.
    Queue::options().mode(0o777).open(bare).ok()?.stats().ok()
}

fn segment_name(bare: &str) -> String {
    format!("{SEGMENT_PREFIX}{bare}")
}

impl Queue {
    /// Options for creating or opening a queue.
    pub fn options() -> QueueOptions {
        QueueOptions::default()
    }

    /// Creates a named queue with the default sizes, mode 0600, persistent.
    pub fn create(name: &str) -> Result<Queue> {
        Self::options().create(name)
    }

    /// Opens an existing named queue.
    pub fn open(name: &str) -> Result<Queue> {
        Self::options().open(name)
    }

    /// Opens or creates a named queue with the default sizes.
    pub fn open_or_create(name: &str) -> Result<(Queue, bool)> {
        Self::options().open_or_create(name)
    }

    /// Creates an anonymous queue with the default sizes.
    pub fn anonymous() -> Result<Queue> {
        Self::options().anonymous()
    }

    /// Maps a queue from an inherited descriptor (see
    /// [`inheritable_fd`](Self::inheritable_fd)).
    pub fn from_fd(fd: OwnedFd) -> Result<Queue> {
        Ok(Self::handle(
            Named::from_fd(fd)?,
            "(inherited)",
            DEFAULT_SPIN,
        ))
    }

    /// A duplicate of the segment's descriptor without close-on-exec, for a
    /// child process to pass to [`from_fd`](Self::from_fd).
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        self.seg.inheritable_fd()
    }

    /// Removes a named queue; processes that have it open keep using it.
    pub fn remove(name: &str) -> Result<()> {
        Named::<Header>::remove(name)
    }

    /// The queue's name (`(anonymous)` or `(inherited)` for unnamed ones).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Most messages the queue holds.
    pub fn capacity(&self) -> usize {
        self.geo.capacity
    }

    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.geo.max_message
    }

    /// This process's handle on a published, checked segment: its
    /// geometry, plus the per-handle state, fresh. `unnamed` is what it is
    /// called if it has no name.
    fn handle(seg: Named<Header>, unnamed: &str, spin: Duration) -> Queue {
        let origin = seg.header().origin.load(SeqCst);
        Queue {
            origin,
            name: seg.bare_name().unwrap_or(unnamed).to_string(),
            geo: *seg.layout(),
            seg,
            spin,
            spin_skip: AtomicU32::new(0),
            spin_backoff: AtomicU32::new(0),
            next_free: AtomicUsize::new(0),
            next_ready: AtomicUsize::new(0),
            quiet: AtomicU64::new(0),
            quiet_polls: AtomicU32::new(0),
        }
    }

    fn header(&self) -> &Header {
        self.seg.header()
    }

    /// Slot record `i`; `i < capacity` is the caller's promise (asserted).
    fn slot(&self, i: usize) -> &Slot {
        assert!(i < self.geo.capacity);
        // SAFETY: i < capacity, so the record lies inside `geo.size` bytes
        // of the mapping; offsets are multiples of 32 from a page boundary
        // (8-aligned); Slot is atomics only.
        unsafe { &*(self.seg.as_ptr().add(self.geo.slot_off(i)) as *const Slot) }
    }

    fn payload(&self, i: usize) -> *mut u8 {
        assert!(i < self.geo.capacity);
        // SAFETY: i < capacity, so the payload lies inside the mapping.
        unsafe { self.seg.as_ptr().add(self.geo.payload(i)) }
    }

    fn mutex(&self) -> RawMutex<'_> {
        RawMutex::new(&self.header().mutex)
    }

    fn sem(&self, side: Side) -> RawSemaphore<'_> {
        match side {
            Side::Send => RawSemaphore::new(&self.header().free),
            Side::Recv => RawSemaphore::new(&self.header().filled),
        }
    }

    /// The sleepers register of `side` (guarded by the mutex).
    fn sleepers(&self, side: Side) -> &AtomicU32 {
        match side {
            Side::Send => &self.header().send_sleepers,
            Side::Recv => &self.header().recv_sleepers,
        }
    }

    fn what(&self) -> String {
        format!("queue {}", self.name)
    }

    /// Sends `msg` with `priority` (0 ..= [`MAX_PRIORITY`], higher is
    /// received first), waiting while the queue is full.
    #[doc(alias = "P(empty)")]
    pub fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.send_at(msg, priority, Deadline::Never)
    }

    /// Sends if there is room now, else [`TrySendError::Full`]. (Returned
    /// [`Error`] before, with [`Error::WouldBlock`]; `?` still converts it.)
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<(), TrySendError> {
        self.send_at(msg, priority, Deadline::Now)
            .map_err(TrySendError::from)
    }

    /// Sends, waiting at most `timeout` for room, else
    /// [`SendTimeoutError::Timeout`]. (Returned [`Error`] before.)
    pub fn send_timeout(
        &self,
        msg: &[u8],
        priority: u32,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        self.send_at(msg, priority, Deadline::after(timeout))
            .map_err(SendTimeoutError::from)
    }

    /// Receives the oldest message of the highest priority, with its
    /// priority, waiting while the queue is empty.
    #[doc(alias = "P(full)")]
    pub fn recv(&self) -> Result<(Vec<u8>, u32)> {
        self.recv_at(Deadline::Never)
    }

    /// Receives if a message is there now, else [`TryRecvError::Empty`]
    /// (a queue has no "disconnected": it outlives its users). (Returned
    /// [`Error`] before, with [`Error::WouldBlock`].)
    pub fn try_recv(&self) -> Result<(Vec<u8>, u32), TryRecvError> {
        self.recv_at(Deadline::Now).map_err(TryRecvError::from)
    }

    /// Receives, waiting at most `timeout`, else
    /// [`RecvTimeoutError::Timeout`]. (Returned [`Error`] before.)
    pub fn recv_timeout(&self, timeout: Duration) -> Result<(Vec<u8>, u32), RecvTimeoutError> {
        self.recv_at(Deadline::after(timeout))
            .map_err(RecvTimeoutError::from)
    }

    /// Receives the oldest message of the highest priority into `buf`,
    /// waiting while the queue is empty; returns its length and priority.
    /// Like `mq_receive(3)`, no allocation. A message longer than `buf`
    /// stays in the queue and the call fails with
    /// [`Error::MessageTooLarge`] (`max` is `buf.len()`); a buffer of
    /// [`max_message`](Self::max_message) bytes always fits.
    #[doc(alias = "mq_receive")]
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.recv_slice_at(buf, Deadline::Never)
    }

    /// [`recv_into`](Self::recv_into) if a message is there now, else
    /// [`TryRecvError::Empty`]. (Returned [`Error`] before.)
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<(usize, u32), TryRecvError> {
        self.recv_slice_at(buf, Deadline::Now)
            .map_err(TryRecvError::from)
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`, else
    /// [`RecvTimeoutError::Timeout`]. (Returned [`Error`] before.)
    pub fn recv_into_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(usize, u32), RecvTimeoutError> {
        self.recv_slice_at(buf, Deadline::after(timeout))
            .map_err(RecvTimeoutError::from)
    }

    /// Messages ready to be received (a snapshot, see [`stats`](Self::stats)).
    pub fn depth(&self) -> Result<usize> {
        Ok(self.stats()?.depth)
    }

    /// A snapshot for monitoring, read from the slot words (one atomic
    /// load per slot, O(capacity); while others work, one slot may be read
    /// a moment later than another).
    pub fn stats(&self) -> Result<Stats> {
        let h = self.header();
        let mut st = Stats {
            capacity: self.geo.capacity,
            blocked_senders: h.free.waiters(),
            blocked_receivers: h.filled.waiters(),
            recovered_sends: h.recovered_sends.load(SeqCst),
            recovered_recvs: h.recovered_recvs.load(SeqCst),
            ..Stats::default()
        };
        for i in 0..self.geo.capacity {
            let w = self.slot(i).word.load(SeqCst);
            st.received = st.received.wrapping_add(slots::count(w));
            match slots::state(w) {
                slots::WRITING => st.writing += 1,
                slots::READY => {
                    st.depth += 1;
                    // A peer may have written anything there: capped, and
                    // the sum cannot overflow (capacity * max fits a
                    // mapping).
                    let len = self.slot(i).len.load(SeqCst) as usize;
                    st.bytes += len.min(self.geo.max_message) as u64;
                }
                slots::READING => st.reading += 1,
                _ => {}
            }
        }
        st.sent = st.received.wrapping_add((st.depth + st.reading) as u64);
        // Counts read from zeros of a truncated segment are not the queue's.
        self.seg.check_intact()?;
        Ok(st)
    }

    /// Undoes now the half-done operations of dead processes (normally
    /// done on demand; see the module docs). Returns how many sends and
    /// receives were undone. [`Error::Timeout`] if another live process
    /// holds the recovery lock for over a second (recovery takes
    /// microseconds: that process is stopped, or the segment is garbage).
    pub fn recover(&self) -> Result<(u64, u64)> {
        let r = self.recover_until(Deadline::after(ops::TRY_LOCK));
        let undone = self.or_truncated(r)?;
        // Judged from zeros of a truncated segment, it undid nothing real.
        self.seg.check_intact()?;
        Ok(undone)
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

impl MessageSender for Queue {
    /// [`Queue::send`] with `meta.priority` and a deadline.
    fn send_until(&mut self, msg: &[u8], meta: Meta, deadline: Deadline) -> Result<()> {
        self.send_at(msg, meta.priority, deadline)
    }
}

impl MessageReceiver for Queue {
    /// [`Queue::recv`] with a deadline; the priority comes back in
    /// [`Meta::priority`].
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        let (msg, priority) = self.recv_at(deadline)?;
        Ok((msg, Meta::with_priority(priority)))
    }

    /// Copies straight out of the slot into `buf`, reusing its allocation.
    fn recv_into_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Meta> {
        self.recv_vec_at(buf, deadline).map(Meta::with_priority)
    }
}

#[cfg(test)]
mod tests;
