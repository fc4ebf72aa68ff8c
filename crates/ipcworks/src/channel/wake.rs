//! Waiting without lost wake-ups: the futex hand-shake between a ring's
//! publishers and its sleepers, and the asymmetric fence that lets a
//! publication be a plain store.
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

//! # The asymmetric fence
//!
//! The fence and the swap cost every publication a locked instruction
//! (on x86 the swap drains the store buffer), although a sleeper is rare.
//! A process registered for `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`
//! ([`Memory::plain_publish`]) publishes with a plain `Release` store
//! instead, and every sleeper calls [`Memory::fence_others`] — that
//! `membarrier` — between its fence and its re-check: it runs a full
//! barrier on every CPU running a thread of a registered process, so the
//! publisher's store and its look at the flag are ordered as if it had
//! fenced itself, exactly when it matters (either the barrier came
//! between them, or the store is visible to the re-check, or the look
//! comes after the flag was set). The `GLOBAL` command, not `PRIVATE`:
//! publishers are other processes. Loom cannot model `membarrier`: under
//! loom, the publisher's plain store is followed by a `SeqCst` fence (the
//! barrier `membarrier` would put there), and `fence_others` is the
//! sleeper's only fence, so the model fails if a sleeper skips it.

use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::sync::atomic::compiler_fence;

use super::fault::Fault;
use super::ring::{Memory, Ring};
use crate::primitive::{AtomicU32, AtomicU64, fence};

impl<M: Memory> Ring<M> {
    /// A publication's store: `v` into `word` with `Release`, ordered
    /// before the caller's look at a sleeper's flag. In plain mode
    /// ([`Memory::plain_publish`]) a plain store, the order kept by the
    /// sleeper's [`Memory::fence_others`] (see "Waiting without lost
    /// wake-ups" above); else a store and a full fence
    /// ([`store_then_fence`]). Under loom the plain store is followed by a
    /// `SeqCst` fence: that is where the sleeper's `membarrier` puts a
    /// barrier into this thread, in the interleavings where it matters.
    #[inline(always)]
    pub(super) fn publish(&self, word: &AtomicU64, v: u64) {
        if self.plain {
            word.store(v, Release);
            // The order the program says, for the compiler; the hardware's
            // order is the sleeper's `membarrier`'s business.
            compiler_fence(SeqCst);
            #[cfg(loom)]
            fence(SeqCst);
        } else {
            store_then_fence(word, v);
        }
    }

    /// Clears the "someone sleeps" bit of `word` and wakes its sleepers,
    /// if the bit is set (the publication's wake check).
    #[inline(always)]
    pub(super) fn wake_if_flagged(&self, word: &AtomicU32) {
        if clear_flag(word) && !self.mem.fault(Fault::SkipWake) {
            self.mem.wake(word);
        }
    }

    /// Announces that a producer is about to sleep on the full ring: returns
    /// the futex value to sleep on. Re-check with `try_reserve` before
    /// sleeping.
    pub fn prepare_tx_wait(&self) -> u32 {
        self.prepare(&self.ctl().wait.tx.0)
    }

    /// The producers' futex word.
    pub fn tx_word(&self) -> &AtomicU32 {
        &self.ctl().wait.tx.0
    }

    /// Announces that the consumer is about to sleep on the empty ring:
    /// returns the futex value to sleep on. Re-check with `peek` first.
    pub fn prepare_rx_wait(&self) -> u32 {
        self.prepare(&self.ctl().wait.rx.0)
    }

    /// Sets the "someone sleeps" bit of `word` and fences (this thread's
    /// `SeqCst` fence, then [`Memory::fence_others`], the barrier in the
    /// publishers that publish with plain stores); returns the value to
    /// sleep on.
    fn prepare(&self, word: &AtomicU32) -> u32 {
        let v = word.fetch_or(1, SeqCst) | 1;
        // Under loom the publisher's side of the fence is modelled in
        // `publish`, and `fence_others` is this side's (so that dropping it
        // is a bug the model finds).
        #[cfg(not(loom))]
        fence(SeqCst);
        self.mem.fence_others();
        v
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
#[inline(always)]
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
#[inline(always)]
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
