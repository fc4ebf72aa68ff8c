//! The robust futex mutex protocol, pure: a few atomics in, decisions out.
//!
//! Nothing here knows about mmap or segments. The same code runs over a
//! [`MutexState`] in shared memory between processes, over one on the heap
//! between threads, and under loom (`--cfg loom`), where the futex becomes a
//! loom condition variable so lost wake-ups show up as deadlocks.
//!
//! # The state, 16 bytes
//!
//! - `word` (64 bits): who holds the lock, `0` when nobody does. The low
//!   half is the futex word: the holder's thread id (bits 0..=30) and the
//!   `WAITERS` bit (bit 31). The high half is the low 32 bits of the
//!   holder's start time (field 22 of `/proc/TID/stat`). Together they are
//!   the holder's [`Identity`](crate::sys::proc::Identity), which a reused
//!   thread id cannot fake.
//! - `state`: `CONSISTENT`, `OWNER_DEAD` (a holder died and the current
//!   holder is recovering) or `NOT_RECOVERABLE`.
//! - 4 reserved bytes, zero.
//!
//! All zero is "unlocked, consistent", so a fresh (zero-filled) segment holds
//! a ready mutex.
//!
//! # The protocol
//!
//! - lock: `CAS(word, 0 → me)` where `me` is the caller's full identity
//!   (the fast path, like `std::sync::Mutex`); else spin a little, then set
//!   `WAITERS` and `futex_wait` on the low half in slices. When a slice
//!   passes without the lock (or a `try_lock` or a timeout is about to
//!   fail), look at the holder the word names: if it is dead, take the lock
//!   over with `CAS(observed word → me | WAITERS bit as observed)`; `state`
//!   becomes `OWNER_DEAD` and the caller is told.
//! - unlock: `swap(word, 0)`, `futex_wake(1)` if `WAITERS` was set.
//! - a holder that got `OWNER_DEAD` and unlocks without `make_consistent`
//!   sets `NOT_RECOVERABLE` and wakes everyone; every lock after that fails.
//!   One that only releases (`release`, as `Mutex`'s `lock()?` does) leaves
//!   `OWNER_DEAD` for the next locker, which is told in turn.
//!
//! # Why the holder's identity is in the word
//!
//! A waiter may take the lock from a holder only when that holder is dead,
//! and it must judge the very holder its takeover CAS replaces. With the
//! identity in the CAS word, both are one value: the waiter reads word `w`,
//! finds the thread `w` names (id *and* start time) dead, and
//! `CAS(w → me)` succeeds only if the word still names that dead thread.
//! A live thread that reuses the dead one's id has another start time, so
//! its lock word differs from `w` and the CAS fails; when a waiter reads
//! that live thread's word it sees the live thread's own start time.
//!
//! (Earlier layouts kept a 31-bit thread id in the word and stored the
//! full identity in a record beside it *after* the CAS. Between the two, the
//! record still named the previous holder: if that holder had the same
//! thread id and was dead — its id since reused by the new holder — a
//! waiter judged the live new holder dead and took the lock from it. The
//! loom case `a_reused_thread_id_never_passes_a_live_holder_for_dead`
//! reproduces that on the old protocol.)
//!
//! Memory ordering: the lock CASes are `Acquire`, the unlock swap is
//! `Release`, as in any mutex; the data is ordered by those. A takeover
//! needs no more: the dead holder's writes are visible once the kernel
//! reports it dead (it has left the CPU), and the takeover CAS is
//! `Acquire`. The futex sees only the low half; every change that matters
//! to a sleeper (unlock to 0, a new holder) changes the low half or
//! leaves `WAITERS` set there, so a sleeper is never left asleep on a
//! value that no unlock will wake.
//!
//! Values read from shared memory are never trusted: an unknown `state` is
//! [`RawError::Corrupted`], a word naming a thread that does not exist (or
//! another start time) is a dead holder.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

use crate::primitive::{AtomicU32, AtomicU64};
use crate::sys::futex::Wake;
use crate::sys::time::Deadline;

/// Bit 31 of the word (the futex half): somebody sleeps (or is about to) on
/// the futex.
pub(crate) const WAITERS: u64 = 1 << 31;
/// Bits 0..=30 of the word: the holder's thread id.
pub(crate) const TID_MASK: u64 = (1 << 31) - 1;

