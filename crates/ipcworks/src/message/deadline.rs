//! The one deadline type of the library.

use std::time::{Duration, Instant};

/// How long a call may wait: not at all, until an instant on the monotonic
/// clock, or for ever.
///
/// Every blocking call of ipcworks takes (or is a one-line wrapper over a
/// call that takes) a `Deadline`: `try_recv` is `recv_until(Deadline::Now)`,
/// `recv_timeout(t)` is `recv_until(Deadline::after(t))`, `recv` is
/// `recv_until(Deadline::Never)`. A call interrupted by a signal (`EINTR`)
/// retries with the time that is left, so the deadline holds across
/// signals; a wall-clock change does not move it (the monotonic clock,
/// [`Instant`]).
///
/// Deadlines order from the nearest to the farthest (`Now` < `At(_)` <
/// `Never`), so the earlier of two is [`Ord::min`].
///
/// ```
/// use std::time::Duration;
/// use ipcworks::message::Deadline;
///
/// let d = Deadline::after(Duration::from_millis(50));
/// assert!(!d.expired());
/// assert!(d.remaining().unwrap() <= Duration::from_millis(50));
/// assert_eq!(Deadline::Never.remaining(), None); // no limit
/// assert_eq!(Deadline::Now.remaining(), Some(Duration::ZERO));
/// assert_eq!(d.min(Deadline::Now), Deadline::Now);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Deadline {
    /// Do not wait: one attempt (the `try_` calls).
    Now,
    /// Wait at most until this instant (the `_timeout` calls).
    At(Instant),
    /// Wait for ever (the blocking calls).
    Never,
}

/// How far in the future [`Deadline::after`] saturates for a timeout too
/// large for the clock (`Duration::MAX`): a hundred years.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Deadline {
    /// The deadline `timeout` from now; a timeout too large for the clock
    /// saturates a hundred years ahead.
    pub fn after(timeout: Duration) -> Self {
        let now = Instant::now();
        Deadline::At(now.checked_add(timeout).unwrap_or_else(|| now + FAR))
    }

    /// A deadline for an optional timeout: `None` waits for ever.
    pub fn from_timeout(timeout: Option<Duration>) -> Self {
        timeout.map_or(Deadline::Never, Deadline::after)
    }

    /// The time left: `None` for [`Never`](Self::Never) (no limit), zero
    /// for [`Now`](Self::Now) and once the instant has passed. This is the
    /// timeout to hand a kernel call (`poll`, `futex`, `mq_timedreceive`),
    /// where `None` waits for ever.
    pub fn remaining(&self) -> Option<Duration> {
        match self {
            Deadline::Now => Some(Duration::ZERO),
            Deadline::At(t) => Some(t.saturating_duration_since(Instant::now())),
            Deadline::Never => None,
        }
    }

    /// Whether the deadline has passed: always for [`Now`](Self::Now),
    /// never for [`Never`](Self::Never) (without reading the clock).
    pub fn expired(&self) -> bool {
        match self {
            Deadline::Now => true,
            Deadline::At(t) => Instant::now() >= *t,
            Deadline::Never => false,
        }
    }

    /// The instant, for [`At`](Self::At).
    pub fn instant(&self) -> Option<Instant> {
        match self {
            Deadline::At(t) => Some(*t),
            _ => None,
        }
    }

    /// Whether this is [`Now`](Self::Now): a call that must not wait.
    pub fn is_now(&self) -> bool {
        matches!(self, Deadline::Now)
    }
}

impl From<Instant> for Deadline {
    /// [`Deadline::At`].
    fn from(t: Instant) -> Self {
        Deadline::At(t)
    }
}

impl From<Option<Duration>> for Deadline {
    /// [`Deadline::from_timeout`]: `None` waits for ever.
    fn from(timeout: Option<Duration>) -> Self {
        Deadline::from_timeout(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_remaining_and_saturation() {
        let soon = Deadline::after(Duration::from_secs(1));
        assert!(Deadline::Now < soon && soon < Deadline::Never);
        assert_eq!(soon.min(Deadline::Never), soon);
        let far = Deadline::after(Duration::MAX);
        assert!(far.remaining().unwrap() > Duration::from_secs(99 * 365 * 24 * 3600));
        assert!(!far.expired());
        let past = Deadline::At(Instant::now());
        assert!(past.expired());
        assert_eq!(past.remaining(), Some(Duration::ZERO));
        assert!(Deadline::Now.expired() && Deadline::Now.is_now());
        assert!(!Deadline::Never.expired());
        assert_eq!(Deadline::from_timeout(None), Deadline::Never);
    }
}
