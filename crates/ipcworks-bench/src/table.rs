//! The terminal table: round trips sorted by median, throughput by
//! mechanism and size, skipped figures with their reasons.

use std::fmt::Write;

use crate::run::human_size;
use crate::schema::{Figure, Metric, Results, Wait};
use crate::stats::median;

/// Nanoseconds for people: `312 ns`, `4.2 µs`, `1.3 ms`.
pub fn human_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{:.1} ms", v / 1e6)
    }
}

/// Bytes per second for people: `812 MB/s`, `3.1 GB/s`.
pub fn human_rate(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.1} GB/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.0} MB/s", bps / 1e6)
    } else {
        format!("{:.0} kB/s", bps / 1e3)
    }
}

/// Messages per second for people: `812 k/s`, `3.1 M/s`.
pub fn human_msgs(mps: f64) -> String {
    if mps >= 1e6 {
        format!("{:.2} M/s", mps / 1e6)
    } else if mps >= 1e3 {
        format!("{:.1} k/s", mps / 1e3)
    } else {
        format!("{mps:.0} /s")
    }
}

/// "x bare": a plain figure over `bare`'s at the same size, measured in the
/// same run. Round trip: its median / bare's median (1.10 = 10 % slower
/// than bare; lower is better). Throughput: its bytes/s / bare's bytes/s
/// (0.6 = 60 % of bare's pace; higher is better). `None` without a bare
/// figure at that size (or for fan-in and server figures).
///
/// Taken round by round where both have their rounds: the median of the
/// ratios of round 1 to bare's round 1, round 2 to round 2, and so on
/// (the rounds are interleaved, and within a round a size's cases run
/// side by side, so each pair was measured moments apart).
/// A slow spell of the machine that hits one mechanism's cases in one
/// round (on the 2-core VM this was written on, cross-core hand-offs
/// sometimes cost three to four times as much for a few seconds) then
/// spoils one pair, which the median sets aside, instead of moving one of
/// the two medians the plain ratio divides. When both figures carry the
/// hand-off probes taken around their rounds, the pairs whose probes
/// disagree are left out first ([`same_state_rounds`]).
pub fn x_bare(r: &Results, f: &Figure) -> Option<f64> {
    if !f.is_plain() {
        return None;
    }
    let b = r.find("bare", f.metric, Wait::Poll, f.size_bytes)?;
    ratio(f, b)
}

/// A round trip's growth with its message: its rounds over the same row's
/// rounds at the run's main round-trip size (`rtt_size`, 64 B by
/// default), paired round by round and in one state of the machine as
/// [`x_bare`] pairs them (1.36 = 36 % slower than the row's own 64 B
/// round trip). The two cases run seconds apart within a round, so a
/// switch of the machine's hand-off speed between them would otherwise
/// read as growth. `None` at the main size, or without a figure there.
pub fn growth(r: &Results, f: &Figure) -> Option<f64> {
    if !f.is_plain() || f.metric != Metric::Rtt || f.size_bytes == r.config.rtt_size {
        return None;
    }
    let base = r.find(&f.mechanism, Metric::Rtt, f.wait, r.config.rtt_size)?;
    ratio(f, base)
}

/// `ours` over `theirs` (figures of one metric): round by round
/// ([`paired_figures`]) where both have their rounds, else the ratio of
/// their medians (round trip) or paces (throughput); `None` when that is
/// not a number.
fn ratio(ours: &Figure, theirs: &Figure) -> Option<f64> {
    let x = match paired_figures(ours, theirs) {
        Some(x) => x,
        None => match ours.metric {
            Metric::Rtt => ours.median_ns? as f64 / theirs.median_ns? as f64,
            Metric::Throughput => ours.bytes_per_sec? / theirs.bytes_per_sec?,
        },
    };
    x.is_finite().then_some(x)
}

/// The median of `ours[i] / theirs[i]`, when both have the same number
/// (two or more) of rounds and every figure is positive.
fn paired_ratio(ours: &[f64], theirs: &[f64]) -> Option<f64> {
    if ours.len() < 2 || ours.len() != theirs.len() {
        return None;
    }
    let mut ratios: Vec<f64> = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| a / b)
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if ratios.len() != ours.len() {
        return None;
    }
    median(&mut ratios, f64::total_cmp, |a, b| (a + b) / 2.0)
}

