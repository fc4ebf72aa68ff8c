//! How dear a cross-core hand-off is at this moment: about half a
//! millisecond of two threads of this process bouncing one cache line, taken
//! before and after every case of a run (`run::measure_rounds`).
//!
//! Why: "x bare" pairs each round of a mechanism with `bare`'s same round,
//! measured moments apart. Some machines change the price of every
//! cross-core hand-off by themselves, for seconds at a time (the 2-core
//! virtual machine this was written on moves between hand-offs of about
//! 70, 120 and 400 ns, also within a run). When that happens between the
//! two halves of a pair, the pair compares two machines, not two
//! mechanisms: 1 KiB streams of identical code measured 0.26x bare in one
//! such round. With a probe on either side of each case, `x bare` leaves
//! out the pairs whose probes disagree ([`crate::table::x_bare`]) and says
//! how many it left out.
//!
//! The probe runs in this process, with a thread on the peer's core, so it
//! sees the same pair of cores the case just used; its figure is near the
//! `floor` row's but not the same (threads, not processes), and only its
//! changes are used.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Round trips per probe.
const TRIPS: u64 = 1024;
/// Round trips timed together: the probe's figure is the median of the
/// batches' means, so a preemption in one batch does not move it.
const BATCH: u64 = 64;
/// A probe that has not finished by then (a thread preempted for long,
/// a core taken away) gives up and says nothing.
const LIMIT: Duration = Duration::from_millis(50);

/// A word on a cache line of its own (and its neighbour's: the adjacent
/// line prefetcher pulls lines in pairs).
#[repr(C, align(128))]
struct Word(AtomicU64);

/// The median round trip, in nanoseconds, of a cache line bounced between
/// this thread and one on `peer_cpu` (unpinned when `None`), or `None`
/// when the probe cannot say: the two would share a core (`peer_cpu` is
/// `here`, where this thread is pinned), the machine has one core, or
/// the probe ran past its time limit.
pub fn hand_off_ns(here: Option<usize>, peer_cpu: Option<usize>) -> Option<f64> {
    if here.is_some() && here == peer_cpu {
        return None;
    }
    // Unpinned, the two threads need two cores among those allowed (when
    // this thread is pinned, that count is one: it says nothing then).
    if peer_cpu.is_none() && std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    let (ping, pong) = (Word(AtomicU64::new(0)), Word(AtomicU64::new(0)));
    let (give_up, started) = (AtomicBool::new(false), AtomicBool::new(false));
    let deadline = Instant::now() + LIMIT;
    // Spins until `word` holds `want`; false once the probe gave up.
    let wait_for = |word: &Word, want: u64| {
        let mut spins = 0u32;
        while word.0.load(Ordering::Acquire) != want {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024)
                && (give_up.load(Ordering::Relaxed) || Instant::now() > deadline)
            {
                give_up.store(true, Ordering::Relaxed);
                return false;
            }
            std::hint::spin_loop();
        }
        true
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(cpu) = peer_cpu
                && crate::system::pin(cpu).is_err()
            {
                give_up.store(true, Ordering::Relaxed);
                return;
            }
            started.store(true, Ordering::Release);
            for i in 1..=TRIPS {
                if !wait_for(&ping, i) {
                    return;
                }
                pong.0.store(i, Ordering::Release);
            }
        });
        // The thread starts on this core (it inherits the pinning) and
        // moves itself: yield until it has, rather than spin it out of a
        // time slice.
        while !started.load(Ordering::Acquire) {
            if give_up.load(Ordering::Relaxed) || Instant::now() > deadline {
                give_up.store(true, Ordering::Relaxed);
                return None;
            }
            std::thread::yield_now();
        }
        let mut batches = Vec::with_capacity((TRIPS / BATCH) as usize);
        let mut i = 0;
        while i < TRIPS {
            let start = Instant::now();
            for _ in 0..BATCH {
                i += 1;
                ping.0.store(i, Ordering::Release);
                if !wait_for(&pong, i) {
                    return None;
                }
            }
            batches.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        crate::stats::median(&mut batches, f64::total_cmp, |a, b| (a + b) / 2.0)
    })
}

/// Whether `probes` (hand-off figures, each positive) lie within a factor
/// of `1 + shift` of each other: taken in one state of the machine.
pub fn agree(probes: &[f64], shift: f64) -> bool {
    crate::stats::positive_range(probes.iter().copied())
        .is_some_and(|(lo, hi)| hi <= lo * (1.0 + shift))
}

#[cfg(test)]
mod tests {
    use super::{agree, hand_off_ns};

    /// Two threads on two cores: a figure, and a sane one (a hand-off
    /// takes more than a nanosecond and, on any machine this runs on,
    /// less than 100 µs; the time limit is 50 ms for all 1024 trips).
    #[test]
    fn a_probe_gives_a_round_trip_on_two_cores_and_nothing_on_one() {
        let cpus = crate::system::allowed_cpus();
        if cpus.len() >= 2 {
            // On a loaded machine (other tests run beside this one) the
            // two threads may not get two cores at once, and the limit
            // cuts the probe: up to twenty tries, a second in all.
            let ns = (0..20).find_map(|_| {
                hand_off_ns(None, None).or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    None
                })
            });
            let ns = ns.expect("no probe finished in twenty tries");
            assert!((1.0..100_000.0).contains(&ns), "{ns} ns");
        }
        assert_eq!(hand_off_ns(Some(0), Some(0)), None, "one core for both");
    }

    #[test]
    fn probes_agree_within_the_shift_only() {
        assert!(agree(&[120.0, 130.0, 125.0, 170.0], 0.5));
        assert!(!agree(&[120.0, 130.0, 400.0, 125.0], 0.5));
        assert!(!agree(&[120.0, 0.0], 0.5), "a zero is no figure");
        assert!(agree(&[120.0, 180.0], 0.5), "the bound itself agrees");
    }
}
