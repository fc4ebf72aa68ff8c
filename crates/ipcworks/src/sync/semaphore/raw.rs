//! The semaphore protocol over a few atomic words, knowing nothing of mmap,
//! so the same code runs between threads under loom and between processes
//! over shared memory.
//!
//! # The words
//!
//! [`SemaphoreState`] (24 bytes, `#[repr(C)]`):
//!
//! - `word: u64` = `count` (low 32 bits, at most [`MAX_VALUE`]) | `claim`
//!   (high 32 bits). The claim is `0` or `kind | (slot + 1)` where `kind` is
//!   [`CLAIM_RELEASE`] or 0 (acquire). It names the one holder-table slot
//!   whose two-word update (count and slot) is half done.
//! - `helper: u64`: the identity of the process repairing a dead process's
//!   half-done update, or 0. A tiny lock, stolen from a dead holder.
//! - `seq: u32`: the futex word. Bumped by every post that finds sleepers.
//! - `waiters: u32`: how many are asleep (or about to be) on `seq`, so that
//!   `post` calls `FUTEX_WAKE` only when someone sleeps; plus [`POLLER`]
//!   for each registered poller (a [`WaitSet`](crate::waitset::WaitSet)
//!   watching the semaphore), which makes posts wake *every* sleeper.
//!
//! A holder table (pool use only) is a slice of `u64` slots: 0 when free,
//! otherwise a process identity (pid and start time; the pid needs at most
//! 22 bits, so bits 62..64 are always 0 in an identity) with a state in bits
//! 62..64: RESERVED, HELD or RELEASED.
//!
//! # Plain wait and post
//!
//! They change only the count bits (CAS on the whole word, claim bits kept).
//! A waiter registers in `waiters`, reads `seq`, re-checks the count, then
//! sleeps on `seq`; a poster CASes the count, then reads `waiters` and, if
//! non-zero, bumps `seq` and wakes one. All SeqCst: either the poster sees
//! the waiter registered (and wakes it or changes `seq` under its feet), or
//! the waiter's re-check comes after the post in the total order and sees
//! the count. A waiter that leaves without taking a permit (timeout, error)
//! while the count is positive passes the wake-up on.
//!
//! # Pollers
//!
//! A poller wants to *learn* that a permit is there, not take it (its
//! owner then calls `try_wait`, and may find it taken by someone else: a
//! hint). It registers like a waiter but with [`POLLER`] (`poll_arm`),
//! reads `seq`, looks at the count, and sleeps on `seq` in a helper thread
//! (the same store-then-load argument as a waiter's). Since a poller takes
//! nothing, `FUTEX_WAKE(1)` could wake the poller instead of a waiter that
//! needed the permit, and that waiter would sleep on beside a permit: so
//! while any poller is registered, a post wakes all sleepers on `seq`
//! (`wake_one` reads one word to tell). The loom model
//! `a_poller_registering_while_a_post_publishes_is_woken_with_the_waiters`
//! checks both halves. The native queue's `filled` semaphore has pollers
//! too (a WaitSet's helper watching for a message, not a permit); the
//! queue's commits also wake them without posting ([`wake_all`]; see
//! `queue/wake.rs`).
//!
//! Sleepers sleep without a timer (cheapest) unless the holder table
//! records someone: then they wake every 100 ms to look for dead holders
//! (and a named semaphore's sleeper, after a millisecond on the same
//! holders, has their pidfds watched: a holder's exit wakes it to look at
//! once; `watch.rs`).
//! Known limit of the timer-less sleep: a waiter killed in the instant
//! between being woken and taking its permit swallows that wake-up; the
//! permit stays in the count for the next post's waiter or any `try_wait`
//! (POSIX semaphores share this).
//!
//! # Robust acquire and release
//!
//! (Implemented in `robust.rs`, beside this file.)
//!
//! `acquire` (A) by process P:
//! 1. reserve a slot `s`: CAS slot 0 → P|RESERVED;
//! 2. CAS word (c > 0, claim 0) → (c - 1, ACQUIRE|s) — the permit is taken;
//! 3. CAS slot P|RESERVED → P|HELD — it is recorded;
//! 4. CAS word (c', ACQUIRE|s) → (c', 0).
//!
//! `release` (R) of slot `s` held by owner O (O itself, or a helper on behalf
//! of a dead O):
//! 1. CAS word (c, 0) → (c + 1, RELEASE|s) — the permit is back;
//! 2. CAS slot O|HELD → O|RELEASED;
//! 3. CAS word (c', RELEASE|s) → (c', 0);
//! 4. CAS slot O|RELEASED → 0.
//!
//! Invariant: while a claim names slot `s`, slot `s` is not free and its
//! owner is the claimer (or, for a release on behalf of a dead holder, the
//! dead holder, with the helper lock held by the helper doing it). Claims
//! are cleared before their slot is freed, and a new claim needs claim 0.
//!
//! A process killed between any two steps leaves a state that tells exactly
//! what is left to do, and whoever finds the claimer dead finishes it,
//! holding the helper lock (so two helpers never act on the same stale
//! reading — a helper's CAS on the word could otherwise succeed on an ABA
//! of the word):
//!
//! | claim | slot `s` (owner dead) | what happened | the helper does |
//! |---|---|---|---|
//! | none naming `s` | RESERVED | A1 only | free the slot |
//! | ACQUIRE\|s | RESERVED | A2, the count was decremented | count + 1 and clear the claim in one CAS, then free the slot |
//! | ACQUIRE\|s | HELD | A3 | clear the claim; the slot is a dead holder's |
//! | none naming `s` | HELD | a dead holder | reclaim: release on its behalf |
//! | RELEASE\|s | HELD | R1 | slot → RELEASED, then as below |
//! | RELEASE\|s | RELEASED | R2 | clear the claim, free the slot |
//! | none naming `s` | RELEASED | R3 | free the slot |
//!
//! Ordering: a helper reads the slot, confirms its owner dead, and only
//! then reads the word. A dead process's memory effects are all visible
//! once the kernel says it is dead, so after that the slot can change only
//! by the helper (which holds the lock), and the claim read afterwards is
//! final as far as that owner is concerned. Reading the claim first would
//! race with the owner's own step 2: a "no claim" read just before it
//! claims and dies would make us free a slot whose permit was taken.
//!
//! # Co-holders
//!
//! A permit can be held by two processes at once: its owner and a child
//! command the owner runs under it (`ipcworks sem run`). Beside the holder
//! table is a table of co-holders, one word per slot: 0, or the child's
//! identity. The owner's permit is reclaimed only when the owner *and* its
//! co-holder are dead, so a child that outlives its owner (a set-user-ID
//! program loses the parent-death signal; dying takes a moment) keeps the
//! permit until it is gone.
//!
//! The child writes its own identity into the word, between fork and exec,
//! and then checks that its parent is still the owner (`getppid`); if not,
//! it exits without running the command. A reclaimer confirms the owner
//! dead first and only then reads the co-holder word. So either the child's
//! write came before the owner's death — then the reclaimer, which saw that
//! death, reads it — or the owner was already dead when the child checked,
//! and the child never runs. Reading the word before confirming the owner
//! dead would race with a child that records itself just after.
//!
//! This is the store-then-load pattern on both sides (Dekker's), which
//! needs sequential consistency between each side's store and load: a
//! `fence(SeqCst)` on each side (the child's after its store; the
//! reclaimer's between its liveness check and its load). The system calls
//! in between are full barriers too, but the fences say it in Rust's terms
//! and make the loom model (`a_running_co_holder_keeps_a_dead_owners_permit`,
//! which finds the race without them) exact.
//!
//! The owner clears the word after reaping the child and before releasing;
//! a reclaimer that found both dead clears it before releasing on the
//! owner's behalf. The word is non-zero only while its slot is HELD.
//!
//! Everything here is read from memory other processes write: a count
//! above [`MAX_VALUE`], a claim naming a slot outside the table, or a claim
//! that keeps naming a free slot is [`Error::Corrupted`].

