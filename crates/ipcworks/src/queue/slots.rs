//! The slot protocol, pure: the state word's encoding and the few atomic
//! steps that claim, commit and undo a slot, over anything that offers a
//! table of slot words ([`Slots`]). Nothing here knows about mmap, so the
//! same code runs over the queue's segment between processes and, under
//! loom (`--cfg loom`, see `loom_model.rs`), over loom's atomics between
//! threads. The protocol is described (and argued) in the module docs of
//! [`queue`](super).
//!
//! # The state word
//!
//! ```text
//! bits 62..64  state: FREE, WRITING, READY, READING
//! bits 40..62  owner's process id (WRITING, READING; 0 otherwise)
//! bits  0..40  receives completed through this slot (wraps)
//! ```
//!
//! A given (state, count) pair occurs once per trip of the slot round
//! FREE → WRITING → READY → READING → FREE (the count goes up on the last
//! step), so a compare-and-swap on the word cannot succeed on a stale
//! reading (no ABA). Every 64-bit value is a valid word: a peer cannot
//! write one this code cannot decode.

#![cfg_attr(loom, allow(dead_code))]

use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};

use crate::primitive::{AtomicU32, AtomicU64};

/// The highest priority (the same range as POSIX queues, `MQ_PRIO_MAX - 1`).
pub const MAX_PRIORITY: u32 = 32767;

/// Slot states (bits 62..64 of the word). All zero is a `FREE` slot.
pub(crate) const FREE: u32 = 0;
/// A sender owns the slot and is copying its payload in.
pub(crate) const WRITING: u32 = 1;
/// A complete message waits to be received.
pub(crate) const READY: u32 = 2;
/// A receiver owns the slot and is copying its payload out (a message
/// longer than a direct receive takes; see [`claim_ready`]), or holds it
/// as a two-phase receive's claim until it commits ([`received`]) or
/// gives it back ([`released`]).
pub(crate) const READING: u32 = 3;

const STATE_SHIFT: u32 = 62;
pub(super) const PID_SHIFT: u32 = 40;
/// Process ids fit in 22 bits (the kernel's `PID_MAX_LIMIT` is 2^22).
pub(crate) const PID_LIMIT: u32 = 1 << 22;
pub(super) const COUNT_MASK: u64 = (1 << PID_SHIFT) - 1;

/// The word for `state`, owner `pid` (0 for none) and receive count.
pub(crate) fn word(state: u32, pid: u32, count: u64) -> u64 {
    ((state as u64) << STATE_SHIFT)
        | (((pid % PID_LIMIT) as u64) << PID_SHIFT)
        | (count & COUNT_MASK)
}

/// The state of a word (every 2-bit value is a state).
pub(crate) fn state(w: u64) -> u32 {
    (w >> STATE_SHIFT) as u32
}

/// The owner's process id of a word.
pub(crate) fn pid(w: u64) -> u32 {
    ((w >> PID_SHIFT) as u32) % PID_LIMIT
}

/// The receive count of a word.
pub(crate) fn count(w: u64) -> u64 {
    w & COUNT_MASK
}

/// Whether a word says a process is copying (in or out).
pub(crate) fn busy(w: u64) -> bool {
    matches!(state(w), WRITING | READING)
}

/// A table of slots: for each, its state word and the sequence and
/// priority of the message it holds (written by the sender before its
/// commit).
pub(crate) trait Slots {
    /// Number of slots (at least 1).
    fn capacity(&self) -> usize;
    /// Slot `i`'s state word (`i < capacity`).
    fn word(&self, i: usize) -> &AtomicU64;
    /// Slot `i`'s message sequence number.
    fn seq(&self, i: usize) -> &AtomicU64;
    /// Slot `i`'s message priority.
    fn priority(&self, i: usize) -> &AtomicU32;
    /// Slot `i`'s message length in bytes.
    fn len(&self, i: usize) -> &AtomicU32;
}

/// What one look at the slots found.
pub(crate) enum Look<T> {
    Found(T),
    /// Nothing; `busy`: a slot that was WRITING or READING (its owner may
    /// be copying, or dead), with the word seen.
    Nothing {
        busy: Option<(usize, u64)>,
    },
}

