//! The robust futex mutex protocol, pure: a few atomics in, decisions out.
//!
//! Nothing here knows about mmap or segments. The same code runs over a
//! [`MutexState`] in shared memory between processes, over one on the heap
//! between threads, and under loom (`--cfg loom`), where the futex becomes a
//! loom condition variable so lost wake-ups show up as deadlocks.
//!
//! # The state, 16 bytes
//!
//! - `word`: the owner's thread id (bits 0..=30) and the `WAITERS` bit
//!   (bit 31); `0` means unlocked. This is the futex word.
//! - `state`: `CONSISTENT`, `OWNER_DEAD` (a holder died and the current
//!   holder is recovering) or `NOT_RECOVERABLE`.
//! - `owner`: the holder's [`Identity`](crate::sys::proc::Identity) (thread
//!   id + start time), stored right after the lock is taken. A waiter uses it
//!   to tell a live holder from a dead one whose thread id the kernel has
//!   handed to someone else.
//!
//! All zero is "unlocked, consistent", so a fresh (zero-filled) segment holds
//! a ready mutex.
//!
//! # The protocol
//!
//! - lock: `CAS(word, 0 → tid)` (the fast path, like `std::sync::Mutex`);
//!   else spin a little, then set `WAITERS` and `futex_wait` in slices. When
//!   a slice passes without the lock, look at the holder: `owner` names it
//!   exactly when its id equals the word's tid, else (between its CAS and its
//!   `owner` store, or dead right there) `/proc/TID` decides. A dead holder's
//!   lock is taken over with `CAS(observed word → tid | waiters)`, `state`
//!   becomes `OWNER_DEAD` and the caller is told.
//! - unlock: `swap(word, 0)`, `futex_wake(1)` if `WAITERS` was set.
//! - a holder that got `OWNER_DEAD` and unlocks without `make_consistent`
//!   sets `NOT_RECOVERABLE` and wakes everyone; every lock after that fails.
//!
//! Values read from shared memory are never trusted: an unknown `state` is
//! [`RawError::Corrupted`], a word naming a thread that does not exist is a
//! dead holder.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64};

use crate::sys::futex::Wake;
use crate::sys::time::Deadline;

/// Bit 31 of the word: somebody sleeps (or is about to) on the futex.
pub(crate) const WAITERS: u32 = 1 << 31;
/// Bits 0..=30 of the word: the holder's thread id.
pub(crate) const TID_MASK: u32 = !WAITERS;

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
    pub(crate) word: AtomicU32,
    pub(crate) state: AtomicU32,
    pub(crate) owner: AtomicU64,
}

impl MutexState {
    /// An unlocked, consistent mutex (all zeros).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        MutexState {
            word: AtomicU32::new(0),
            state: AtomicU32::new(CONSISTENT),
            owner: AtomicU64::new(0),
        }
    }

    /// An unlocked, consistent mutex (all zeros).
    #[cfg(loom)]
    pub fn new() -> Self {
        MutexState {
            word: AtomicU32::new(0),
            state: AtomicU32::new(CONSISTENT),
            owner: AtomicU64::new(0),
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
    /// Sleeps while `*word == expected`, at most until `until`.
    fn wait(&self, word: &AtomicU32, expected: u32, until: Option<Deadline>) -> Wake;
    /// Wakes one sleeper, or all.
    fn wake(&self, word: &AtomicU32, all: bool);
    /// Whether the holder named by the word's `tid` and the `owner` record
    /// is certainly dead.
    fn owner_dead(&self, tid: u32, record: u64) -> bool;
}

/// How long a `lock` call may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all (`try_lock`).
    No,
    /// Until the deadline, or for ever when `None`.
    Until(Option<Deadline>),
}

/// Locks `st` as the thread `tid` whose full identity is `me`.
#[inline]
pub(crate) fn lock<H: Host>(
    st: &MutexState,
    host: &H,
    me: u64,
    tid: u32,
    wait: Wait,
) -> Result<Acquired, RawError> {
    debug_assert!(tid != 0 && tid & WAITERS == 0);
    if st.word.compare_exchange(0, tid, Acquire, Relaxed).is_ok() {
        return acquired(st, host, me);
    }
    lock_slow(st, host, me, tid, wait)
}

/// We hold the lock: record ourselves and look at the state.
#[inline]
fn acquired<H: Host>(st: &MutexState, host: &H, me: u64) -> Result<Acquired, RawError> {
    st.owner.store(me, Relaxed);
    match st.state.load(Relaxed) {
        CONSISTENT => Ok(Acquired::Consistent),
        // Only a bad peer leaves OWNER_DEAD on an unlocked mutex; telling
        // the caller to check the data is the careful answer.
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
    me: u64,
    tid: u32,
    wait: Wait,
) -> Result<Acquired, RawError> {
    let deadline = match wait {
        Wait::No => None,
        Wait::Until(d) => d,
    };
    let mut spins = H::SPIN;
    // Once we have slept we take the lock with WAITERS set: others may
    // still sleep, and our unlock must wake them.
    let mut waiters = 0;
    let mut next_check: Option<Deadline> = None;
    loop {
        let s = st.state.load(Relaxed);
        if s != CONSISTENT && s != OWNER_DEAD {
            return Err(state_error(s));
        }
        let w = st.word.load(Relaxed);
        if w == 0 {
            match st.word.compare_exchange(0, tid | waiters, Acquire, Relaxed) {
                Ok(_) => return acquired(st, host, me),
                Err(_) => continue,
            }
        }
        if matches!(wait, Wait::No) {
            // A dead holder would make try_lock fail for ever: look at it
            // (a /proc read, the price of a contended try_lock).
            if let Some(r) = take_over_if_dead(st, host, me, tid, w) {
                return r;
            }
            return Err(RawError::WouldBlock);
        }
        if spins > 0 {
            spins -= 1;
            std::hint::spin_loop();
            continue;
        }
        if deadline.is_some_and(|d| d.expired()) {
            return Err(RawError::TimedOut);
        }
        if waiters == 0 && w & TID_MASK == tid && st.owner.load(Relaxed) == me {
            // Our own thread id and our own record: we hold it already.
            return Err(RawError::WouldDeadlock);
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
                if let Some(r) = take_over_if_dead(st, host, me, tid, w) {
                    return r;
                }
                next_check = Some(Deadline::after(slice));
                continue;
            }
            until = Some(match deadline {
                Some(d) if d < check => d,
                _ => check,
            });
        }
        // Retry (woken, EINTR, changed word) or TimedOut (deadline or slice
        // end): the loop re-reads everything and decides.
        let _ = host.wait(&st.word, w, until);
    }
}