/// [`paired_ratio`] of two figures' rounds: those in one state of the
/// machine ([`same_state_rounds`]), else all.
fn paired_figures(ours: &Figure, theirs: &Figure) -> Option<f64> {
    match same_state_rounds(ours, theirs) {
        Some(keep) => {
            let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            paired_ratio(&pick(&ours.per_round), &pick(&theirs.per_round))
        }
        None => paired_ratio(&ours.per_round, &theirs.per_round),
    }
}

/// The rounds in which `a` and `b` both ran in one state of the machine:
/// the four hand-off probes around round `i` of each (before and after
/// it, [`crate::probe`]) agree within 1.5x (`HAND_OFF_SHIFT`). `None` when
/// every round is to be paired: a figure without its probes, rounds that
/// do not line up, every round agreeing, or fewer than two agreeing (too
/// few to judge by; the median of all rounds then stands).
pub fn same_state_rounds(a: &Figure, b: &Figure) -> Option<Vec<usize>> {
    let n = a.per_round.len();
    if n < 2
        || b.per_round.len() != n
        || a.per_round_hand_off_ns.len() != n
        || b.per_round_hand_off_ns.len() != n
    {
        return None;
    }
    let keep: Vec<usize> = (0..n)
        .filter(|&i| {
            let ([p, q], [u, v]) = (a.per_round_hand_off_ns[i], b.per_round_hand_off_ns[i]);
            crate::probe::agree(&[p, q, u, v], HAND_OFF_SHIFT)
        })
        .collect();
    (keep.len() >= 2 && keep.len() < n).then_some(keep)
}

/// How many round pairs "x bare" left out over the run's figures
/// ([`same_state_rounds`]), and how many it looked at.
fn pairs_left_out(r: &Results) -> (usize, usize) {
    let (mut out, mut all) = (0, 0);
    // The figures x bare is given for (`x_bare`'s own test).
    for f in r
        .figures
        .iter()
        .filter(|f| f.is_plain() && f.mechanism != "bare")
    {
        let Some(b) = r.find("bare", f.metric, Wait::Poll, f.size_bytes) else {
            continue;
        };
        if f.per_round.len() >= 2 && f.per_round.len() == b.per_round.len() {
            all += f.per_round.len();
            out += same_state_rounds(f, b).map_or(0, |k| f.per_round.len() - k.len());
        }
    }
    (out, all)
}

/// What the table and the report say under the round trips: the floor's
/// rounds lying far apart ([`hand_off_note`]), pairs x bare left out
/// ([`left_out_note`]).
pub fn round_trip_notes(r: &Results) -> impl Iterator<Item = String> {
    [hand_off_note(r), left_out_note(r)].into_iter().flatten()
}

/// What to say under the tables when "x bare" left pairs out: how many,
/// and why. `None` when it left none out.
pub fn left_out_note(r: &Results) -> Option<String> {
    let (out, all) = pairs_left_out(r);
    (out > 0).then(|| {
        format!(
            "x bare left out {out} of {all} round pairs whose two halves ran at different \
             cross-core hand-off speeds (a probe before and after each case; \
             per_round_hand_off_ns in results.json)."
        )
    })
}

/// How far apart the floor's rounds may lie ([`Figure::spread`]) before
/// the table says the machine's hand-offs changed speed, and the hand-off
/// probes around a pair of rounds before x bare leaves the pair out
/// ([`same_state_rounds`]): 0.5, the largest 1.5 times the smallest.
/// Rounds of a steady machine lie within a few percent; the 2-core VM this was written on switches between a
/// quick state (floor about 120 ns) and a slow one (about 400 ns) by
/// itself, even within a run.
const HAND_OFF_SHIFT: f64 = 0.5;

