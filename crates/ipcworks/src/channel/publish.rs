//! The producer's cheaper paths: solo mode (one sender reserves without a
//! locked instruction) and batches (several records published with one
//! release and one wake check).
//!
//! # Solo mode
//!
//! While a channel has one sender, the reservation lock is a cost with
//! nothing to protect: its compare-and-swap (a locked read-modify-write,
//! which drains the store buffer) is most of what a 64-byte send pays over
//! a bare ring. A sender that attaches alone takes the lock *for good*,
//! marked [`SOLO`]: `lock = id | SOLO`. It then reserves with plain loads
//! and stores, inside a *section* bracketed by its slot's `busy` word:
//!
//! ```text
//! solo sender                          second sender (revoker)
//! busy = 1                             CAS lock: id|SOLO -> its own id
//! [barrier here: the revoker's]        membarrier(GLOBAL_EXPEDITED)
//! lock == id|SOLO ? else leave         wait while the solo's busy == 1
//! reserve as under the lock            (or it died: repair its leftovers)
//! busy = 0 (Release)                   lock = 0: everyone takes the lock
//! ```
//!
//! Why the revoker never reserves beside a solo section: the revoker's
//! `membarrier` runs a full barrier on the solo sender's CPU (or the solo
//! thread is not running, and passes one when it runs again). If the solo
//! sender's `busy = 1` came before that barrier, the revoker sees it (or
//! the later `busy = 0`, which the section's end publishes with its
//! reservation) and waits; if its look at `lock` came after it, it sees
//! the revoker's value and leaves without reserving. Either way the two
//! never both reserve. The solo sender needs no fence of its own: the
//! barrier is the revoker's, issued once per switch, where the lock's
//! compare-and-swap was paid on every send. The solo sender, having left,
//! takes the lock like everyone else (it does not come back to solo mode;
//! a sender that attaches alone later does).
//!
//! Solo mode needs `membarrier` ([`Memory::plain_publish`]): without it a
//! sender never enters it. The loom model puts a `SeqCst` fence at the
//! barrier's place and checks a second sender attaching mid-publish.
//!
//! # Batches
//!
//! A batch is one reservation holding several records back to back (at
//! most half the ring). The producer writes every record's payload and
//! length, the stamps of all records but the first with `Relaxed` stores,
//! then the first record's stamp with the one publishing store and one
//! wake check. The consumer reaches a later record only after taking the
//! first (its head), whose `Acquire` load synchronizes with that store, so
//! all of the batch is visible by then. Until the first stamp is written,
//! the batch is one reservation: a producer that dies (or a write that
//! fails) before it leaves it to be skipped as a whole — one `SKIP` record
//! whose length covers the batch — so a batch is delivered whole or not at
//! all.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::compiler_fence;

use super::fault::Fault;
use super::ring::{Memory, Ring, SenderWords, Slot, span};
use crate::Result;
#[cfg(loom)]
use crate::primitive::fence;

/// The lock-word bit that marks the holder as a solo sender (identities
/// use the low 63 bits: a process id below 2^22 in bits 32-53 and a start
/// time in bits 0-31).
pub const SOLO: u64 = 1 << 63;

impl<M: Memory> Ring<M> {
    /// Takes the reservation lock in solo mode for producer `id`, if it is
    /// free and this process publishes plainly; returns whether it did.
    /// For a sender that attached alone.
    pub fn try_enter_solo(&self, id: u64) -> bool {
        if !self.plain || id & SOLO != 0 {
            return false;
        }
        let lock = &self.memory().control().producer.0.lock;
        let ok = lock
            .compare_exchange(0, id | SOLO, Acquire, Relaxed)
            .is_ok();
        self.solo.set(ok);
        ok
    }

    /// Gives the solo lock back (the sender detaches): `lock` becomes free
    /// unless a revoker took it meanwhile.
    pub fn leave_solo(&self, id: u64) {
        if self.solo.replace(false) {
            let lock = &self.memory().control().producer.0.lock;
            let _ = lock.compare_exchange(id | SOLO, 0, Release, Relaxed);
        }
    }

