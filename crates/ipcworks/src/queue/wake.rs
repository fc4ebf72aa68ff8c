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
//! bit  16      POLLER: a poller may be asleep (set by each poller before
//!              it looks and sleeps, cleared by the commit that wakes it)
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
//! sleeper needs: its owner calls `try_recv` later, or never. It
//! registers as a poller on the semaphore (so every post on it wakes all
//! its sleepers, see "Pollers" in `sync/semaphore/raw.rs`); then, before
//! each look, sets [`POLLER`] in the register, reads the semaphore's
//! futex word, fences, looks, and sleeps on the word without taking
//! anything. A commit that finds the bit set clears it and:
//!
//! - posts a permit when a sleeper is registered and not every sleeper
//!   has one (as before); the post wakes every sleeper, the poller among
//!   them, because the poller is registered on the semaphore;
//! - else moves the futex word and wakes every sleeper on it, posting
//!   nothing ([`raw::wake_all`]): a permit nobody takes would only wake a
//!   later sleeper for nothing.
//!
//! So a sleeper's wake-up is never the poller's: with one permit and one
//! `FUTEX_WAKE(1)` (the protocol before layout 6, when the helper was one
//! more sleeper) the kernel could wake the helper, which took the permit,
//! and a blocked `recv` of another process then slept beside the message
//! until its 50 ms look if the helper's owner left the message there.
//!
//! The bit is a doorbell, not a count: one commit wakes every poller
//! asleep, and each sets it again before it sleeps again. A poller that
//! stops, or dies, leaves it set, which costs the next commit one
//! wake-up and no more; the senders are then back on the fast path (one
//! load of a zero register, no system call). A count would keep a killed
//! process's helper registered for good, and every later send would make
//! a system call.
//!
//! Why nothing is lost: the commit (a `SeqCst` compare-and-swap on a slot
//! word) comes before the commit's load of the register, and the
//! poller's setting of the bit (a `SeqCst` read-modify-write) before its
//! fence and its look; in the single total order one of the two sees the
//! other. If the commit missed the bit, the poller's look sees the
//! message. If it saw the bit, the poller had registered on the semaphore
//! before setting it, so the commit's wake reaches every sleeper, and it
//! moves the futex word after the poller set the bit: the poller's
//! `FUTEX_WAIT` on the value it read then returns at once or is woken.
//! (A poller that set the bit again after the commit cleared it comes
//! after the commit in that order too, and its look sees the message.)
//! The loom models in `loom_wake.rs` check this (no planted-bug model
//! keeps the old protocol's failure reproducible there).
//!
//! A register a peer scribbled can only cost wake-ups (at most 65,535
//! permits, and sleepers look every slice).

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::primitive::{AtomicU32, fence};
use crate::sync::SemaphoreState;
use crate::sync::semaphore::raw::{self, Env};

/// The pollers' bit of a sleepers register (see the module docs).
pub(crate) const POLLER: u32 = 1 << 16;
/// The sleepers' count: the low 16 bits.
const SLEEPERS: u32 = POLLER - 1;

/// A sleeper's registration before its last look: the add, then a fence
/// that orders it before the look's relaxed loads.
pub(crate) fn register(sleepers: &AtomicU32) {
    sleepers.fetch_add(1, SeqCst);
    fence(SeqCst);
}

/// A sleeper's deregistration (never below zero, never into the
/// pollers' bit).
pub(crate) fn deregister(sleepers: &AtomicU32) {
    let _ = sleepers.fetch_update(SeqCst, Relaxed, |v| (v & SLEEPERS != 0).then(|| v - 1));
}

/// After a commit (a `SeqCst` compare-and-swap that made a message or a
/// free slot available): a permit for a registered sleeper that has none
/// yet, and a wake-up for every poller asleep; nothing (one load) while
/// the register is zero.
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
    let polled = s & POLLER != 0;
    if polled {
        // Rung: every poller asleep is woken below, and sets it again
        // before it sleeps again.
        sleepers.fetch_and(!POLLER, SeqCst);
    }
    let real = s & SLEEPERS;
    let posted = real != 0 && sem.value().is_ok_and(|v| v < real) && raw::post(sem, env).is_ok();
    if polled && !posted {
        raw::wake_all(sem, env);
    }
}

/// A poller, registered on the semaphore, before each look: sets the
/// pollers' bit, reads the futex word, fences. Returns the value to
/// sleep on.
pub(crate) fn poll_prepare(sleepers: &AtomicU32, sem: &SemaphoreState) -> u32 {
    sleepers.fetch_or(POLLER, SeqCst);
    let seq = raw::futex_word(sem).load(SeqCst);
    fence(SeqCst);
    seq
}

/// A poller's wait: registered as a poller, until `ready` (the queue's
/// non-consuming look: a message is there) says so (`true`, nothing
/// taken) or `stop` is set and [`raw::interrupt`] called (`false`).
/// `sleep` sleeps on the word while it holds the value and returns false
/// when the memory is gone (then this returns `true`: the owner's own
/// call reports it).
#[cfg(not(loom))]
pub(crate) fn poll_wait(
    sleepers: &AtomicU32,
    sem: &SemaphoreState,
    stop: &std::sync::atomic::AtomicBool,
    ready: impl Fn() -> bool,
    sleep: impl Fn(&AtomicU32, u32) -> bool,
) -> bool {
    raw::poll_arm(sem);
    let r = loop {
        let seq = poll_prepare(sleepers, sem);
        if ready() {
            break true;
        }
        if stop.load(SeqCst) {
            break false;
        }
        if !sleep(raw::futex_word(sem), seq) {
            break true;
        }
    };
    // The bit stays: the next commit clears it (one wake-up, of nobody
    // if nobody sleeps).
    raw::poll_disarm(sem);
    r
}
