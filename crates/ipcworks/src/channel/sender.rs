//! The sending end: copy-in sends, zero-copy loans, typed and plain-data
//! sends.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use super::WaitStrategy;
use super::publish::SOLO;
use super::ring::{HEADER, Memory, Reserve, Ring, Slot, span};
use super::shared::{RX_CLOSED, Shared, ShmMemory};
use super::wait::block_on;
use crate::message::{Deadline, MessageSender, Meta, SendTimeoutError, TrySendError};
use crate::sys::proc::Identity;
use crate::{Error, Result};

/// Turns a sender spins on the producers' lock held by another before it
/// yields its core between looks (the holder's section is a few
/// nanoseconds unless it was preempted inside it).
const BUSY_SPINS: u32 = 64;

/// The sending end of a shared-memory [channel](super).
///
/// Several senders (in one or several processes, up to
/// [`MAX_SENDERS`](super::MAX_SENDERS)) may feed one receiver; each sender's
/// messages arrive in the order it sent them. Dropping a sender detaches it;
/// when every sender is gone (dropped, or its process died) and everything
/// published was received, the receiver gets [`Error::Disconnected`].
///
/// Changed in this version: [`try_clone`](Self::try_clone) (a second
/// sender on the same channel), [`len`](Self::len) and
/// [`is_empty`](Self::is_empty), and
/// [`into_inheritable_fd`](Self::into_inheritable_fd) (hand this end to a
/// child, see [`pair`](super::pair)) are new.
pub struct Sender {
    ring: Ring<ShmMemory>,
    slot: usize,
    me: u64,
    wait: WaitStrategy,
}