/// A READY message seen by a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub i: usize,
    pub word: u64,
    pub prio: u32,
    pub seq: u64,
    pub len: u32,
}

/// Why [`claim_ready`] claimed nothing although a message is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A priority above [`MAX_PRIORITY`] in slot `.0`: `.1`.
    BadPriority(usize, u32),
    /// The message to take next (slot `.0`) is `.1` bytes, more than the
    /// caller can hold. It stays where it is, so no later message can
    /// overtake it.
    TooLarge(usize, u32),
}

/// `i + 1` taken round `n` slots, without a division.
#[inline]
fn next(i: usize, n: usize) -> usize {
    if i + 1 >= n { 0 } else { i + 1 }
}

/// Claims a FREE slot for process `pid`, looking from slot `start`
/// (`< capacity`) round: `FREE(c) → WRITING(pid, c)`. Returns the slot and
/// its word after the claim.
pub(crate) fn claim_free<S: Slots>(s: &S, start: usize, pid: u32) -> Look<(usize, u64)> {
    let n = s.capacity();
    let mut i = start;
    let mut busy = None;
    for _ in 0..n {
        let word = s.word(i);
        let mut w = word.load(Acquire);
        while state(w) == FREE {
            let claimed = self::word(WRITING, pid, count(w));
            match word.compare_exchange(w, claimed, Acquire, Acquire) {
                Ok(_) => return Look::Found((i, claimed)),
                Err(now) => w = now,
            }
        }
        if busy.is_none() && self::busy(w) {
            busy = Some((i, w));
        }
        i = next(i, n);
    }
    Look::Nothing { busy }
}

/// Reads slot `i`: its word, and for a READY one its priority, sequence
/// and length (re-read against the word so they belong to the message the
/// word announces).
pub(crate) fn read_slot<S: Slots>(s: &S, i: usize) -> Result<(u64, Option<Candidate>), Refused> {
    let w = s.word(i).load(Acquire);
    if state(w) != READY {
        return Ok((w, None));
    }
    // Written before the commit that made the word READY (release), so
    // visible after our acquire.
    let prio = s.priority(i).load(Acquire);
    let seq = s.seq(i).load(Acquire);
    let len = s.len(i).load(Acquire);
    let again = s.word(i).load(Acquire);
    if again != w {
        return Ok((again, None));
    }
    if prio > MAX_PRIORITY {
        return Err(Refused::BadPriority(i, prio));
    }
    Ok((
        w,
        Some(Candidate {
            i,
            word: w,
            prio,
            seq,
            len,
        }),
    ))
}

