//! The atomics the lock-free protocols are written with: std's, or loom's
//! under `--cfg loom`.
//!
//! Every protocol that is model-checked — the mutex (`sync/mutex/raw.rs`),
//! the semaphore (`sync/semaphore/raw.rs`), the channel's ring
//! (`channel/ring.rs`) and the native queue's slots (`queue/slots.rs`) —
//! takes its atomic types and fences from here, so one switch decides for
//! all of them, and the code loom checks is the code that runs over shared
//! memory (crossbeam keeps the same switch in its `primitive` module).
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ipcworks
//! --lib --release -- sync:: channel:: queue::` runs the models.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, fence};
