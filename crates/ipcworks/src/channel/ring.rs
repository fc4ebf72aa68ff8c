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
//! Records own whole cache lines, and every payload starts on a line of its
//! own: two records never share a line (the producer writing one never
//! takes a line from under the consumer reading the one before), and big
//! copies run line-aligned. Measured against 16-byte headers at 8-byte
//! alignment: 64-byte messages stream 30–50% faster, round trips and big
//! messages are unchanged.
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
//! Each side has a futex word whose bit 0 is "someone sleeps" and whose
//! other bits are an epoch. A waiter sets the bit (`fetch_or`), issues a
//! `SeqCst` fence, re-checks the ring, and sleeps only while the word still
//! holds the value it saw. The other side publishes with a `SeqCst` swap
//! (a store and a full fence in one instruction, `store_then_fence`),
//! and only if the bit is set bumps the word (clearing the bit, advancing
//! the epoch) and wakes. The fence and the swap guarantee that either the
//! waiter's re-check sees the publication or the publisher sees the bit;
//! when nobody sleeps, the publisher makes no system call.

use std::cell::Cell;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

use crate::primitive::{AtomicU32, AtomicU64, fence};
use crate::{Error, Result};

/// Records start at multiples of this many bytes (a cache line).
pub const RECORD_ALIGN: u64 = 64;
/// Bytes of a record header (stamp, length, then unused to the end of the
/// line, so that the payload starts on a line of its own).
pub const HEADER: u64 = 64;

const STATE_MASK: u64 = 7;
const MESSAGE: u64 = 2;
const SKIP: u64 = 3;
const PAD: u64 = 4;

/// Bytes a record of `len` payload bytes occupies (header + payload, rounded
/// up to [`RECORD_ALIGN`]); `None` on overflow.
pub fn span(len: u64) -> Option<u64> {
    len.checked_add(HEADER + RECORD_ALIGN - 1)
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
    /// Payload length of that reservation.
    pub inflight_len: AtomicU64,
}

/// The futex words both sides sleep on, each on its own cache line: a
/// waker clears the flag in one while its own side's word stays in its
/// cache (sharing a line cost a cache miss on every blocking hand-off).
#[repr(C)]
#[derive(Default)]
pub struct WaitWords {
    /// The consumer sleeps here while the ring is empty.
    pub rx: CacheLine<AtomicU32>,
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
    /// A hint: the cache line holding data-area byte `off` (`off < capacity`)
    /// will be read soon. Never reads memory in the language's sense.
    fn prefetch(&self, _off: u64) {}
    /// A hint: this side will write the cache line holding data-area byte
    /// `off` (`off < capacity`); ask for it in exclusive state. Never
    /// touches memory in the language's sense.
    fn prefetch_write(&self, _off: u64) {}
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
    mem: M,
    cap: u64,
    mask: u64,
    max: u64,
    key: u64,
    /// Producer: last `head` seen. Consumer: its own head.
    cached: Cell<u64>,
}

