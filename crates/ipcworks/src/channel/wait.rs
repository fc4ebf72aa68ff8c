//! How an end waits for its peer: spin, block on a futex, or both.

use std::time::{Duration, Instant};

use crate::primitive::AtomicU32;
use crate::sys::futex::{self, Wake};
use crate::sys::time::Deadline;
use crate::{Error, Result};

/// How a blocked [`Sender`](super::Sender) or [`Receiver`](super::Receiver)
/// waits for its peer.
///
/// A futex wake-up across cores costs tens of microseconds on a virtual
/// machine; a peer that answers within that time is caught far sooner by
/// spinning. The default spins briefly, then sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Sleep on the futex at once (`futex(FUTEX_WAIT)`): no CPU burnt, the
    /// highest latency.
    Block,
    /// Busy-wait for ever (checking deadline and peer liveness now and
    /// then): the lowest latency, one core burnt per waiting end.
    Spin,
    /// Busy-wait for `spin`, then sleep.
    SpinThenBlock {
        /// How long to spin before sleeping.
        spin: Duration,
    },
}

impl Default for WaitStrategy {
    /// `SpinThenBlock { spin: 100 µs }`: catches a peer that answers at once
    /// (a round trip is well under a microsecond) and one that was briefly
    /// preempted, and sleeps otherwise.
    fn default() -> Self {
        WaitStrategy::SpinThenBlock {
            spin: Duration::from_micros(100),
        }
    }
}

/// The most turns of a receive's quick spin ([`WaitStrategy::quick_turns`]):
/// as many as [`block_on`] spins between two looks at the clock.
const QUICK_TURNS: u32 = 64;

impl WaitStrategy {
    /// How many turns (a load and a pause each) a receive spins in line,
    /// before its general wait ([`block_on`]) starts: none for `Block`;
    /// [`QUICK_TURNS`] for `Spin`; for `SpinThenBlock`, at most one per
    /// 100 ns of its spin (a pause takes 3-40 ns on current x86 cores), so
    /// that a short spin stays short. The general wait then spins (and
    /// times its spin) as before: the quick spin adds at most that many
    /// turns before its first look at the clock, the deadline and the
    /// peer, the same cadence it keeps while spinning.
    #[inline(always)]
    pub(crate) fn quick_turns(self) -> u32 {
        match self {
            WaitStrategy::Block => 0,
            WaitStrategy::Spin => QUICK_TURNS,
            WaitStrategy::SpinThenBlock { spin } => {
                if spin >= Duration::from_nanos(100 * QUICK_TURNS as u64) {
                    QUICK_TURNS
                } else {
                    // Under a second (the branch above): the nanoseconds.
                    spin.subsec_nanos() / 100
                }
            }
        }
    }
}

/// Spinning turns (a load and a pause each) after which a spinning waiter
/// yields its core every 64th turn.
const YIELD_AFTER: u32 = 256;