/// The lock word that names the thread `ident` (an
/// [`Identity`](crate::sys::proc::Identity): id in the high half, start
/// time in the low half): the id goes to the futex half.
#[inline]
pub(crate) const fn word_of(ident: u64) -> u64 {
    ((ident & 0xFFFF_FFFF) << 32) | ((ident >> 32) & TID_MASK)
}

/// The identity a lock word names (the inverse of [`word_of`], without the
/// `WAITERS` bit).
#[inline]
pub(crate) const fn ident_of(word: u64) -> u64 {
    ((word & TID_MASK) << 32) | (word >> 32)
}

/// `state`: the data is consistent.
pub(crate) const CONSISTENT: u32 = 0;
/// `state`: a holder died; the current holder is repairing the data.
pub(crate) const OWNER_DEAD: u32 = 1;
/// `state`: a recoverer gave up; the mutex can no longer be locked.
pub(crate) const NOT_RECOVERABLE: u32 = 2;

/// The shared state of one robust mutex: 16 bytes, 8-aligned, `#[repr(C)]`.
///
/// Embed it in your own shared memory (all zero bytes are a valid, unlocked,
/// consistent mutex) and operate on it with [`RawMutex`](super::RawMutex).
#[repr(C)]
#[derive(Debug)]
pub struct MutexState {
    pub(crate) word: AtomicU64,
    pub(crate) state: AtomicU32,
    reserved: AtomicU32,
}

impl MutexState {
    /// An unlocked, consistent mutex (all zeros).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        MutexState {
            word: AtomicU64::new(0),
            state: AtomicU32::new(CONSISTENT),
            reserved: AtomicU32::new(0),
        }
    }

    /// An unlocked, consistent mutex (all zeros).
    #[cfg(loom)]
    pub fn new() -> Self {
        MutexState {
            word: AtomicU64::new(0),
            state: AtomicU32::new(CONSISTENT),
            reserved: AtomicU32::new(0),
        }
    }
}

impl Default for MutexState {
    fn default() -> Self {
        Self::new()
    }
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an OwnerDead acquisition must be repaired and made consistent"]
pub enum Acquired {
    /// The mutex is held and its data is consistent.
    Consistent,
    /// The mutex is held, but the previous holder died holding it: repair
    /// the data, then call `make_consistent`, or unlocking makes the mutex
    /// not recoverable.
    #[doc(alias = "EOWNERDEAD")]
    OwnerDead,
}

/// Why a lock was not acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawError {
    /// `try_lock`: somebody holds it.
    WouldBlock,
    /// The deadline passed.
    TimedOut,
    /// A recoverer released it without making it consistent.
    #[doc(alias = "ENOTRECOVERABLE")]
    NotRecoverable,
    /// The calling thread holds the lock already; waiting would be for
    /// ever.
    #[doc(alias = "EDEADLK")]
    WouldDeadlock,
    /// The shared state holds a value no correct peer writes.
    Corrupted(&'static str),
}

/// What the protocol needs from its surroundings: a futex, a clock, and a
/// way to judge whether a holder is alive. The kernel provides them for
/// real use; loom provides them in model checks.
pub(crate) trait Host {
    /// How many times to look at the word before sleeping.
    const SPIN: u32;
    /// How often a sleeper looks at the holder's liveness (`None`: never).
    fn slice(&self) -> Option<Duration>;
    /// Sleeps while `*word == expected` (the kernel compares the futex
    /// half), at most until `until`.
    fn wait(&self, word: &AtomicU64, expected: u64, until: Deadline) -> Wake;
    /// Wakes one sleeper, or all.
    fn wake(&self, word: &AtomicU64, all: bool);
    /// Whether the holder named by `ident` (an identity: id and start time)
    /// is certainly dead, and nothing else holds the lock with it.
    fn owner_dead(&self, ident: u64) -> bool;
    /// A registration that has the holder's death reported (see
    /// [`watch_holder`](Self::watch_holder)); removed when dropped.
    type Watch;
    /// After this long asleep on one holder, a sleeper has that holder
    /// watched (`None`: never): lock hand-offs quicker than this pay
    /// nothing for it.
    const WATCH_AFTER: Option<Duration>;
    /// Has the holder `ident` watched: when it exits, `dead` is set and
    /// the sleepers on `word` are woken (so its death is judged at once,
    /// not at the next slice). Sets `dead` at once if it is gone already;
    /// `None` when it cannot be watched (the slice's look remains).
    ///
    /// # Safety
    ///
    /// A returned registration must be dropped, not leaked, before `'a`
    /// ends (the report borrows `word` and `dead`).
    unsafe fn watch_holder<'a>(
        &self,
        ident: u64,
        word: &'a AtomicU64,
        dead: &'a std::sync::atomic::AtomicBool,
    ) -> Option<Self::Watch>;
}

