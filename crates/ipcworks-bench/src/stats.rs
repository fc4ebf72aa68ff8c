//! Histogram summaries and iteration calibration.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Median, p99, p99.9 and max of a set of round trips, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Samples recorded.
    pub count: u64,
    /// 50th percentile.
    pub median_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
}

/// A latency recorder: an HdrHistogram from 1 ns to 100 s, 3 significant
/// digits (values are exact to 0.1 %).
#[derive(Debug, Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            hist: Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds"),
        }
    }

    /// Records one sample (clamped into the histogram's range).
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
    }

    /// Samples recorded so far.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The summary, or `None` when nothing was recorded.
    pub fn summary(&self) -> Option<Summary> {
        if self.hist.is_empty() {
            return None;
        }
        Some(Summary {
            count: self.hist.len(),
            median_ns: self.hist.value_at_quantile(0.5),
            p99_ns: self.hist.value_at_quantile(0.99),
            p999_ns: self.hist.value_at_quantile(0.999),
            max_ns: self.hist.max(),
        })
    }
}

/// How many iterations fill `budget`, given that `done` iterations took
/// `took` during a trial; clamped to `[min, max]`. A zero trial time gives
/// `max`.
pub fn calibrate(done: u64, took: Duration, budget: Duration, min: u64, max: u64) -> u64 {
    let took_ns = took.as_nanos();
    if done == 0 || took_ns == 0 {
        return max.max(min);
    }
    let want = budget.as_nanos().saturating_mul(u128::from(done)) / took_ns;
    let want = u64::try_from(want).unwrap_or(u64::MAX);
    want.clamp(min, max.max(min))
}

/// Splits a total time budget over `cases` measurements, each at least
/// `floor` long; the warm-up takes a fifth of each share.
pub fn share(total: Duration, cases: usize, floor: Duration) -> (Duration, Duration) {
    let each = if cases == 0 {
        total
    } else {
        total / u32::try_from(cases).unwrap_or(u32::MAX)
    };
    let each = each.max(floor);
    (each / 5, each)
}
