//! Synchronization between threads and processes: futex-based robust mutex
//! and counting semaphores that live in shared memory.
