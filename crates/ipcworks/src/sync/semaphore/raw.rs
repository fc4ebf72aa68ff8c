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
//!   `post` calls `FUTEX_WAKE` only when someone sleeps.
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
//! Sleepers sleep without a timer (cheapest) unless the holder table
//! records someone: then they wake every 100 ms to look for dead holders.
//! Known limit of the timer-less sleep: a waiter killed in the instant
//! between being woken and taking its permit swallows that wake-up; the
//! permit stays in the count for the next post's waiter or any `try_wait`
//! (POSIX semaphores share this).
//!
//! # Robust acquire and release
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
//! Everything here is read from memory other processes write: a count
//! above [`MAX_VALUE`], a claim naming a slot outside the table, or a claim
//! that keeps naming a free slot is [`Error::Corrupted`].

use std::sync::atomic::Ordering::SeqCst;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::sys::time::Deadline;
use crate::{Error, Result};

/// The largest value a semaphore holds (`SEM_VALUE_MAX` on Linux).
pub const MAX_VALUE: u32 = i32::MAX as u32;
/// The largest holder table.
pub const MAX_HOLDERS: u32 = 1 << 16;

const COUNT_MASK: u64 = 0xFFFF_FFFF;
/// Claim kind bit: a release (clear: an acquire).
const CLAIM_RELEASE: u32 = 1 << 31;
const CLAIM_SLOT: u32 = !CLAIM_RELEASE;

const STATE_SHIFT: u32 = 62;
const IDENT_MASK: u64 = (1 << STATE_SHIFT) - 1;
const FREE: u64 = 0;
const RESERVED: u64 = 1;
const HELD: u64 = 2;
const RELEASED: u64 = 3;

/// How many consecutive looks at a claim naming a free slot before we call
/// it corruption (a real claim lasts a few instructions).
const INCONSISTENT_LIMIT: u32 = 300;
/// How long a release on behalf of a dead holder waits for a live claimer
/// before giving up (it is retried at the next scan).
const HELPER_PATIENCE: u32 = 2_000;

