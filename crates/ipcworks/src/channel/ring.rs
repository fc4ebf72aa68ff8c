//! The ring protocol: variable-size records in a byte ring, several
//! producers, one consumer, over memory that another process may scribble on.
//!
//! This module knows nothing of `mmap` or futexes: memory comes through the
//! [`Memory`] trait, so the same code runs between processes (over a
//! [`Segment`](crate::shm::Segment)) and under loom with threads.
//!
//! # Layout
//!
//! The data area is `cap` bytes (a power of two). Positions are `u64` byte
//! counters that only grow; a position's place in the ring is `pos % cap`.
//! A record starts at a multiple of [`RECORD_ALIGN`] (a cache line) and is
//!
//! ```text
//! +--------+--------+----------+----------------------+---------+
//! | stamp  |  len   | (unused) | payload (len bytes)  | padding |  (to 64 bytes)
//! +--------+--------+----------+----------------------+---------+
//!  <------ header: one cache line ------>
//! ```
//!
//! or, for a payload of at most [`INLINE`] (48) bytes, one line in all:
//!
//! ```text
//! +--------+--------+----------------------+---------+
//! | stamp  |  len   | payload (len bytes)  | padding |  (to 64 bytes)
//! +--------+--------+----------------------+---------+
//! ```
//!
//! Records own whole cache lines: two records never share a line (the
//! producer writing one never takes a line from under the consumer reading
//! the one before). A payload longer than [`INLINE`] starts on a line of
//! its own, so big copies run line-aligned (measured against 16-byte
//! headers at 8-byte alignment: 64-byte messages stream 30–50% faster,
//! round trips and big messages are unchanged); a shorter one shares the
//! header's line, so that it crosses between the cores with the stamp as
//! one line ([`payload_at`]).
//!
//! `stamp = ((pos ^ key) & !7) | state`: the record's own position mixed
//! with a per-channel random key, plus a state in the low three bits. A
//! stale word left from an earlier lap, or payload bytes that happen to sit
//! where a header is expected, never carry the stamp of the *current*
//! position, so the consumer cannot mistake them for a record.
//!
//! States: `MESSAGE` (committed), `SKIP` (abandoned: skip `len`), `PAD` (the
//! rest of the lap is unused: the next record starts at the ring's
//! beginning; only the stamp word is written). Records never wrap.
//!
//! # Producers
//!
//! Each producer has a slot of [`SenderWords`] (its identity and the record
//! it has in flight). Producers reserve under a small lock word holding the
//! holder's identity (so a holder killed inside its critical section can be
//! detected and the lock taken over). Under the lock: read `reserve`, check
//! free space against `head`, write a `PAD` stamp if the record would cross
//! the ring's end, note the reservation in the producer's slot, advance
//! `reserve`, unlock. The payload is then written outside the lock, then
//! `len` and the `MESSAGE` stamp (`Release`) — all on the record's own cache
//! lines, in one burst, so the consumer polling the stamp pulls the line
//! once. The consumer stops at the first record that is not committed; a
//! reservation whose producer died is found through the producers' slots
//! and skipped ([`Ring::skip_dead`]), so a producer killed mid-write never
//! delivers a half-written message and never blocks the others for ever.
//!
//! # Consumer
//!
//! The consumer keeps its own copy of `head` (never re-read from shared
//! memory), reads the stamp at `head` with `Acquire`, checks every length
//! and offset, copies or lends the payload, then publishes `head + span` with
//! `Release`, which hands the space back to producers. While nothing is
//! committed at its head it prefetches the cache line(s) after the stamp's,
//! so a small message's payload crosses between the cores together with its
//! stamp rather than after it.
//!
//! # Fast paths
//!
//! [`Ring::try_reserve_fast`] and [`Ring::peek_fast`] are the common cases
//! of [`Ring::try_reserve`] and [`Ring::peek`] (lock free, room without
//! padding; a committed message at the head) in a few instructions, with
//! the same atomic operations and orderings. Anything else — padding, a
//! full ring, a busy lock, a skipped record, a value that fails a check —
//! makes them decline, and the general path handles and reports it.
//!
//! # Waiting without lost wake-ups
//!
//! See `channel/wake.rs`: the futex hand-shake, and the asymmetric fence
//! that lets publications be plain stores.

use std::cell::Cell;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::fault::{self, Fault};
use crate::primitive::{AtomicU32, AtomicU64};
use crate::{Error, Result};

/// Records start at multiples of this many bytes (a cache line).
pub const RECORD_ALIGN: u64 = 64;
/// Bytes of a record header (stamp, length, then unused to the end of the
/// line, so that the payload starts on a line of its own).
pub const HEADER: u64 = 64;
/// The longest payload kept in the header's line, after the stamp and the
/// length (see [`payload_at`]).
pub const INLINE: u64 = HEADER - 16;