use std::sync::atomic::Ordering::SeqCst;

use crate::primitive::{AtomicU32, AtomicU64};
use crate::sys::time::Deadline;
use crate::{Error, Result};

/// The largest value a semaphore holds (`SEM_VALUE_MAX` on Linux).
pub const MAX_VALUE: u32 = i32::MAX as u32;
/// The largest holder table.
pub const MAX_HOLDERS: u32 = 1 << 16;

pub(super) const COUNT_MASK: u64 = 0xFFFF_FFFF;
/// Claim kind bit: a release (clear: an acquire).
pub(super) const CLAIM_RELEASE: u32 = 1 << 31;
pub(super) const CLAIM_SLOT: u32 = !CLAIM_RELEASE;

pub(super) const STATE_SHIFT: u32 = 62;
pub(super) const IDENT_MASK: u64 = (1 << STATE_SHIFT) - 1;
pub(super) const FREE: u64 = 0;
pub(super) const RESERVED: u64 = 1;
pub(super) const HELD: u64 = 2;
pub(super) const RELEASED: u64 = 3;

/// The shared words of one semaphore: 24 bytes, 8-aligned, all zero is a
/// valid semaphore of value 0. The protocol over these words is described
/// (and argued) at the top of `sync/semaphore/raw.rs`.
#[repr(C)]
#[derive(Debug)]
pub struct SemaphoreState {
    pub(super) word: AtomicU64,
    pub(super) helper: AtomicU64,
    pub(super) seq: AtomicU32,
    pub(super) waiters: AtomicU32,
}