/// How long a `lock` call may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all (`try_lock`).
    No,
    /// Until the deadline.
    Until(Deadline),
}

/// Locks `st` as the thread whose full identity is `me` (id in the high
/// half, non-zero and below 2^31; start time in the low half).
#[inline]
pub(crate) fn lock<H: Host>(
    st: &MutexState,
    host: &H,
    me: u64,
    wait: Wait,
) -> Result<Acquired, RawError> {
    let mine = word_of(me);
    debug_assert!(mine & TID_MASK != 0 && (me >> 32) & !TID_MASK == 0);
    if st.word.compare_exchange(0, mine, Acquire, Relaxed).is_ok() {
        return acquired(st, host);
    }
    lock_slow(st, host, mine, wait)
}

/// We hold the lock: look at the state.
#[inline]
fn acquired<H: Host>(st: &MutexState, host: &H) -> Result<Acquired, RawError> {
    match st.state.load(Relaxed) {
        CONSISTENT => Ok(Acquired::Consistent),
        // A locker that passed the news on without repairing (`Mutex`'s
        // `lock()?`) or a bad peer left OWNER_DEAD on an unlocked mutex:
        // the caller is told to check the data.
        OWNER_DEAD => Ok(Acquired::OwnerDead),
        other => Err(give_back(st, host, other)),
    }
}

/// Releases a lock just taken because the state forbids using it.
#[cold]
fn give_back<H: Host>(st: &MutexState, host: &H, state: u32) -> RawError {
    release(st, host, true);
    state_error(state)
}

fn state_error(state: u32) -> RawError {
    if state == NOT_RECOVERABLE {
        RawError::NotRecoverable
    } else {
        RawError::Corrupted("the mutex state word holds an unknown value")
    }
}

#[cold]
fn lock_slow<H: Host>(
    st: &MutexState,
    host: &H,
    mine: u64,
    wait: Wait,
) -> Result<Acquired, RawError> {
    let deadline = match wait {
        Wait::No => Deadline::Now,
        Wait::Until(d) => d,
    };
    let mut spins = H::SPIN;
    // Once we have slept we take the lock with WAITERS set: others may
    // still sleep, and our unlock must wake them.
    let mut waiters = 0;
    let mut next_check: Option<Deadline> = None;
    // Whether we have looked at the holder's liveness yet.
    let mut looked = false;
    // The holder we last slept on, and since when: after
    // `H::WATCH_AFTER` on one holder, its death is watched (`dead` is
    // set and we are woken when it exits). Declared before the loop and
    // dropped when this call returns: the report borrows `dead` and the
    // word.
    let dead = std::sync::atomic::AtomicBool::new(false);
    let mut slept_on: Option<(u64, Deadline)> = None;
    let mut watched: Option<(u64, Option<H::Watch>)> = None;
    loop {
        let s = st.state.load(Relaxed);
        if s != CONSISTENT && s != OWNER_DEAD {
            return Err(state_error(s));
        }
        let w = st.word.load(Relaxed);
        if w == 0 {
            match st
                .word
                .compare_exchange(0, mine | waiters, Acquire, Relaxed)
            {
                Ok(_) => return acquired(st, host),
                Err(_) => continue,
            }
        }
        if matches!(wait, Wait::No) {
            // A dead holder would make try_lock fail for ever: look at it
            // (a /proc read, the price of a contended try_lock).
            if let Some(r) = take_over_if_dead(st, host, mine, w) {
                return r;
            }
            return Err(RawError::WouldBlock);
        }
        if w & !WAITERS == mine {
            // The word names us, start time and all: we hold it already.
            return Err(RawError::WouldDeadlock);
        }
        if spins > 0 {
            spins -= 1;
            std::hint::spin_loop();
            continue;
        }
        if deadline.expired() {
            // A timeout shorter than the liveness slice would otherwise
            // never look at the holder: look once before giving up.
            if !looked {
                looked = true;
                if let Some(r) = take_over_if_dead(st, host, mine, w) {
                    return r;
                }
                continue;
            }
            return Err(RawError::TimedOut);
        }
        if w & WAITERS == 0
            && st
                .word
                .compare_exchange(w, w | WAITERS, Relaxed, Relaxed)
                .is_err()
        {
            continue;
        }
        let w = w | WAITERS;
        waiters = WAITERS;
        // Now and then, whatever woke us (signals included), look at the
        // holder.
        let mut until = deadline;
        if let Some(slice) = host.slice() {
            let check = *next_check.get_or_insert_with(|| Deadline::after(slice));
            if check.expired() {
                looked = true;
                if let Some(r) = take_over_if_dead(st, host, mine, w) {
                    return r;
                }
                next_check = Some(Deadline::after(slice));
                continue;
            }
            until = deadline.min(check);
        }
        if let Some(after) = H::WATCH_AFTER {
            let holder = ident_of(w);
            if dead.swap(false, std::sync::atomic::Ordering::SeqCst) {
                // The watched holder exited: judge it now.
                looked = true;
                if let Some(r) = take_over_if_dead(st, host, mine, w) {
                    return r;
                }
                continue;
            }
            match slept_on {
                Some((h, since)) if h == holder => {
                    if since.expired() && watched.as_ref().is_none_or(|(h, _)| *h != holder) {
                        // SAFETY: `watched` is a local of this call,
                        // dropped (never leaked) when it returns, while
                        // `dead` and `st.word` are still borrowed.
                        let reg = unsafe { host.watch_holder(holder, &st.word, &dead) };
                        watched = Some((holder, reg));
                        // It may have been gone already (`dead` set).
                        continue;
                    }
                }
                _ => slept_on = Some((holder, Deadline::after(after))),
            }
            if let Some((_, since)) = slept_on
                && watched.as_ref().is_none_or(|(h, _)| *h != holder)
            {
                // Wake when it is time to watch this holder.
                until = until.min(since);
            }
        }
        // Retry (woken, EINTR, changed word) or TimedOut (deadline or slice
        // end): the loop re-reads everything and decides. (A death reported
        // between the look at `dead` above and this sleep wakes nobody: the
        // lock word is the holder's, not ours to bump. Then the slice's
        // look finds it, as before the watch existed.)
        let _ = host.wait(&st.word, w, until);
    }
}