/// Where a record's payload of `len` bytes starts, from the record's
/// start: in the header's line after the stamp and the length for at most
/// [`INLINE`] bytes, else on the next line.
#[inline(always)]
pub fn payload_at(len: u64) -> u64 {
    if len <= INLINE { 16 } else { HEADER }
}

pub(super) const STATE_MASK: u64 = 7;
pub(super) const MESSAGE: u64 = 2;
pub(super) const SKIP: u64 = 3;
pub(super) const PAD: u64 = 4;

/// Bytes a record of `len` payload bytes occupies (header + payload, rounded
/// up to [`RECORD_ALIGN`]: one line for at most [`INLINE`] bytes); `None`
/// on overflow.
#[inline(always)]
pub fn span(len: u64) -> Option<u64> {
    len.checked_add(payload_at(len) + RECORD_ALIGN - 1)
        .map(|n| n & !(RECORD_ALIGN - 1))
}

/// A value on a cache line of its own, so the producer's and the consumer's
/// words never share a line (no false sharing).
#[repr(C, align(64))]
#[derive(Default)]
pub struct CacheLine<T>(pub T);

/// The producers' words.
#[repr(C)]
#[derive(Default)]
pub struct ProducerWords {
    /// Next free position (bytes). Written only under `lock`.
    pub reserve: AtomicU64,
    /// Reservation lock: 0 when free, else the holder's identity.
    pub lock: AtomicU64,
}

/// One producer's slot: who it is and what it has reserved but not yet
/// committed. Written by its producer (and cleared by the consumer once the
/// producer is dead and its reservation resolved).
#[repr(C)]
#[derive(Default)]
pub struct SenderWords {
    /// The producer's identity, 0 when the slot is free.
    pub id: AtomicU64,
    /// Position + 1 of the producer's last reservation (0: none).
    pub inflight: AtomicU64,
    /// Payload length of that reservation; for a batch, the bytes of the
    /// whole reservation after its first header (see
    /// [`Ring::skip_dead`]).
    pub inflight_len: AtomicU64,
    /// 1 while this producer, in solo mode, is between its look at the
    /// lock and the end of its reservation; 0 otherwise (see
    /// `channel/publish.rs`).
    pub busy: AtomicU64,
}

/// The consumer's futex word and beside it, on the same line (the
/// publisher reads both with one miss at most), the mode that says whether
/// publishers must fence (see "Fencing only while the consumer sleeps" in
/// `channel/wake.rs`).
#[repr(C)]
#[derive(Default)]
pub struct RxWait {
    /// The futex word: bit 0 "the consumer sleeps", the rest an epoch.
    pub word: AtomicU32,
    /// [`FENCED`](super::wake::FENCED), [`BARRIERED`](super::wake::BARRIERED)
    /// and an episode count above them.
    pub mode: AtomicU32,
}

/// The futex words both sides sleep on, each on its own cache line: a
/// waker clears the flag in one while its own side's word stays in its
/// cache (sharing a line cost a cache miss on every blocking hand-off).
#[repr(C)]
#[derive(Default)]
pub struct WaitWords {
    /// The consumer sleeps here while the ring is empty.
    pub rx: CacheLine<RxWait>,
    /// Producers sleep here while the ring is full.
    pub tx: CacheLine<AtomicU32>,
}

/// The ring's control words, each side on its own cache line.
#[repr(C)]
#[derive(Default)]
pub struct Control {
    /// Producers' line.
    pub producer: CacheLine<ProducerWords>,
    /// Consumer's line: position of the next record to read.
    pub head: CacheLine<AtomicU64>,
    /// Futex words (read-mostly: written only around sleeps).
    pub wait: WaitWords,
}

