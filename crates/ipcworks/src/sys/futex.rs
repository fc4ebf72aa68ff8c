//! `futex(2)`: wait on and wake a 32-bit word, shared between processes.
//!
//! The words live in shared memory, so these calls never use
//! `FUTEX_PRIVATE_FLAG`: the kernel keys waiters by the physical page, which
//! is what lets two processes meet on one word.

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use rustix::thread::futex;

use super::time::Deadline;

/// Why a [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, or the word no longer held `expected` when the call began
    /// (`EAGAIN`), or a signal interrupted the sleep. Re-check the word.
    Retry,
    /// The deadline passed.
    TimedOut,
    /// `EFAULT`: the word's page cannot be read — another process
    /// truncated the shared memory it lives in (the kernel's own access
    /// raises no `SIGBUS`). The caller checks its segment
    /// ([`Segment::check_intact`](crate::shm::Segment::check_intact) and
    /// its size) and fails with `Error::Truncated`.
    Fault,
}

/// `futex(uaddr, FUTEX_WAIT, expected, timeout)`: sleeps while `*word ==
/// expected`, at most until `deadline`.
///
/// Returns [`Wake::Retry`] on every kind of wake-up (including `EINTR` and a
/// changed value); the caller re-reads the word and decides. Spurious
/// returns are allowed, as with every futex. [`Wake::Fault`] when the
/// word's page is gone (`EFAULT`). An expired deadline (or
/// [`Deadline::Now`]) returns [`Wake::TimedOut`] without a call.
#[doc(alias = "futex")]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> Wake {
    let ts = match deadline.remaining() {
        None => None,
        Some(left) if left.is_zero() => return Wake::TimedOut,
        Some(left) => Some(timespec(left)),
    };
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Ok(()) => Wake::Retry,
        Err(rustix::io::Errno::FAULT) => Wake::Fault,
        Err(rustix::io::Errno::TIMEDOUT) => {
            if deadline.expired() {
                Wake::TimedOut
            } else {
                Wake::Retry
            }
        }
        // EAGAIN (value changed), EINTR (signal): the caller re-checks.
        Err(_) => Wake::Retry,
    }
}

/// `futex(uaddr, FUTEX_WAIT, expected, timeout)` for at most `timeout`,
/// measured by the kernel alone: no clock is read here, which keeps a
/// waiter that its peer wakes (the common case) free of clock reads.
/// [`Wake::TimedOut`] means `timeout` passed without a wake-up.
pub fn wait_for(word: &AtomicU32, expected: u32, timeout: Duration) -> Wake {
    match futex::wait(
        word,
        futex::Flags::empty(),
        expected,
        Some(&timespec(timeout)),
    ) {
        Ok(()) => Wake::Retry,
        Err(rustix::io::Errno::TIMEDOUT) => Wake::TimedOut,
        Err(rustix::io::Errno::FAULT) => Wake::Fault,
        // EAGAIN (value changed), EINTR (signal): the caller re-checks.
        Err(_) => Wake::Retry,
    }
}

/// `futex(uaddr, FUTEX_WAIT, expected, timeout)` for at most `slice`, bounded
/// by `deadline`. Used by waiters that must look up now and then (is the
/// holder still alive?) while they sleep.
pub fn wait_slice(word: &AtomicU32, expected: u32, deadline: Deadline, slice: Duration) -> Wake {
    match wait(word, expected, deadline.min(Deadline::after(slice))) {
        Wake::TimedOut if deadline.expired() => Wake::TimedOut,
        Wake::TimedOut | Wake::Retry => Wake::Retry,
        Wake::Fault => Wake::Fault,
    }
}

/// `futex(uaddr, FUTEX_WAKE, n)`: wakes up to `n` waiters; returns how many.
#[doc(alias = "futex")]
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    // FUTEX_WAKE fails only for an address it cannot read: a page another
    // process truncated away (`EFAULT`). Nobody sleeps there any more, so
    // there is nobody to wake; the waker's own checks report the
    // truncation.
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
}

/// Wakes every waiter on `word`.
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, i32::MAX as u32)
}

/// The low 32 bits of a 64-bit word as the futex word the kernel reads.
///
/// A futex is 32 bits; a lock word that must also hold a 64-bit value
/// (the robust mutex's owner identity) keeps the futex bits in its low
/// half. Rust code never loads or stores through the returned reference:
/// it only hands the address to `futex(2)`, whose 32-bit compare is atomic
/// in the kernel, so no mixed-size Rust accesses arise.
fn low_half(word: &AtomicU64) -> &AtomicU32 {
    let base = word as *const AtomicU64 as *const AtomicU32;
    // The low half is the first 4 bytes on little-endian machines, the
    // last 4 on big-endian ones.
    let offset = if cfg!(target_endian = "little") { 0 } else { 1 };
    // SAFETY: `word` is 8 bytes, 8-aligned, and valid for as long as the
    // borrow; each of its 4-byte halves is a valid, 4-aligned AtomicU32
    // place (same interior mutability) for that long.
    unsafe { &*base.add(offset) }
}

/// [`wait`] on the low 32 bits of a 64-bit word: sleeps while those bits
/// equal `expected`.
pub fn wait_low(word: &AtomicU64, expected: u32, deadline: Deadline) -> Wake {
    wait(low_half(word), expected, deadline)
}

/// [`wake`] the waiters of [`wait_low`] on `word`; returns how many.
pub fn wake_low(word: &AtomicU64, n: u32) -> usize {
    wake(low_half(word), n)
}

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: d.subsec_nanos() as _,
    }
}