// SAFETY: a Sender owns its ring view (the `Cell` cache is used only through
// `&mut self`/`&self` of this one Sender and is never shared); the mapping it
// points into is process-wide and kept alive by the Arc.
unsafe impl Send for Sender {}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("channel", self.shared())
            .field("slot", &self.slot)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Sender {
    /// Registers a sender on `shared` (takes a free or dead sender slot).
    pub(crate) fn attach(shared: Arc<Shared>, wait: WaitStrategy) -> Result<Sender> {
        let me = Identity::process().raw();
        let h = shared.header();
        // Only free slots: a dead sender's slot is freed by the receiver once
        // its last reservation is resolved.
        let mut slot = None;
        for (i, s) in h.senders.iter().enumerate() {
            if s.0.id.compare_exchange(0, me, Release, Relaxed).is_ok() {
                s.0.inflight.store(0, Relaxed);
                s.0.busy.store(0, Relaxed);
                slot = Some(i);
                break;
            }
        }
        let Some(slot) = slot else {
            return Err(Error::LimitExceeded {
                limit: "senders per channel".into(),
                value: super::MAX_SENDERS.to_string(),
                hint: "drop a sender, or use one sender per process and share it".into(),
            });
        };
        h.peers.0.senders_ever.store(1, Release);
        h.peers.0.generation.fetch_add(1, Release);
        let ring = shared.ring()?;
        // Alone on the channel: reserve without the lock's compare-and-swap
        // until a second sender comes (channel/publish.rs).
        let alone = h
            .senders
            .iter()
            .enumerate()
            .all(|(i, s)| i == slot || s.0.id.load(Acquire) == 0);
        if alone {
            ring.try_enter_solo(me);
        }
        // Wake a receiver that may be waiting for its first sender.
        ring.kick(ring.rx_word());
        Ok(Sender {
            ring,
            slot,
            me,
            wait,
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        self.ring.memory().shared()
    }

    /// A second sender on the same channel, with the same wait strategy:
    /// it takes a sender slot of its own (as [`Channel::sender`](super::Channel::sender)
    /// does), so the receiver disconnects only once both are gone.
    /// [`Error::LimitExceeded`] when all [`MAX_SENDERS`](super::MAX_SENDERS)
    /// slots are taken (hence `try_`: crossbeam's `Sender::clone` cannot
    /// fail).
    pub fn try_clone(&self) -> Result<Sender> {
        Sender::attach(self.shared().clone(), self.wait)
    }

    /// How many messages wait in the channel to be received, counted in
    /// the ring (one look at each): a snapshot, racy by nature — senders
    /// and the receiver may change it before the caller looks at the
    /// answer. [`Error::Corrupted`] or [`Error::Truncated`] when the ring
    /// cannot be read.
    pub fn len(&self) -> Result<usize> {
        self.shared().or_truncated(self.ring.queued())
    }

    /// Whether no message waits to be received (a snapshot, see
    /// [`len`](Self::len)).
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Hands this end to a child process: detaches it and returns a
    /// descriptor of the channel without close-on-exec, which the child
    /// passes to [`Channel::from_fd`](super::Channel::from_fd) and attaches
    /// a sender of its own ([`Channel::sender`](super::Channel::sender)).
    /// Drop the descriptor after spawning the child.
    ///
    /// Unlike dropping a sender, this does not count as the last sender
    /// leaving: if no other sender is attached, the channel is as if no
    /// sender ever came, and the receiver waits for the child's instead of
    /// reporting [`Error::Disconnected`] before the child has started
    /// (a child that dies before it attaches leaves the receiver waiting,
    /// so receive with a timeout, or watch the child).
    pub fn into_inheritable_fd(self) -> Result<OwnedFd> {
        let shared = self.shared().clone();
        let fd = shared.segment().inheritable_fd()?;
        let h = shared.header();
        // Read-modify-write: synchronizes with a sender that attached
        // meanwhile (it marks `senders_ever` after taking its slot), so
        // the look at the slots below sees it.
        h.peers.0.senders_ever.swap(0, AcqRel);
        drop(self);
        if h.senders.iter().any(|s| s.0.id.load(Acquire) != 0) {
            h.peers.0.senders_ever.store(1, Release);
        }
        Ok(fd)
    }

    /// Largest message this channel carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.ring.max() as usize
    }

    /// The wait strategy used when the channel is full.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Changes the wait strategy.
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.wait = wait;
    }

    /// Sends `msg`, waiting while the channel is full.
    ///
    /// Fails with [`Error::MessageTooLarge`] if `msg` is longer than
    /// [`max_message`](Self::max_message), [`Error::Disconnected`] if the
    /// receiver closed or died.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_at(msg, Deadline::Never)
    }

    /// Sends `msg` if there is room now: [`TrySendError::Full`] if not,
    /// [`TrySendError::Disconnected`] if the receiver is gone.
    ///
    /// (Returned [`Error`] before, with [`Error::WouldBlock`] for "full";
    /// `?` still converts it.)
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        self.send_at(msg, Deadline::Now).map_err(TrySendError::from)
    }

    /// Sends `msg`, waiting at most `timeout` for room:
    /// [`SendTimeoutError::Timeout`] after.
    ///
    /// (Returned [`Error`] before, with [`Error::Timeout`]; `?` still
    /// converts it.)
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        self.send_at(msg, Deadline::after(timeout))
            .map_err(SendTimeoutError::from)
    }

    /// The one send: every send method and [`MessageSender::send_until`]
    /// are this with a deadline. The common case — the receiver is there
    /// and the ring has room — takes the few-instruction reservation.
    /// Always inlined, so each send method is the one function it was
    /// before (no call in between on the hot path).
    #[inline(always)]
    fn send_at(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        let slot = match self.reserve_fast(msg.len()) {
            Some(slot) => slot,
            None => self.reserve(msg.len(), deadline)?,
        };
        self.fill_and_commit(slot, msg)
    }

    #[inline(always)]
    fn fill_and_commit(&mut self, slot: Slot, msg: &[u8]) -> Result<()> {
        if let Err(e) = self.ring.write(&slot, 0, msg) {
            self.ring.abandon(&slot);
            return Err(e);
        }
        self.ring.commit(&slot);
        // A copy or a commit into pages a peer truncated away reached
        // nobody: not a success to report.
        self.ring.memory().check()
    }

    /// Sends `msgs` in order, several per publication: as many as fit in
    /// half the ring are reserved at once, written, and published with one
    /// store and one look at whether the receiver sleeps (where
    /// [`send`](Self::send) pays those per message). The receiver gets them
    /// as separate messages, in order, each with its own
    /// [`recv`](super::Receiver::recv). Waits while the channel is full, as
    /// `send` does.
    ///
    /// Each publication is whole or nothing: a sender killed while writing
    /// one delivers none of its messages. On an error, the messages of
    /// earlier publications were sent and the rest were not; a message
    /// longer than [`max_message`](Self::max_message) is refused
    /// ([`Error::MessageTooLarge`]) before anything is sent.
    pub fn send_batch<B: AsRef<[u8]>>(&mut self, msgs: &[B]) -> Result<()> {
        self.send_batch_at(msgs, Deadline::Never).map(|_| ())
    }

    /// [`send_batch`](Self::send_batch) of what fits now: as many whole
    /// publications as there is room for, without waiting. Returns how
    /// many of `msgs` (a prefix) were sent; [`TrySendError::Full`] when
    /// not even the first publication fits.
    pub fn try_send_batch<B: AsRef<[u8]>>(&mut self, msgs: &[B]) -> Result<usize, TrySendError> {
        self.send_batch_at(msgs, Deadline::Now)
            .map_err(TrySendError::from)
    }

    /// The batch send: publications of as many messages as fit in half
    /// the ring, each reserved (fast path first) and published at once;
    /// returns how many messages were sent. With [`Deadline::Now`], stops
    /// at the first publication that does not fit ([`Error::WouldBlock`]
    /// if that is the first).
    fn send_batch_at<B: AsRef<[u8]>>(&mut self, msgs: &[B], deadline: Deadline) -> Result<usize> {
        let max = self.ring.max();
        if let Some(m) = msgs.iter().find(|m| m.as_ref().len() as u64 > max) {
            return Err(Error::MessageTooLarge {
                len: m.as_ref().len(),
                max: max as usize,
            });
        }
        let half = self.ring.memory().capacity() / 2;
        let mut sent = 0;
        // Bounded: every turn sends at least one message, or returns.
        while sent < msgs.len() {
            let rest = &msgs[sent..];
            let (mut n, mut total) = (0, 0u64);
            for m in rest {
                // A message's span is at most half the ring (layout check).
                let s = span(m.as_ref().len() as u64).unwrap_or(half);
                if n > 0 && total + s > half {
                    break;
                }
                total += s;
                n += 1;
            }
            let len = total - HEADER;
            let region = match self.reserve_fast_len(len) {
                Some(slot) => slot,
                None => match self.reserve_len(len, deadline, false) {
                    Ok(slot) => slot,
                    Err(Error::WouldBlock) if sent > 0 => return Ok(sent),
                    Err(e) => return Err(e),
                },
            };
            self.ring.commit_batch(&region, &rest[..n])?;
            self.ring.memory().check()?;
            sent += n;
        }
        Ok(sent)
    }

    /// Borrows a writable slot of `len` bytes in shared memory: write the
    /// message in place with [`Loan`]'s methods, then
    /// [`publish`](Loan::publish) it — no copy on the sending side.
    #[doc(alias = "zero-copy")]
    // Inlined into the caller, as are `Loan::write_at`/`publish` and the
    // receiver's `recv_ref`/`read_at`/`MessageRef` drop: called out of
    // line, the benchmark's shm-loan 64-byte round trip was 301-321 ns,
    // inlined 220-230 ns (three default `ipcworks bench` runs of each, on
    // the 2-core virtual machine this was written on; a scratch harness
    // of two pinned threads, not kept, gave 1.42-1.53x a copying round
    // trip before, 1.05-1.10x after).
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let slot = self.reserve_loan(len, Deadline::Never)?;
        Ok(Loan {
            sender: self,
            slot,
            done: false,
        })
    }

    /// Like [`loan`](Self::loan), waiting at most `timeout` for room:
    /// [`SendTimeoutError::Timeout`] after. (Returned [`Error`] before.)
    pub fn loan_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Loan<'_>, SendTimeoutError> {
        let slot = self
            .reserve_loan(len, Deadline::after(timeout))
            .map_err(SendTimeoutError::from)?;
        Ok(Loan {
            sender: self,
            slot,
            done: false,
        })
    }

    /// Like [`loan`](Self::loan), if there is room now:
    /// [`TrySendError::Full`] if not.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>, TrySendError> {
        let slot = self.reserve_now(len).map_err(TrySendError::from)?;
        Ok(self.loan_of(slot))
    }

    /// One attempt at reserving `len` bytes ([`Error::WouldBlock`]: no
    /// room now): the async loan's poll, which makes the [`Loan`] with
    /// [`loan_of`](Self::loan_of) once it has the slot.
    pub(crate) fn reserve_now(&mut self, len: usize) -> Result<Slot> {
        self.reserve_loan(len, Deadline::Now)
    }

    /// A loan's reservation: the fast path (checked [`intact`](Self::intact))
    /// first, else [`reserve`](Self::reserve) until `deadline`.
    #[inline(always)]
    fn reserve_loan(&mut self, len: usize, deadline: Deadline) -> Result<Slot> {
        match self.reserve_fast(len) {
            Some(slot) => self.intact(slot),
            None => self.reserve(len, deadline),
        }
    }

    /// `slot`, taken by the fast reservation, unless a peer truncated the
    /// segment ([`Error::Truncated`]; the reservation is abandoned): the
    /// fast path reads only the ring's words, which a cut turns into zeros
    /// that look like room, and a loan is handed out before anything is
    /// copied (a send looks after its copy instead).
    #[inline(always)]
    fn intact(&mut self, slot: Slot) -> Result<Slot> {
        match self.ring.memory().check() {
            Ok(()) => Ok(slot),
            Err(e) => {
                self.ring.abandon(&slot);
                Err(e)
            }
        }
    }

    /// [`try_send`](Self::try_send) that takes the producers' lock over
    /// from a dead holder ([`Error::WouldBlock`]: no room now, or the lock
    /// is held by a live producer): the async send's attempt after a
    /// report of room that came to nothing, so a producer killed inside
    /// the lock cannot keep it from sending for ever (a blocking send
    /// takes the lock over after 2 ms busy).
    #[cfg(feature = "tokio")]
    pub(crate) fn try_send_taking_over(&mut self, msg: &[u8]) -> Result<()> {
        let slot = self.reserve_with(msg.len(), Deadline::Now, true)?;
        self.fill_and_commit(slot, msg)
    }

    /// [`reserve_now`](Self::reserve_now) that takes the producers' lock
    /// over from a dead holder (see
    /// [`try_send_taking_over`](Self::try_send_taking_over)).
    #[cfg(feature = "tokio")]
    pub(crate) fn reserve_now_taking_over(&mut self, len: usize) -> Result<Slot> {
        self.reserve_with(len, Deadline::Now, true)
    }

    /// The blocking send's slow look at the receiver (its identity through
    /// `/proc`, and the segment's size), for a send that waits elsewhere
    /// (the async sender, between naps): [`Error::Disconnected`] when the
    /// receiver closed or died.
    #[cfg(feature = "tokio")]
    pub(crate) fn look_at_receiver(&self) -> Result<()> {
        self.receiver_gone(true)
    }

    /// [`Error::Disconnected`] when the receiver closed (or, with `slow`,
    /// died: its identity through `/proc`); the segment's mark checked
    /// first (with `slow`, its size too), since zeros of a truncated
    /// segment say nothing about the receiver.
    fn receiver_gone(&self, slow: bool) -> Result<()> {
        let rx = self.ring.memory().header().peers.0.receiver.load(Acquire);
        self.shared().check(slow)?;
        if rx == RX_CLOSED || (slow && rx != 0 && !Identity::from_raw(rx).is_alive()) {
            return Err(Error::Disconnected);
        }
        Ok(())
    }

    /// A watch for room in this sender's ring (and its receiver's death),
    /// for a helper thread an async send parks on.
    #[cfg(feature = "tokio")]
    pub(crate) fn room_watch(&self) -> Arc<super::RoomWatch> {
        super::RoomWatch::new(self.shared().clone())
    }

    /// The loan of a slot [`reserve_now`](Self::reserve_now) reserved.
    pub(crate) fn loan_of(&mut self, slot: Slot) -> Loan<'_> {
        Loan {
            sender: self,
            slot,
            done: false,
        }
    }

    /// Sends any serde type, encoded with postcard.
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn send_typed<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let bytes = postcard::to_allocvec(value).map_err(|e| {
            Error::InvalidArgument(format!("cannot encode the value with postcard: {e}"))
        })?;
        self.send(&bytes)
    }

    /// Sends a plain-old-data value as its bytes (no encoding).
    pub fn send_pod<T: zerocopy::IntoBytes + zerocopy::Immutable + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<()> {
        self.send(value.as_bytes())
    }

    /// The common case of [`reserve`](Self::reserve) in a few instructions:
    /// the receiver is there and the ring has room now. `None` sends the
    /// caller down the general path (which also reports errors).
    #[inline(always)]
    fn reserve_fast(&self, len: usize) -> Option<Slot> {
        if len as u64 > self.ring.max() {
            return None;
        }
        self.reserve_fast_len(len as u64)
    }

    /// [`reserve_fast`](Self::reserve_fast) of `len` bytes after the first
    /// header, checked by the caller to fit one lap.
    #[inline(always)]
    fn reserve_fast_len(&self, len: u64) -> Option<Slot> {
        let header = self.ring.memory().header();
        if header.peers.0.receiver.load(Acquire) == RX_CLOSED {
            return None;
        }
        let words = &header.senders.get(self.slot)?.0;
        self.ring.try_reserve_fast(len, self.me, words)
    }

    /// Reserves room for `len` bytes, as the wait strategy says, at most
    /// until `deadline` ([`Deadline::Now`]: one attempt, `WouldBlock`).
    fn reserve(&mut self, len: usize, deadline: Deadline) -> Result<Slot> {
        self.reserve_with(len, deadline, false)
    }

    /// [`reserve`](Self::reserve); with `take_over`, a single attempt
    /// ([`Deadline::Now`]) that finds the producers' lock held by a dead
    /// process takes it over, as a blocked reservation does after 2 ms
    /// busy (the async send's attempt after a wait that came to nothing).
    fn reserve_with(&mut self, len: usize, deadline: Deadline, take_over: bool) -> Result<Slot> {
        let max = self.ring.max();
        if len as u64 > max {
            return Err(Error::MessageTooLarge {
                len,
                max: max as usize,
            });
        }
        self.reserve_len(len as u64, deadline, take_over)
    }

    /// [`reserve`](Self::reserve) of `len` bytes after the first header,
    /// checked by the caller to fit one lap (a message, or a batch).
    fn reserve_len(&mut self, len: u64, deadline: Deadline, take_over: bool) -> Result<Slot> {
        let once = deadline.is_now();
        let ring = &self.ring;
        let header = ring.memory().header();
        let receiver_gone = |slow: bool| self.receiver_gone(slow);
        receiver_gone(false)?;
        let me = self.me;
        let words = &header.senders[self.slot].0;
        // A holder of the lock (not a solo sender's) that is not this
        // sender and died: its lock may be taken over.
        let dead_holder =
            |owner: u64| owner & SOLO == 0 && owner != me && !Identity::from_raw(owner).is_alive();
        let mut steal = None;
        let mut busy_since: Option<Instant> = None;
        let mut busy_turns: u32 = 0;
        let mut attempt = || -> Result<Option<Slot>> {
            loop {
                match ring.try_reserve(len, me, words, steal.take())? {
                    Reserve::Ok(slot) => return Ok(Some(slot)),
                    Reserve::Full => {
                        busy_turns = 0;
                        return Ok(None);
                    }
                    Reserve::Busy(owner) => {
                        // A sender alone until now holds the lock for
                        // good: take it over once it is out of its
                        // section (or dead), then reserve the usual way.
                        if owner & SOLO != 0
                            && ring.revoke_solo(owner, me, |id| {
                                id != me && !Identity::from_raw(id).is_alive()
                            })
                        {
                            continue;
                        }
                        // Another producer is inside its few-nanosecond
                        // critical section; if it stays there, it may
                        // have died in it.
                        if once {
                            if take_over && dead_holder(owner) {
                                steal = Some(owner);
                                continue;
                            }
                            return Err(Error::WouldBlock);
                        }
                        // A holder preempted inside its section (more
                        // senders than cores) leaves it only when it runs
                        // again: after a short spin, give it the core
                        // (`sched_yield`) rather than spin out the slice
                        // it needs. The clock is read every 16th turn.
                        busy_turns += 1;
                        if busy_turns <= BUSY_SPINS {
                            std::hint::spin_loop();
                            continue;
                        }
                        std::thread::yield_now();
                        if !busy_turns.is_multiple_of(16) {
                            continue;
                        }
                        let since = *busy_since.get_or_insert_with(Instant::now);
                        if deadline.expired() {
                            return Ok(None); // block_on reports Timeout
                        }
                        if since.elapsed() > Duration::from_millis(2) {
                            busy_since = None;
                            busy_turns = 0;
                            if dead_holder(owner) {
                                steal = Some(owner);
                                continue;
                            }
                            // Still busy: let block_on check the deadline
                            // and the receiver, then come back.
                            return Ok(None);
                        }
                    }
                }
            }
        };
        let r = match once {
            true => attempt().and_then(|s| s.ok_or(Error::WouldBlock)),
            false => block_on(
                self.wait,
                ring.tx_word(),
                deadline,
                || true,
                attempt,
                || ring.prepare_tx_wait(),
                receiver_gone,
            ),
        };
        self.shared().or_truncated(r)
    }
}

