//! `memcpy`: single-core copy bandwidth, the ceiling for moving bytes (a
//! mechanism that copies once can at best match it). Measured in one
//! process, on the parent's core; every throughput figure's
//! `ratio_to_floor` is its bandwidth divided by this one at the same size.

use std::time::{Duration, Instant};

use crate::stats::calibrate;

/// Its name in `--only` and the results.
pub const NAME: &str = "memcpy";

/// Copies `size` bytes repeatedly: warm-up for `warm`, then for `budget`.
/// Returns (copies, seconds).
pub fn measure(size: usize, warm: Duration, budget: Duration) -> (u64, f64) {
    let src = vec![0x3Cu8; size];
    let mut dst = vec![0u8; size];
    let mut copy = |n: u64| {
        for _ in 0..n {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
    };
    // Batches of about a millisecond, so the clock is read rarely.
    let t = Instant::now();
    let mut done = 0u64;
    let mut batch = 1u64;
    while t.elapsed() < warm.max(Duration::from_millis(1)) {
        copy(batch);
        done += batch;
        batch = batch.saturating_mul(2).min(1 << 20);
    }
    let batch = calibrate(done, t.elapsed(), Duration::from_millis(1), 1, 1 << 24);
    let start = Instant::now();
    let mut n = 0u64;
    while n == 0 || start.elapsed() < budget {
        copy(batch);
        n += batch;
    }
    (n, start.elapsed().as_secs_f64())
}