impl<M: Memory> Ring<M> {
    /// A view of the ring in `mem` for messages of at most `max` bytes.
    /// The consumer starts at `head` (read once from shared memory by the
    /// caller and validated here).
    pub fn new(mem: M, max: u64, key: u64, head: u64) -> Result<Self> {
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
            mem,
            cap,
            mask: cap - 1,
            max,
            key,
            cached: Cell::new(head),
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

    fn stamp(&self, pos: u64, state: u64) -> u64 {
        ((pos ^ self.key) & !STATE_MASK) | state
    }

    fn ctl(&self) -> &Control {
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
        debug_assert!(len <= self.max && id != 0);
        let lock = &self.ctl().producer.0.lock;
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

    /// The producer's fast path: the lock is free, the record fits before
    /// the ring's end, and the last `head` seen leaves room. `None` when
    /// any of that fails (or a value read looks wrong): the caller then
    /// takes the general path, [`try_reserve`](Self::try_reserve), which
    /// also reports what went wrong. Same effect as `try_reserve` when it
    /// succeeds.
    #[inline]
    pub fn try_reserve_fast(&self, len: u64, id: u64, me: &SenderWords) -> Option<Slot> {
        debug_assert!(len <= self.max && id != 0);
        // len <= max and span(max) * 2 <= cap: the span fits the ring.
        let span = span(len)?;
        let p = &self.ctl().producer.0;
        if p.lock.compare_exchange(0, id, Acquire, Relaxed).is_err() {
            return None;
        }
        let r = p.reserve.load(Relaxed);
        let off = r & self.mask;
        let fits = r.is_multiple_of(RECORD_ALIGN)
            && off + span <= self.cap
            && r.wrapping_sub(self.cached.get()) <= self.cap - span;
        let end = r.checked_add(span).filter(|_| fits);
        if let Some(end) = end {
            self.note_reservation(me, r, len, end);
        }
        p.lock.store(0, Release);
        end.map(|_| Slot {
            pos: r,
            off: off + HEADER,
            len,
        })
    }

    /// Called with the lock taken over from `dead`, which died holding it:
    /// whatever it wrote at `reserve` without advancing `reserve` is void.
    fn repair_after(&self, dead: u64) {
        let r = self.ctl().producer.0.reserve.load(Relaxed);
        if !r.is_multiple_of(RECORD_ALIGN) {
            return; // reserve_locked reports it
        }
        // A PAD stamp it may have written at `r` must not be taken for ours.
        let _ =
            self.mem
                .word(r & self.mask)
                .compare_exchange(self.stamp(r, PAD), 0, Relaxed, Relaxed);
        for s in self.mem.senders() {
            let s = &s.0;
            if s.id.load(Relaxed) == dead && s.inflight.load(Relaxed) == r.wrapping_add(1) {
                s.inflight.store(0, Relaxed);
            }
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
        let off = r & self.mask;
        let pad = if off + span > self.cap {
            self.cap - off
        } else {
            0
        };
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
            self.mem.word(off).store(self.stamp(r, PAD), Release);
        }
        let pos = r + pad;
        self.note_reservation(me, pos, len, end);
        Ok(Reserve::Ok(Slot {
            pos,
            off: (pos & self.mask) + HEADER,
            len,
        }))
    }

    /// Under the lock: notes the record at `pos` of `len` bytes in the
    /// producer's slot (so a consumer can skip it if the producer dies
    /// before committing), then moves `reserve` to `end`. Release: the
    /// note, and a PAD stamp written before, are visible to whoever sees
    /// the new `reserve`.
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

    /// Raw address of a reserved slot's payload, for [`Memory`]
    /// implementations that have one.
    pub fn slot_offset(&self, slot: &Slot) -> u64 {
        slot.off
    }

    /// Publishes a reserved slot and wakes the consumer if it sleeps.
    pub fn commit(&self, slot: &Slot) {
        self.finish(slot, MESSAGE);
    }

    /// Gives up a reserved slot: the consumer skips it.
    pub fn abandon(&self, slot: &Slot) {
        self.finish(slot, SKIP);
    }

    fn finish(&self, slot: &Slot, state: u64) {
        let o = slot.pos & self.mask;
        self.mem.word(o + 8).store(slot.len, Relaxed);
        store_then_fence(self.mem.word(o), self.stamp(slot.pos, state));
        // Ask for the payload's first line back in exclusive state at once.
        // An empirical finding, not a derived one: on the machine this was
        // written on it took a spinning round trip of 64-byte messages from
        // 1.17-1.32x the bare two-line hand-off (`ipcworks bench`'s `bare`
        // row) to 0.99-1.15x (eleven alternating runs), with streams
        // unchanged; a read prefetch of the same line instead made round
        // trips a third slower.
        if slot.len > 0 {
            self.mem.prefetch_write(slot.off);
        }
        let rx = &self.ctl().wait.rx.0;
        if clear_flag(rx) {
            self.mem.wake(rx);
        }
    }

    /// Announces that a producer is about to sleep on the full ring: returns
    /// the futex value to sleep on. Re-check with `try_reserve` before
    /// sleeping.
    pub fn prepare_tx_wait(&self) -> u32 {
        prepare(&self.ctl().wait.tx.0)
    }

    /// The producers' futex word.
    pub fn tx_word(&self) -> &AtomicU32 {
        &self.ctl().wait.tx.0
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
        let off = r & self.mask;
        let pad = if off + span > self.cap {
            self.cap - off
        } else {
            0
        };
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
    #[inline]
    pub fn peek_fast(&self) -> Option<Slot> {
        let h = self.cached.get();
        let o = h & self.mask;
        if self.mem.word(o).load(Acquire) != self.stamp(h, MESSAGE) {
            return None;
        }
        let len = self.sound_len(o)?;
        Some(Slot {
            pos: h,
            off: o + HEADER,
            len,
        })
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
                return Ok(Peek::Message(Slot {
                    pos: h,
                    off: o + HEADER,
                    len,
                }));
            } else if s == self.stamp(h, SKIP) {
                let len = self.checked_len(h, o)?;
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
        let line = o & !63;
        let reach = span(self.max).unwrap_or(self.cap).min(128);
        let mut next = line + 64;
        while next < self.cap && next < o + reach {
            self.mem.prefetch(next);
            next += 64;
        }
    }

    /// The payload length in the record header at data-area offset `o`,
    /// if the header and that many bytes fit before the ring's end and the
    /// length is within the maximum; `None` for anything a peer could have
    /// scribbled there.
    fn sound_len(&self, o: u64) -> Option<u64> {
        if o + HEADER > self.cap {
            return None;
        }
        let len = self.mem.word(o + 8).load(Relaxed);
        (len <= self.max && o + HEADER + len <= self.cap).then_some(len)
    }

    /// [`sound_len`](Self::sound_len) of the record at position `h`
    /// (offset `o`), or what is wrong with it.
    fn checked_len(&self, h: u64, o: u64) -> Result<u64> {
        self.sound_len(o).ok_or_else(|| {
            if o + HEADER > self.cap {
                return Error::corrupted(format!("record header at {h} crosses the ring's end"));
            }
            let len = self.mem.word(o + 8).load(Relaxed);
            Error::corrupted(format!(
                "record at {h} claims {len} bytes (max {}, {} left before the ring's end)",
                self.max,
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
            // SAFETY: base >= msg.off - HEADER (in the record) and
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
    pub fn release(&self, msg: &Slot) {
        self.advance(msg.pos.wrapping_add(span(msg.len).unwrap_or(self.cap)));
    }

    fn advance(&self, new_head: u64) {
        self.cached.set(new_head);
        store_then_fence(&self.ctl().head.0, new_head);
        let tx = &self.ctl().wait.tx.0;
        if clear_flag(tx) {
            self.mem.wake(tx);
        }
    }

    /// Looks whether the record at the head was reserved by a producer that
    /// `is_dead` says died before committing it, and if so skips it (its
    /// space is handed back, nothing is delivered). Returns whether it
    /// skipped.
    pub fn skip_dead(&self, is_dead: impl Fn(u64) -> bool) -> Result<bool> {
        let h = self.cached.get();
        let o = h & self.mask;
        let s = self.mem.word(o).load(Acquire);
        if [MESSAGE, SKIP, PAD]
            .iter()
            .any(|&st| s == self.stamp(h, st))
        {
            return Ok(false);
        }
        let r = self.ctl().producer.0.reserve.load(Acquire);
        if r.wrapping_sub(h) == 0 || r.wrapping_sub(h) > self.cap {
            return Ok(false);
        }
        for slot in self.mem.senders() {
            let w = &slot.0;
            if w.inflight.load(Relaxed) != h.wrapping_add(1) {
                continue;
            }
            let id = w.id.load(Relaxed);
            if id == 0 || !is_dead(id) {
                continue;
            }
            let len = w.inflight_len.load(Relaxed);
            let span = span(len).filter(|_| len <= self.max).ok_or_else(|| {
                Error::corrupted(format!("in-flight record at {h} claims {len} bytes"))
            })?;
            if o + span > self.cap {
                return Err(Error::corrupted(format!(
                    "in-flight record at {h} of {len} bytes crosses the ring's end"
                )));
            }
            let end = h.wrapping_add(span);
            if r.wrapping_sub(h) < span {
                return Ok(false);
            }
            // Mark it skipped (a CAS: never undo a commit that raced us).
            self.mem.word(o + 8).store(len, Relaxed);
            if self
                .mem
                .word(o)
                .compare_exchange(s, self.stamp(h, SKIP), AcqRel, Acquire)
                .is_err()
            {
                return Ok(false);
            }
            w.inflight.store(0, Relaxed);
            self.advance(end);
            return Ok(true);
        }
        Ok(false)
    }

    /// How many committed messages lie between the consumer's head and
    /// the producers' `reserve`, read from shared memory by either side: a
    /// snapshot, out of date as soon as it is taken. Walks the records
    /// (at most `capacity / 64` of them); a record still being written is
    /// stepped over by the length its producer noted in its slot, and the
    /// count stops at one it cannot measure. Then [`Memory::check`].
    pub fn queued(&self) -> Result<usize> {
        let ctl = self.ctl();
        let head = ctl.head.0.load(Acquire);
        let reserve = ctl.producer.0.reserve.load(Acquire);
        if !head.is_multiple_of(RECORD_ALIGN) || reserve < head || reserve - head > self.cap {
            self.mem.check()?;
            return Err(Error::corrupted(format!(
                "ring head {head} does not fit reserve {reserve} (capacity {})",
                self.cap
            )));
        }
        let (mut pos, mut n) = (head, 0);
        // Bounded: every step moves `pos` on by at least one record line,
        // and `pos` stays below `reserve`, at most `cap` past `head`.
        while pos < reserve {
            let o = pos & self.mask;
            let s = self.mem.word(o).load(Acquire);
            let len =
                if s == self.stamp(pos, PAD) {
                    pos = pos.saturating_add(self.cap - o);
                    continue;
                } else if s == self.stamp(pos, MESSAGE) || s == self.stamp(pos, SKIP) {
                    n += usize::from(s & STATE_MASK == MESSAGE);
                    self.checked_len(pos, o)?
                } else {
                    // Reserved, not yet committed (or consumed meanwhile).
                    let writer =
                        self.mem.senders().iter().map(|w| &w.0).find(|w| {
                            w.id.load(Relaxed) != 0 && w.inflight.load(Relaxed) == pos + 1
                        });
                    match writer.map(|w| w.inflight_len.load(Relaxed)) {
                        Some(len) if len <= self.max => len,
                        _ => break,
                    }
                };
            pos = pos.saturating_add(span(len).unwrap_or(self.cap));
        }
        self.mem.check()?;
        Ok(n)
    }

    /// The consumer's position.
    pub fn head(&self) -> u64 {
        self.cached.get()
    }

    /// Announces that the consumer is about to sleep on the empty ring:
    /// returns the futex value to sleep on. Re-check with `peek` first.
    pub fn prepare_rx_wait(&self) -> u32 {
        prepare(&self.ctl().wait.rx.0)
    }

    /// The consumer's futex word.
    pub fn rx_word(&self) -> &AtomicU32 {
        &self.ctl().wait.rx.0
    }

    /// Bumps a futex word unconditionally and wakes its sleepers: used when
    /// an end closes, so sleepers re-check the peer.
    pub fn kick(&self, word: &AtomicU32) {
        word.fetch_add(2, SeqCst);
        self.mem.wake(word);
    }
}

/// Sets the "someone sleeps" bit and fences; returns the value to sleep on.
fn prepare(word: &AtomicU32) -> u32 {
    let v = word.fetch_or(1, SeqCst) | 1;
    fence(SeqCst);
    v
}

/// A waker's publication: stores `v` into `word`, then acts as a `SeqCst`
/// fence before the caller looks at the sleeper's flag
/// ([`clear_flag`]'s `SeqCst` load). A `SeqCst` swap does both: the swap
/// and the flag load are `SeqCst` operations, and the waiter's fence comes
/// after its flag is set and before its re-check, so either the waiter's
/// re-check sees `v` or the flag load sees the flag (C++20's rules for `SeqCst`
/// fences and operations). On x86 the swap is one `xchg` instead of
/// `mov` + `mfence`; in paired process round trips measured while this
/// was written (scratch runs, figures in the issue notes, no benchmark kept
/// here) it was the quicker of the two. Loom treats `SeqCst`
/// read-modify-writes as only `AcqRel`, so under loom this is the plain
/// store and the fence, which loom models exactly.
#[inline]
fn store_then_fence(word: &AtomicU64, v: u64) {
    #[cfg(not(loom))]
    word.swap(v, SeqCst);
    #[cfg(loom)]
    {
        word.store(v, Release);
        fence(SeqCst);
    }
}

/// Clears the "someone sleeps" bit (advancing the epoch) if set; returns
/// whether the caller must wake.
fn clear_flag(word: &AtomicU32) -> bool {
    let mut v = word.load(SeqCst);
    while v & 1 == 1 {
        match word.compare_exchange_weak(v, v.wrapping_add(1), SeqCst, Relaxed) {
            Ok(_) => return true,
            Err(now) => v = now,
        }
    }
    false
}
