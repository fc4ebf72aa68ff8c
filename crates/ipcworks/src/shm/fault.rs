//! Truncation by another process: the table of this process's mapped
//! segments that the `SIGBUS` handler consults, and each mapping's
//! *broken* mark.
//!
//! Every [`Segment`](super::Segment) enters its mapping here when it is
//! made ([`Watched::new`], which installs the handler of
//! `crate::sys::sigbus` the first time). A fault on a page another process
//! truncated away lands in the handler, which asks [`claim`] whether the
//! address is one of ours: if so the mapping's mark is set and the handler
//! maps zero pages over the lost part, so the faulting copy or atomic
//! completes (on zeros) instead of killing the process. Code that read or
//! wrote the segment then looks at the mark ([`Mark::is_set`], one relaxed
//! load of a word in this process's own memory that only the handler
//! writes) before it trusts what it copied or reports success, and turns a
//! set mark into [`Error::Truncated`].
//!
//! The table is a fixed array of [`SLOTS`] entries in static memory, each
//! on its own cache line: the handler reads it with atomics only (no
//! allocation, no lock), and an entry is written only when a segment is
//! mapped or dropped. An entry's `state` word works as a sequence lock (a
//! generation in the high bits, `FREE`/`BUSY`/`LIVE` in the low two): the
//! handler trusts the bounds it read only if `state` was `LIVE` and
//! unchanged around the reads.
//!
//! An entry leaves the table before its mapping is unmapped (the segment
//! drops its [`Watched`] first), so a fault at an address the kernel has
//! since given to something else is never taken for ours. The reverse —
//! a mapping unmapped while one of its own faults is being handled — cannot
//! happen: a fault comes from an access, and every access borrows the
//! segment, which keeps it mapped.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicUsize, compiler_fence, fence};

use crate::{Error, Result};

/// Most segments one process may have mapped at once.
pub const SLOTS: usize = 4096;

const FREE: usize = 0;
const BUSY: usize = 1;
const LIVE: usize = 2;
const TAG: usize = 3;

/// One mapping: its bounds and its mark.
#[repr(C, align(64))]
struct Entry {
    /// Generation << 2 | FREE, BUSY or LIVE.
    state: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    broken: AtomicBool,
}

impl Entry {
    const fn new() -> Self {
        Entry {
            state: AtomicUsize::new(FREE),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            broken: AtomicBool::new(false),
        }
    }
}

static TABLE: [Entry; SLOTS] = [const { Entry::new() }; SLOTS];
/// Entries at this index and above have never been used: the handler
/// stops there.
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// A mapping entered in the table; it leaves the table when dropped.
#[derive(Debug)]
pub(crate) struct Watched {
    entry: &'static Entry,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("broken", &self.broken.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl Watched {
    /// Enters the mapping of `len` bytes at `start` (installing the
    /// `SIGBUS` handler if this is the process's first).
    pub(crate) fn new(start: *const u8, len: usize) -> Result<Watched> {
        crate::sys::sigbus::install(claim).map_err(|e| Error::io("sigaction(SIGBUS)", e))?;
        let start = start as usize;
        let end = start.checked_add(len).ok_or_else(|| {
            Error::InvalidArgument(format!("a mapping of {len} bytes at {start:#x} wraps"))
        })?;
        for (i, entry) in TABLE.iter().enumerate() {
            let s = entry.state.load(Relaxed);
            if s & TAG != FREE {
                continue;
            }
            let generation = (s >> 2).wrapping_add(1);
            if entry
                .state
                .compare_exchange(s, generation << 2 | BUSY, Acquire, Relaxed)
                .is_err()
            {
                continue;
            }
            // A reader that saw the entry LIVE before must see it changed
            // if it sees any of the writes below.
            fence(Release);
            entry.broken.store(false, Relaxed);
            entry.start.store(start, Relaxed);
            entry.end.store(end, Relaxed);
            HIGH.fetch_max(i + 1, SeqCst);
            entry.state.store(generation << 2 | LIVE, SeqCst);
            return Ok(Watched { entry });
        }
        Err(Error::LimitExceeded {
            limit: "shared-memory segments mapped at once by one process".into(),
            value: SLOTS.to_string(),
            hint: "drop the segments (channels, queues, mutexes, semaphores) no longer in use"
                .into(),
        })
    }

    /// The mapping's mark.
    pub(crate) fn mark(&self) -> Mark {
        Mark(&self.entry.broken)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let s = self.entry.state.load(Relaxed);
        // SeqCst: before the mapping is unmapped (the caller's next step).
        self.entry.state.store(s & !TAG | FREE, SeqCst);
    }
}

/// A mapping's *broken* mark: set (by the `SIGBUS` handler, or by a size
/// check) once part of the mapping was lost to a truncation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark(&'static AtomicBool);

impl Mark {
    /// Whether the mapping is broken. A relaxed load, after a compiler
    /// fence: every access to the segment written before this call is
    /// made before it (and the handler that a faulting access ran, on this
    /// same thread, has set the mark by then).
    #[inline]
    pub(crate) fn is_set(self) -> bool {
        compiler_fence(SeqCst);
        self.0.load(Relaxed)
    }

    /// Marks the mapping broken (a size check found the object shorter).
    pub(crate) fn set(self) {
        self.0.store(true, Relaxed);
    }
}

/// The handler's question: is `addr` in one of our mappings? If so, marks
/// it broken and returns its bounds. Async-signal-safe: atomics only.
fn claim(addr: usize) -> Option<(usize, usize)> {
    let high = HIGH.load(Acquire).min(SLOTS);
    for entry in &TABLE[..high] {
        let before = entry.state.load(Acquire);
        if before & TAG != LIVE {
            continue;
        }
        let start = entry.start.load(Relaxed);
        let end = entry.end.load(Relaxed);
        fence(Acquire);
        if entry.state.load(Relaxed) != before {
            continue;
        }
        if (start..end).contains(&addr) {
            entry.broken.store(true, Relaxed);
            return Some((start, end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_claimed_only_inside_a_live_entry_and_marks_it() {
        // Addresses below mmap_min_addr: never mapped, never faulted on
        // by the other tests running beside this one.
        let a = Watched::new(0x1000 as *const u8, 0x2000).unwrap();
        let b = Watched::new(0x4000 as *const u8, 0x10).unwrap();
        assert!(!a.mark().is_set() && !b.mark().is_set());
        assert_eq!(claim(0x0fff), None);
        assert_eq!(claim(0x3000), None, "the end is outside");
        assert_eq!(claim(0x2fff), Some((0x1000, 0x3000)));
        assert!(a.mark().is_set() && !b.mark().is_set());
        assert_eq!(claim(0x4000), Some((0x4000, 0x4010)));
        assert!(b.mark().is_set());
        drop(a);
        assert_eq!(claim(0x1000), None, "a dropped entry is never claimed");
        // Its slot is reused with a clean mark.
        let c = Watched::new(0x1000 as *const u8, 0x1000).unwrap();
        assert!(!c.mark().is_set());
        c.mark().set();
        assert!(c.mark().is_set());
    }
}
