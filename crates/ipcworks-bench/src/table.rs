//! The terminal table: round trips sorted by median, throughput by
//! mechanism and size, skipped figures with their reasons.

use std::fmt::Write;

use crate::run::human_size;
use crate::schema::{Metric, Results};

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
            .filter(|f| &f.mechanism == m && f.metric == Metric::Rtt)
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
        let head = format!(
            "{:<16} {} {}",
            k.mechanism,
            k.metric.as_str(),
            k.wait.as_str()
        );
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
        "  {:<16} {:<6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8}",
        "mechanism", "wait", "median", "p99", "p99.9", "max", "x floor", "rounds"
    );
    let mut rtts: Vec<_> = r
        .figures
        .iter()
        .filter(|f| f.metric == Metric::Rtt)
        .collect();
    rtts.sort_by_key(|f| f.median_ns.unwrap_or(u64::MAX));
    for f in rtts {
        let _ = writeln!(
            s,
            "  {:<16} {:<6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8}",
            f.mechanism,
            f.wait.as_str(),
            human_ns(f.median_ns.unwrap_or(0)),
            human_ns(f.p99_ns.unwrap_or(0)),
            human_ns(f.p999_ns.unwrap_or(0)),
            human_ns(f.max_ns.unwrap_or(0)),
            f.ratio_to_floor.map_or("-".into(), human_ratio),
            f.spread()
                .map_or("-".into(), |x| format!("±{:.0}%", x * 50.0)),
        );
    }
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
                .filter(|f| f.mechanism == m && f.metric == Metric::Throughput)
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
