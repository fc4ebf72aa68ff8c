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
//!
//! Only the producers' publication (the record's stamp) is plain. The
//! consumer's (its `head`) is always the fenced swap, so producers that
//! sleep for room need no barrier: only the consumer's sleeps do.
//!
//! # Fencing only while the consumer sleeps
//!
//! A barrier before every sleep costs an inter-processor interrupt (on the
//! 2-core VM this was measured on, about 10 µs: an awaiting receiver that
//! parks on every message went from 22-31 µs a round trip to 40-44 µs).
//! So the consumer pays it only when it *starts* sleeping, and asks the
//! producers to fence meanwhile: the word beside its futex word, `mode`,
//! holds [`FENCED`] ("publishers fence between their store and their
//! look at the flag"), [`BARRIERED`] ("and a barrier has run since
//! `FENCED` was set") and an episode count.
//!
//! - A publisher stores its stamp, then loads `mode` (`Acquire`): with
//!   `FENCED` it fences before it looks at the flag, else it looks at once.
//! - A sleeper sets its flag, fences, sets `FENCED` (`fetch_or`, which
//!   tells it the mode before), and unless `BARRIERED` was set in the
//!   same episode, issues the barrier and then sets `BARRIERED`
//!   (a compare-and-swap from the value it made, so a cleared-and-set-again
//!   mode is never taken for barriered).
//! - The consumer clears the mode (and starts a new episode) after every
//!   [`CALM`] messages it takes, if its process can issue the barrier; the
//!   next sleep pays one barrier again. An awaiting receiver that parks on
//!   every message thus pays one barrier per [`CALM`] messages, and a
//!   spinning one none.
//!
//! Why no wake-up is lost. Take a sleeper that set its flag (`W`) and
//! re-checks, and a publisher that stored `X` and looked at `W`.
//! - The publisher saw `FENCED`: it fenced; the sleeper fenced too; the
//!   `SeqCst` fences order the two (the classic hand-shake).
//! - It saw no `FENCED` in a value *after* the sleeper's `fetch_or` on
//!   `mode` (a later clear): that load synchronizes with the `fetch_or`
//!   (a read-modify-write chain), so the sleeper's flag, set before it,
//!   is visible to the publisher's look.
//! - It saw a value *before* the episode's `FENCED` was set. Some sleeper
//!   issued a barrier after seeing that `FENCED` (ours, or the one that set
//!   `BARRIERED`, which our `fetch_or` read). The barrier ran in the
//!   publisher's thread at a point that came after its load (which would
//!   otherwise have seen `FENCED`), hence after its store: so the store is
//!   visible to whoever comes after the barrier, and our re-check does
//!   (directly, or through the `BARRIERED` it read).
//!
//! Loom cannot model a barrier that lands in another thread; the model
//! follows every plain store with a `SeqCst` fence (see [`Ring::publish`])
//! and runs the mode's clearing every [`CALM`] = 2 messages, so the
//! episodes and the compare-and-swap run in the models; the cross-process
//! tests (`tests/it/channel_publish.rs`) exercise the real barrier.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::compiler_fence;

use super::fault::Fault;
use super::ring::{Memory, Ring, RxWait, store_then_fence};

/// `mode` bit: publishers fence before they look at the consumer's flag.
pub const FENCED: u32 = 1;
/// `mode` bit: a barrier ran after `FENCED` was set in this episode.
pub const BARRIERED: u32 = 2;
/// What one episode adds to `mode`.
const EPISODE: u32 = 4;
/// Messages the consumer takes between two clearings of the mode.
#[cfg(not(loom))]
pub const CALM: u32 = 1024;
/// Messages the consumer takes between two clearings of the mode (loom: 2,
/// so the models clear it).
#[cfg(loom)]
pub const CALM: u32 = 2;
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
    /// In plain mode the store is fenced anyway while the consumer's mode
    /// says [`FENCED`] (see "Fencing only while the consumer sleeps").
    #[inline(always)]
    pub(super) fn publish(&self, word: &AtomicU64, v: u64) {
        if self.plain {
            word.store(v, Release);
            // The order the program says, for the compiler; the hardware's
            // order is the sleeper's `membarrier`'s business.
            compiler_fence(SeqCst);
            #[cfg(loom)]
            fence(SeqCst);
            if self.ctl().wait.rx.0.mode.load(Acquire) & FENCED != 0 {
                fence(SeqCst);
            }
        } else {
            store_then_fence(word, v);
        }
    }

    /// The consumer, after taking a message: every [`CALM`] messages,
    /// clears a [`FENCED`] mode (a new episode), so that producers publish
    /// plainly again until its next sleep. Only where this process can
    /// issue the barrier that its next sleep then needs.
    #[inline(always)]
    pub(super) fn relax_mode(&self) {
        let n = self.calm.get() + 1;
        if n < CALM {
            self.calm.set(n);
            return;
        }
        self.calm.set(0);
        if !self.plain {
            return;
        }
        let mode = &self.ctl().wait.rx.0.mode;
        let m = mode.load(Relaxed);
        if m & FENCED != 0 {
            let next = (m & !(FENCED | BARRIERED)).wrapping_add(EPISODE);
            let _ = mode.compare_exchange(m, next, SeqCst, Relaxed);
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
        // The consumer's publication is always fenced: this side's fence
        // is all the hand-shake needs.
        let v = self.ctl().wait.tx.0.fetch_or(1, SeqCst) | 1;
        fence(SeqCst);
        v
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

    /// The sleeper's side of the mode: sets [`FENCED`] and, unless a
    /// barrier already ran in this episode, issues it and records that
    /// ([`BARRIERED`]). Returns whether it issued the barrier.
    fn enter_fenced(&self, rx: &RxWait) -> bool {
        let before = rx.mode.fetch_or(FENCED, SeqCst);
        if before & (FENCED | BARRIERED) == FENCED | BARRIERED {
            return false;
        }
        let made = before | FENCED;
        if self.mem.fence_others() {
            let _ = rx
                .mode
                .compare_exchange(made, made | BARRIERED, SeqCst, Relaxed);
        }
        true
    }

    /// Sets the "someone sleeps" bit of `word` and fences (this thread's
    /// `SeqCst` fence, then [`Memory::fence_others`], the barrier in the
    /// publishers that publish with plain stores); returns the value to
    /// sleep on.
    fn prepare(&self, rx: &RxWait) -> u32 {
        let v = rx.word.fetch_or(1, SeqCst) | 1;
        // Under loom the publisher's side of the fence is modelled in
        // `publish`, and `fence_others` is this side's (so that dropping it
        // is a bug the model finds); a sleeper that skips the barrier
        // (already issued in this episode) fences itself.
        #[cfg(not(loom))]
        fence(SeqCst);
        let _barrier = self.enter_fenced(rx);
        #[cfg(loom)]
        if !_barrier {
            fence(SeqCst);
        }
        v
    }

    /// The consumer's futex word.
    pub fn rx_word(&self) -> &AtomicU32 {
        &self.ctl().wait.rx.0.word
    }

    /// Bumps a futex word unconditionally and wakes its sleepers: used when
    /// an end closes, so sleepers re-check the peer.
    pub fn kick(&self, word: &AtomicU32) {
        word.fetch_add(2, SeqCst);
        self.mem.wake(word);
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
