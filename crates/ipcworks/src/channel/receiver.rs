//! The receiving end: copy-out receives, zero-copy borrowed views, typed and
//! plain-data receives.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

use super::WaitStrategy;
use super::ring::{Peek, Ring, Slot};
use super::shared::{RX_CLOSED, Shared, ShmMemory};
use super::wait::block_on;
use super::watch::SenderWatch;
use crate::message::{Deadline, MessageReceiver, Meta, RecvTimeoutError, TryRecvError};
use crate::sys::proc::Identity;
use crate::{Error, Result};

/// The receiving end of a shared-memory [channel](super). There is at most
/// one per channel at a time.
///
/// Changed in this version: [`len`](Self::len) and
/// [`is_empty`](Self::is_empty), and
/// [`into_inheritable_fd`](Self::into_inheritable_fd) (hand this end to a
/// child, see [`pair`](super::pair)) are new.
pub struct Receiver {
    ring: Ring<ShmMemory>,
    me: u64,
    /// What the seat holds once this receiver is gone: [`RX_CLOSED`], or
    /// 0 (free, no receiver yet) when it was handed to a child.
    leave: u64,
    wait: WaitStrategy,
    /// [`WaitStrategy::quick_turns`] of `wait`, worked out when it is set.
    quick: u32,
    skipped: std::cell::Cell<u64>,
    /// `try_` receives: when the senders were last judged through `/proc`
    /// (coarse clock, ms; see `poll_slow`).
    last_check: std::cell::Cell<Option<u64>>,
    /// The senders' generation word when they were last seen attached
    /// (see `check_peer`).
    senders_seen: std::cell::Cell<Option<u64>>,
    /// The senders' pidfds, watched while this receiver sleeps (or a
    /// WaitSet waits on it): a killed sender is noticed at once.
    watch: Arc<SenderWatch>,
}

// SAFETY: the Receiver owns its ring view (its `Cell` head is touched only
// through this one Receiver); the mapping is kept alive by the Arc.
unsafe impl Send for Receiver {}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", self.ring.memory().shared())
            .field("wait", &self.wait)
            .finish()
    }
}

impl Receiver {
    /// Claims the receiver seat of `shared`: free, closed, or held by a dead
    /// process; a live receiver elsewhere is a clear error.
    pub(crate) fn attach(shared: Arc<Shared>, wait: WaitStrategy) -> Result<Receiver> {
        let me = Identity::process().raw();
        let word = &shared.header().peers.0.receiver;
        loop {
            let cur = word.load(Acquire);
            let free = cur == 0 || cur == RX_CLOSED || !Identity::from_raw(cur).is_alive();
            if !free {
                return Err(Error::Refused {
                    name: shared.segment().name().unwrap_or("(anonymous)").to_string(),
                    reason: format!(
                        "the channel already has a receiver (process {}); only one may receive",
                        Identity::from_raw(cur).id()
                    ),
                });
            }
            if word.compare_exchange(cur, me, Acquire, Relaxed).is_ok() {
                break;
            }
        }
        let ring = shared.ring()?;
        ring.kick(ring.tx_word());
        Ok(Receiver {
            ring,
            me,
            leave: RX_CLOSED,
            wait,
            quick: wait.quick_turns(),
            skipped: std::cell::Cell::new(0),
            last_check: std::cell::Cell::new(None),
            senders_seen: std::cell::Cell::new(None),
            watch: SenderWatch::new(shared.clone()),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        self.ring.memory().shared()
    }

    /// How many messages wait in the channel to be received, counted in
    /// the ring (one look at each): a snapshot, racy by nature — senders
    /// may add to it before the caller looks at the answer.
    /// [`Error::Corrupted`] or [`Error::Truncated`] when the ring cannot
    /// be read.
    pub fn len(&self) -> Result<usize> {
        self.shared().or_truncated(self.ring.queued())
    }

    /// Whether no message waits to be received (a snapshot, see
    /// [`len`](Self::len)).
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Hands this end to a child process: gives up the receiver seat and
    /// returns a descriptor of the channel without close-on-exec, which
    /// the child passes to [`Channel::from_fd`](super::Channel::from_fd)
    /// and takes the seat ([`Channel::receiver`](super::Channel::receiver)).
    /// Drop the descriptor after spawning the child.
    ///
    /// Unlike dropping the receiver, this does not close the channel: the
    /// seat is free as if no receiver had come yet, so senders go on
    /// sending (and wait when it is full) instead of getting
    /// [`Error::Disconnected`] before the child has started.
    pub fn into_inheritable_fd(mut self) -> Result<OwnedFd> {
        let fd = self.shared().segment().inheritable_fd()?;
        self.leave = 0;
        Ok(fd)
    }

    /// Largest message this channel carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.ring.max() as usize
    }

    /// Whether a record may be at the head now: one load, no receive (the
    /// async receiver's spin probes it, as `block_on`'s does).
    #[cfg(feature = "tokio")]
    pub(crate) fn head_ready(&self) -> bool {
        self.ring.head_ready()
    }

    /// How many records this receiver skipped because their sender died
    /// after reserving them and before publishing (half-written messages
    /// that were never delivered).
    pub fn skipped_dead(&self) -> u64 {
        self.skipped.get()
    }

    /// The wait strategy used when the channel is empty.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Changes the wait strategy.
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.wait = wait;
        self.quick = wait.quick_turns();
    }

