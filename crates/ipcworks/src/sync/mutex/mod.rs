//! A robust mutex that lives in shared memory: [`Mutex<T>`] between threads
//! and processes, and [`RawMutex`] to embed in segments of your own.
//!
//! A *mutex* (mutual exclusion lock) lets one thread at a time into a
//! critical section. This one is built on a `futex(2)` word in shared
//! memory, so threads of unrelated processes can share it, and it is
//! *robust*: if a holder dies (even by `SIGKILL`) the next locker is told
//! ([`LockError::OwnerDead`]), may inspect and repair the data, and marks it
//! consistent with [`MutexGuard::make_consistent`]. If it unlocks without
//! doing so, every later lock fails with [`Error::NotRecoverable`] instead
//! of silently using broken data (the semantics of POSIX robust mutexes,
//! `EOWNERDEAD` and `ENOTRECOVERABLE`). A locker that passes the news on
//! as an error instead (`m.lock()?`) leaves the mutex owner-dead for the
//! next locker to repair.
//!
//! Unlike `pthread_mutexattr_setrobust`, it does not use the kernel's robust
//! list (glibc owns that list head per thread). A waiter instead looks at the
//! holder every 15 ms (and once before a timeout or `try_lock` gives up),
//! and once it has slept a millisecond on one holder it has that holder's
//! thread watched (`pidfd_open(tid, PIDFD_THREAD)`, Linux 6.9+), whose exit
//! wakes it at once — a killed holder is noticed in well under a
//! millisecond:
//! the 64-bit lock word holds the holder's thread id *and* start time, so a
//! thread id the kernel has handed to someone else does not pass for the
//! holder, and a takeover succeeds only on the very word judged dead. The
//! uncontended path costs what `std::sync::Mutex` costs: one
//! compare-and-swap to lock, one swap to unlock.
//!
//! ```no_run
//! use ipcworks::sync::{LockError, Mutex};
//!
//! # fn main() -> ipcworks::Result<()> {
//! // Process A creates the mutex (segment `/dev/shm/ipcworks.mutex.jobs`).
//! let m = Mutex::create("jobs", 0u64)?;
//! // Process B: `let m = Mutex::<u64>::open("jobs")?;`
//! let mut n = match m.lock() {
//!     Ok(guard) => guard,
//!     Err(LockError::OwnerDead(mut guard)) => {
//!         // The last holder died inside; repair the data, then say so.
//!         guard.make_consistent();
//!         guard
//!     }
//!     Err(LockError::Failed(e)) => return Err(e),
//! };
//! // The value is copied out and back in: no reference into memory another
//! // process can write (see `MutexGuard`).
//! n.update(|n| *n += 1)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Async code
//!
//! The holder is a *thread*, and a task moves between threads at every
//! `.await`, so there is no async lock: lock only in code that does not
//! await while it holds the guard, and for mutual exclusion across awaits
//! use a semaphore of one permit (`ipcworks::tokio::AsyncSemaphore`,
//! feature `tokio`), whose permits belong to the process.

pub(crate) mod raw;

#[cfg(not(loom))]
mod atomics;
#[cfg(not(loom))]
mod kernel;
#[cfg(not(loom))]
mod named;

#[cfg(not(loom))]
use std::time::Duration;

#[cfg(not(loom))]
pub use atomics::AtomicsOnly;
#[cfg(not(loom))]
pub(crate) use named::Header;
#[cfg(not(loom))]
pub use named::{LockError, Mutex, MutexGuard, MutexOptions};
pub use raw::{Acquired, MutexState, RawError};

#[cfg(not(loom))]
use crate::Error;
#[cfg(not(loom))]
use crate::sys::{proc::Identity, time::Deadline};

