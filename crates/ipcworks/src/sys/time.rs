//! Deadlines on the monotonic clock, for blocking calls that retry after
//! `EINTR` with the time that is left.

use std::time::{Duration, Instant};

/// A point in monotonic time by which a blocking call must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    /// The deadline `timeout` from now (saturating far in the future).
    pub fn after(timeout: Duration) -> Self {
        let now = Instant::now();
        Deadline(
            now.checked_add(timeout)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600)),
        )
    }

    /// A deadline for an optional timeout: `None` waits for ever.
    pub fn from_timeout(timeout: Option<Duration>) -> Option<Self> {
        timeout.map(Deadline::after)
    }

    /// The time left, or `None` once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() { None } else { Some(left) }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.remaining().is_none()
    }

    /// The instant itself.
    pub fn instant(&self) -> Instant {
        self.0
    }
}

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