/// What to say under the round-trip table (and the report's latency
/// chart) when the floor's rounds lie far apart (`HAND_OFF_SHIFT`): the
/// run's cross-core hand-offs changed speed, which moves every round
/// trip, and a round trip's x bare with them (what a mechanism adds to
/// bare is about the same number of nanoseconds in either state, so the
/// ratio is larger where hand-offs are quick). `None` for a steady run,
/// or one round.
pub fn hand_off_note(r: &Results) -> Option<String> {
    let floor = r.find("floor", Metric::Rtt, Wait::Poll, r.config.rtt_size)?;
    if floor.spread()? < HAND_OFF_SHIFT {
        return None;
    }
    let (lo, hi) = floor.round_range()?;
    Some(format!(
        "The floor's rounds ran from {} to {}: cross-core hand-offs changed speed during \
         this run. x bare pairs each round with bare's same round; a round trip's x bare \
         is larger where hand-offs are quick.",
        human_ns(lo as u64),
        human_ns(hi as u64)
    ))
}

/// Whether `f` is a round trip of the run's main size (`rtt_size`, 64 B),
/// one sender and one receiver: the rows of the latency table and chart.
pub fn is_main_rtt(r: &Results, f: &Figure) -> bool {
    f.is_plain() && f.metric == Metric::Rtt && f.size_bytes == r.config.rtt_size
}

/// Mechanisms ordered by their fastest round-trip median (those without
/// one last, in run order).
pub fn latency_order(r: &Results) -> Vec<String> {
    let mut all: Vec<&String> = r.config.mechanisms.iter().collect();
    for f in &r.figures {
        if !all.contains(&&f.mechanism) {
            all.push(&f.mechanism);
        }
    }
    let mut names: Vec<(u64, usize, String)> = Vec::new();
    for (i, m) in all.into_iter().enumerate() {
        let best = r
            .figures
            .iter()
            .filter(|f| &f.mechanism == m && is_main_rtt(r, f))
            .filter_map(|f| f.median_ns)
            .min()
            .unwrap_or(u64::MAX);
        names.push((best, i, m.clone()));
    }
    names.sort();
    names.into_iter().map(|x| x.2).collect()
}

/// Skipped figures grouped by mechanism, metric, wait and reason:
/// (`"mq throughput block"`, `"64 KiB, 1 MiB"`, reason).
pub fn group_skipped(r: &Results) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, Vec<u64>, String)> = Vec::new();
    for k in &r.skipped {
        let what = match (k.producers, k.clients) {
            (Some(n), _) => format!("fan-in {n} producer{}", if n == 1 { "" } else { "s" }),
            (_, Some(n)) => format!("echo {n} client{}", if n == 1 { "" } else { "s" }),
            _ => k.metric.as_str().to_string(),
        };
        let head = format!("{:<16} {what} {}", k.mechanism, k.wait.as_str());
        match out
            .iter_mut()
            .find(|(h, _, why)| *h == head && *why == k.reason)
        {
            Some(g) => g.1.push(k.size_bytes),
            None => out.push((head, vec![k.size_bytes], k.reason.clone())),
        }
    }
    out.into_iter()
        .map(|(h, sizes, why)| {
            let sizes: Vec<String> = sizes.into_iter().map(human_size).collect();
            (h, sizes.join(", "), why)
        })
        .collect()
}

/// A ratio with enough digits to be read: `12.3x`, `0.41x`, `0.004x`.
pub fn human_ratio(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.1}x")
    } else if x >= 0.1 {
        format!("{x:.2}x")
    } else {
        format!("{x:.3}x")
    }
}

/// What else ran during the run, for the header: `"; others used 3 % of
/// the CPU time, steal 0 %"` (empty for files without those figures).
pub fn others_text(sys: &crate::schema::SystemInfo) -> String {
    match (sys.other_cpu, sys.steal) {
        (Some(o), Some(st)) => format!(
            "; other processes used {:.0}% of the CPU time during the run, steal {:.0}%",
            o * 100.0,
            st * 100.0
        ),
        _ => String::new(),
    }
}