    /// Receives the next message, waiting while the channel is empty.
    /// [`Error::Disconnected`] once every sender is gone and all they
    /// published was received.
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        let slot = self.slot_at(Deadline::Never)?;
        self.take_vec(slot)
    }

    /// Receives a message if one is ready now: [`TryRecvError::Empty`] if
    /// not, [`TryRecvError::Disconnected`] when every sender is gone (a
    /// killed sender is noticed within about 20 ms of polling).
    ///
    /// (Returned [`Error`] before, with [`Error::WouldBlock`] for "empty";
    /// `?` still converts it.)
    pub fn try_recv(&mut self) -> Result<Vec<u8>, TryRecvError> {
        self.recv_at(Deadline::Now).map_err(TryRecvError::from)
    }

    /// Receives the next message, waiting at most `timeout`:
    /// [`RecvTimeoutError::Timeout`] after.
    ///
    /// (Returned [`Error`] before, with [`Error::Timeout`]; `?` still
    /// converts it.)
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        self.recv_at(Deadline::after(timeout))
            .map_err(RecvTimeoutError::from)
    }

    /// A blocking iterator over the messages: each item is a message or
    /// the error that ended it; it ends at [`Error::Disconnected`], and
    /// right after yielding any other error (corruption is never
    /// swallowed). (Yielded `Vec<u8>` before, ending silently at any
    /// error.)
    pub fn iter(&mut self) -> Iter<'_> {
        Iter::new(self)
    }

    /// An iterator over the messages ready now; it ends when the channel
    /// is empty or disconnected, and right after yielding any other error.
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter::new(self)
    }

    /// Receives the next message into `buf` (replacing its contents),
    /// reusing its allocation; returns the length.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_into_at(buf, Deadline::Never)?;
        Ok(buf.len())
    }

    /// Receives the next message into the front of `buf` and returns its
    /// length, waiting while the channel is empty: the copy-out receive
    /// for a caller's own buffer, and the fastest one (no
    /// [`MessageRef`] in between). A message longer than `buf` is
    /// [`Error::MessageTooLarge`] and stays first in line.
    pub fn recv_slice(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.receive(
            Deadline::Never,
            #[inline(always)]
            |rx, slot| rx.take_into(slot, buf),
        )
    }

    /// [`recv_slice`](Self::recv_slice) if a message is ready now, else
    /// [`TryRecvError::Empty`]. (Returned [`Error`] before.)
    pub fn try_recv_slice(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        self.slot_at(Deadline::Now)
            .and_then(|slot| self.take_into(slot, buf))
            .map_err(TryRecvError::from)
    }

    /// [`recv_slice`](Self::recv_slice), waiting at most `timeout`.
    /// (Returned [`Error`] before.)
    pub fn recv_slice_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.slot_at(Deadline::after(timeout))
            .and_then(|slot| self.take_into(slot, buf))
            .map_err(RecvTimeoutError::from)
    }

    /// The one receive: every copying receive method and
    /// [`MessageReceiver::recv_until`] are this with a deadline.
    #[inline]
    fn recv_at(&mut self, deadline: Deadline) -> Result<Vec<u8>> {
        let slot = self.slot_at(deadline)?;
        self.take_vec(slot)
    }

    /// [`recv_at`](Self::recv_at) into `buf`, resized to the message's
    /// length (only the part beyond its old length is zeroed first, so a
    /// buffer that already has the length is written once).
    #[inline]
    fn recv_into_at(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.receive(
            deadline,
            #[inline(always)]
            |rx, slot| {
                let n = slot.len as usize;
                // A reused buffer mostly has the length already: no call.
                if buf.len() != n {
                    buf.resize(n, 0);
                }
                rx.take_into(slot, buf).map(|_| ())
            },
        )
    }

    /// [`slot_at`](Self::slot_at) with the message taken by `take`, which
    /// is written out twice: in line after the fast look, and after the
    /// out-of-line rest. So the fast path does not join the slow one's
    /// return, and the slot stays in registers from the look that sees
    /// the message to the copy (the copying receives into a caller's
    /// buffer use it; with `slot_at` the slot went through the stack).
    #[inline(always)]
    fn receive<T>(
        &mut self,
        deadline: Deadline,
        mut take: impl FnMut(&mut Self, Slot) -> Result<T>,
    ) -> Result<T> {
        if let Some(slot) = self.fast_slot(deadline) {
            return take(self, slot);
        }
        let slot = self.slow_slot(deadline)?;
        take(self, slot)
    }

    /// The next message's slot: [`fast_slot`](Self::fast_slot) in line,
    /// else [`slow_slot`](Self::slow_slot).
    #[inline(always)]
    fn slot_at(&self, deadline: Deadline) -> Result<Slot> {
        match self.fast_slot(deadline) {
            Some(slot) => Ok(slot),
            None => self.slow_slot(deadline),
        }
    }

    /// The fast look, in line: for [`Deadline::Now`] a committed message
    /// at the head ([`Ring::peek_fast`]); else the quick spin
    /// ([`Ring::spin_for_message`], as many turns as
    /// [`WaitStrategy::quick_turns`] allows, none for `Block`).
    #[inline(always)]
    fn fast_slot(&self, deadline: Deadline) -> Option<Slot> {
        match deadline {
            Deadline::Now => self.ring.peek_fast(),
            _ => self.ring.spin_for_message(self.quick),
        }
    }

    /// The rest, out of line: for [`Deadline::Now`] the general look and
    /// the senders' check ([`poll_slow`](Self::poll_slow)); else the
    /// wait as the wait strategy says ([`wait_slot`](Self::wait_slot)).
    #[inline(never)]
    fn slow_slot(&self, deadline: Deadline) -> Result<Slot> {
        match deadline {
            Deadline::Now => self.shared().or_truncated(self.poll_slow()),
            d => self.wait_slot(d),
        }
    }

    /// Copies a peeked message into the front of `buf` and hands its space
    /// back; a message longer than `buf` stays where it is.
    #[inline(always)]
    fn take_into(&mut self, slot: Slot, buf: &mut [u8]) -> Result<usize> {
        let n = slot.len as usize;
        let Some(dst) = buf.get_mut(..n) else {
            return Err(Error::MessageTooLarge {
                len: n,
                max: buf.len(),
            });
        };
        self.ring.read(&slot, 0, dst)?;
        self.ring.release(&slot);
        Ok(n)
    }

    /// Copies a peeked message into a new vector and hands its space back.
    fn take_vec(&mut self, slot: Slot) -> Result<Vec<u8>> {
        let mut v = vec![0; slot.len as usize];
        self.take_into(slot, &mut v)?;
        Ok(v)
    }

    /// Borrows the next message in place (zero-copy), waiting while empty.
    /// Its space goes back to the senders when the [`MessageRef`] drops.
    #[doc(alias = "zero-copy")]
    #[inline]
    pub fn recv_ref(&mut self) -> Result<MessageRef<'_>> {
        let slot = self.slot_at(Deadline::Never)?;
        Ok(MessageRef { rx: self, slot })
    }

    /// Like [`recv_ref`](Self::recv_ref), waiting at most `timeout`.
    /// (Returned [`Error`] before.)
    pub fn recv_ref_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<MessageRef<'_>, RecvTimeoutError> {
        let slot = self
            .slot_at(Deadline::after(timeout))
            .map_err(RecvTimeoutError::from)?;
        Ok(MessageRef { rx: self, slot })
    }

    /// Like [`recv_ref`](Self::recv_ref) without waiting. (Returned
    /// [`Error`] before.)
    pub fn try_recv_ref(&mut self) -> Result<MessageRef<'_>, TryRecvError> {
        let slot = self.slot_at(Deadline::Now).map_err(TryRecvError::from)?;
        Ok(MessageRef { rx: self, slot })
    }

    /// The message at the head, if one is ready now, without taking it
    /// (`WouldBlock` when empty): for the async `recv_ref`, which then
    /// makes it a [`MessageRef`] with [`ref_of`](Self::ref_of).
    #[cfg(feature = "tokio")]
    pub(crate) fn peek_now(&self) -> Result<Slot> {
        self.slot_at(Deadline::Now)
    }

    /// The [`MessageRef`] of a slot [`peek_now`](Self::peek_now) found.
    #[cfg(feature = "tokio")]
    pub(crate) fn ref_of(&mut self, slot: Slot) -> MessageRef<'_> {
        MessageRef { rx: self, slot }
    }

    /// The message a `try_` receive takes, if one is ready now, past the
    /// fast look ([`fast_slot`](Self::fast_slot)).
    fn poll_slow(&self) -> Result<Slot> {
        if let Some(slot) = self.attempt()? {
            return Ok(slot);
        }
        // Nothing now: are the senders still there? A killed sender is
        // noticed through /proc, at most once per slice (on the coarse
        // clock: an empty poll in a loop must stay cheap). A sender that
        // attaches or detaches bumps the senders' generation, so while it
        // is unchanged the senders' slots need no look: reading them on
        // every empty poll would pull the line a sender writes on every
        // send away from it.
        let now = crate::sys::time::coarse_millis();
        let slow = self
            .last_check
            .get()
            .is_none_or(|t| now.wrapping_sub(t) >= super::wait::SLICE.as_millis() as u64)
            || self.take_dead_seen();
        if slow {
            self.last_check.set(Some(now));
        }
        // Not remembered while no sender is attached: `Disconnected` is
        // told on every call.
        if slow || self.senders_seen.get() != Some(self.generation()) {
            self.check_peer(slow)?;
            if let Some(slot) = self.attempt()? {
                return Ok(slot);
            }
        }
        Err(Error::WouldBlock)
    }

    /// Receives a value sent with [`Sender::send_typed`](super::Sender::send_typed).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn recv_typed<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.recv()?;
        postcard::from_bytes(&bytes).map_err(|e| {
            Error::io(
                "postcard decode",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Receives a plain-old-data value sent with
    /// [`Sender::send_pod`](super::Sender::send_pod) (one copy, straight into
    /// the returned value).
    pub fn recv_pod<T: zerocopy::FromBytes + zerocopy::IntoBytes>(&mut self) -> Result<T> {
        self.recv_ref()?.read_pod()
    }

    fn attempt(&self) -> Result<Option<Slot>> {
        match self.ring.peek()? {
            Peek::Message(slot) => Ok(Some(slot)),
            Peek::Empty => Ok(None),
        }
    }

    /// Whether any sender is attached (`check_liveness`: and alive, judged
    /// by `/proc`) or may still come (none ever attached).
    fn senders_present(&self, check_liveness: bool) -> bool {
        let shared = self.shared();
        shared.header().peers.0.senders_ever.load(Acquire) == 0
            || shared.any_sender_alive(check_liveness, self.ring.head())
    }

    /// The senders' generation word (bumped after every attach and detach).
    fn generation(&self) -> u64 {
        self.shared().header().peers.0.generation.load(Acquire)
    }

    /// Looks at the senders: skips a record whose sender died before
    /// publishing it, and returns [`Error::Disconnected`] once no sender is
    /// left and the ring is drained. `slow`: judge liveness through `/proc`
    /// (done once per [`SLICE`](super::wait::SLICE)), else only notice
    /// senders that detached.
    fn check_peer(&self, slow: bool) -> Result<()> {
        // Before a sleep, now and then while spinning, and when a poll
        // finds nothing: the senders' pidfds are watched from then on (one
        // load while the senders are the same), so a death is told here
        // at the next look.
        self.watch_senders();
        let slow = slow || self.take_dead_seen();
        let r = self.look_at_senders(slow);
        // What was just read may be zeros of a truncated segment: that,
        // not what they seem to say, is the news. The size too, now and
        // then: a cut that removed no page we touch faults nowhere.
        self.shared().check(slow)?;
        r
    }

    /// Whether a sender was reported dead since the last look (and clears
    /// the report).
    #[inline]
    fn take_dead_seen(&self) -> bool {
        self.watch.take_dead_seen()
    }

    /// At every look at the senders: watches their pidfds (see
    /// [`SenderWatch::watch_senders`]).
    #[inline]
    fn watch_senders(&self) {
        self.watch.watch_senders();
    }

    /// The channel's side of a [`WaitSet`](crate::waitset::WaitSet).
    pub(crate) fn sender_watch(&self) -> Arc<SenderWatch> {
        self.watch.clone()
    }

    /// [`check_peer`](Self::check_peer) before the segment check.
    fn look_at_senders(&self, slow: bool) -> Result<()> {
        // Senders bump the generation after they attach or detach: while it
        // holds the value seen when they were last found attached, they
        // still are (a killed one is found by the slow look), and their
        // slots need no reading — one of them is the line a sender writes
        // on every send, a cache miss before every sleep.
        let generation = self.generation();
        if !slow && self.senders_seen.get() == Some(generation) {
            return Ok(());
        }
        let senders = self.senders_present(slow);
        self.senders_seen.set(senders.then_some(generation));
        if (slow || !senders)
            && self
                .ring
                .skip_dead(|id| !Identity::from_raw(id).is_alive())?
        {
            self.skipped.set(self.skipped.get() + 1);
            return Ok(());
        }
        // Publication happens before a sender detaches, so a ring seen
        // empty after "no senders" stays empty.
        match self.ring.peek()? {
            Peek::Empty if !senders => Err(Error::Disconnected),
            _ => Ok(()),
        }
    }

    /// The next message, waiting as the wait strategy says (at most until
    /// `deadline`). A spinning turn is one load ([`Ring::head_ready`]), and
    /// every look tries the fast peek first (`block_on`'s first look is
    /// the no-wait fast path). Reached through
    /// [`slow_slot`](Self::slow_slot), which keeps it out of line.
    fn wait_slot(&self, deadline: Deadline) -> Result<Slot> {
        let ring = &self.ring;
        let attempt = || -> Result<Option<Slot>> {
            if let Some(slot) = ring.peek_fast() {
                return Ok(Some(slot));
            }
            match ring.peek()? {
                Peek::Message(slot) => Ok(Some(slot)),
                _ => Ok(None),
            }
        };
        let check_peer = |slow: bool| self.check_peer(slow);
        let r = block_on(
            self.wait,
            ring.rx_word(),
            deadline,
            || ring.head_ready(),
            attempt,
            || ring.prepare_rx_wait(),
            check_peer,
        );
        self.shared().or_truncated(r)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let word = &self.shared().header().peers.0.receiver;
        let _ = word.compare_exchange(self.me, self.leave, Release, Relaxed);
        self.ring.kick(self.ring.tx_word());
    }
}

/// A received message, borrowed in place in shared memory (zero-copy). Its
/// space is handed back to the senders when this is dropped.
///
/// Soundness: the bytes live in the ring region between the receiver's head
/// and the senders' reserve index, which a *correct* sender never writes
/// until the receiver releases it. A buggy or hostile sender process could
/// still write it, and Rust's `&[u8]` promises the bytes do not change while
/// borrowed, so the safe accessors copy out
/// ([`copy_to`](Self::copy_to), [`read_at`](Self::read_at),
/// [`to_vec`](Self::to_vec), [`read_pod`](Self::read_pod)); a view as
/// `&[u8]` is offered only as the `unsafe` [`as_slice`](Self::as_slice),
/// whose caller vouches for the senders.
pub struct MessageRef<'a> {
    rx: &'a mut Receiver,
    slot: Slot,
}

impl std::fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageRef")
            .field("len", &self.slot.len)
            .finish()
    }
}

