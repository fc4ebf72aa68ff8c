//! Synchronization between threads and processes: futex-based robust mutex
//! and counting semaphores that live in shared memory.

pub mod mutex;

pub use mutex::{Acquired, MutexState, RawError};
#[cfg(not(loom))]
pub use mutex::{AtomicsOnly, LockError, Mutex, MutexGuard, MutexOptions, RawMutex};

pub mod semaphore;
pub use semaphore::SemaphoreState;
#[cfg(not(loom))]
pub use semaphore::{
    Permit, PosixSemaphore, PosixSemaphoreOptions, RawSemaphore, Semaphore, SemaphoreOptions,
};