/// The whole report as text.
pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let sys = &r.system;
    let _ = writeln!(
        s,
        "{} | {} cores{} | kernel {} | {}",
        sys.cpu_model,
        sys.cores,
        if sys.virtual_machine {
            " (virtual machine)"
        } else {
            ""
        },
        sys.kernel.split_whitespace().next().unwrap_or(""),
        sys.pinning.note
    );
    let _ = writeln!(
        s,
        "load average {:.2} at start, {:.2} at end{}{}",
        sys.load_avg_start[0],
        sys.load_avg_end[0],
        others_text(sys),
        if sys.busy {
            "  ** BUSY MACHINE: figures are noisy **"
        } else {
            ""
        }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Round trip, {} B message (x floor = median / floor median{})",
        r.config.rtt_size,
        if r.config.rounds > 1 {
            format!(
                "; median of {} rounds, which lie within the ± shown",
                r.config.rounds
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "  {:<16} {:<6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8}",
        "mechanism", "wait", "median", "p99", "p99.9", "max", "x floor", "rounds", "x bare"
    );
    let mut rtts: Vec<_> = r.figures.iter().filter(|f| is_main_rtt(r, f)).collect();
    rtts.sort_by_key(|f| f.median_ns.unwrap_or(u64::MAX));
    for f in rtts {
        let _ = writeln!(
            s,
            "  {:<16} {:<6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8}",
            f.mechanism,
            f.wait.as_str(),
            human_ns(f.median_ns.unwrap_or(0)),
            human_ns(f.p99_ns.unwrap_or(0)),
            human_ns(f.p999_ns.unwrap_or(0)),
            human_ns(f.max_ns.unwrap_or(0)),
            f.ratio_to_floor.map_or("-".into(), human_ratio),
            f.spread()
                .map_or("-".into(), |x| format!("±{:.0}%", x * 50.0)),
            x_bare(r, f).map_or("-".into(), human_ratio),
        );
    }
    for note in round_trip_notes(r) {
        let _ = writeln!(s, "  {note}");
    }
    rtt_by_size(&mut s, r);
    if !r.config.sizes.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "One-way throughput, bytes/s (x memcpy = bandwidth / memcpy bandwidth at that size)"
        );
        let _ = write!(s, "  {:<16} {:<6}", "mechanism", "wait");
        for &size in &r.config.sizes {
            let _ = write!(s, " {:>20}", human_size(size));
        }
        let _ = writeln!(s);
        for m in latency_order(r) {
            let row: Vec<_> = r
                .figures
                .iter()
                .filter(|f| f.mechanism == m && f.metric == Metric::Throughput && f.is_plain())
                .collect();
            if row.is_empty() {
                continue;
            }
            let _ = write!(s, "  {:<16} {:<6}", m, row[0].wait.as_str());
            for &size in &r.config.sizes {
                let cell = match row.iter().find(|f| f.size_bytes == size) {
                    Some(f) => format!(
                        "{} {}",
                        human_rate(f.bytes_per_sec.unwrap_or(0.0)),
                        f.ratio_to_floor
                            .map_or(String::new(), |x| format!("({})", human_ratio(x)))
                    ),
                    None => "-".into(),
                };
                let _ = write!(s, " {cell:>20}");
            }
            let _ = writeln!(s);
        }
    }
    against_bare(&mut s, r);
    fan_in(&mut s, r);
    server(&mut s, r);
    if !r.detection.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Dead-peer detection (peer killed with SIGKILL while we wait in a receive)"
        );
        let _ = writeln!(
            s,
            "  {:<16} {:<6} {:>6} {:>10} {:>10}",
            "mechanism", "wait", "kills", "median", "max"
        );
        for d in &r.detection {
            let _ = writeln!(
                s,
                "  {:<16} {:<6} {:>6} {:>10} {:>10}",
                d.mechanism,
                d.wait.as_str(),
                d.trials,
                human_ns(d.median_ns),
                human_ns(d.max_ns)
            );
        }
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "Not measured:");
        for (head, sizes, reason) in group_skipped(r) {
            let _ = writeln!(s, "  {head} {sizes}: {reason}");
        }
    }
    s
}