/// The shared words of one semaphore: 24 bytes, 8-aligned, all zero is a
/// valid semaphore of value 0. The protocol over these words is described
/// (and argued) at the top of `sync/semaphore/raw.rs`.
#[repr(C)]
#[derive(Debug)]
pub struct SemaphoreState {
    word: AtomicU64,
    helper: AtomicU64,
    seq: AtomicU32,
    waiters: AtomicU32,
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

fn count(w: u64) -> u32 {
    (w & COUNT_MASK) as u32
}
fn claim(w: u64) -> u32 {
    (w >> 32) as u32
}
fn pack(count: u32, claim: u32) -> u64 {
    ((claim as u64) << 32) | count as u64
}
fn bad_count(c: u32) -> Error {
    Error::corrupted(format!(
        "semaphore count {c} is above the maximum {MAX_VALUE}"
    ))
}
fn slot_word(ident: u64, state: u64) -> u64 {
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
    fn sleep(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Deadline>,
        watch: bool,
    ) -> bool;
    /// Wakes one sleeper on `word`.
    fn wake(&self, word: &AtomicU32);
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

fn wake_one<E: Env>(st: &SemaphoreState, env: &E) {
    if st.waiters.load(SeqCst) != 0 {
        st.seq.fetch_add(1, SeqCst);
        env.wake(&st.seq);
    }
}

/// Sleeps until `ready` returns something other than `Ok(None)`, or the
/// deadline passes. `ready` is called after registering as a waiter and
/// reading `seq`, so no post between the check and the sleep is missed.
/// `watch` says whether to wake up now and then (permits are recorded in a
/// holder table, so a holder may die without posting).
fn block<E: Env, T>(
    st: &SemaphoreState,
    env: &E,
    deadline: Option<Deadline>,
    watch: &dyn Fn() -> bool,
    mut ready: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    st.waiters.fetch_add(1, SeqCst);
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
    deadline: Option<Deadline>,
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

// ---------------------------------------------------------------- pool

/// A semaphore with a holder table: robust acquire/release.
pub(crate) struct Pool<'a> {
    pub st: &'a SemaphoreState,
    pub slots: &'a [AtomicU64],
}

/// What looking at a claim found.
enum Claim {
    /// Settled (or changed): look again at once.
    Done,
    /// A live process is in the middle of its update: back off.
    Busy,
    /// The claim names a free slot (a race, or corruption if it lasts).
    Inconsistent,
}

/// Counts rounds of waiting on a claim; turns a lasting inconsistency into
/// `Corrupted`, and an expired deadline or a `try_` into an error.
struct Patience {
    rounds: u32,
    inconsistent: u32,
}

impl Patience {
    fn new() -> Self {
        Patience {
            rounds: 0,
            inconsistent: 0,
        }
    }

    fn after<E: Env>(&mut self, env: &E, seen: Claim, limit: Option<u32>) -> Result<()> {
        match seen {
            Claim::Done => {
                self.inconsistent = 0;
                self.rounds = 0;
                return Ok(());
            }
            Claim::Busy => self.inconsistent = 0,
            Claim::Inconsistent => {
                self.inconsistent += 1;
                if self.inconsistent >= INCONSISTENT_LIMIT {
                    return Err(Error::corrupted(
                        "the semaphore's claim names a free holder slot",
                    ));
                }
            }
        }
        if limit.is_some_and(|l| self.rounds >= l) {
            return Err(Error::WouldBlock);
        }
        env.pause(self.rounds);
        self.rounds = self.rounds.saturating_add(1);
        Ok(())
    }
}

impl Pool<'_> {
    fn slot(&self, claim: u32) -> Result<usize> {
        let idx = (claim & CLAIM_SLOT) as usize;
        if idx == 0 || idx > self.slots.len() {
            return Err(Error::corrupted(format!(
                "the semaphore's claim names holder slot {idx}, outside the table of {}",
                self.slots.len()
            )));
        }
        Ok(idx - 1)
    }

    /// Robust acquire: takes a permit and records this process in slot
    /// `s`, returned. `try_only`: never sleep (WouldBlock instead).
    pub fn acquire<E: Env>(
        &self,
        env: &E,
        deadline: Option<Deadline>,
        try_only: bool,
    ) -> Result<usize> {
        let me = env.me();
        if me == 0 || me & !IDENT_MASK != 0 {
            return Err(Error::InvalidArgument(format!(
                "process identity {me:#x} does not fit a holder slot"
            )));
        }
        let mut patience = Patience::new();
        let mut last_scan = None;
        let spin_limit = if try_only { Some(200) } else { None };
        loop {
            let w = self.st.word.load(SeqCst);
            let c = count(w);
            if c > MAX_VALUE {
                return Err(bad_count(c));
            }
            if claim(w) != 0 {
                let seen = self.settle(env, w, false)?;
                patience.after(env, seen, spin_limit)?;
                if deadline.is_some_and(|d| d.expired()) {
                    return Err(Error::Timeout);
                }
                continue;
            }
            if c == 0 {
                if try_only {
                    // Dead holders' permits first, then give up.
                    if self.reclaim(env)? == 0 && self.st.value()? == 0 {
                        return Err(Error::WouldBlock);
                    }
                    continue;
                }
                self.wait_nonzero(env, deadline, &mut last_scan)?;
                continue;
            }
            let Some(s) = self.reserve(me) else {
                // Full. Only held slots make it an error; reservations by
                // other acquirers last a few instructions.
                if self.reclaim(env)? == 0 && self.held() >= self.slots.len() {
                    return Err(Error::LimitExceeded {
                        limit: "semaphore holder table (max_holders)".into(),
                        value: self.slots.len().to_string(),
                        hint: "more permits are out than the table can record; create the semaphore with a larger max_holders".into(),
                    });
                }
                patience.after(env, Claim::Busy, spin_limit)?;
                if deadline.is_some_and(|d| d.expired()) {
                    return Err(Error::Timeout);
                }
                continue;
            };
            if env.crash(Step::Reserved) {
                return Ok(s);
            }
            // Step 2: take the permit and name our slot in one CAS.
            let my_claim = (s as u32) + 1;
            let mut w = self.st.word.load(SeqCst);
            let claimed = loop {
                let c = count(w);
                if claim(w) != 0 || c == 0 || c > MAX_VALUE {
                    break false;
                }
                match self
                    .st
                    .word
                    .compare_exchange_weak(w, pack(c - 1, my_claim), SeqCst, SeqCst)
                {
                    Ok(_) => break true,
                    Err(now) => w = now,
                }
            };
            if !claimed {
                // Lost the race: give the reservation back and start over.
                let _ =
                    self.slots[s].compare_exchange(slot_word(me, RESERVED), FREE, SeqCst, SeqCst);
                continue;
            }
            if env.crash(Step::Claimed) {
                return Ok(s);
            }
            // Step 3: record the permit as held.
            if self.slots[s]
                .compare_exchange(slot_word(me, RESERVED), slot_word(me, HELD), SeqCst, SeqCst)
                .is_err()
            {
                return Err(Error::corrupted(
                    "another process changed this process's reserved holder slot",
                ));
            }
            if env.crash(Step::Recorded) {
                return Ok(s);
            }
            // Step 4: done.
            self.clear_claim(my_claim)?;
            return Ok(s);
        }
    }

    /// Whether any slot is in use (a holder that may die without posting).
    fn recorded(&self) -> bool {
        self.slots.iter().any(|s| s.load(SeqCst) != FREE)
    }

    /// How many slots record a held permit right now.
    fn held(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(SeqCst) >> STATE_SHIFT == HELD)
            .count()
    }

