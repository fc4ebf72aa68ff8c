//! The relayed-message table, pure: what a queue remembers of the
//! messages relays delivered into it, so that the same message sent again
//! (a relay killed between its destination's send and its source's
//! commit, an acknowledgement lost on a link) is not delivered twice.
//! Nothing here knows about mmap: the same code runs over the queue's
//! segment and, under loom, over loom's atomics (`loom_model.rs`:
//! `a_dead_relayed_senders_entry_says_what_was_published`).
//!
//! # Why a table, and why resolved by the slot's word
//!
//! A record written *after* the message is published loses atomicity: a
//! sender killed between the publish and the record leaves a message the
//! table does not know, and the relay's retry delivers it twice. One
//! written *before* risks loss: killed between the record and the
//! publish, the table claims a message nobody will ever receive, and the
//! retry is dropped. So the entry is written before, as *pending*, naming
//! the slot the message goes into and that slot's receive count at the
//! claim; the publish is the slot's own commit (`WRITING(c) → READY(c)`);
//! then the entry says *held*. A sender killed in between leaves a pending
//! entry, and the slot's word alone says whether the publish happened:
//!
//! - `WRITING(c)` (or `FREE(c)`): it did not; the entry is dropped (and
//!   recovery frees the slot): the retry delivers the message.
//! - `READY(c)`, `READING(c)`, or any word whose receive count moved past
//!   `c` (a receiver already took the message: the count only grows): it
//!   did; the entry is held: the retry is refused.
//!
//! The slot cannot meanwhile be refilled by someone else at count `c`: a
//! dead sender's `WRITING` slot is freed only by recovery, and every step
//! on the table (delivering, resolving, forgetting, recovering) runs under
//! the queue's robust recovery mutex, which the killed sender held: the
//! next holder gets `OwnerDead` and resolves pending entries before it
//! recovers any slot.
//!
//! # Bounded: forgotten only when told, never silently
//!
//! Priorities reorder messages, so "the last sequence number per origin"
//! cannot say what was delivered: the table keeps each id. An entry is
//! dropped only when a relay says it may be ([`Queue::forget_relayed`]):
//! once the message left the relay's source (its commit), the source will
//! never offer it again. A relay has at most its window of messages in
//! flight (claimed, not committed), so the table needs at most that many
//! entries per relay; a relay killed between its commit and its
//! `forget` leaves an entry behind, which the restarted relay forgets
//! when it finds the message gone from its source. A full table is
//! backpressure: the relayed send waits (or fails with `WouldBlock` /
//! `Timeout` at its deadline) until entries are forgotten; an entry is
//! never evicted to make room.
//!
//! # The entry's state word
//!
//! ```text
//! bits 62..64  EMPTY (0), PENDING (1), HELD (2); 3 is garbage
//! PENDING:     bits 40..57 the slot index, bits 0..40 its receive count
//! ```
//!
//! [`Queue::forget_relayed`]: super::Queue::forget_relayed

#![cfg_attr(loom, allow(dead_code))]

use std::sync::atomic::Ordering::SeqCst;

use super::slots::{self, FREE, Slots, WRITING};
use crate::primitive::AtomicU64;

const TAG_SHIFT: u32 = 62;
const SLOT_SHIFT: u32 = 40;
const SLOT_MASK: u64 = (1 << 17) - 1;
/// The slot word's receive count, as `slots.rs` lays it out: an entry
/// keeps exactly those bits, so `published` compares like with like.
const COUNT_MASK: u64 = slots::COUNT_MASK;
const _: () = assert!(SLOT_SHIFT >= slots::PID_SHIFT);

/// Tag of an unused entry (all zero).
pub(crate) const EMPTY: u64 = 0;
/// The state word of an entry whose message is in the queue (or was).
pub(crate) const HELD: u64 = 2 << TAG_SHIFT;

/// The state word of an entry about to be published into slot `i`,
/// claimed at receive count `count`.
pub(crate) fn pending(i: usize, count: u64) -> u64 {
    (1 << TAG_SHIFT) | (((i as u64) & SLOT_MASK) << SLOT_SHIFT) | (count & COUNT_MASK)
}

/// An entry's state, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Empty,
    Pending {
        slot: usize,
        count: u64,
    },
    Held,
    /// Tag 3, or a pending slot index outside the queue: a peer's scribble.
    Garbage,
}