/// Sizes of the plain round trips, ascending.
pub fn rtt_sizes(r: &Results) -> Vec<u64> {
    let mut v: Vec<u64> = r
        .figures
        .iter()
        .filter(|f| f.is_plain() && f.metric == Metric::Rtt)
        .map(|f| f.size_bytes)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The (mechanism, wait) rows with a plain round trip at a size other than
/// the main one, in latency order: the loan curve and `--rtt-sizes`.
pub fn rtt_size_rows(r: &Results) -> Vec<(String, Wait)> {
    let mut rows = Vec::new();
    for m in latency_order(r) {
        for w in [Wait::Poll, Wait::Block] {
            let other = r.figures.iter().any(|f| {
                f.is_plain()
                    && f.mechanism == m
                    && f.metric == Metric::Rtt
                    && f.wait == w
                    && f.size_bytes != r.config.rtt_size
            });
            if other {
                rows.push((m.clone(), w));
            }
        }
    }
    rows
}

/// Round trips by message size: the loan curve and `--rtt-sizes`.
fn rtt_by_size(s: &mut String, r: &Results) {
    let rows = rtt_size_rows(r);
    if rows.is_empty() {
        return;
    }
    let sizes = rtt_sizes(r);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Round trip by message size, median (x bare at that size); shm-loan and iceoryx2-loan \
         write and read only a message's first and last cache line"
    );
    let _ = write!(s, "  {:<16} {:<6}", "mechanism", "wait");
    for &size in &sizes {
        let _ = write!(s, " {:>18}", human_size(size));
    }
    let _ = writeln!(s);
    for (m, w) in rows {
        let _ = write!(s, "  {:<16} {:<6}", m, w.as_str());
        for &size in &sizes {
            let cell = match r.find(&m, Metric::Rtt, w, size) {
                Some(f) => format!(
                    "{}{}",
                    human_ns(f.median_ns.unwrap_or(0)),
                    x_bare(r, f).map_or(String::new(), |x| format!(" ({})", human_ratio(x)))
                ),
                None => "-".into(),
            };
            let _ = write!(s, " {cell:>18}");
        }
        let _ = writeln!(s);
    }
    growth_by_size(s, r, &sizes);
}

/// Under the round trips by size: each row's growth over its own round
/// trip at the main size ([`growth`]), for the rows that have one.
fn growth_by_size(s: &mut String, r: &Results, sizes: &[u64]) {
    let rows = growth_rows(r, sizes);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "  Growth: x the row's own {} round trip, round by round (pairs whose hand-off probes \
         disagree left out, as for x bare)",
        human_size(r.config.rtt_size)
    );
    for (m, w) in rows {
        let _ = write!(s, "  {:<16} {:<6}", m, w.as_str());
        for &size in sizes {
            let cell = growth_of(r, &m, w, size).map_or("-".into(), human_ratio);
            let _ = write!(s, " {cell:>18}");
        }
        let _ = writeln!(s);
    }
}

/// The rows of [`rtt_size_rows`] with a [`growth`] at one of `sizes`.
pub fn growth_rows(r: &Results, sizes: &[u64]) -> Vec<(String, Wait)> {
    rtt_size_rows(r)
        .into_iter()
        .filter(|(m, w)| {
            sizes
                .iter()
                .any(|&size| growth_of(r, m, *w, size).is_some())
        })
        .collect()
}

/// [`growth`] of the row `m`, `w` at `size`.
pub fn growth_of(r: &Results, m: &str, w: Wait, size: u64) -> Option<f64> {
    growth(r, r.find(m, Metric::Rtt, w, size)?)
}

/// The shared-memory rows' throughput as a fraction of `bare`'s.
fn against_bare(s: &mut String, r: &Results) {
    let shared = |m: &str| m.starts_with("shm") || m == "queue" || m.starts_with("iceoryx2");
    let rows: Vec<String> = latency_order(r)
        .into_iter()
        .filter(|m| shared(m))
        .filter(|m| {
            r.figures.iter().any(|f| {
                &f.mechanism == m && f.metric == Metric::Throughput && x_bare(r, f).is_some()
            })
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Shared memory against bare (x bare = bytes/s / bare's bytes/s at that size, the median of the rounds' ratios; higher is better)"
    );
    let _ = write!(s, "  {:<16} {:<6}", "mechanism", "wait");
    for &size in &r.config.sizes {
        let _ = write!(s, " {:>10}", human_size(size));
    }
    let _ = writeln!(s);
    for m in rows {
        let row: Vec<&Figure> = r
            .figures
            .iter()
            .filter(|f| f.mechanism == m && f.metric == Metric::Throughput && f.is_plain())
            .collect();
        let _ = write!(s, "  {:<16} {:<6}", m, row[0].wait.as_str());
        for &size in &r.config.sizes {
            let cell = row
                .iter()
                .find(|f| f.size_bytes == size)
                .and_then(|f| x_bare(r, f))
                .map_or("-".into(), human_ratio);
            let _ = write!(s, " {cell:>10}");
        }
        let _ = writeln!(s);
    }
}

/// Producer counts of the run's fan-in figures, ascending.
pub fn producer_counts(r: &Results) -> Vec<u32> {
    let mut v: Vec<u32> = r.figures.iter().filter_map(|f| f.producers).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The (mechanism, size) lines of the fan-in figures, in run order.
pub fn fan_in_lines(r: &Results) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = Vec::new();
    for f in r.figures.iter().filter(|f| f.producers.is_some()) {
        let k = (f.mechanism.clone(), f.size_bytes);
        if !v.contains(&k) {
            v.push(k);
        }
    }
    v
}

/// The fan-in figure of `mechanism` at `size` with `producers` producers.
pub fn fan_in_figure<'a>(
    r: &'a Results,
    mechanism: &str,
    size: u64,
    producers: u32,
) -> Option<&'a Figure> {
    r.figures.iter().find(|f| {
        f.mechanism == mechanism && f.size_bytes == size && f.producers == Some(producers)
    })
}