/// Where a ring's control words and data area live, and how to wake a
/// sleeper. Implemented over shared memory by the channel and over loom
/// atomics by the model test.
///
/// # Safety
///
/// `control` and `word` must return references valid for `&self`'s
/// lifetime; `write`/`read` must copy within a data area of
/// [`capacity`](Memory::capacity) bytes when `off + len <= capacity`.
pub unsafe trait Memory {
    /// The control words.
    fn control(&self) -> &Control;
    /// The producers' slots.
    fn senders(&self) -> &[CacheLine<SenderWords>];
    /// The data area's size in bytes (a power of two, multiple of 8).
    fn capacity(&self) -> u64;
    /// The 8-aligned word at `off` of the data area (`off + 8 <= capacity`,
    /// checked by the caller).
    fn word(&self, off: u64) -> &AtomicU64;
    /// Copies `src` into the data area at `off`.
    ///
    /// # Safety
    /// `off + src.len() <= capacity()`, and `off` is 8-aligned.
    unsafe fn write(&self, off: u64, src: &[u8]);
    /// Copies `dst.len()` bytes out of the data area at `off`.
    ///
    /// # Safety
    /// `off + dst.len() <= capacity()`, and `off` is 8-aligned.
    unsafe fn read(&self, off: u64, dst: &mut [u8]);
    /// Wakes every thread sleeping on `word` (a futex wake).
    fn wake(&self, word: &AtomicU32);
    /// Called after every copy out of the data area, before the bytes are
    /// used: [`Error::Truncated`] once a peer truncated the segment (lost
    /// pages read as zeros). By default, memory that cannot be lost.
    #[inline]
    fn check(&self) -> Result<()> {
        Ok(())
    }
    /// A hint: the cache line holding data-area byte `off` will be read
    /// soon; an `off` at or past the capacity is passed over. Never reads
    /// memory in the language's sense.
    fn prefetch(&self, _off: u64) {}
    /// A hint: this side will write the cache line holding data-area byte
    /// `off`; ask for it in exclusive state. An `off` at or past the
    /// capacity is passed over. Never touches memory in the language's
    /// sense.
    fn prefetch_write(&self, _off: u64) {}
    /// Whether this process may publish with plain stores (no full fence
    /// between its store and its look at the sleeper's flag), because
    /// every sleeper issues [`fence_others`](Memory::fence_others) before
    /// its re-check and reaches this process with it. By default no.
    fn plain_publish(&self) -> bool {
        false
    }
    /// The sleeper's half of the asymmetric fence: a full barrier in every
    /// thread of every process that publishes with plain stores, before
    /// this returns (`membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` between
    /// processes; the loom model issues a `SeqCst` fence). Returns whether
    /// it was issued. By default nothing is needed: nobody publishes
    /// plainly.
    fn fence_others(&self) -> bool {
        true
    }
    /// Whether the planted bug `fault` is switched on (tests only; see
    /// `channel/fault.rs`). By default, as the process's environment says.
    fn fault(&self, fault: Fault) -> bool {
        fault::from_env(fault)
    }
}

/// Space reserved by a producer: write `len` bytes at `off`, then commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The record's position.
    pub pos: u64,
    /// Offset of the payload in the data area.
    pub off: u64,
    /// Payload length.
    pub len: u64,
}

/// What [`Ring::try_reserve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Space is ours.
    Ok(Slot),
    /// Not enough free space now.
    Full,
    /// Another producer holds the reservation lock (its identity).
    Busy(u64),
}

/// What [`Ring::peek`] found at the consumer's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// A committed message.
    Message(Slot),
    /// Nothing committed yet at the head (perhaps reserved by a producer
    /// that is writing it, or that died: see [`Ring::skip_dead`]).
    Empty,
}

/// One end's view of a ring. Parameters are copied in at creation and never
/// re-read from shared memory.
pub struct Ring<M> {
    pub(super) mem: M,
    pub(super) cap: u64,
    pub(super) mask: u64,
    pub(super) max: u64,
    pub(super) key: u64,
    /// Producer: last `head` seen. Consumer: its own head.
    pub(super) cached: Cell<u64>,
    /// This process publishes with plain stores ([`Memory::plain_publish`]).
    pub(super) plain: bool,
    /// Producer: this view holds the reservation lock in solo mode (see
    /// `channel/publish.rs`).
    pub(super) solo: Cell<bool>,
    /// Consumer: messages released since it last looked at the mode word
    /// (see [`Ring::relax_mode`]).
    pub(super) calm: Cell<u32>,
}

impl<M: Memory> Ring<M> {
    /// A view of the ring in `mem` for messages of at most `max` bytes.
    /// The consumer starts at `head` (read once from shared memory by the
    /// caller and validated here).
    pub fn new(mem: M, max: u64, key: u64, head: u64) -> Result<Self> {
        let plain = mem.plain_publish();
        Self::build(mem, max, key, head, plain)
    }

    /// A view that only looks and announces sleepers (a helper's
    /// [`head_ready`](Self::head_ready), `room_for` (feature `tokio`),
    /// [`queued`](Self::queued), `prepare_*_wait`): it never publishes,
    /// so it does not ask [`Memory::plain_publish`], whose first answer
    /// in a process registers it for `membarrier` and whose every answer
    /// costs a `getpid` (a fork must register again). Publishing through
    /// it is correct, only fenced.
    pub fn looking(mem: M, max: u64, key: u64, head: u64) -> Result<Self> {
        Self::build(mem, max, key, head, false)
    }