/// How often a waiter looks at its peer's liveness (`/proc`) while it waits.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// Retries `attempt` until it yields a value, waiting on `word` in between as
/// `strategy` says, at most until `deadline` (a [`Deadline::Now`] caller
/// takes the non-blocking path instead: it never comes here). `prepare` announces a sleeper (sets the flag bit) and
/// returns the futex value; `check_peer` runs before every sleep, and with
/// `slow = true` (a liveness check through `/proc`) about once per
/// [`SLICE`] of waiting: after a slice passes without a wake-up, and by the
/// clock while wake-ups bring nothing or while spinning, and when the
/// futex word cannot be read (`EFAULT`: its segment was truncated). It
/// may end the wait with an error (`Disconnected`, `Truncated`).
///
/// `probe` is a cheaper look (one load) at whether `attempt` may find
/// something now: while spinning, `attempt` runs only when `probe` says
/// so, and every 64th turn anyway. A spinning turn is then a load, a
/// compare and a pause, the least time between two looks at the word the
/// peer publishes with.
pub(crate) fn block_on<T>(
    strategy: WaitStrategy,
    word: &AtomicU32,
    deadline: Deadline,
    mut probe: impl FnMut() -> bool,
    mut attempt: impl FnMut() -> Result<Option<T>>,
    mut prepare: impl FnMut() -> u32,
    mut check_peer: impl FnMut(bool) -> Result<()>,
) -> Result<T> {
    // The fast path: no clock reading, no system call.
    if let Some(v) = attempt()? {
        return Ok(v);
    }
    let spin_for = match strategy {
        WaitStrategy::Block => Duration::ZERO,
        WaitStrategy::Spin => Duration::MAX,
        WaitStrategy::SpinThenBlock { spin } => spin,
    };
    // The clock is read only where something is timed: a spin, a caller's
    // deadline, and the liveness check's cadence while wake-ups bring
    // nothing. A blocking wait that its peer's message ends reads none
    // (each read is a few percent of a futex round trip here).
    let start = (spin_for > Duration::ZERO).then(Instant::now);
    let mut last_check = start;
    // From 1: the call above just tried, so the first turn only probes.
    let mut spins: u32 = 1;
    let mut woken = false;
    loop {
        if (probe() || spins.is_multiple_of(64))
            && let Some(v) = attempt()?
        {
            return Ok(v);
        }
        spins = spins.wrapping_add(1);
        let now_spinning = start.is_some_and(|start| {
            // Look at the clock only every 64 turns.
            !spins.is_multiple_of(64) || start.elapsed() < spin_for
        });
        if now_spinning {
            std::hint::spin_loop();
            if spins.is_multiple_of(64) {
                if deadline.expired() {
                    return Err(Error::Timeout);
                }
                if last_check.is_none_or(|t| t.elapsed() >= SLICE) {
                    last_check = Some(Instant::now());
                    check_peer(true)?;
                } else if spins.is_multiple_of(4096) {
                    check_peer(false)?;
                }
                // A wait that outlasts a few microseconds of spinning
                // lets others run between looks: with more busy ends
                // than cores (several senders into one receiver on two
                // cores), the peer that would end it may be waiting for
                // this core. Alone on its core, the call returns at once.
                if spins >= YIELD_AFTER {
                    std::thread::yield_now();
                }
            }
            continue;
        }
        let v = prepare();
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        check_peer(false)?;
        if woken {
            // Woken, and still nothing to take (a dead sender's reservation
            // at the head can keep wake-ups coming without a message): the
            // liveness check keeps its cadence by the clock.
            let t = *last_check.get_or_insert_with(Instant::now);
            if t.elapsed() >= SLICE {
                last_check = Some(Instant::now());
                check_peer(true)?;
            }
        }
        let (slice_passed, fault) = match deadline {
            // One slice, timed by the kernel.
            Deadline::Never => match futex::wait_for(word, v, SLICE) {
                Wake::TimedOut => (true, false),
                Wake::Fault => (false, true),
                Wake::Retry => (false, false),
            },
            d => match futex::wait_slice(word, v, d, SLICE) {
                Wake::TimedOut => {
                    // One last look: the peer may have published just now.
                    return match attempt()? {
                        Some(v) => Ok(v),
                        None => Err(Error::Timeout),
                    };
                }
                // The deadline is judged by the clock anyway.
                w => (
                    last_check.get_or_insert_with(Instant::now).elapsed() >= SLICE,
                    w == Wake::Fault,
                ),
            },
        };
        woken = !slice_passed && !fault;
        // EFAULT: the futex word's page is gone (a peer truncated the
        // segment); the full check reports it.
        if slice_passed || fault {
            last_check = Some(Instant::now());
            check_peer(true)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receive's quick spin: none for `Block`, the most for `Spin`, and
    /// for `SpinThenBlock` one turn per 100 ns of its spin, so that a short
    /// spin stays short.
    #[test]
    fn quick_turns_follow_the_strategy_and_keep_a_short_spin_short() {
        let spin = |ns: u64| WaitStrategy::SpinThenBlock {
            spin: Duration::from_nanos(ns),
        };
        assert_eq!(WaitStrategy::Block.quick_turns(), 0);
        assert_eq!(WaitStrategy::Spin.quick_turns(), QUICK_TURNS);
        assert_eq!(WaitStrategy::default().quick_turns(), QUICK_TURNS);
        assert_eq!(spin(0).quick_turns(), 0);
        assert_eq!(spin(99).quick_turns(), 0);
        assert_eq!(spin(1_000).quick_turns(), 10);
        assert_eq!(spin(6_399).quick_turns(), 63);
        assert_eq!(spin(6_400).quick_turns(), QUICK_TURNS);
        let long = WaitStrategy::SpinThenBlock {
            spin: Duration::MAX,
        };
        assert_eq!(long.quick_turns(), QUICK_TURNS);
    }
}
