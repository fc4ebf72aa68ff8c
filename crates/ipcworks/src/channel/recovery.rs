//! The consumer's looks past a record it cannot take: a reservation whose
//! producer died before committing it (skipped), a lock taken over from a
//! dead holder (its leftovers voided), and the count of waiting messages.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use super::ring::{MESSAGE, Memory, PAD, RECORD_ALIGN, Ring, SKIP, span};
use crate::{Error, Result};

impl<M: Memory> Ring<M> {
    /// Called with the lock taken over from `dead`, which died holding it:
    /// whatever it wrote at `reserve` without advancing `reserve` is void.
    pub(super) fn repair_after(&self, dead: u64) {
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
            let span = span(len)
                .filter(|_| len <= self.skip_max())
                .ok_or_else(|| {
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
                } else if s == self.stamp(pos, MESSAGE) {
                    n += 1;
                    self.checked_len(pos, o)?
                } else if s == self.stamp(pos, SKIP) {
                    self.checked_len_within(pos, o, self.skip_max())?
                } else {
                    // Reserved, not yet committed (or consumed meanwhile).
                    let writer =
                        self.mem.senders().iter().map(|w| &w.0).find(|w| {
                            w.id.load(Relaxed) != 0 && w.inflight.load(Relaxed) == pos + 1
                        });
                    match writer.map(|w| w.inflight_len.load(Relaxed)) {
                        Some(len) if len <= self.skip_max() => len,
                        _ => break,
                    }
                };
            pos = pos.saturating_add(span(len).unwrap_or(self.cap));
        }
        self.mem.check()?;
        Ok(n)
    }
}