impl MessageSender for Sender {
    /// [`Sender::send`] with a deadline; `meta` does not apply (the
    /// channel carries bytes only).
    fn send_until(&mut self, msg: &[u8], _meta: Meta, deadline: Deadline) -> Result<()> {
        self.send_at(msg, deadline)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.ring.leave_solo(self.me);
        let h = self.shared().header();
        let _ = h.senders[self.slot]
            .0
            .id
            .compare_exchange(self.me, 0, Release, Relaxed);
        h.peers.0.generation.fetch_add(1, Release);
        self.ring.kick(self.ring.rx_word());
    }
}

/// A writable slot in shared memory, borrowed from a [`Sender`] by
/// [`Sender::loan`].
///
/// The slot is shared memory that a buggy or hostile receiver process could
/// write at any time, so it is not handed out as `&mut [u8]` (Rust assumes
/// nobody else changes memory behind a `&mut`). Write it through
/// [`write_at`](Self::write_at) / [`copy_from_slice`](Self::copy_from_slice)
/// — each one copy straight into the ring, no staging buffer — or, for code
/// that must build the message in place (a serializer, a DMA-like writer),
/// through the raw pointer [`as_mut_ptr`](Self::as_mut_ptr).
///
/// Dropping a loan without publishing abandons it: the receiver skips it.
pub struct Loan<'a> {
    sender: &'a mut Sender,
    slot: Slot,
    done: bool,
}