impl MessageRef<'_> {
    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        self.slot.len as usize
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.slot.len == 0
    }

    /// Copies the message into `dst`, which must have its exact length.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<()> {
        if dst.len() != self.len() {
            return Err(Error::InvalidArgument(format!(
                "buffer of {} bytes for a message of {} bytes",
                dst.len(),
                self.len()
            )));
        }
        self.rx.ring.read(&self.slot, 0, dst)
    }

    /// Copies `dst.len()` bytes starting at `offset` of the message.
    #[inline]
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.rx.ring.read(&self.slot, offset as u64, dst)
    }

    /// Copies the message into a new vector. [`Error::Truncated`] if a
    /// peer truncated the segment (the copy read zeros).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0; self.len()];
        self.rx.ring.read(&self.slot, 0, &mut v)?;
        Ok(v)
    }

    /// [`Error::Truncated`] once another process truncated the channel's
    /// segment. The copying accessors check this themselves; call it after
    /// reading through [`as_ptr`](Self::as_ptr), before trusting what was
    /// read (a page lost to truncation reads as zeros).
    pub fn check_intact(&self) -> Result<()> {
        self.rx.shared().segment().check_intact()
    }

    /// Reads the message as a plain-old-data value (its length must be the
    /// type's size).
    pub fn read_pod<T: zerocopy::FromBytes + zerocopy::IntoBytes>(&self) -> Result<T> {
        let mut v = T::new_zeroed();
        let bytes = v.as_mut_bytes();
        if bytes.len() != self.len() {
            return Err(Error::InvalidArgument(format!(
                "message of {} bytes is not a {} ({} bytes)",
                self.len(),
                std::any::type_name::<T>(),
                bytes.len()
            )));
        }
        self.copy_to(bytes)?;
        Ok(v)
    }

    /// Address of the message's first byte (8-aligned), valid for reads of
    /// [`len`](Self::len) bytes while this `MessageRef` lives. Read through
    /// it with `ptr::read`/`copy_nonoverlapping`/`read_volatile`, then
    /// call [`check_intact`](Self::check_intact).
    pub fn as_ptr(&self) -> *const u8 {
        self.rx.ring.memory().ptr(self.slot.off)
    }

    /// The message as a byte slice, without copying.
    ///
    /// # Safety
    ///
    /// No other process may write these bytes while the slice lives. Correct
    /// senders never do (the region is the receiver's until this
    /// `MessageRef` drops); the caller vouches that every process with the
    /// channel mapped is a correct ipcworks sender.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: in bounds (checked when peeked); the caller guarantees no
        // concurrent writer for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }
}

impl Drop for MessageRef<'_> {
    #[inline]
    fn drop(&mut self) {
        self.rx.ring.release(&self.slot);
    }
}

/// Blocking iterator over a [`Receiver`]'s messages ([`Receiver::iter`]):
/// [`message::Iter`](crate::message::Iter) over a receiver.
pub type Iter<'a> = crate::message::Iter<'a, Receiver>;

/// Iterator over the messages a [`Receiver`] has now
/// ([`Receiver::try_iter`]).
pub type TryIter<'a> = crate::message::TryIter<'a, Receiver>;

impl MessageReceiver for Receiver {
    /// [`Receiver::recv`] with a deadline; the [`Meta`] is the default (the
    /// channel carries bytes only).
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        self.recv_at(deadline).map(|msg| (msg, Meta::default()))
    }

    /// Copies straight from the ring into `buf`, reusing its allocation.
    fn recv_into_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Meta> {
        self.recv_into_at(buf, deadline).map(|()| Meta::default())
    }
}
