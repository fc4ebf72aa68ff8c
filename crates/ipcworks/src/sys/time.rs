//! Time for the kernel layer: the deadline type blocking calls take (they
//! retry after `EINTR` with the time that is left), and a cheap coarse
//! clock.

/// The one deadline type, defined with the message interface
/// ([`crate::message::Deadline`]); the kernel-facing helpers here take it.
pub use crate::message::Deadline;

/// Milliseconds on the coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`:
/// a few nanoseconds to read, a few milliseconds of resolution), for
/// "about every 20 ms" checks on hot paths where `Instant::now()` (tens of
/// nanoseconds on a virtual machine) would cost more than the work around
/// it.
pub fn coarse_millis() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64)
        .wrapping_mul(1000)
        .wrapping_add(t.tv_nsec as u64 / 1_000_000)
}
