//! `ipcworks bench --compare OLD NEW`: figure by figure, how much slower
//! or faster the new run is.

use crate::schema::{Figure, Metric, Results};
use crate::table::{human_ns, human_rate};
use crate::units::human_size;

/// One figure present in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `pipe rtt block 64 B`.
    pub label: String,
    /// The old value (rtt median ns, or throughput bytes/s).
    pub old: f64,
    /// The new value.
    pub new: f64,
    /// How much worse the new run is, in percent: positive is a
    /// regression (a longer round trip or a lower throughput), negative an
    /// improvement.
    pub worse_pct: f64,
    /// Beyond the threshold.
    pub regression: bool,
    /// What was compared.
    pub metric: Metric,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparison {
    /// Figures in both runs, in the new run's order.
    pub changes: Vec<Change>,
    /// Labels of figures only in the old run.
    pub only_old: Vec<String>,
    /// Labels of figures only in the new run.
    pub only_new: Vec<String>,
    /// Ratios to the floor/memcpy were compared rather than raw figures.
    pub by_ratio: bool,
}

impl Comparison {
    /// Number of regressions beyond the threshold.
    pub fn regressions(&self) -> usize {
        self.changes.iter().filter(|c| c.regression).count()
    }
}

fn label(f: &Figure) -> String {
    if let Some(n) = f.producers {
        return crate::fanin::label(&f.mechanism, n, f.size_bytes as usize);
    }
    if let Some(n) = f.clients {
        return format!(
            "{} echo {n} client{} {}",
            f.mechanism,
            if n == 1 { "" } else { "s" },
            human_size(f.size_bytes)
        );
    }
    format!(
        "{} {} {} {}",
        f.mechanism,
        f.metric.as_str(),
        f.wait.as_str(),
        human_size(f.size_bytes)
    )
}

/// The value compared: rtt median, or throughput bytes/s; with `by_ratio`
/// the figure's `ratio_to_floor` instead (robust to a machine that is
/// uniformly slower).
fn value(f: &Figure, by_ratio: bool) -> Option<f64> {
    if by_ratio {
        return f.ratio_to_floor;
    }
    match f.metric {
        Metric::Rtt => f.median_ns.map(|v| v as f64),
        Metric::Throughput => f.bytes_per_sec,
    }
}

/// Compares two runs; a change worse than `threshold_pct` percent is a
/// regression.
pub fn compare(old: &Results, new: &Results, threshold_pct: f64, by_ratio: bool) -> Comparison {
    let mut out = Comparison {
        by_ratio,
        ..Comparison::default()
    };
    for n in &new.figures {
        let Some(o) = old.figures.iter().find(|o| o.key() == n.key()) else {
            out.only_new.push(label(n));
            continue;
        };
        let (Some(ov), Some(nv)) = (value(o, by_ratio), value(n, by_ratio)) else {
            continue;
        };
        if ov <= 0.0 || nv <= 0.0 {
            continue;
        }
        // Round trips: bigger is worse. Throughput: smaller is worse.
        let worse_pct = match n.metric {
            Metric::Rtt => (nv / ov - 1.0) * 100.0,
            Metric::Throughput => (ov / nv - 1.0) * 100.0,
        };
        out.changes.push(Change {
            label: label(n),
            old: ov,
            new: nv,
            worse_pct,
            regression: worse_pct > threshold_pct,
            metric: n.metric,
        });
    }
    for o in &old.figures {
        if !new.figures.iter().any(|n| n.key() == o.key()) {
            out.only_old.push(label(o));
        }
    }
    out
}

fn show(c: &Change, v: f64, by_ratio: bool) -> String {
    match (by_ratio, c.metric) {
        (true, _) => format!("{v:.3}x"),
        (false, Metric::Rtt) => human_ns(v as u64),
        (false, Metric::Throughput) => human_rate(v),
    }
}

/// The comparison as a table for the terminal.
pub fn render(c: &Comparison, threshold_pct: f64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let w = c
        .changes
        .iter()
        .map(|x| x.label.len())
        .max()
        .unwrap_or(10)
        .max(6);
    let _ = writeln!(
        s,
        "{:<w$}  {:>12}  {:>12}  {:>8}  {:>8}",
        "figure", "old", "new", "new/old", "worse"
    );
    for x in &c.changes {
        let flag = if x.regression { "  REGRESSION" } else { "" };
        let _ = writeln!(
            s,
            "{:<w$}  {:>12}  {:>12}  {:>8.3}  {:>+7.1}%{flag}",
            x.label,
            show(x, x.old, c.by_ratio),
            show(x, x.new, c.by_ratio),
            x.new / x.old,
            x.worse_pct
        );
    }
    for l in &c.only_old {
        let _ = writeln!(s, "{l:<w$}  only in the old run");
    }
    for l in &c.only_new {
        let _ = writeln!(s, "{l:<w$}  only in the new run");
    }
    let _ = writeln!(
        s,
        "{} figure(s) compared, {} worse by more than {threshold_pct}% ({})",
        c.changes.len(),
        c.regressions(),
        if c.by_ratio {
            "ratios to floor / memcpy"
        } else {
            "rtt: median; throughput: bytes/s"
        }
    );
    s
}