/// A robust mutex operating in place on a [`MutexState`] that you embed in
/// your own shared memory (the native queue does this).
///
/// # Contract
///
/// - The [`MutexState`] must be 8-aligned and start out all zero (or be
///   made with [`MutexState::new`]); it may live in memory other processes
///   map and write. Bad values there give [`RawError::Corrupted`], never
///   undefined behaviour.
/// - After a successful lock, only the locking thread may call
///   [`unlock`](Self::unlock) and [`make_consistent`](Self::make_consistent):
///   the holder is recorded by thread, and a thread that exits while holding
///   the lock is treated as dead.
/// - After [`Acquired::OwnerDead`], repair the protected data and call
///   `make_consistent` before `unlock`; unlocking without it makes the
///   mutex not recoverable for everyone.
/// - The data the mutex protects is yours to access (through raw pointers,
///   atomics or volatile reads, since peers may misbehave).
/// - In a [`Segment`](crate::shm::Segment) that another process truncates,
///   the lock word reads as zeros from then on (no `SIGBUS`), and this type
///   cannot tell: call the segment's
///   [`check_intact`](crate::shm::Segment::check_intact) after locking.
///
/// ```
/// use ipcworks::shm::Segment;
/// use ipcworks::sync::{Acquired, MutexState, RawMutex};
///
/// # fn main() -> ipcworks::Result<()> {
/// let seg = Segment::anonymous(4096)?;
/// // SAFETY: the mapping is page-aligned, zero-filled, at least 16 bytes,
/// // and outlives `state`; MutexState is atomics only.
/// let state = unsafe { &*(seg.as_ptr() as *const MutexState) };
/// let m = RawMutex::new(state);
/// match m.lock() {
///     Ok(Acquired::Consistent) => {}
///     Ok(Acquired::OwnerDead) => {
///         // repair the protected data here, then:
///         m.make_consistent();
///     }
///     Err(e) => return Err(e.into_error("my lock")),
/// }
/// // … the critical section …
/// m.unlock();
/// # Ok(())
/// # }
/// ```
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy)]
pub struct RawMutex<'a> {
    state: &'a MutexState,
}

#[cfg(not(loom))]
impl<'a> RawMutex<'a> {
    /// Operates on `state`.
    #[inline]
    pub fn new(state: &'a MutexState) -> Self {
        RawMutex { state }
    }

    /// Locks, waiting as long as it takes.
    #[doc(alias = "pthread_mutex_lock")]
    #[inline]
    pub fn lock(&self) -> Result<Acquired, RawError> {
        self.lock_until(Deadline::Never)
    }

    /// Locks if nobody holds it now, else [`RawError::WouldBlock`].
    #[doc(alias = "pthread_mutex_trylock")]
    #[inline]
    pub fn try_lock(&self) -> Result<Acquired, RawError> {
        self.lock_with(raw::Wait::No)
    }

    /// Locks, waiting at most `timeout`, else [`RawError::TimedOut`].
    #[doc(alias = "pthread_mutex_timedlock")]
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Acquired, RawError> {
        self.lock_until(Deadline::after(timeout))
    }

    /// Locks, waiting until `deadline` ([`Deadline::Now`] is
    /// [`try_lock`](Self::try_lock) with a look at a dead holder first,
    /// failing with [`RawError::TimedOut`]).
    #[inline]
    pub fn lock_until(&self, deadline: Deadline) -> Result<Acquired, RawError> {
        self.lock_with(raw::Wait::Until(deadline))
    }

    #[inline]
    fn lock_with(&self, wait: raw::Wait) -> Result<Acquired, RawError> {
        raw::lock(self.state, &raw::Kernel, Identity::thread().raw(), wait)
    }

    /// Unlocks (the holder only). After an [`Acquired::OwnerDead`] that was
    /// not followed by [`make_consistent`](Self::make_consistent), this
    /// makes the mutex not recoverable and wakes every waiter.
    #[doc(alias = "pthread_mutex_unlock")]
    #[inline]
    pub fn unlock(&self) {
        raw::unlock(self.state, &raw::Kernel)
    }

    /// Marks the protected data consistent after an
    /// [`Acquired::OwnerDead`] (the holder only). Returns `false` if the
    /// mutex is not recoverable any more.
    #[doc(alias = "pthread_mutex_consistent")]
    pub fn make_consistent(&self) -> bool {
        raw::make_consistent(self.state)
    }

    /// Whether somebody holds the lock right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.word.load(std::sync::atomic::Ordering::Relaxed) != 0
    }
}

#[cfg(not(loom))]
impl RawError {
    /// The library error for this outcome, naming the mutex as `what`.
    pub fn into_error(self, what: &str) -> Error {
        match self {
            RawError::WouldBlock => Error::WouldBlock,
            RawError::TimedOut => Error::Timeout,
            RawError::NotRecoverable => Error::NotRecoverable {
                what: what.to_string(),
            },
            RawError::WouldDeadlock => Error::InvalidArgument(format!(
                "{what} is already locked by this thread; locking it again would wait for ever"
            )),
            RawError::Corrupted(why) => Error::corrupted(format!("{what}: {why}")),
        }
    }
}