/// Takes the lock over if its holder (word `w`) is dead. `None`: it is alive,
/// or the lock changed hands while we looked.
#[cold]
fn take_over_if_dead<H: Host>(
    st: &MutexState,
    host: &H,
    mine: u64,
    w: u64,
) -> Option<Result<Acquired, RawError>> {
    if !host.owner_dead(ident_of(w)) {
        return None;
    }
    // Succeeds only if the word still names the thread just judged dead
    // (its id and start time): see the module docs.
    st.word
        .compare_exchange(w, mine | (w & WAITERS), Acquire, Relaxed)
        .ok()?;
    let s = st.state.load(Relaxed);
    if s != CONSISTENT && s != OWNER_DEAD {
        return Some(Err(give_back(st, host, s)));
    }
    st.state.store(OWNER_DEAD, Relaxed);
    Some(Ok(Acquired::OwnerDead))
}

/// Unlocks: `swap(word, 0)`, wakes one sleeper (all when `all`) if any.
#[inline]
pub(crate) fn release<H: Host>(st: &MutexState, host: &H, all: bool) {
    let old = st.word.swap(0, Release);
    if old & WAITERS != 0 {
        host.wake(&st.word, all);
    }
}

/// Unlocks as the holder, turning an unrepaired `OWNER_DEAD` into
/// `NOT_RECOVERABLE` (and then waking everyone, so they all learn it).
#[inline]
pub(crate) fn unlock<H: Host>(st: &MutexState, host: &H) {
    if st.state.load(Relaxed) == OWNER_DEAD {
        give_up(st, host);
    } else {
        release(st, host, false);
    }
}

/// Marks the mutex not recoverable and unlocks it, waking everyone.
pub(crate) fn give_up<H: Host>(st: &MutexState, host: &H) {
    st.state.store(NOT_RECOVERABLE, Relaxed);
    release(st, host, true);
}

/// Marks the data consistent again after an `OwnerDead` acquisition.
/// Returns whether the state was `OWNER_DEAD` (and is now consistent).
pub(crate) fn make_consistent(st: &MutexState) -> bool {
    st.state
        .compare_exchange(OWNER_DEAD, CONSISTENT, Relaxed, Relaxed)
        .is_ok()
        || st.state.load(Relaxed) == CONSISTENT
}