/// Takes the lock over if its holder (word `w`) is dead. `None`: it is alive,
/// or the lock changed hands while we looked.
#[cold]
fn take_over_if_dead<H: Host>(
    st: &MutexState,
    host: &H,
    me: u64,
    tid: u32,
    w: u32,
) -> Option<Result<Acquired, RawError>> {
    let record = st.owner.load(Relaxed);
    if !host.owner_dead(w & TID_MASK, record) {
        return None;
    }
    // A new holder may have taken and recorded the lock while we judged.
    if st.owner.load(Relaxed) != record {
        return None;
    }
    st.word
        .compare_exchange(w, tid | (w & WAITERS), Acquire, Relaxed)
        .ok()?;
    st.owner.store(me, Relaxed);
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

/// The real host: futex system calls and `/proc`.
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Kernel;

/// How often a sleeper checks on the holder.
#[cfg(not(loom))]
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(15);

#[cfg(not(loom))]
impl Host for Kernel {
    const SPIN: u32 = 100;

    fn slice(&self) -> Option<Duration> {
        Some(LIVENESS_SLICE)
    }

    fn wait(&self, word: &AtomicU32, expected: u32, until: Option<Deadline>) -> Wake {
        crate::sys::futex::wait(word, expected, until)
    }

    fn wake(&self, word: &AtomicU32, all: bool) {
        if all {
            crate::sys::futex::wake_all(word);
        } else {
            crate::sys::futex::wake(word, 1);
        }
    }

    fn owner_dead(&self, tid: u32, record: u64) -> bool {
        use crate::sys::proc::{self, Identity, Status};
        let rec = Identity::from_raw(record);
        if !rec.is_none() && rec.id() == tid {
            // Id and start time: a reused id cannot pass for the holder.
            !rec.is_alive()
        } else {
            // The holder is between its CAS and its record, or died there:
            // only the id is known. Unknown (hidden /proc) counts as alive.
            proc::status(tid) == Status::Dead
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model checks: `RUSTFLAGS="--cfg loom" cargo test -p ipcworks --lib
    //! --release sync::mutex` (keep `LOOM_MAX_PREEMPTIONS` small).

    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicU32;
    use loom::sync::{Arc, Condvar, Mutex};

    use super::*;

    /// A futex modelled with a loom mutex and condition variable: the check
    /// of the word and the sleep are atomic with respect to `wake`, exactly
    /// as the kernel makes them.
    struct LoomHost {
        m: Mutex<()>,
        cv: Condvar,
        /// The thread id that counts as dead.
        dead: u32,
    }

    impl Host for LoomHost {
        const SPIN: u32 = 0;

        fn slice(&self) -> Option<Duration> {
            None
        }

        fn wait(&self, word: &AtomicU32, expected: u32, _until: Option<Deadline>) -> Wake {
            let g = self.m.lock().unwrap();
            if word.load(std::sync::atomic::Ordering::SeqCst) != expected {
                return Wake::Retry;
            }
            drop(self.cv.wait(g).unwrap());
            Wake::Retry
        }

        fn wake(&self, _word: &AtomicU32, all: bool) {
            let _g = self.m.lock().unwrap();
            if all {
                self.cv.notify_all();
            } else {
                self.cv.notify_one();
            }
        }

        fn owner_dead(&self, tid: u32, _record: u64) -> bool {
            tid == self.dead
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
                dead: 9,
            },
            data: UnsafeCell::new(0),
        })
    }

    fn increment(s: &Shared, tid: u32) {
        let r = lock(&s.st, &s.host, tid as u64, tid, Wait::Until(None));
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
        not_recoverable(Wait::Until(None));
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
                match lock(&s2.st, &s2.host, 1, 1, wait) {
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
                lock(&s.st, &s.host, 2, 2, Wait::Until(None)),
                Ok(Acquired::Consistent)
            );
            s.st.state.store(OWNER_DEAD, Relaxed);
            unlock(&s.st, &s.host);
            assert_eq!(
                lock(&s.st, &s.host, 2, 2, Wait::Until(None)),
                Err(RawError::NotRecoverable)
            );
            t.join().unwrap();
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
            s.st.word.store(9 | WAITERS, Relaxed);
            s.st.owner.store(9, Relaxed);
            let threads: Vec<_> = (1..=2)
                .map(|t| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        let r = lock(&s.st, &s.host, t as u64, t, Wait::No);
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
