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

/// Waits for the creator of an object in shared memory to publish it, then
/// checks what it is.
///
/// Creators of ipcworks objects (mutex, semaphore, queue) fill in their
/// header and write its `magic` word *last*, with release ordering; an
/// opener that finds 0 waits up to 1 s for it. Returns the reason to refuse
/// the object, in plain words, when the magic never came or is not `want`
/// (`kind` names what was expected: "mutex", "semaphore", …).
pub fn await_magic(
    magic: &std::sync::atomic::AtomicU64,
    want: u64,
    kind: &str,
) -> std::result::Result<(), String> {
    use std::sync::atomic::Ordering::Acquire;
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let found = loop {
        let m = magic.load(Acquire);
        if m != 0 || start.elapsed() > Duration::from_secs(1) {
            break m;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    match found {
        0 => Err(
            "it was never initialized: its creator is slow or died while creating it; remove it"
                .into(),
        ),
        m if m != want => Err(format!("it is not an ipcworks {kind} (magic {m:#018x})")),
        _ => Ok(()),
    }
}