/// How `hi` producers' total compares with `lo` producers' (the fan-in
/// table's last column): like [`x_bare`], the median of the rounds'
/// ratios where both have their rounds, else the ratio of the figures.
fn fan_in_scaling(r: &Results, mechanism: &str, size: u64, lo: u32, hi: u32) -> Option<f64> {
    let a = fan_in_figure(r, mechanism, size, lo)?;
    let b = fan_in_figure(r, mechanism, size, hi)?;
    let x = paired_figures(b, a).or_else(|| Some(b.msgs_per_sec? / a.msgs_per_sec?))?;
    (x.is_finite() && x > 0.0).then_some(x)
}

/// Fan-in: total messages/s by producer count, and the most producers'
/// figure over one producer's.
fn fan_in(s: &mut String, r: &Results) {
    let lines = fan_in_lines(r);
    if lines.is_empty() {
        return;
    }
    let counts = producer_counts(r);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Fan-in: producer processes into one receiver, total messages/s (default waits, not \
         pinned: {} cores; every message counted once per producer; the last column is the \
         median of the rounds' ratios)",
        r.system.cores
    );
    let _ = write!(s, "  {:<16} {:<8}", "mechanism", "size");
    for &n in &counts {
        let _ = write!(
            s,
            " {:>13}",
            format!("{n} producer{}", if n == 1 { "" } else { "s" })
        );
    }
    let (lo, hi) = (counts[0], counts[counts.len() - 1]);
    if hi > lo {
        let _ = write!(s, " {:>8}", format!("{hi} / {lo}"));
    }
    let _ = writeln!(s);
    for (m, size) in lines {
        let _ = write!(s, "  {:<16} {:<8}", m, human_size(size));
        let rate = |n| fan_in_figure(r, &m, size, n).and_then(|f| f.msgs_per_sec);
        for &n in &counts {
            let _ = write!(s, " {:>13}", rate(n).map_or("-".into(), human_msgs));
        }
        if hi > lo {
            let cell = fan_in_scaling(r, &m, size, lo, hi).map_or("-".into(), human_ratio);
            let _ = write!(s, " {cell:>8}");
        }
        let _ = writeln!(s);
    }
}