#[cfg(not(loom))]
pub(crate) use super::kernel::Kernel;

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model checks: `RUSTFLAGS="--cfg loom" cargo test -p ipcworks --lib
    //! --release sync::mutex` (keep `LOOM_MAX_PREEMPTIONS` small).

    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicU64;
    use loom::sync::{Arc, Condvar, Mutex};

    use super::*;

    /// A futex modelled with a loom mutex and condition variable: the check
    /// of the word and the sleep are atomic with respect to `wake`, exactly
    /// as the kernel makes them.
    struct LoomHost {
        m: Mutex<()>,
        cv: Condvar,
        /// The identity (thread id and start time) that counts as dead.
        dead: u64,
    }

    impl Host for LoomHost {
        const SPIN: u32 = 0;
        type Watch = ();
        const WATCH_AFTER: Option<Duration> = None;

        unsafe fn watch_holder<'a>(
            &self,
            _ident: u64,
            _word: &'a AtomicU64,
            _dead: &'a std::sync::atomic::AtomicBool,
        ) -> Option<()> {
            None
        }

        fn slice(&self) -> Option<Duration> {
            None
        }

        fn wait(&self, word: &AtomicU64, expected: u64, _until: Deadline) -> Wake {
            let g = self.m.lock().unwrap();
            if word.load(std::sync::atomic::Ordering::SeqCst) != expected {
                return Wake::Retry;
            }
            drop(self.cv.wait(g).unwrap());
            Wake::Retry
        }

        fn wake(&self, _word: &AtomicU64, all: bool) {
            let _g = self.m.lock().unwrap();
            if all {
                self.cv.notify_all();
            } else {
                self.cv.notify_one();
            }
        }

        fn owner_dead(&self, ident: u64) -> bool {
            ident == self.dead
        }
    }

    struct Shared {
        st: MutexState,
        host: LoomHost,
        data: UnsafeCell<u32>,
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            st: MutexState::new(),
            host: LoomHost {
                m: Mutex::new(()),
                cv: Condvar::new(),
                dead: DEAD9,
            },
            data: UnsafeCell::new(0),
        })
    }

    /// The dead holder of `dead_holder_is_taken_over_by_exactly_one`.
    const DEAD9: u64 = (9 << 32) | 1;

    /// The identity of model thread `t`: id `t`, start time 1.
    fn ident(t: u32) -> u64 {
        ((t as u64) << 32) | 1
    }

    /// Locks as the thread whose identity is `ident` (id in the high half).
    fn lock_as(s: &Shared, ident: u64, wait: Wait) -> Result<Acquired, RawError> {
        lock(&s.st, &s.host, ident, wait)
    }

    fn increment(s: &Shared, tid: u32) {
        let r = lock_as(s, ident(tid), Wait::Until(Deadline::Never));
        assert_eq!(r, Ok(Acquired::Consistent));
        // loom reports any access here that is not ordered by the lock.
        s.data.with_mut(|p| {
            // SAFETY: we hold the lock; loom checks that claim.
            unsafe { *p += 1 }
        });
        unlock(&s.st, &s.host);
    }

    /// Mutual exclusion and the unlock/wake handshake: every blocked locker
    /// is woken (a lost wake-up is a loom deadlock), every increment counts.
    #[test]
    fn mutual_exclusion_and_wakeups() {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        b.check(|| {
            let s = shared();
            let threads: Vec<_> = (1..=2)
                .map(|t| {
                    let s = s.clone();
                    loom::thread::spawn(move || increment(&s, t))
                })
                .collect();
            increment(&s, 3);
            for t in threads {
                t.join().unwrap();
            }
            // SAFETY: all threads joined.
            let n = s.data.with(|p| unsafe { *p });
            assert_eq!(n, 3);
            assert_eq!(s.st.word.load(Relaxed), 0);
        });
    }

    /// `try_lock` never gets a held lock; a give-up makes every later
    /// locker fail and wakes a blocked one (which then fails too).
    #[test]
    fn try_lock_and_not_recoverable() {
        not_recoverable(Wait::No);
    }

    #[test]
    fn blocked_locker_learns_not_recoverable() {
        not_recoverable(Wait::Until(Deadline::Never));
    }

    fn not_recoverable(wait: Wait) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        b.check(move || {
            let s = shared();
            let s2 = s.clone();
            let t = loom::thread::spawn(move || {
                match lock_as(&s2, ident(1), wait) {
                    Ok(_) => {
                        s2.data.with_mut(|p| {
                            // SAFETY: we hold the lock; loom checks it.
                            unsafe { *p += 1 }
                        });
                        unlock(&s2.st, &s2.host);
                    }
                    Err(e) => assert!(
                        e == RawError::WouldBlock || e == RawError::NotRecoverable,
                        "{e:?}"
                    ),
                }
            });
            // Pretend we took over from a dead holder, then give up.
            assert_eq!(
                lock_as(&s, ident(2), Wait::Until(Deadline::Never)),
                Ok(Acquired::Consistent)
            );
            s.st.state.store(OWNER_DEAD, Relaxed);
            unlock(&s.st, &s.host);
            assert_eq!(
                lock_as(&s, ident(2), Wait::Until(Deadline::Never)),
                Err(RawError::NotRecoverable)
            );
            t.join().unwrap();
        });
    }

    /// Thread ids are reused: a thread with id 5 locked and unlocked, then
    /// exited; a new thread got id 5 again and locks while thread 7
    /// try_locks (which looks at the holder's liveness at once). Thread 7
    /// must never judge the new, live holder dead from what the old one
    /// left behind: both inside at once is a loom data race on `data`.
    #[test]
    fn a_reused_thread_id_never_passes_a_live_holder_for_dead() {
        // Identities: thread id in the high half, start time in the low.
        const OLD5: u64 = (5 << 32) | 1;
        const NEW5: u64 = (5 << 32) | 2;
        const T7: u64 = (7 << 32) | 1;
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        b.check(|| {
            let s = Arc::new(Shared {
                st: MutexState::new(),
                host: LoomHost {
                    m: Mutex::new(()),
                    cv: Condvar::new(),
                    dead: OLD5,
                },
                data: UnsafeCell::new(0),
            });
            // The old thread 5, long gone: it locked and unlocked cleanly.
            assert_eq!(
                lock_as(&s, OLD5, Wait::Until(Deadline::Never)),
                Ok(Acquired::Consistent)
            );
            unlock(&s.st, &s.host);
            let s2 = s.clone();
            let new5 = loom::thread::spawn(move || {
                assert_eq!(
                    lock_as(&s2, NEW5, Wait::Until(Deadline::Never)),
                    Ok(Acquired::Consistent)
                );
                s2.data.with_mut(|p| {
                    // SAFETY: we hold the lock; loom checks that claim.
                    unsafe { *p += 1 }
                });
                unlock(&s2.st, &s2.host);
            });
            match lock_as(&s, T7, Wait::No) {
                Ok(r) => {
                    assert_eq!(r, Acquired::Consistent, "nobody died holding it");
                    s.data.with_mut(|p| {
                        // SAFETY: we hold the lock; loom checks that claim.
                        unsafe { *p += 1 }
                    });
                    unlock(&s.st, &s.host);
                }
                Err(e) => assert_eq!(e, RawError::WouldBlock),
            }
            new5.join().unwrap();
        });
    }

    /// A holder (thread 9) died: two lockers race to take over; exactly one
    /// is told OwnerDead, and nobody else gets in while it repairs.
    #[test]
    fn dead_holder_is_taken_over_by_exactly_one() {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        b.check(|| {
            let s = shared();
            s.st.word.store(word_of(DEAD9) | WAITERS, Relaxed);
            let threads: Vec<_> = (1..=2)
                .map(|t| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        let r = lock_as(&s, ident(t), Wait::No);
                        if r.is_ok() {
                            s.data.with_mut(|p| {
                                // SAFETY: we hold the lock; loom checks it.
                                unsafe { *p += 1 }
                            });
                        }
                        match r {
                            Ok(Acquired::OwnerDead) => {
                                assert!(make_consistent(&s.st));
                                unlock(&s.st, &s.host);
                                1
                            }
                            Ok(Acquired::Consistent) => {
                                unlock(&s.st, &s.host);
                                0
                            }
                            Err(e) => {
                                assert_eq!(e, RawError::WouldBlock);
                                0
                            }
                        }
                    })
                })
                .collect();
            let told: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(told, 1);
            assert_eq!(s.st.state.load(Relaxed), CONSISTENT);
        });
    }
}
