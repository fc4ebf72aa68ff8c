//! The queue's wake-up protocol, pure: who registers where before a
//! sleep, and what a commit does after it, over a *sleepers register*
//! (`recv_sleepers` or `send_sleepers` in the header) and the side's
//! wake-up semaphore (`filled` or `free`). Nothing here knows about mmap:
//! the same code runs over the segment and, under loom
//! (`loom_wake.rs`), between threads.
//!
//! # The register
//!
//! ```text
//! bits 16..32  pollers: WaitSet helpers watching this side (POLLER each)
//! bits  0..16  sleepers: blocked calls about to sleep or asleep (1 each)
//! ```
//!
//! A **sleeper** (a blocked `recv` or `send`) adds 1, fences, looks once
//! more, and P()s the semaphore for a slice; a commit that finds it
//! registered V()s, unless every registered sleeper already has a permit
//! (so the permits stay bounded by the sleepers).
//!
//! A **poller** (a [`WaitSet`](crate::waitset::WaitSet)'s helper) wants
//! to *learn* that a message is there, not take it, nor the permit a
//! sleeper needs: its owner calls `try_recv` later, or never. It adds
//! [`POLLER`] to the register (so every commit acts while it is there)
//! and registers as a poller on the semaphore too (so every post on it
//! wakes all its sleepers, see "Pollers" in `sync/semaphore/raw.rs`),
//! fences, looks, and sleeps on the semaphore's futex word without
//! taking anything. A commit then:
//!
//! - posts a permit when a sleeper is registered and not every sleeper
//!   has one (as before); the post wakes every sleeper, the poller among
//!   them, because the poller is registered on the semaphore;
//! - else, when a poller is registered, moves the futex word and wakes
//!   every sleeper on it, posting nothing ([`raw::wake_all`]): a permit
//!   nobody takes would only wake a later sleeper for nothing.
//!
//! So a sleeper's wake-up is never the poller's: with one permit and one
//! `FUTEX_WAKE(1)` (the protocol before layout 6) the kernel could wake
//! the helper, which took the permit, and a blocked `recv` of another
//! process then slept beside the message until its 50 ms look if the
//! helper's owner left the message there.
//!
//! Why nothing is lost: the commit (a `SeqCst` compare-and-swap on a slot
//! word) comes before the commit's load of the register, and the
//! poller's registrations (`SeqCst` read-modify-writes) before its fence
//! and its look; in the single total order one of the two loads sees the
//! other side's write. If the commit missed the poller, the poller's look
//! sees the message. If it saw the poller, it moves the futex word after
//! the poller registered on the semaphore — or its `waiters` load missed
//! that registration too, and then again the poller's look, later, sees
//! the message — so the poller's `FUTEX_WAIT` on the value it read before
//! looking returns at once or is woken. The loom models in `loom_wake.rs`
//! check this, and fail with the old protocol.
//!
//! The pollers' field costs the senders nothing: the fast path is still
//! one load of the register (zero: no sleeper, no poller, no system call).
//! A register a peer scribbled can only cost wake-ups (at most 65,535
//! permits, and sleepers look every slice).

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::primitive::{AtomicU32, fence};
use crate::sync::SemaphoreState;
use crate::sync::semaphore::raw::{self, Env};

/// What a poller adds to a sleepers register (sleepers proper count in
/// the low 16 bits).
pub(crate) const POLLER: u32 = 1 << 16;

/// A sleeper's registration before its last look: the add, then a fence
/// that orders it before the look's relaxed loads.
pub(crate) fn register(sleepers: &AtomicU32) {
    sleepers.fetch_add(1, SeqCst);
    fence(SeqCst);
}

/// Takes back `unit` (1, or [`POLLER`]) from the register.
pub(crate) fn deregister(sleepers: &AtomicU32, unit: u32) {
    let _ = sleepers.fetch_update(SeqCst, Relaxed, |v| Some(v.saturating_sub(unit)));
}

/// After a commit (a `SeqCst` compare-and-swap that made a message or a
/// free slot available): a permit for a registered sleeper that has none
/// yet, else a wake-up for registered pollers, else nothing (one load).
#[inline]
pub(crate) fn wake<E: Env>(sleepers: &AtomicU32, sem: &SemaphoreState, env: &E) {
    // Loom models a SeqCst compare-and-swap as acquire-release only: the
    // fence says the store-then-load order there (see `raw::loom_fence`).
    #[cfg(loom)]
    fence(SeqCst);
    let s = sleepers.load(SeqCst);
    if s == 0 {
        return;
    }
    let (real, pollers) = (s % POLLER, s / POLLER);
    if real != 0 && sem.value().is_ok_and(|v| v < real) {
        let _ = raw::post(sem, env);
    } else if pollers != 0 {
        raw::wake_all(sem, env);
    }
}

/// A poller's registration, as [`poll_wait`] makes it: in the register,
/// then on the semaphore, then the fence before the look. Returns the
/// futex value to sleep on.
#[cfg_attr(not(loom), allow(dead_code))]
pub(crate) fn poll_arm(sleepers: &AtomicU32, sem: &SemaphoreState) -> u32 {
    sleepers.fetch_add(POLLER, SeqCst);
    let seq = raw::poll_arm(sem);
    fence(SeqCst);
    seq
}

/// Ends a poller's registration.
#[cfg_attr(not(loom), allow(dead_code))]
pub(crate) fn poll_disarm(sleepers: &AtomicU32, sem: &SemaphoreState) {
    raw::poll_disarm(sem);
    deregister(sleepers, POLLER);
}

/// A poller's wait: registered as a poller, until `ready` (the queue's
/// non-consuming look: a message is there) says so (`true`, nothing
/// taken) or `stop` is set and [`raw::interrupt`] called (`false`).
/// `sleep` as for [`raw::poll_wait`].
#[cfg(not(loom))]
pub(crate) fn poll_wait(
    sleepers: &AtomicU32,
    sem: &SemaphoreState,
    stop: &std::sync::atomic::AtomicBool,
    ready: impl Fn() -> bool,
    sleep: impl Fn(&AtomicU32, u32) -> bool,
) -> bool {
    sleepers.fetch_add(POLLER, SeqCst);
    // Registers on the semaphore, fences, looks, sleeps.
    let r = raw::poll_wait(sem, stop, ready, sleep);
    deregister(sleepers, POLLER);
    r
}