impl std::fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan").field("len", &self.slot.len).finish()
    }
}

impl Loan<'_> {
    /// The slot's length in bytes.
    pub fn len(&self) -> usize {
        self.slot.len as usize
    }

    /// Whether the slot has length 0.
    pub fn is_empty(&self) -> bool {
        self.slot.len == 0
    }

    /// Copies `bytes` into the slot at `offset`. [`Error::Truncated`] if
    /// a peer truncated the segment (the bytes reached nobody).
    #[inline]
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.sender.ring.write(&self.slot, offset as u64, bytes)?;
        self.sender.ring.memory().check()
    }

    /// Fills the whole slot from `bytes` (which must have the slot's length).
    pub fn copy_from_slice(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() != self.len() {
            return Err(Error::InvalidArgument(format!(
                "{} bytes given for a loan of {} bytes",
                bytes.len(),
                self.len()
            )));
        }
        self.write_at(0, bytes)
    }

    /// Raw pointer to the slot's first byte (8-aligned), valid for writes of
    /// [`len`](Self::len) bytes until the loan is published or dropped.
    ///
    /// Write through it with `ptr::write`/`copy_nonoverlapping` (or
    /// `write_volatile`); never turn it into a `&mut [u8]` or `&mut T`: the
    /// memory is shared with another process, which Rust references cannot
    /// express.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.sender
            .ring
            .memory()
            .ptr(self.sender.ring.slot_offset(&self.slot))
    }

    /// Publishes the message: the receiver sees it now.
    /// [`Error::Truncated`] if a peer truncated the segment meanwhile (what
    /// was written, through [`as_mut_ptr`](Self::as_mut_ptr) too, and the
    /// publication reached nobody).
    #[inline]
    pub fn publish(mut self) -> Result<()> {
        self.done = true;
        self.sender.ring.commit(&self.slot);
        self.sender.ring.memory().check()
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.sender.ring.abandon(&self.slot);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::Channel;

    /// The README's "a lone sender sends without a locked instruction":
    /// a sender alone on a channel holds the lock in solo mode; a second
    /// sender's first send takes it over, and the first then reserves
    /// under the lock like any other; all three messages arrive in order.
    #[test]
    fn a_lone_sender_is_in_solo_mode_until_a_second_sender_sends() {
        if !crate::sys::membarrier::register() {
            eprintln!(
                "SKIPPED a_lone_sender_is_in_solo_mode…: this kernel (or a seccomp filter) \
                 refuses membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)"
            );
            return;
        }
        let ch = Channel::builder().capacity(16).anonymous().unwrap();
        let mut rx = ch.receiver().unwrap();
        let mut a = ch.sender().unwrap();
        assert!(a.ring.solo.get(), "a lone sender did not enter solo mode");
        a.send(b"1").unwrap();
        assert!(a.ring.solo.get(), "a lone sender left solo mode by sending");
        let mut b = ch.sender().unwrap();
        assert!(!b.ring.solo.get(), "a second sender entered solo mode");
        b.send(b"2").unwrap();
        a.send(b"3").unwrap();
        assert!(
            !a.ring.solo.get(),
            "the first sender stayed in solo mode after a second one sent"
        );
        for want in [b"1", b"2", b"3"] {
            assert_eq!(rx.recv().unwrap(), want);
        }
    }
}