    /// A solo section: `busy = 1`, a look at the lock, `f` if the lock is
    /// still this producer's solo lock, `busy = 0`. `None` (and solo mode
    /// left) when a revoker took the lock: the caller takes the lock the
    /// usual way.
    #[inline(always)]
    pub(super) fn solo_section<T>(
        &self,
        id: u64,
        me: &SenderWords,
        f: impl FnOnce() -> T,
    ) -> Option<T> {
        let lock = &self.memory().control().producer.0.lock;
        me.busy.store(1, Relaxed);
        // The revoker's `membarrier` is this thread's barrier here; the
        // compiler must keep the store before the load.
        compiler_fence(SeqCst);
        #[cfg(loom)]
        {
            if !self.memory().fault(Fault::SkipSoloFence) {
                fence(SeqCst);
            }
        }
        if lock.load(Relaxed) != id | SOLO {
            me.busy.store(0, Release);
            self.solo.set(false);
            return None;
        }
        let r = f();
        me.busy.store(0, Release);
        Some(r)
    }

    /// Takes the lock over from the solo sender `owner` (a lock value with
    /// [`SOLO`] set, seen by `try_reserve` as `Busy`) for producer `id`:
    /// swaps it for `id`, issues the barrier, waits until no slot of that
    /// sender is inside a section (or `is_dead` says it died: then what it
    /// left half-done is repaired), and frees the lock. Returns `false`
    /// when the lock no longer held `owner`, or when the solo sender stays
    /// in its section for more than a few milliseconds (preempted, or a
    /// peer scribbled its `busy` word): the lock is then handed back to it
    /// as it was, and the caller treats the lock as busy (retries, within
    /// its deadline).
    pub fn revoke_solo(&self, owner: u64, id: u64, is_dead: impl Fn(u64) -> bool) -> bool {
        debug_assert!(owner & SOLO != 0 && id & SOLO == 0);
        let lock = &self.memory().control().producer.0.lock;
        if lock.compare_exchange(owner, id, Acquire, Relaxed).is_err() {
            return false;
        }
        self.memory().fence_others();
        let solo = owner & !SOLO;
        // Loom-only planted bugs: never looked up in a real build.
        let skip = cfg!(loom) && self.memory().fault(Fault::SkipDrain);
        // Bounded: a live solo sender leaves its section within a few
        // instructions of running; after SPINS + YIELDS turns the lock
        // goes back to it.
        const SPINS: u32 = 1 << 10;
        const YIELDS: u32 = 1 << 12;
        for turn in 0..SPINS + YIELDS {
            let inside = !skip
                && self
                    .memory()
                    .senders()
                    .iter()
                    .any(|s| s.0.id.load(Relaxed) == solo && s.0.busy.load(Acquire) != 0);
            let gone = !inside || (turn % SPINS == SPINS - 1 && is_dead(solo));
            if gone {
                self.repair_after(solo);
                lock.store(0, Release);
                return true;
            }
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            {
                if turn < SPINS {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        // Still inside: as if we had never come (a solo section that saw
        // our value has left solo mode and takes the lock the usual way).
        lock.store(owner, Release);
        false
    }

    /// Writes `msgs` as records into a batch's reservation `region` (made
    /// by `try_reserve`/`try_reserve_fast` for the sum of their records'
    /// spans less one header) and publishes
    /// them: every record but the first is stamped with a plain store, the
    /// first last, with the one publication and wake check. A failed write
    /// abandons the whole batch (the consumer skips it).
    pub fn commit_batch<B: AsRef<[u8]>>(&self, region: &Slot, msgs: &[B]) -> Result<()> {
        let end = region.pos.wrapping_add(span(region.len).unwrap_or(0));
        let mut pos = region.pos;
        let mut first = None;
        let early = cfg!(loom) && self.memory().fault(Fault::BatchFirstEarly);
        for m in msgs {
            let m = m.as_ref();
            let len = m.len() as u64;
            let next = span(len).map(|s| pos.wrapping_add(s));
            if next.is_none_or(|n| n.wrapping_sub(region.pos) > end.wrapping_sub(region.pos)) {
                self.abandon(region);
                return Err(crate::Error::InvalidArgument(
                    "batch does not fit its reservation".into(),
                ));
            }
            let slot = self.record_slot(pos, len);
            if let Err(e) = self.write(&slot, 0, m) {
                self.abandon(region);
                return Err(e);
            }
            if first.is_none() {
                if early {
                    self.commit(&slot);
                }
                first = Some(slot);
            } else {
                self.stamp_quietly(&slot);
            }
            pos = next.unwrap_or(end);
        }
        match first {
            Some(slot) if pos == end => {
                if !early {
                    self.commit(&slot);
                }
                Ok(())
            }
            _ => {
                self.abandon(region);
                Err(crate::Error::InvalidArgument(
                    "batch does not fill its reservation".into(),
                ))
            }
        }
    }
}
