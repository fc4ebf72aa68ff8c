//! What the ipcworks benchmark (`crates/ipcworks-bench`) and this crate's
//! own benches take from the private kernel layer: the floors the
//! mechanisms are measured against (a bare futex hand-off, a prefetching
//! two-line hand-off), the CPU times in `/proc/self/stat`, and the
//! descriptors a benchmark peer inherits.
//!
//! **No stability promise**: hidden from the documentation, changed or
//! removed with any release; not for use outside this workspace. Use the
//! mechanisms' own APIs instead.

use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;

pub use crate::sys::mem::prefetch_read;
pub use crate::sys::proc::stat_fields;

/// `futex(word, FUTEX_WAIT, expected, NULL)`: sleeps while `*word ==
/// expected`, until woken; may return spuriously (re-check the word).
#[doc(alias = "futex")]
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    let _ = crate::sys::futex::wait(word, expected, crate::message::Deadline::Never);
}

/// `futex(word, FUTEX_WAKE, n)`: wakes up to `n` sleepers on `word`;
/// returns how many.
#[doc(alias = "futex")]
pub fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    crate::sys::futex::wake(word, n)
}

/// Takes ownership of descriptor number `fd`, inherited from the parent
/// process, once: checks that it is open (`F_GETFD`), sets close-on-exec,
/// and refuses a number already adopted through this function (or
/// [`pipe::take_inherited`](crate::pipe::take_inherited)) in this process.
/// Numbers 0–2 are refused.
///
/// # Safety
///
/// `fd` must be a descriptor handed to this process for the caller to own,
/// and no other code in this process may own or use it: the checks cannot
/// tell such an owner apart, and the returned `OwnedFd` would close its
/// descriptor under it.
///
/// Safe code cannot call it:
///
/// ```compile_fail,E0133
/// let fd = ipcworks::__bench::adopt_inherited(3);
/// ```
pub unsafe fn adopt_inherited(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: forwarded to the caller's contract above, which is
    // `sys::fdio::adopt_inherited`'s.
    unsafe { crate::sys::fdio::adopt_inherited(fd) }.map_err(Into::into)
}
