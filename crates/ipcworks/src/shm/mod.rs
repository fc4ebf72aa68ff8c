//! Shared memory segments: named (`shm_open`) and anonymous (`memfd_create`).
//!
//! Shared memory is the fastest way for processes to communicate: once the
//! segment is mapped, the kernel steps out and both processes read and write
//! the same physical pages. It is also the easiest to get wrong, so a
//! [`Segment`] only hands out raw pointers; the typed mechanisms built on it
//! ([`crate::sync`], channels, queues) decide how the bytes are used.
//!
//! ```no_run
//! use ipcworks::shm::Segment;
//!
//! # fn main() -> ipcworks::Result<()> {
//! let seg = Segment::options().size(1 << 20).mode(0o600).create("ipcworks-demo")?;
//! assert_eq!(seg.len(), 1 << 20);
//! // The creator unlinks the name when `seg` is dropped, unless `persist()`ed.
//! # Ok(())
//! # }
//! ```

mod segment;

pub use segment::{Segment, SegmentOptions};