    fn reserve(&self, me: u64) -> Option<usize> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        // Start at a spot that depends on who we are, to spread processes.
        let start = ((me >> 32) as usize) % n;
        for i in 0..n {
            let s = (start + i) % n;
            if self.slots[s].load(SeqCst) == FREE
                && self.slots[s]
                    .compare_exchange(FREE, slot_word(me, RESERVED), SeqCst, SeqCst)
                    .is_ok()
            {
                return Some(s);
            }
        }
        None
    }

    /// Clears our own claim, keeping the count (which plain wait/post may
    /// change meanwhile).
    fn clear_claim(&self, mine: u32) -> Result<()> {
        let mut w = self.st.word.load(SeqCst);
        loop {
            if claim(w) != mine {
                return Err(Error::corrupted(
                    "this process's claim on the semaphore was changed by another process",
                ));
            }
            match self
                .st
                .word
                .compare_exchange_weak(w, w & COUNT_MASK, SeqCst, SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(now) => w = now,
            }
        }
    }

    /// Sleeps until the count is positive (without taking), scanning for
    /// dead holders now and then.
    fn wait_nonzero<E: Env>(
        &self,
        env: &E,
        deadline: Option<Deadline>,
        last_scan: &mut Option<std::time::Instant>,
    ) -> Result<()> {
        block(self.st, env, deadline, &|| self.recorded(), || {
            // A claim alone is no reason to wake: a dead claimer's leftover
            // is found by the scan below.
            if self.st.value()? > 0 {
                return Ok(Some(()));
            }
            if env.scan_due(last_scan) {
                self.reclaim(env)?;
                if self.st.value()? > 0 {
                    return Ok(Some(()));
                }
            }
            Ok(None)
        })
    }

    /// Plain wait on a pool semaphore: like [`wait`], and reclaims dead
    /// holders' permits while the count is 0.
    pub fn wait<E: Env>(&self, env: &E, deadline: Option<Deadline>) -> Result<()> {
        let mut last_scan = None;
        wait(self.st, env, deadline, &|| self.recorded(), || {
            if env.scan_due(&mut last_scan) {
                self.reclaim(env)?;
            }
            Ok(())
        })
    }

    /// Gives back the permit recorded in slot `s` by this process.
    pub fn release<E: Env>(&self, env: &E, s: usize) -> Result<()> {
        let me = env.me();
        let r = self.release_for(env, s, me, false);
        if let Err(Error::WouldBlock) = r {
            // Only a helper gives up; an owner cannot get here.
            return Err(Error::corrupted("release gave up"));
        }
        r
    }

    /// Release steps R1..R4 for slot `s` held by `owner` (this process, or
    /// a dead one when `helping`, with the helper lock held).
    fn release_for<E: Env>(&self, env: &E, s: usize, owner: u64, helping: bool) -> Result<()> {
        let held = slot_word(owner, HELD);
        if self.slots.get(s).map(|x| x.load(SeqCst)) != Some(held) {
            return Err(Error::corrupted(
                "a permit's holder slot no longer names its holder",
            ));
        }
        let my_claim = CLAIM_RELEASE | ((s as u32) + 1);
        let mut patience = Patience::new();
        let limit = helping.then_some(HELPER_PATIENCE);
        let mut w = self.st.word.load(SeqCst);
        loop {
            let c = count(w);
            if c > MAX_VALUE {
                return Err(bad_count(c));
            }
            if claim(w) != 0 {
                let seen = self.settle(env, w, helping)?;
                patience.after(env, seen, limit)?;
                w = self.st.word.load(SeqCst);
                continue;
            }
            if c == MAX_VALUE {
                // Plain posts filled the count to the brim: the permit
                // cannot be added; just forget the holder.
                let _ = self.slots[s].compare_exchange(held, FREE, SeqCst, SeqCst);
                return Ok(());
            }
            match self
                .st
                .word
                .compare_exchange_weak(w, pack(c + 1, my_claim), SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        if env.crash(Step::Released1) {
            return Ok(());
        }
        if self.slots[s]
            .compare_exchange(held, slot_word(owner, RELEASED), SeqCst, SeqCst)
            .is_err()
        {
            return Err(Error::corrupted(
                "a holder slot changed while its permit was being released",
            ));
        }
        if env.crash(Step::Released2) {
            return Ok(());
        }
        self.clear_claim(my_claim)?;
        if env.crash(Step::Released3) {
            return Ok(());
        }
        let _ = self.slots[s].compare_exchange(slot_word(owner, RELEASED), FREE, SeqCst, SeqCst);
        wake_one(self.st, env);
        Ok(())
    }

    /// Looks at the claim in `w`: if its claimer is dead, finishes or
    /// undoes its update (taking the helper lock unless `locked`).
    fn settle<E: Env>(&self, env: &E, w: u64, locked: bool) -> Result<Claim> {
        let s = self.slot(claim(w))?;
        let sv = self.slots[s].load(SeqCst);
        if sv >> STATE_SHIFT == FREE {
            return Ok(if self.st.word.load(SeqCst) == w {
                Claim::Inconsistent
            } else {
                Claim::Done
            });
        }
        if env.is_alive(sv & IDENT_MASK) {
            return Ok(Claim::Busy);
        }
        if locked {
            return self.help(env, s);
        }
        if !self.lock_helper(env) {
            return Ok(Claim::Busy);
        }
        let r = self.help(env, s);
        self.unlock_helper(env);
        r
    }

    /// With the helper lock held: finishes or undoes the half-done update
    /// on slot `s` if its owner is dead and the claim still names it.
    fn help<E: Env>(&self, env: &E, s: usize) -> Result<Claim> {
        loop {
            let sv = self.slots[s].load(SeqCst);
            let owner = sv & IDENT_MASK;
            let state = sv >> STATE_SHIFT;
            if state == FREE || env.is_alive(owner) {
                return Ok(Claim::Done);
            }
            // The owner is dead: its slot is frozen except for us (we hold
            // the helper lock). Read the word only now (see module docs).
            let w = self.st.word.load(SeqCst);
            let cl = claim(w);
            if cl == 0 || self.slot(cl)? != s {
                return Ok(Claim::Done);
            }
            let c = count(w);
            if c > MAX_VALUE {
                return Err(bad_count(c));
            }
            let release = cl & CLAIM_RELEASE != 0;
            match (release, state) {
                (false, RESERVED) => {
                    // A2 happened, A3 did not: give the permit back.
                    let back = if c < MAX_VALUE { c + 1 } else { c };
                    if self
                        .st
                        .word
                        .compare_exchange(w, pack(back, 0), SeqCst, SeqCst)
                        .is_ok()
                    {
                        let _ = self.slots[s].compare_exchange(sv, FREE, SeqCst, SeqCst);
                        wake_one(self.st, env);
                        return Ok(Claim::Done);
                    }
                }
                (false, HELD) | (true, RELEASED) => {
                    // A3 or R2 happened: only the claim is left over.
                    if self
                        .st
                        .word
                        .compare_exchange(w, pack(c, 0), SeqCst, SeqCst)
                        .is_ok()
                    {
                        if state == RELEASED {
                            let _ = self.slots[s].compare_exchange(sv, FREE, SeqCst, SeqCst);
                        }
                        return Ok(Claim::Done);
                    }
                }
                (true, HELD) => {
                    // R1 happened: the permit is back; do R2, then loop.
                    let _ = self.slots[s].compare_exchange(
                        sv,
                        slot_word(owner, RELEASED),
                        SeqCst,
                        SeqCst,
                    );
                }
                _ => {
                    return Err(Error::corrupted(format!(
                        "holder slot {s} is in a state its claim cannot produce"
                    )));
                }
            }
        }
    }

    fn lock_helper<E: Env>(&self, env: &E) -> bool {
        let me = env.me();
        match self.st.helper.compare_exchange(0, me, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(h) if h == me => false,
            Err(h) => {
                !env.is_alive(h)
                    && self
                        .st
                        .helper
                        .compare_exchange(h, me, SeqCst, SeqCst)
                        .is_ok()
            }
        }
    }

    fn unlock_helper<E: Env>(&self, env: &E) {
        let _ = self.st.helper.compare_exchange(env.me(), 0, SeqCst, SeqCst);
    }

    /// Gives back the permits of dead holders and clears what dead
    /// processes left half done. Returns how many permits came back.
    /// Does nothing (returns 0) when another process is already at it.
    pub fn reclaim<E: Env>(&self, env: &E) -> Result<u32> {
        if !self.lock_helper(env) {
            return Ok(0);
        }
        let r = self.reclaim_locked(env);
        self.unlock_helper(env);
        r
    }

    fn reclaim_locked<E: Env>(&self, env: &E) -> Result<u32> {
        let mut back = 0;
        // Owners found alive during this scan (one /proc read each).
        let mut alive: Vec<u64> = Vec::new();
        for s in 0..self.slots.len() {
            let sv = self.slots[s].load(SeqCst);
            if sv == FREE {
                continue;
            }
            let owner = sv & IDENT_MASK;
            let state = sv >> STATE_SHIFT;
            if state == FREE || alive.contains(&owner) {
                continue;
            }
            if env.is_alive(owner) {
                alive.push(owner);
                continue;
            }
            // Dead owner; only now read the claim.
            let w = self.st.word.load(SeqCst);
            let names_s = claim(w) != 0 && self.slot(claim(w))? == s;
            if names_s {
                self.help(env, s)?;
            }
            let sv = self.slots[s].load(SeqCst);
            match sv >> STATE_SHIFT {
                RESERVED | RELEASED => {
                    // A1 without A2 (or A2 already undone), or R3 done.
                    let _ = self.slots[s].compare_exchange(sv, FREE, SeqCst, SeqCst);
                }
                HELD if sv & IDENT_MASK == owner => match self.release_for(env, s, owner, true) {
                    Ok(()) => back += 1,
                    // A live claimer kept us waiting: next scan.
                    Err(Error::WouldBlock) => {}
                    Err(e) => return Err(e),
                },
                _ => {}
            }
        }
        Ok(back)
    }

    /// The holders recorded now: (identity, held) per used slot.
    pub fn holders(&self) -> Vec<(u64, bool)> {
        self.slots
            .iter()
            .map(|s| s.load(SeqCst))
            .filter(|&v| v != FREE)
            .map(|v| (v & IDENT_MASK, v >> STATE_SHIFT == HELD))
            .collect()
    }
}

#[cfg(all(test, loom))]
#[path = "loom_tests.rs"]
mod loom_tests;