/// Decodes a state word for a queue of `capacity` slots.
pub(crate) fn decode(w: u64, capacity: usize) -> State {
    match w >> TAG_SHIFT {
        0 => State::Empty,
        1 => {
            let slot = ((w >> SLOT_SHIFT) & SLOT_MASK) as usize;
            if slot >= capacity {
                return State::Garbage;
            }
            State::Pending {
                slot,
                count: w & COUNT_MASK,
            }
        }
        2 => State::Held,
        _ => State::Garbage,
    }
}

/// Whether slot word `w` says the message claimed at receive count
/// `count` was published (see the module docs).
pub(crate) fn published(w: u64, count: u64) -> bool {
    let same_trip = slots::count(w) == count & COUNT_MASK;
    !(same_trip && matches!(slots::state(w), FREE | WRITING))
}

/// A table of entries: each an id (origin, sequence), the origin id of
/// the relay's source it came through (`via`), and a state word.
pub(crate) trait Entries {
    /// Number of entries (at least 1).
    fn entries(&self) -> usize;
    fn origin(&self, k: usize) -> &AtomicU64;
    fn seq(&self, k: usize) -> &AtomicU64;
    fn via(&self, k: usize) -> &AtomicU64;
    fn state(&self, k: usize) -> &AtomicU64;
}

/// The entry (pending or held) for id `(origin, seq)`, if any.
pub(crate) fn find<E: Entries>(e: &E, origin: u64, seq: u64) -> Option<usize> {
    lookup(e, origin, seq).ok()
}

/// One pass over the table: `Ok(k)`, the entry (pending or held) for id
/// `(origin, seq)`, or `Err(v)`, the first unused entry if any.
pub(crate) fn lookup<E: Entries>(e: &E, origin: u64, seq: u64) -> Result<usize, Option<usize>> {
    let mut vacant = None;
    for k in 0..e.entries() {
        if e.state(k).load(SeqCst) == EMPTY {
            vacant = vacant.or(Some(k));
        } else if e.origin(k).load(SeqCst) == origin && e.seq(k).load(SeqCst) == seq {
            return Ok(k);
        }
    }
    Err(vacant)
}

/// Writes entry `k` (vacant) as pending: the id first, the state last.
pub(crate) fn enter<E: Entries>(e: &E, k: usize, id: (u64, u64), via: u64, state: u64) {
    e.origin(k).store(id.0, SeqCst);
    e.seq(k).store(id.1, SeqCst);
    e.via(k).store(via, SeqCst);
    e.state(k).store(state, SeqCst);
}

/// Settles every pending entry a dead mutex holder left, by its slot's
/// word: held if the message was published, emptied if not. Garbage
/// entries are emptied (a scribble; forgetting one can only let a
/// duplicate through, never lose a message). Returns (held, emptied).
pub(crate) fn resolve<E: Entries, S: Slots>(e: &E, s: &S) -> (u64, u64) {
    let (mut held, mut emptied) = (0, 0);
    for k in 0..e.entries() {
        let w = e.state(k).load(SeqCst);
        match decode(w, s.capacity()) {
            State::Empty | State::Held => {}
            State::Pending { slot, count } => {
                if published(s.word(slot).load(SeqCst), count) {
                    e.state(k).store(HELD, SeqCst);
                    held += 1;
                } else {
                    e.state(k).store(EMPTY, SeqCst);
                    emptied += 1;
                }
            }
            State::Garbage => {
                e.state(k).store(EMPTY, SeqCst);
                emptied += 1;
            }
        }
    }
    (held, emptied)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::queue::slots::{READING, READY, word};

    #[test]
    fn published_reads_the_slot_word() {
        // Claimed at count 7 in slot 3.
        let p = pending(3, 7);
        assert_eq!(decode(p, 4), State::Pending { slot: 3, count: 7 });
        assert_eq!(decode(p, 3), State::Garbage);
        assert_eq!(decode(HELD, 1), State::Held);
        assert_eq!(decode(EMPTY, 1), State::Empty);
        assert_eq!(decode(u64::MAX, 1), State::Garbage);
        assert!(!published(word(WRITING, 9, 7), 7));
        assert!(!published(word(FREE, 0, 7), 7));
        assert!(published(word(READY, 0, 7), 7));
        assert!(published(word(READING, 5, 7), 7));
        assert!(published(word(FREE, 0, 8), 7));
        assert!(published(word(WRITING, 9, 8), 7));
    }
}
