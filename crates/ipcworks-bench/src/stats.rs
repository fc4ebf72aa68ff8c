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

impl Summary {
    /// One summary for several rounds of a case, each round counting
    /// alike however many samples it fit in: the median of the rounds'
    /// medians (of the two middle ones, with an even number), likewise for
    /// p99 and p99.9, the largest max, and all samples counted. Pooling
    /// the samples instead would weight a round by its speed: on this VM a
    /// round during which the host ran the two CPUs as SMT siblings
    /// bounced the floor in 83 ns against 280–340 ns in the others, fit
    /// four times the samples, and pulled the pooled median to 92 ns.
    /// `None` without rounds.
    pub fn of_rounds(rounds: &[Summary]) -> Option<Summary> {
        let max_ns = rounds.iter().map(|s| s.max_ns).max()?;
        let mid = |f: fn(&Summary) -> u64| {
            let mut v: Vec<u64> = rounds.iter().map(f).collect();
            median(&mut v, Ord::cmp, |a, b| (a + b).div_ceil(2))
        };
        Some(Summary {
            count: rounds.iter().map(|s| s.count).sum(),
            median_ns: mid(|s| s.median_ns)?,
            p99_ns: mid(|s| s.p99_ns)?,
            p999_ns: mid(|s| s.p999_ns)?,
            max_ns,
        })
    }
}

/// The median of `v` (sorted in place by `cmp`): its middle value, or
/// `mean` of the two middle ones with an even number. `None` when empty.
/// [`Summary::of_rounds`]'s and the tables' paired ratios'.
pub(crate) fn median<T: Copy>(
    v: &mut [T],
    cmp: impl FnMut(&T, &T) -> std::cmp::Ordering,
    mean: impl FnOnce(T, T) -> T,
) -> Option<T> {
    v.sort_unstable_by(cmp);
    let n = v.len();
    if n == 0 {
        return None;
    }
    Some(match n % 2 {
        1 => v[n / 2],
        _ => mean(v[n / 2 - 1], v[n / 2]),
    })
}

/// The smallest and the largest of `values` (times or paces), when there
/// is one and the smallest is positive: [`Figure::round_range`]'s and the
/// hand-off probes' ([`crate::probe::agree`]).
///
/// [`Figure::round_range`]: crate::schema::Figure::round_range
pub(crate) fn positive_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .into_iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    (lo > 0.0 && lo.is_finite()).then_some((lo, hi))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_ten_thousand() {
        let mut r = Recorder::new();
        for v in 1..=10_000u64 {
            r.record(v);
        }
        let s = r.summary().unwrap();
        assert_eq!(s.count, 10_000);
        // 3 significant digits: within 0.1 % of the exact rank value.
        let near =
            |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.001 + 1.0;
        assert!(near(s.median_ns, 5_000), "median {}", s.median_ns);
        assert!(near(s.p99_ns, 9_900), "p99 {}", s.p99_ns);
        assert!(near(s.p999_ns, 9_990), "p99.9 {}", s.p999_ns);
        assert!(near(s.max_ns, 10_000), "max {}", s.max_ns);
    }

    #[test]
    fn outliers_show_in_the_tail_only() {
        let mut r = Recorder::new();
        for _ in 0..9_990 {
            r.record(300);
        }
        for _ in 0..10 {
            r.record(60_000);
        }
        let s = r.summary().unwrap();
        assert_eq!((s.median_ns, s.p99_ns), (300, 300));
        assert!(s.p999_ns <= 300 || s.p999_ns >= 59_900);
        assert!((59_900..=60_100).contains(&s.max_ns));
    }

    #[test]
    fn empty_and_out_of_range() {
        let mut r = Recorder::new();
        assert!(r.is_empty() && r.summary().is_none());
        r.record(0);
        r.record(u64::MAX);
        let s = r.summary().unwrap();
        assert_eq!(s.count, 2);
        assert!(s.max_ns >= 99_000_000_000);
    }

    #[test]
    fn rounds_count_alike_whatever_their_sample_counts() {
        let r = |count, median_ns, p99_ns, max_ns| Summary {
            count,
            median_ns,
            p99_ns,
            p999_ns: p99_ns + 10,
            max_ns,
        };
        // A fast round with four times the samples does not decide.
        let s = Summary::of_rounds(&[
            r(400, 83, 120, 900),
            r(100, 278, 400, 5_000),
            r(100, 337, 450, 700),
        ])
        .unwrap();
        assert_eq!(
            (s.count, s.median_ns, s.p99_ns, s.p999_ns, s.max_ns),
            (600, 278, 400, 410, 5_000)
        );
        // Two rounds: between the two.
        let s = Summary::of_rounds(&[r(10, 100, 200, 300), r(10, 201, 300, 400)]).unwrap();
        assert_eq!((s.median_ns, s.p99_ns), (151, 250));
        assert!(Summary::of_rounds(&[]).is_none());
    }

    #[test]
    fn calibration_fills_the_budget() {
        let ms = Duration::from_millis;
        // 1000 in 10 ms -> 100 ms needs 10 000.
        assert_eq!(calibrate(1000, ms(10), ms(100), 1, u64::MAX), 10_000);
        assert_eq!(calibrate(1000, ms(10), ms(100), 1, 5_000), 5_000);
        assert_eq!(calibrate(1, ms(1000), ms(1), 20, 100), 20);
        assert_eq!(calibrate(0, ms(0), ms(1), 3, 100), 100);
        assert_eq!(
            calibrate(u64::MAX, Duration::from_nanos(1), ms(1000), 1, u64::MAX),
            u64::MAX
        );
    }

    #[test]
    fn budget_shares() {
        let s = Duration::from_secs;
        assert_eq!(
            share(s(10), 10, Duration::ZERO),
            (Duration::from_millis(200), s(1))
        );
        assert_eq!(
            share(s(1), 1000, Duration::from_millis(10)).1,
            Duration::from_millis(10)
        );
        assert_eq!(share(s(5), 0, Duration::ZERO).1, s(5));
    }
}
