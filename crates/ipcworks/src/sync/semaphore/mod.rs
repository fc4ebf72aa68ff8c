//! Counting and binary semaphores (Dijkstra's P and V) built on futexes,
//! living in shared memory.
//!
//! A semaphore is a count of permits: `wait` (P) takes one, sleeping while
//! there is none; `post` (V) gives one back and wakes a sleeper. With an
//! initial value of 1 it is a *binary* semaphore (a lock anyone may
//! release); with N it lets at most N holders in at once.
//!
//! - [`Semaphore`]: a named (or anonymous) semaphore in its own segment.
//!   Beside plain `wait`/`post` for signalling between producer and
//!   consumer, it is robust when used as a pool: [`Semaphore::acquire`]
//!   returns a [`Permit`] that records its holder and gives the permit back
//!   on drop, and the permits of a process that died holding them (even by
//!   SIGKILL) come back too. POSIX semaphores leak such permits.
//! - [`RawSemaphore`]: the plain counting semaphore over a
//!   [`SemaphoreState`] that another module embeds in its own segment.
//! - [`PosixSemaphore`] (in [`posix`]): `sem_open(3)`, for
//!   C and Python peers. (Changed in this version: the module was
//!   `sync::posix`; [`crate::sync::PosixSemaphore`] is where it was.)
//!
//! ```no_run
//! use ipcworks::sync::Semaphore;
//!
//! # fn main() -> ipcworks::Result<()> {
//! // At most 2 workers at once, across processes.
//! let pool = Semaphore::create("ipcworks-doc-pool", 2)?;
//! {
//!     let _permit = pool.acquire()?; // P; recorded under this process
//!     // ... work ...
//! } // V on drop; also if this process is killed while holding it
//! assert_eq!(pool.value()?, 2);
//! # Ok(())
//! # }
//! ```

pub(crate) mod raw;
mod robust;

#[cfg(not(loom))]
mod env;
#[cfg(not(loom))]
mod named;
#[cfg(not(loom))]
pub mod posix;
#[cfg(not(loom))]
mod watch;

#[cfg(not(loom))]
pub(crate) use env::Futex as FutexEnv;
#[cfg(not(loom))]
pub(crate) use named::Header;
#[cfg(not(loom))]
pub use named::{CoHolder, Holder, Permit, Semaphore, SemaphoreOptions};
#[cfg(not(loom))]
pub use posix::{PosixSemaphore, PosixSemaphoreOptions};
pub use raw::{MAX_HOLDERS, MAX_VALUE, SemaphoreState};

#[cfg(not(loom))]
pub use self::plain::RawSemaphore;

#[cfg(not(loom))]
mod plain {
    use std::time::Duration;

    use super::env::Futex;
    use super::raw::{self, SemaphoreState};
    use crate::Result;
    use crate::sys::time::Deadline;