    fn build(mem: M, max: u64, key: u64, head: u64, plain: bool) -> Result<Self> {
        let cap = mem.capacity();
        let big_enough = span(max)
            .and_then(|s| s.checked_mul(2))
            .is_some_and(|s| s <= cap);
        if !cap.is_power_of_two() || cap < 64 || !big_enough || !head.is_multiple_of(RECORD_ALIGN) {
            return Err(Error::corrupted(format!(
                "ring layout: capacity {cap}, max message {max}, head {head}"
            )));
        }
        Ok(Ring {
            cap,
            mask: cap - 1,
            max,
            key,
            cached: Cell::new(head),
            plain,
            solo: Cell::new(false),
            calm: Cell::new(0),
            mem,
        })
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Largest payload.
    pub fn max(&self) -> u64 {
        self.max
    }

    pub(super) fn stamp(&self, pos: u64, state: u64) -> u64 {
        ((pos ^ self.key) & !STATE_MASK) | state
    }

    pub(super) fn ctl(&self) -> &Control {
        self.mem.control()
    }

    // ----- producer side -----

    /// Tries to reserve a record of `len` bytes (`len <= max`, checked by the
    /// caller) for the producer `id` (non-zero, stored in the lock) whose
    /// slot is `me`; `steal` takes the lock over from that (dead) holder
    /// instead of from "free".
    pub fn try_reserve(
        &self,
        len: u64,
        id: u64,
        me: &SenderWords,
        steal: Option<u64>,
    ) -> Result<Reserve> {
        debug_assert!(self.fits_one_lap(len) && id != 0);
        let lock = &self.ctl().producer.0.lock;
        if self.solo.get()
            && steal.is_none()
            && let Some(r) = self.solo_section(id, me, || self.reserve_locked(len, me))
        {
            return r;
        }
        if let Err(owner) = lock.compare_exchange(steal.unwrap_or(0), id, Acquire, Relaxed) {
            return Ok(Reserve::Busy(owner));
        }
        // Tests kill a producer here, holding the lock (a dead holder).
        crate::fault::abort_point("channel-producer-locked");
        if let Some(dead) = steal {
            self.repair_after(dead);
        }
        let r = self.reserve_locked(len, me);
        lock.store(0, Release);
        r
    }

    /// Whether a record of `len` payload bytes (or a batch of that many
    /// bytes after its first header) may be reserved: at most half the
    /// ring, so that with the padding before it it never needs more than
    /// the ring.
    pub(super) fn fits_one_lap(&self, len: u64) -> bool {
        span(len).is_some_and(|s| s <= self.cap / 2)
    }

    /// The producer's fast path: the lock is free (or this producer holds
    /// it in solo mode), the record fits before the ring's end, and the
    /// last `head` seen leaves room. `None` when any of that fails (or a
    /// value read looks wrong): the caller then takes the general path,
    /// [`try_reserve`](Self::try_reserve), which also reports what went
    /// wrong. Same effect as `try_reserve` when it succeeds.
    #[inline(always)]
    pub fn try_reserve_fast(&self, len: u64, id: u64, me: &SenderWords) -> Option<Slot> {
        debug_assert!(self.fits_one_lap(len) && id != 0);
        let span = span(len)?;
        let pos = if self.solo.get() {
            self.solo_section(id, me, || self.reserve_fast_locked(span, len, me))
                .flatten()
        } else {
            let p = &self.ctl().producer.0;
            if p.lock.compare_exchange(0, id, Acquire, Relaxed).is_err() {
                return None;
            }
            let pos = self.reserve_fast_locked(span, len, me);
            p.lock.store(0, Release);
            pos
        }?;
        Some(self.record_slot(pos, len))
    }

    /// Under the lock: `try_reserve_fast`'s reservation of `span` bytes
    /// (`len` noted), if it needs no padding and the last `head` seen
    /// leaves room.
    #[inline(always)]
    fn reserve_fast_locked(&self, span: u64, len: u64, me: &SenderWords) -> Option<u64> {
        let r = self.ctl().producer.0.reserve.load(Relaxed);
        let off = r & self.mask;
        let fits = r.is_multiple_of(RECORD_ALIGN)
            && off + span <= self.cap
            && r.wrapping_sub(self.cached.get()) <= self.cap - span;
        let end = r.checked_add(span).filter(|_| fits)?;
        self.note_reservation(me, r, len, end);
        Some(r)
    }

    /// The padding a record of `span` bytes reserved at position `r`
    /// needs first: what is left before the ring's end when it would not
    /// fit there (records never wrap), else none.
    fn pad_before(&self, r: u64, span: u64) -> u64 {
        let off = r & self.mask;
        if off + span > self.cap {
            self.cap - off
        } else {
            0
        }
    }

    fn reserve_locked(&self, len: u64, me: &SenderWords) -> Result<Reserve> {
        let p = &self.ctl().producer.0;
        let r = p.reserve.load(Relaxed);
        let bad = || Error::corrupted(format!("ring reserve index {r}"));
        if !r.is_multiple_of(RECORD_ALIGN) {
            return Err(bad());
        }
        let span = span(len).ok_or_else(bad)?;
        let pad = self.pad_before(r, span);
        let total = pad + span; // both ≤ cap: no overflow
        let end = r.checked_add(total).ok_or_else(bad)?;
        let mut head = self.cached.get();
        if r.wrapping_sub(head) > self.cap - total {
            head = self.ctl().head.0.load(Acquire);
            if head > r || r - head > self.cap || !head.is_multiple_of(RECORD_ALIGN) {
                return Err(Error::corrupted(format!(
                    "ring head {head} does not fit reserve {r} (capacity {})",
                    self.cap
                )));
            }
            self.cached.set(head);
            if r - head > self.cap - total {
                return Ok(Reserve::Full);
            }
        }
        if pad > 0 {
            self.mem
                .word(r & self.mask)
                .store(self.stamp(r, PAD), Release);
        }
        let pos = r + pad;
        self.note_reservation(me, pos, len, end);
        Ok(Reserve::Ok(self.record_slot(pos, len)))
    }

    /// Under the lock: notes the record at `pos` of `len` bytes in the
    /// producer's slot (so a consumer can skip it if the producer dies
    /// before committing), then moves `reserve` to `end`. Release: the
    /// note, and a PAD stamp written before, are visible to whoever sees
    /// the new `reserve`.
    #[inline(always)]
    fn note_reservation(&self, me: &SenderWords, pos: u64, len: u64, end: u64) {
        me.inflight_len.store(len, Relaxed);
        me.inflight.store(pos + 1, Relaxed);
        self.ctl().producer.0.reserve.store(end, Release);
    }

    /// Copies `src` into a reserved slot at byte `at` of its payload.
    pub fn write(&self, slot: &Slot, at: u64, src: &[u8]) -> Result<()> {
        let end = at.checked_add(src.len() as u64);
        if end.is_none_or(|e| e > slot.len) {
            return Err(Error::InvalidArgument(format!(
                "write of {} bytes at {at} does not fit a slot of {} bytes",
                src.len(),
                slot.len
            )));
        }
        if at.is_multiple_of(8) {
            // SAFETY: slot.off + slot.len <= cap (made by reserve_locked),
            // and at + src.len() <= slot.len; slot.off is 8-aligned.
            unsafe { self.mem.write(slot.off + at, src) };
        } else {
            self.write_unaligned(slot.off + at, src);
        }
        Ok(())
    }

    fn write_unaligned(&self, off: u64, src: &[u8]) {
        // Read-modify-write of the first partial word keeps `Memory::write`
        // 8-aligned (the loom model stores whole words).
        let base = off & !7;
        let lead = (off - base) as usize;
        let mut first = [0u8; 8];
        let n = src.len().min(8 - lead);
        // SAFETY: the slot's payload offset is 8-aligned, so
        // slot.off <= base < off: the bytes base..off are in the slot.
        unsafe { self.mem.read(base, &mut first[..lead]) };
        first[lead..lead + n].copy_from_slice(&src[..n]);
        // SAFETY: base + lead + n = off + n <= cap.
        unsafe { self.mem.write(base, &first[..lead + n]) };
        if n < src.len() {
            // SAFETY: off + n is 8-aligned and off + src.len() <= cap.
            unsafe { self.mem.write(off + n as u64, &src[n..]) };
        }
    }

    /// The slot of a record at position `pos` with a payload of `len`
    /// bytes: its payload's offset follows from both ([`payload_at`]).
    #[inline(always)]
    pub(super) fn record_slot(&self, pos: u64, len: u64) -> Slot {
        Slot {
            pos,
            off: (pos & self.mask) + payload_at(len),
            len,
        }
    }

    /// Writes a record's length and its `MESSAGE` stamp with plain
    /// (`Relaxed`) stores: a batch's records after its first, which the
    /// first's publication makes visible (`channel/publish.rs`).
    pub(super) fn stamp_quietly(&self, slot: &Slot) {
        let o = slot.pos & self.mask;
        self.mem.word(o + 8).store(slot.len, Relaxed);
        self.mem
            .word(o)
            .store(self.stamp(slot.pos, MESSAGE), Relaxed);
    }

    /// Raw address of a reserved slot's payload, for [`Memory`]
    /// implementations that have one.
    pub fn slot_offset(&self, slot: &Slot) -> u64 {
        slot.off
    }

    /// Publishes a reserved slot and wakes the consumer if it sleeps.
    #[inline(always)]
    pub fn commit(&self, slot: &Slot) {
        self.finish(slot, MESSAGE);
    }

    /// Gives up a reserved slot: the consumer skips it.
    pub fn abandon(&self, slot: &Slot) {
        self.finish(slot, SKIP);
    }

    #[inline(always)]
    pub(super) fn finish(&self, slot: &Slot, state: u64) {
        let o = slot.pos & self.mask;
        self.mem.word(o + 8).store(slot.len, Relaxed);
        self.publish(self.mem.word(o), self.stamp(slot.pos, state));
        // (`publish` has looked at the consumer's mode: fenced if asked.)
        // Ask for the payload's first line back in exclusive state at once.
        // An empirical finding, not a derived one: on the machine this was
        // written on it took a spinning round trip of 64-byte messages from
        // 1.17-1.32x the bare two-line hand-off (`ipcworks bench`'s `bare`
        // row) to 0.99-1.15x (eleven alternating runs), with streams
        // unchanged; a read prefetch of the same line instead made round
        // trips a third slower. Measured again on today's code (five
        // alternating pairs of `bench --only bare,shm-spin`), a build
        // without it gave the same round trips (190-221 ns against
        // 190-230, 49 ns over bare's same round against 50): kept, as it
        // costs nothing measurable either way.
        if slot.len > 0 {
            self.mem.prefetch_write(slot.off);
        }
        self.wake_if_flagged(&self.ctl().wait.rx.0.word);
    }

    /// Whether a record of `len` payload bytes would fit now, taking
    /// nothing: [`reserve_locked`](Self::reserve_locked)'s arithmetic on
    /// the current `reserve` and `head` (a waiting producer's look before
    /// it sleeps). A hint; values that make no sense say `true`, so the
    /// reservation that follows reports them.
    #[cfg(feature = "tokio")]
    pub fn room_for(&self, len: u64) -> bool {
        let r = self.ctl().producer.0.reserve.load(Acquire);
        let head = self.ctl().head.0.load(Acquire);
        let Some(span) = span(len) else {
            return true;
        };
        let pad = self.pad_before(r, span);
        match (r.checked_sub(head), pad.checked_add(span)) {
            (Some(used), Some(total)) if used <= self.cap && total <= self.cap => {
                used <= self.cap - total
            }
            _ => true,
        }
    }

    // ----- consumer side -----

    /// The consumer's fast path: a committed message with a sound length
    /// at the head. `None` for anything else (nothing yet, padding, a
    /// skipped record, a bad length): the caller then takes
    /// [`peek`](Self::peek), which handles and reports those.
    #[inline(always)]
    pub fn peek_fast(&self) -> Option<Slot> {
        let h = self.cached.get();
        let o = h & self.mask;
        if self.mem.word(o).load(Acquire) != self.stamp(h, MESSAGE) {
            return None;
        }
        self.sound_len(o).map(|len| self.record_slot(h, len))
    }

    /// The consumer's quick spin, before a wait: up to `turns` looks at
    /// the stamp at the head (a load, and a pause between looks, pulling in
    /// the line after it meanwhile as [`head_ready`](Self::head_ready)
    /// does); the first committed message with a sound length is returned,
    /// as [`peek_fast`](Self::peek_fast) would return it. `None` after
    /// `turns` looks, and at once for anything else at the head (padding,
    /// a skipped record, a length that fails the check): the general wait
    /// handles and reports those.
    ///
    /// Why it exists: the stamp's address and value are worked out once,
    /// before the first look, so that when the message lands only the
    /// length's check stands between the look that sees it and the copy
    /// (inlined into the receive: no call returning the slot through
    /// memory in between, as the general wait's `block_on` has). Measured
    /// on the 2-core virtual machine this was written on, with
    /// `ipcworks bench --only bare,shm-spin`, four runs of each build
    /// alternating: shm-spin's 64-byte round trip went from a median of
    /// 1.52x `bare` to 1.45x (a pinned scratch harness, not kept, put the
    /// gain at about 10 ns, 6%). Without the pause between looks (and
    /// four times the turns) it measured the same: 190-210 ns in five
    /// alternating pairs, as with it.
    #[inline(always)]
    pub fn spin_for_message(&self, turns: u32) -> Option<Slot> {
        let h = self.cached.get();
        let o = h & self.mask;
        if turns == 0 || o + HEADER > self.cap {
            return None;
        }
        let stamp = self.mem.word(o);
        let want = self.stamp(h, MESSAGE);
        let [first, second] = self.lines_ahead(o);
        for _ in 0..turns {
            let s = stamp.load(Acquire);
            if s == want {
                return self.sound_len(o).map(|len| self.record_slot(h, len));
            }
            if (s ^ want) & !STATE_MASK == 0 {
                return None;
            }
            self.mem.prefetch(first);
            self.mem.prefetch(second);
            std::hint::spin_loop();
        }
        None
    }

    /// Whether the word at the consumer's head carries the head's own tag
    /// (a message, a skipped record or padding is there: [`peek`](Self::peek)
    /// has work), from one load; while it does not, pulls in the lines after
    /// it (`touch_ahead`). What a spinning consumer
    /// polls between its looks (see `wait::block_on`).
    #[inline]
    pub fn head_ready(&self) -> bool {
        let h = self.cached.get();
        let o = h & self.mask;
        let s = self.mem.word(o).load(Relaxed);
        if (s ^ self.stamp(h, 0)) & !STATE_MASK == 0
            && matches!(s & STATE_MASK, MESSAGE | SKIP | PAD)
        {
            return true;
        }
        self.touch_ahead(o);
        false
    }

    /// Looks at the record at the consumer's head, skipping padding and
    /// abandoned records.
    pub fn peek(&self) -> Result<Peek> {
        // Bounded: every iteration advances head by at least 8 bytes and at
        // most one lap of padding/skips is read per call.
        let start = self.cached.get();
        loop {
            let h = self.cached.get();
            if h.wrapping_sub(start) > self.cap {
                return Ok(Peek::Empty);
            }
            let o = h & self.mask;
            let s = self.mem.word(o).load(Acquire);
            if s == self.stamp(h, MESSAGE) {
                let len = self.checked_len(h, o)?;
                return Ok(Peek::Message(self.record_slot(h, len)));
            } else if s == self.stamp(h, SKIP) {
                let len = self.checked_len_within(h, o, self.skip_max())?;
                self.advance(h.wrapping_add(span(len).unwrap_or(self.cap)));
            } else if s == self.stamp(h, PAD) {
                // Written before `reserve` moved: do not pass `reserve`, and
                // make sure the stamp was not voided by a producer that took
                // the lock over from its dead writer.
                let end = h.wrapping_add(self.cap - o);
                if self.ctl().producer.0.reserve.load(Acquire) < end
                    || self.mem.word(o).load(Acquire) != s
                {
                    return Ok(Peek::Empty);
                }
                self.advance(end);
            } else {
                self.touch_ahead(o);
                return Ok(Peek::Empty);
            }
        }
    }

    /// Nothing is committed at the head yet (data-area offset `o`): while
    /// the consumer waits, it pulls in the one or two cache lines after the
    /// stamp's, where the next record's payload will land. When the stamp
    /// turns up, the payload's lines are already on their way (fetched in
    /// parallel with the stamp's), so a small message costs one cache-line
    /// transfer on the critical path, not two or three.
    fn touch_ahead(&self, o: u64) {
        for line in self.lines_ahead(o) {
            self.mem.prefetch(line);
        }
    }

    /// The lines [`touch_ahead`](Self::touch_ahead) pulls in for a stamp
    /// at offset `o`: the one or two after the stamp's own that the
    /// largest record's payload reaches, before the ring's end; `cap`
    /// (which [`Memory::prefetch`] passes over) for each one it does not.
    #[inline(always)]
    fn lines_ahead(&self, o: u64) -> [u64; 2] {
        let line = o & !63;
        let end = o
            .saturating_add(span(self.max).unwrap_or(self.cap).min(128))
            .min(self.cap);
        let within = |next: u64| if next < end { next } else { self.cap };
        [within(line + 64), within(line + 128)]
    }

    /// The payload length in the record header at data-area offset `o`,
    /// if the header and that many bytes fit before the ring's end and the
    /// length is within the maximum; `None` for anything a peer could have
    /// scribbled there.
    #[inline]
    fn sound_len(&self, o: u64) -> Option<u64> {
        self.sound_len_within(o, self.max)
    }

    /// [`sound_len`](Self::sound_len) with `limit` for the maximum.
    #[inline]
    fn sound_len_within(&self, o: u64, limit: u64) -> Option<u64> {
        if o + HEADER > self.cap {
            return None;
        }
        let len = self.mem.word(o + 8).load(Relaxed);
        (len <= limit && o + payload_at(len) + len <= self.cap).then_some(len)
    }

    /// The longest length a `SKIP` record may carry: an abandoned or
    /// dead producer's batch is skipped as one record
    /// ([`fits_one_lap`](Self::fits_one_lap)).
    pub(super) fn skip_max(&self) -> u64 {
        (self.cap / 2 - HEADER).max(self.max)
    }

    /// [`sound_len`](Self::sound_len) of the record at position `h`
    /// (offset `o`), or what is wrong with it.
    pub(super) fn checked_len(&self, h: u64, o: u64) -> Result<u64> {
        self.checked_len_within(h, o, self.max)
    }

    /// [`checked_len`](Self::checked_len) with `limit` for the maximum.
    pub(super) fn checked_len_within(&self, h: u64, o: u64, limit: u64) -> Result<u64> {
        self.sound_len_within(o, limit).ok_or_else(|| {
            if o + HEADER > self.cap {
                return Error::corrupted(format!("record header at {h} crosses the ring's end"));
            }
            let len = self.mem.word(o + 8).load(Relaxed);
            Error::corrupted(format!(
                "record at {h} claims {len} bytes (max {limit}, {} left before the ring's end)",
                self.cap - o - HEADER
            ))
        })
    }

    /// Copies bytes of a peeked message out, from byte `at` of its payload;
    /// then [`Memory::check`].
    pub fn read(&self, msg: &Slot, at: u64, dst: &mut [u8]) -> Result<()> {
        let end = at.checked_add(dst.len() as u64);
        if end.is_none_or(|e| e > msg.len) {
            return Err(Error::InvalidArgument(format!(
                "read of {} bytes at {at} is outside a message of {} bytes",
                dst.len(),
                msg.len
            )));
        }
        if at.is_multiple_of(8) {
            // SAFETY: msg.off + msg.len <= cap (checked_len), at + len <= msg.len.
            unsafe { self.mem.read(msg.off + at, dst) };
        } else {
            let base = (msg.off + at) & !7;
            let lead = (msg.off + at - base) as usize;
            let mut first = [0u8; 8];
            let n = dst.len().min(8 - lead);
            // SAFETY: base >= msg.off - 8 (in the record's header) and
            // base + lead + n <= msg.off + msg.len <= cap.
            unsafe { self.mem.read(base, &mut first[..lead + n]) };
            dst[..n].copy_from_slice(&first[lead..lead + n]);
            if n < dst.len() {
                // SAFETY: aligned, and within the message as checked above.
                unsafe { self.mem.read(msg.off + at + n as u64, &mut dst[n..]) };
            }
        }
        // Zeros from pages a peer truncated away are not a message.
        self.mem.check()
    }

    /// Hands a consumed message's space back to producers.
    #[inline(always)]
    pub fn release(&self, msg: &Slot) {
        self.advance(msg.pos.wrapping_add(span(msg.len).unwrap_or(self.cap)));
    }

    #[inline(always)]
    pub(super) fn advance(&self, new_head: u64) {
        self.cached.set(new_head);
        // Always a fenced publication: producers sleeping for room need no
        // barrier of their own (see `channel/wake.rs`). Tried in a scratch
        // build (not kept here; issue 24's notes) and measured slower: a
        // plain store here, with a mode word beside the producers' futex
        // word and their sleeps issuing `membarrier`, as the producers' own
        // publication does (`ipcworks bench --only shm-spin`, ten
        // alternating pairs on the 2-core VM: round trip 1.42x bare
        // against 1.31x, 1 KiB stream 0.79x against 0.85x, 64 B 0.55x
        // against 0.67x).
        store_then_fence(&self.ctl().head.0, new_head);
        self.wake_if_flagged(&self.ctl().wait.tx.0);
        self.relax_mode();
    }

    /// The consumer's position.
    pub fn head(&self) -> u64 {
        self.cached.get()
    }
}

/// A waker's publication: stores `v` into `word`, then acts as a `SeqCst`
/// fence before the caller looks at the sleeper's flag
/// (`wake.rs`'s `clear_flag`, a `SeqCst` load). A `SeqCst` swap does both: the swap
/// and the flag load are `SeqCst` operations, and the waiter's fence comes
/// after its flag is set and before its re-check, so either the waiter's
/// re-check sees `v` or the flag load sees the flag (C++20's rules for `SeqCst`
/// fences and operations). On x86 the swap is one `xchg` instead of
/// `mov` + `mfence`; in paired process round trips measured while this
/// was written (scratch runs, figures in the issue notes, no benchmark kept
/// here) it was the quicker of the two. Loom treats `SeqCst`
/// read-modify-writes as only `AcqRel`, so under loom this is the plain
/// store and the fence, which loom models exactly.
#[inline(always)]
pub(super) fn store_then_fence(word: &AtomicU64, v: u64) {
    #[cfg(not(loom))]
    word.swap(v, std::sync::atomic::Ordering::SeqCst);
    #[cfg(loom)]
    {
        word.store(v, Release);
        crate::primitive::fence(std::sync::atomic::Ordering::SeqCst);
    }
}