/// The socket server's echoes/s by client count.
fn server(s: &mut String, r: &Results) {
    let mut figs: Vec<&Figure> = r.figures.iter().filter(|f| f.clients.is_some()).collect();
    if figs.is_empty() {
        return;
    }
    figs.sort_by_key(|f| f.clients);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Socket server echo (ipcworks::socket::Server over a Unix socket, {} frames; each client \
         waits for its echo), echoes/s",
        human_size(figs[0].size_bytes)
    );
    let _ = writeln!(
        s,
        "  {:<16} {:>8} {:>13} {:>13}",
        "mechanism", "clients", "all", "per client"
    );
    for f in figs {
        let n = f.clients.unwrap_or(1).max(1);
        let mps = f.msgs_per_sec.unwrap_or(0.0);
        let _ = writeln!(
            s,
            "  {:<16} {:>8} {:>13} {:>13}",
            f.mechanism,
            n,
            human_msgs(mps),
            human_msgs(mps / f64::from(n))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{
        growth, hand_off_note, human_ratio, left_out_note, paired_ratio, render, same_state_rounds,
        x_bare,
    };
    use crate::{Figure, Metric, Results, Wait};

    /// The floor's rounds 120 and 431 ns apart: the table says the
    /// hand-offs changed speed, with both figures; rounds within a few
    /// percent, or a single round, say nothing.
    #[test]
    fn a_floor_whose_rounds_lie_far_apart_is_pointed_out() {
        let mut r = Results::from_json(include_str!("../tests/data/new.json")).unwrap();
        let set = |r: &mut Results, rounds: &[f64]| {
            let size = r.config.rtt_size;
            let f = r
                .figures
                .iter_mut()
                .find(|f| {
                    f.mechanism == "floor"
                        && f.metric == Metric::Rtt
                        && f.wait == Wait::Poll
                        && f.size_bytes == size
                })
                .unwrap();
            f.per_round = rounds.to_vec();
        };
        assert_eq!(hand_off_note(&r), None, "one round");
        set(&mut r, &[120.0, 121.0, 431.0]);
        let note = hand_off_note(&r).unwrap();
        assert!(note.contains("from 120 ns to 431 ns"), "{note}");
        assert!(render(&r).contains(&note));
        assert!(
            crate::html::render(&r).contains("<p>The floor's rounds ran from 120 ns to 431 ns")
        );
        set(&mut r, &[120.0, 125.0, 130.0]);
        assert_eq!(hand_off_note(&r), None);
        assert!(!render(&r).contains("changed speed"));
    }

    /// A slow spell in our second round and in bare's third: the pairs'
    /// ratios are 1.0, 0.2 and 3.0, whose median is 1.0, where the plain
    /// ratio of the medians says 0.9.
    #[test]
    fn x_bare_takes_the_median_of_the_rounds_ratios() {
        let ours = [1.0, 0.2, 0.9];
        let bare = [1.0, 1.0, 0.3];
        assert_eq!(paired_ratio(&ours, &bare), Some(1.0));
        assert_eq!(paired_ratio(&[2.0, 3.0], &[1.0, 1.0]), Some(2.5));
    }

    /// A 1 KiB stream, five rounds; in the third, bare ran in a quick
    /// spell and shm-spin just after it in a slow one (the probes: 120
    /// then 400 ns). That pair is left out, and said to be; so is the
    /// fifth, where bare's probes saw the state change. Without probes
    /// (older files) every pair counts, as before.
    #[test]
    fn x_bare_leaves_out_pairs_whose_probes_disagree() {
        let mut r = Results::from_json(include_str!("../tests/data/new.json")).unwrap();
        let stream = |name: &str, rounds: [f64; 5], probes: [[f64; 2]; 5]| {
            let mut f = Figure::new(name, Metric::Throughput, Wait::Poll, 1024);
            f.bytes_per_sec = Some(rounds.iter().sum::<f64>() / 5.0);
            f.per_round = rounds.to_vec();
            f.per_round_hand_off_ns = probes.to_vec();
            f
        };
        r.figures.retain(|f| f.size_bytes != 1024);
        let q = [120.0, 125.0];
        let bare = stream("bare", [5.0; 5], [q, q, q, q, [400.0, 130.0]]);
        let ours = stream(
            "shm-spin",
            [4.5, 4.6, 1.3, 4.7, 2.5],
            [q, q, [120.0, 400.0], q, q],
        );
        assert_eq!(same_state_rounds(&ours, &bare), Some(vec![0, 1, 3]));
        r.figures.push(bare.clone());
        r.figures.push(ours.clone());
        let x = x_bare(&r, &ours).unwrap();
        // 0.90, 0.92, 0.94 kept: 0.92. All five pairs' median is 0.90,
        // with 0.26 and 0.50 among them.
        assert!((x - 0.92).abs() < 1e-9, "{x}");
        let note = left_out_note(&r).unwrap();
        assert!(note.contains("left out 2 of"), "{note}");
        assert!(render(&r).contains(&note));
        assert!(crate::html::render(&r).contains("x bare left out 2 of"));
        // No probes: all five pairs, as in files from before them.
        for f in r.figures.iter_mut().filter(|f| f.size_bytes == 1024) {
            f.per_round_hand_off_ns.clear();
        }
        let ours = r.figures.last().unwrap().clone();
        assert!((x_bare(&r, &ours).unwrap() - 0.90).abs() < 1e-9);
        assert_eq!(left_out_note(&r), None);
    }

    /// shm-loan's curve in a run where the machine's state switched: its
    /// 64 B rounds ran in the quick state but the first, its 1 MiB rounds
    /// in the slow one but the third, so the medians say 962 / 295 = 3.3x
    /// and so does the median of all five pairs (980 / 300). Paired in one
    /// state (rounds 1 and 3: 1.13 and 1.30x), it grows 1.22x. The table
    /// and the report say so; the main size has no growth of its own.
    #[test]
    fn growth_pairs_a_rows_rounds_in_one_state() {
        let mut r = Results::from_json(include_str!("../tests/data/new.json")).unwrap();
        let rtt = |size: u64, rounds: [f64; 5], probes: [[f64; 2]; 5]| {
            let mut f = Figure::new("shm-loan", Metric::Rtt, Wait::Poll, size);
            f.median_ns = Some(
                crate::stats::median(&mut rounds.to_vec(), f64::total_cmp, |a, b| (a + b) / 2.0)
                    .unwrap() as u64,
            );
            f.per_round = rounds.to_vec();
            f.per_round_hand_off_ns = probes.to_vec();
            f
        };
        let (q, slow) = ([120.0, 125.0], [420.0, 430.0]);
        let small = rtt(64, [850.0, 290.0, 280.0, 295.0, 300.0], [slow, q, q, q, q]);
        let big = rtt(
            1 << 20,
            [960.0, 962.0, 365.0, 990.0, 980.0],
            [slow, slow, q, slow, slow],
        );
        r.figures.push(small.clone());
        r.figures.push(big.clone());
        assert_eq!((small.median_ns, big.median_ns), (Some(295), Some(962)));
        let g = growth(&r, &big).unwrap();
        let kept = (960.0 / 850.0 + 365.0 / 280.0) / 2.0;
        assert!((g - kept).abs() < 1e-9, "{g}");
        assert_eq!(growth(&r, &small), None, "the main size is the base");
        let text = render(&r);
        assert!(
            text.contains("Growth: x the row's own 64 B round trip"),
            "{text}"
        );
        assert!(text.contains(&human_ratio(g)), "{text}");
        let html = crate::html::render(&r);
        assert!(html.contains("Growth with the message"), "{html}");
        assert!(
            html.contains(&format!("<td>{}</td>", human_ratio(g))),
            "{html}"
        );
        // Without probes: all five pairs, as in files from before them.
        for f in r.figures.iter_mut().filter(|f| f.mechanism == "shm-loan") {
            f.per_round_hand_off_ns.clear();
        }
        let big = r.figures.last().unwrap().clone();
        assert!((growth(&r, &big).unwrap() - 980.0 / 300.0).abs() < 1e-9);
    }

    /// Probes that agree everywhere, or in fewer than two rounds, leave
    /// every pair in.
    #[test]
    fn x_bare_keeps_every_pair_when_the_probes_cannot_tell() {
        let f = |probes: Vec<[f64; 2]>| {
            let mut f = Figure::new("x", Metric::Rtt, Wait::Poll, 64);
            f.per_round = vec![100.0; probes.len()];
            f.per_round_hand_off_ns = probes;
            f
        };
        let q = [120.0, 125.0];
        let s = [400.0, 410.0];
        assert_eq!(
            same_state_rounds(&f(vec![q, q, q]), &f(vec![q, q, q])),
            None
        );
        assert_eq!(
            same_state_rounds(&f(vec![q, s, s]), &f(vec![q, q, q])),
            None
        );
        assert_eq!(
            same_state_rounds(&f(vec![q, s, s]), &f(vec![q, s, s])),
            None
        );
        assert_eq!(
            same_state_rounds(&f(vec![q, q, s]), &f(vec![q, q])),
            None,
            "rounds that do not line up"
        );
    }

    #[test]
    fn x_bare_falls_back_without_matching_rounds() {
        assert_eq!(paired_ratio(&[1.0], &[1.0]), None);
        assert_eq!(paired_ratio(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(paired_ratio(&[1.0, 2.0], &[0.0, 2.0]), None);
    }
}