impl SemaphoreState {
    /// A state of value `value` (for use inside one process, or to copy the
    /// layout). Values above [`MAX_VALUE`] are clamped.
    #[cfg(not(loom))]
    pub const fn new(value: u32) -> Self {
        let v = if value > MAX_VALUE { MAX_VALUE } else { value };
        SemaphoreState {
            word: AtomicU64::new(v as u64),
            helper: AtomicU64::new(0),
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// A state of value `value` (loom build).
    #[cfg(loom)]
    pub fn new(value: u32) -> Self {
        SemaphoreState {
            word: AtomicU64::new(value.min(MAX_VALUE) as u64),
            helper: AtomicU64::new(0),
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Sets the value of a state nobody uses yet (the creator, before it
    /// publishes the memory).
    pub fn init(&self, value: u32) -> Result<()> {
        check_value(value)?;
        self.word.store(value as u64, SeqCst);
        self.helper.store(0, SeqCst);
        self.seq.store(0, SeqCst);
        self.waiters.store(0, SeqCst);
        Ok(())
    }

    /// How many threads sleep (or are about to) waiting for a permit: a
    /// snapshot for monitoring. A waiter killed while asleep stays counted
    /// (it only costs later posts a `FUTEX_WAKE`). A
    /// [`WaitSet`](crate::waitset::WaitSet) watching the state is not
    /// counted: it waits for no permit.
    pub fn waiters(&self) -> u32 {
        // Pollers (a WaitSet's registration) wait for no permit.
        self.waiters.load(SeqCst) % POLLER
    }

    /// The current count (permits available).
    pub fn value(&self) -> Result<u32> {
        let c = count(self.word.load(SeqCst));
        if c > MAX_VALUE {
            return Err(bad_count(c));
        }
        Ok(c)
    }
}

/// Rejects values above [`MAX_VALUE`].
pub(crate) fn check_value(value: u32) -> Result<()> {
    if value > MAX_VALUE {
        return Err(Error::InvalidArgument(format!(
            "semaphore value {value} is above the maximum {MAX_VALUE} (SEM_VALUE_MAX)"
        )));
    }
    Ok(())
}

pub(super) fn count(w: u64) -> u32 {
    (w & COUNT_MASK) as u32
}
pub(super) fn claim(w: u64) -> u32 {
    (w >> 32) as u32
}
pub(super) fn pack(count: u32, claim: u32) -> u64 {
    ((claim as u64) << 32) | count as u64
}
pub(super) fn bad_count(c: u32) -> Error {
    Error::corrupted(format!(
        "semaphore count {c} is above the maximum {MAX_VALUE}"
    ))
}
pub(super) fn slot_word(ident: u64, state: u64) -> u64 {
    ident | (state << STATE_SHIFT)
}

/// What the protocol needs from its surroundings: who we are, whether
/// another process lives, and how to sleep. Real processes use futexes and
/// `/proc`; the loom model uses yields and a table.
pub(crate) trait Env {
    /// This process's identity (non-zero, below 2^62).
    fn me(&self) -> u64;
    /// Whether the process named by `ident` still runs.
    fn is_alive(&self, ident: u64) -> bool;
    /// Sleeps while `word == expected`, not past `deadline`; may return
    /// early, the caller re-checks. With `watch`, returns now and then even
    /// without a wake-up (to look for dead holders). Returns false once the
    /// deadline has passed.
    fn sleep(&self, word: &AtomicU32, expected: u32, deadline: Deadline, watch: bool) -> bool;
    /// Wakes one sleeper on `word`.
    fn wake(&self, word: &AtomicU32);
    /// Wakes every sleeper on `word` (a poller is among them).
    fn wake_all(&self, word: &AtomicU32);
    /// Backs off while a live process finishes a two-step update
    /// (`round` counts the rounds so far).
    fn pause(&self, round: u32);
    /// Whether a scan for dead holders is due (rate limit).
    fn scan_due(&self, last: &mut Option<std::time::Instant>) -> bool;
    /// Test hook: return true to stop right after protocol step `_at`, as
    /// if killed there.
    fn crash(&self, _at: Step) -> bool {
        false
    }
}

/// Points in acquire and release where a test may simulate a kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Step {
    Reserved,
    Claimed,
    Recorded,
    Released1,
    Released2,
    Released3,
}

/// Why a try failed.
enum Try {
    Empty,
    Err(Error),
}

// ---------------------------------------------------------------- plain

fn try_take(st: &SemaphoreState) -> std::result::Result<(), Try> {
    let mut w = st.word.load(SeqCst);
    loop {
        let c = count(w);
        if c > MAX_VALUE {
            return Err(Try::Err(bad_count(c)));
        }
        if c == 0 {
            return Err(Try::Empty);
        }
        match st.word.compare_exchange_weak(w, w - 1, SeqCst, SeqCst) {
            Ok(_) => return Ok(()),
            Err(now) => w = now,
        }
    }
}

/// `sem_trywait`: takes a permit if one is there.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn try_wait(st: &SemaphoreState) -> Result<()> {
    match try_take(st) {
        Ok(()) => Ok(()),
        Err(Try::Empty) => Err(Error::WouldBlock),
        Err(Try::Err(e)) => Err(e),
    }
}

/// `sem_post`: gives a permit back (count + 1), waking one sleeper.
pub(crate) fn post<E: Env>(st: &SemaphoreState, env: &E) -> Result<()> {
    let mut w = st.word.load(SeqCst);
    loop {
        let c = count(w);
        if c > MAX_VALUE {
            return Err(bad_count(c));
        }
        if c == MAX_VALUE {
            return Err(Error::LimitExceeded {
                limit: "semaphore value (SEM_VALUE_MAX)".into(),
                value: MAX_VALUE.to_string(),
                hint: "post would overflow the count; wait first".into(),
            });
        }
        match st.word.compare_exchange_weak(w, w + 1, SeqCst, SeqCst) {
            Ok(_) => break,
            Err(now) => w = now,
        }
    }
    wake_one(st, env);
    Ok(())
}

pub(super) fn wake_one<E: Env>(st: &SemaphoreState, env: &E) {
    loom_fence();
    let waiters = st.waiters.load(SeqCst);
    if waiters != 0 {
        st.seq.fetch_add(1, SeqCst);
        if waiters >= POLLER {
            env.wake_all(&st.seq);
        } else {
            env.wake(&st.seq);
        }
    }
}

/// Wakes every sleeper on `seq` without posting a permit, if anyone is
/// registered: the native queue's commit telling its pollers (WaitSet
/// helpers, which take no permit) that a message is there. The same
/// store-then-load argument as [`wake_one`]'s: a poller that registered
/// after this load saw nothing here, and its look comes after the
/// caller's change.
pub(crate) fn wake_all<E: Env>(st: &SemaphoreState, env: &E) {
    loom_fence();
    if st.waiters.load(SeqCst) != 0 {
        st.seq.fetch_add(1, SeqCst);
        env.wake_all(&st.seq);
    }
}

/// How long a poller (a [`WaitSet`](crate::waitset::WaitSet)'s helper
/// thread) sleeps before it looks at its segment's size and its `stop`
/// itself: a peer that truncates the segment wakes no futex, and takes
/// away the page a sleeping helper would be interrupted on. One wake-up
/// a second: no measurable CPU.
#[cfg(not(loom))]
pub(crate) const POLL_SLICE: std::time::Duration = std::time::Duration::from_secs(1);

/// What a poller adds to `waiters` (see "Pollers" in the module docs):
/// waiters proper stay far below it (a process has fewer threads).
pub(crate) const POLLER: u32 = 1 << 16;

/// A poller's registration: counts in `waiters` (so posts bump `seq` and
/// wake everyone), then reads `seq`: the value to sleep on. Look at the
/// count with [`poll_ready`] after this, before sleeping.
pub(crate) fn poll_arm(st: &SemaphoreState) -> u32 {
    st.waiters.fetch_add(POLLER, SeqCst);
    loom_fence();
    st.seq.load(SeqCst)
}

/// The registration (`waiters`) and the post (the count) are each a
/// `SeqCst` read-modify-write followed by a `SeqCst` load of the other
/// side's word: in the single total order of `SeqCst` operations one of
/// the two loads sees the other side's write (C++20's rules; on x86 each
/// RMW is a locked instruction, a full barrier). Loom models `SeqCst`
/// read-modify-writes as only `AcqRel`, so under loom the same argument
/// is written with a `SeqCst` fence after each RMW, which loom models
/// exactly (as `channel/ring.rs`'s `store_then_fence` does); the real
/// build pays nothing extra on the post path.
#[inline(always)]
fn loom_fence() {
    #[cfg(loom)]
    crate::primitive::fence(SeqCst);
}

/// Whether a permit is there now (a hint for the poller's owner).
pub(crate) fn poll_ready(st: &SemaphoreState) -> bool {
    st.value().is_ok_and(|c| c > 0)
}

/// The futex word sleepers sleep on (for another module's pollers: the
/// native queue's, see `queue/wake.rs`).
pub(crate) fn futex_word(st: &SemaphoreState) -> &AtomicU32 {
    &st.seq
}

/// Ends a poller's registration.
pub(crate) fn poll_disarm(st: &SemaphoreState) {
    let _ = st
        .waiters
        .fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(POLLER)));
}

/// Interrupts a [`poll_wait`] (the semaphore's or the queue's) after its
/// `stop` was set: moves `seq` (so a sleeper about to sleep on the old
/// value does not) and wakes every sleeper on it (the others look and
/// sleep again).
#[cfg(not(loom))]
pub(crate) fn interrupt(st: &SemaphoreState) {
    st.seq.fetch_add(1, SeqCst);
    crate::sys::futex::wake_all(&st.seq);
}

/// A poller's wait (see "Pollers" in the module docs): registered with
/// [`POLLER`], sleeps on `seq` until `ready` says so (`true`; nothing
/// taken) or `stop` is set and [`interrupt`] called (`false`). `ready` is
/// the poller's non-consuming look ([`poll_ready`], or also "the segment
/// is gone"). `sleep` sleeps on the word while it holds the value and
/// returns false when the memory is gone (then this returns `true`: the
/// owner's own call reports it).
#[cfg(not(loom))]
pub(crate) fn poll_wait(
    st: &SemaphoreState,
    stop: &std::sync::atomic::AtomicBool,
    ready: impl Fn() -> bool,
    sleep: impl Fn(&AtomicU32, u32) -> bool,
) -> bool {
    let seen = poll_arm(st);
    let mut seq = seen;
    let ready = loop {
        if ready() {
            break true;
        }
        if stop.load(SeqCst) {
            break false;
        }
        if !sleep(&st.seq, seq) {
            break true;
        }
        seq = st.seq.load(SeqCst);
    };
    poll_disarm(st);
    ready
}

/// Sleeps until `ready` returns something other than `Ok(None)`, or the
/// deadline passes. `ready` is called after registering as a waiter and
/// reading `seq`, so no post between the check and the sleep is missed.
/// `watch` says whether to wake up now and then (permits are recorded in a
/// holder table, so a holder may die without posting).
pub(super) fn block<E: Env, T>(
    st: &SemaphoreState,
    env: &E,
    deadline: Deadline,
    watch: &dyn Fn() -> bool,
    mut ready: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    st.waiters.fetch_add(1, SeqCst);
    loom_fence();
    let res = loop {
        let seq = st.seq.load(SeqCst);
        match ready() {
            Ok(Some(t)) => break Ok(t),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if !env.sleep(&st.seq, seq, deadline, watch()) {
            // One last look: a post may have raced with the deadline.
            match ready() {
                Ok(Some(t)) => break Ok(t),
                Ok(None) => break Err(Error::Timeout),
                Err(e) => break Err(e),
            }
        }
    };
    st.waiters.fetch_sub(1, SeqCst);
    if res.is_err() && st.value().is_ok_and(|c| c > 0) {
        // We may have swallowed a wake-up meant for a permit we leave.
        wake_one(st, env);
    }
    res
}

/// `sem_wait` / `sem_clockwait`: takes a permit, sleeping while there is
/// none, until `deadline`. `on_empty` runs when the count is 0 (the pool
/// uses it to reclaim dead holders' permits).
pub(crate) fn wait<E: Env>(
    st: &SemaphoreState,
    env: &E,
    deadline: Deadline,
    watch: &dyn Fn() -> bool,
    mut on_empty: impl FnMut() -> Result<()>,
) -> Result<()> {
    match try_take(st) {
        Ok(()) => return Ok(()),
        Err(Try::Err(e)) => return Err(e),
        Err(Try::Empty) => {}
    }
    block(st, env, deadline, watch, || match try_take(st) {
        Ok(()) => Ok(Some(())),
        Err(Try::Err(e)) => Err(e),
        Err(Try::Empty) => {
            on_empty()?;
            match try_take(st) {
                Ok(()) => Ok(Some(())),
                Err(Try::Err(e)) => Err(e),
                Err(Try::Empty) => Ok(None),
            }
        }
    })
}

#[cfg(all(test, loom))]
#[path = "loom_tests.rs"]
mod loom_tests;