    /// A plain counting semaphore over a [`SemaphoreState`] that lives
    /// wherever its owner put it: inside another structure in a shared
    /// segment (the native message queue keeps two: free and filled slots),
    /// or in ordinary memory between threads.
    ///
    /// Contract for embedding: the state is 8-aligned, lives as long as the
    /// `RawSemaphore`, starts all-zero (value 0) or is set once with
    /// [`SemaphoreState::init`] by its creator *before* other processes can
    /// see it, and is only ever touched through this type. Its value is
    /// untrusted: a count above [`MAX_VALUE`](super::MAX_VALUE) is
    /// reported as [`Error::Corrupted`](crate::Error::Corrupted). There
    /// is no holder table, so no dead-holder recovery: use [`Semaphore`]
    /// (`acquire`) for pools.
    ///
    /// In a [`Segment`](crate::shm::Segment) that another process
    /// truncates, the state reads as zeros from then on (no `SIGBUS`), and
    /// this type cannot tell: call the segment's
    /// [`check_intact`](crate::shm::Segment::check_intact) after each
    /// call, and wait with a deadline ([`wait`](Self::wait) sleeps until a
    /// post, which a truncated segment never gets).
    ///
    /// [`Semaphore`]: super::Semaphore
    #[derive(Debug, Clone, Copy)]
    pub struct RawSemaphore<'a> {
        st: &'a SemaphoreState,
    }

    impl<'a> RawSemaphore<'a> {
        /// Uses `state` as a semaphore.
        pub fn new(state: &'a SemaphoreState) -> Self {
            RawSemaphore { st: state }
        }

        /// P: takes a permit, sleeping (futex) while there is none. Signals
        /// do not interrupt it.
        #[doc(alias = "sem_wait")]
        #[doc(alias = "P")]
        pub fn wait(&self) -> Result<()> {
            raw::wait(self.st, &Futex, Deadline::Never, &|| false, || Ok(()))
        }

        /// Takes a permit if one is there, else [`Error::WouldBlock`](crate::Error::WouldBlock).
        #[doc(alias = "sem_trywait")]
        pub fn try_wait(&self) -> Result<()> {
            raw::try_wait(self.st)
        }

        /// P with a timeout: [`Error::Timeout`](crate::Error::Timeout) when
        /// no permit came in time.
        #[doc(alias = "sem_timedwait")]
        pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
            self.wait_deadline(Deadline::after(timeout))
        }

        /// P until a deadline.
        pub fn wait_deadline(&self, deadline: Deadline) -> Result<()> {
            raw::wait(self.st, &Futex, deadline, &|| false, || Ok(()))
        }

        /// V: gives a permit back, waking one sleeper (`FUTEX_WAKE` only if
        /// someone sleeps). Fails rather than wrap past
        /// [`MAX_VALUE`](super::MAX_VALUE).
        #[doc(alias = "sem_post")]
        #[doc(alias = "V")]
        pub fn post(&self) -> Result<()> {
            raw::post(self.st, &Futex)
        }

        /// The number of permits available now.
        #[doc(alias = "sem_getvalue")]
        pub fn value(&self) -> Result<u32> {
            self.st.value()
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::Error;

    #[test]
    fn raw_semaphore_between_threads() {
        let st = Arc::new(SemaphoreState::new(0));
        let st2 = st.clone();
        let t = std::thread::spawn(move || {
            let s = RawSemaphore::new(&st2);
            for _ in 0..1000 {
                s.wait().unwrap();
            }
        });
        let s = RawSemaphore::new(&st);
        for _ in 0..1000 {
            s.post().unwrap();
        }
        t.join().unwrap();
        assert_eq!(s.value().unwrap(), 0);
        assert!(matches!(s.try_wait(), Err(Error::WouldBlock)));
        assert!(matches!(
            s.wait_timeout(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
    }

    #[test]
    fn post_at_the_maximum_fails_and_garbage_is_corrupted() {
        let st = SemaphoreState::new(MAX_VALUE);
        let s = RawSemaphore::new(&st);
        assert!(matches!(s.post(), Err(Error::LimitExceeded { .. })));
        assert_eq!(s.value().unwrap(), MAX_VALUE);
        assert!(st.init(MAX_VALUE + 1).is_err());
        // A peer wrote a count no post can produce.
        let bad = SemaphoreState::new(0);
        // SAFETY: test-only: same layout, we own it, no other user.
        let word =
            unsafe { &*(&bad as *const SemaphoreState as *const std::sync::atomic::AtomicU64) };
        word.store(0xFFFF_FFFF, std::sync::atomic::Ordering::SeqCst);
        let s = RawSemaphore::new(&bad);
        assert!(matches!(s.value(), Err(Error::Corrupted { .. })));
        assert!(matches!(s.try_wait(), Err(Error::Corrupted { .. })));
        assert!(matches!(s.post(), Err(Error::Corrupted { .. })));
    }
}