/// Claims for process `pid` the READY message of highest priority and
/// lowest sequence, looking from slot `start` (`< capacity`) round:
/// `READY(c) → READING(pid, c)`. Returns the candidate and the word after
/// the claim. A candidate longer than `limit` bytes is not claimed
/// ([`Refused::TooLarge`]): giving it back after a claim would let another
/// receiver take a later message of its sender meanwhile.
///
/// `copy` is offered the chosen candidate just before the compare-and-swap.
/// If it copies the payload out (and says so), the receive is taken in
/// that one step instead, `READY(c) → FREE(c + 1)` (a *direct* receive: no
/// READING state, no second step). The copy is made while the message is
/// READY, so another receiver may take it meanwhile and a sender refill
/// the slot; then the word is no longer `READY(c)` (the count only goes
/// up), the compare-and-swap fails, the copy is dropped and the look starts
/// over. A successful one read the bytes the commit of `READY(c)`
/// published: the word's acquire load ordered the copy after that commit,
/// and any later writer claimed the slot after our compare-and-swap (which
/// releases), so its writes happen after our copy. The copy must use
/// atomic loads (the refill races with it) and its sender atomic stores.
///
/// One pass is not a snapshot: it may read slot A just before a message
/// m1 is committed there and slot B just after a later m2 (same sender,
/// same priority) is, and would take m2 first. So a candidate is claimed
/// only once every other slot, read after the candidate was seen, holds
/// nothing better: every message committed before the candidate (m1
/// before m2) is visible to those reads. With one sender going round the
/// slots, the candidate is usually the first slot read, so a look costs
/// `capacity` reads. The candidate itself is not read again: the claim's
/// compare-and-swap fails if it changed, and the look starts over.
pub(crate) fn claim_ready<S: Slots>(
    s: &S,
    start: usize,
    pid: u32,
    limit: u32,
    mut copy: impl FnMut(&Candidate) -> bool,
) -> Result<Look<(Candidate, u64)>, Refused> {
    let n = s.capacity();
    'again: loop {
        let mut i = start;
        let mut best: Option<Candidate> = None;
        let mut busy = None;
        // Reads still to make: the first pass reads every slot; a new
        // candidate needs every other slot read after it.
        let mut left = n;
        while left > 0 {
            left -= 1;
            let at = i;
            i = next(i, n);
            let (w, cand) = read_slot(s, at)?;
            let Some(c) = cand else {
                if busy.is_none() && self::busy(w) {
                    busy = Some((at, w));
                }
                continue;
            };
            let better = match best {
                None => true,
                Some(b) => c.prio > b.prio || (c.prio == b.prio && c.seq < b.seq),
            };
            if better {
                best = Some(c);
                left = n - 1;
            }
        }
        let Some(b) = best else {
            return Ok(Look::Nothing { busy });
        };
        if b.len > limit {
            return Err(Refused::TooLarge(b.i, b.len));
        }
        let claimed = match copy(&b) {
            true => word(FREE, 0, count(b.word).wrapping_add(1)),
            false => word(READING, pid, count(b.word)),
        };
        // SeqCst: a direct receive commits here, and every commit is a
        // SeqCst CAS (see `ops::Queue::wake`); acquire for a claim.
        if s.word(b.i)
            .compare_exchange(b.word, claimed, SeqCst, Relaxed)
            .is_err()
        {
            // Taken meanwhile (or changed): look again.
            continue 'again;
        }
        return Ok(Look::Found((b, claimed)));
    }
}

/// A commit (or recovery's undo): `from → to` on slot `i`'s word in one SeqCst
/// CAS, which also publishes the committer's payload writes (or ends its
/// reads); false if the slot is no longer `from` (taken from us).
pub(crate) fn commit<S: Slots>(s: &S, i: usize, from: u64, to: u64) -> bool {
    s.word(i)
        .compare_exchange(from, to, SeqCst, Relaxed)
        .is_ok()
}

/// The word that commits a send from a WRITING word `w`:
/// `WRITING(pid, c) → READY(c)` — the message exists from the CAS that
/// stores it on. A plain send's [`publish`](super::Queue::publish) and a
/// relayed send's commit.
pub(crate) fn commit_ready(w: u64) -> u64 {
    word(READY, 0, count(w))
}

/// The word that commits a receive from a READING word `w`:
/// `READING(pid, c) → FREE(c + 1)` — the message is gone, and the slot's
/// receive count says so in the same store. A two-phase receive's
/// [`commit`](super::Claim::commit) and a claimed (long) receive's end.
pub(crate) fn received(w: u64) -> u64 {
    word(FREE, 0, count(w).wrapping_add(1))
}

/// The word that gives a claimed message back from a READING word `w`:
/// `READING(pid, c) → READY(c)`, its record (sequence, priority, origin)
/// untouched, so it is again the first of its priority. A two-phase
/// receive's [`release`](super::Claim::release), and recovery's undo of
/// a dead claimant's receive: the same step.
pub(crate) fn released(w: u64) -> u64 {
    word(READY, 0, count(w))
}

/// The word that undoes a busy word's operation: a WRITING slot goes back
/// to FREE (the send never committed), a READING one back to READY with
/// its message untouched (the receive never committed). `None` if `w` is
/// not busy.
pub(crate) fn undone(w: u64) -> Option<u64> {
    match state(w) {
        WRITING => Some(word(FREE, 0, count(w))),
        READING => Some(released(w)),
        _ => None,
    }
}
