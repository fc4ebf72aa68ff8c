//! The self-contained HTML report: inline SVG charts and CSS, no scripts,
//! nothing fetched from the network.

use std::fmt::Write;

use crate::schema::{Figure, Metric, Results, Wait};
pub use crate::svg::{LogAxis, decade_label, esc};
use crate::svg::{NS_UNITS, RATE_UNITS};
use crate::table::{human_ns, human_rate, human_ratio, is_main_rtt, latency_order, x_bare};
use crate::units::human_size;

/// Colours for mechanisms in the throughput chart, cycled.
const PALETTE: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#ff7f0e", "#7f7f7f", "#393b79", "#637939", "#843c39", "#7b4173",
];
const POLL_COLOUR: &str = "#1f77b4";
const BLOCK_COLOUR: &str = "#e6550d";

/// Start of a chart: white background and a font, so the SVG also reads
/// well on its own (e.g. as an image in the README on a dark page).
fn svg_open(s: &mut String, id: &str, height: f64, label: &str) {
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{id}" viewBox="0 0 900 {height}" width="900" height="{height}" role="img" aria-label="{label}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif" fill="#222"><rect width="900" height="{height}" fill="#fff"/>"##
    );
}

fn rtt_rows(r: &Results) -> Vec<&Figure> {
    let mut rows = Vec::new();
    for m in latency_order(r) {
        for w in [Wait::Poll, Wait::Block] {
            if let Some(f) = r
                .figures
                .iter()
                .find(|f| f.mechanism == m && is_main_rtt(r, f) && f.wait == w)
            {
                rows.push(f);
            }
        }
    }
    rows
}

/// The latency chart: one row per mechanism and wait mode, log scale; dot
/// at the median, thick bar to p99, thin line to p99.9, cross at the max.
pub fn latency_svg(r: &Results) -> String {
    let rows = rtt_rows(r);
    let (left, right, top, row_h) = (170.0, 850.0, 30.0, 20.0);
    let height = top + row_h * rows.len().max(1) as f64 + 72.0;
    let mut s = String::new();
    svg_open(
        &mut s,
        "latency-chart",
        height,
        "round-trip latency per mechanism",
    );
    if rows.is_empty() {
        s.push_str(r#"<text x="20" y="40">no round trips measured</text></svg>"#);
        return s;
    }
    let ax = latency_axis(&rows, left, right);
    let g = Rows {
        left,
        right,
        top,
        row_h,
        bottom: top + row_h * rows.len() as f64,
    };
    latency_grid(&mut s, &ax, &g, rows.len(), r.config.rtt_size);
    floor_mark(&mut s, r, &ax, &g);
    for (i, f) in rows.iter().enumerate() {
        latency_row(&mut s, f, top + row_h * (i as f64 + 0.5), &ax, left);
    }
    latency_legend(&mut s, g.bottom);
    s.push_str("</svg>");
    s
}

/// Where the latency chart's rows go: the plot from `left` to `right`, one
/// row of `row_h` per figure from `top` down to `bottom`.
struct Rows {
    left: f64,
    right: f64,
    top: f64,
    row_h: f64,
    bottom: f64,
}

/// The latency chart's time axis: from the lowest median (a round's own
/// included) to the highest maximum, log scale, over `left..right`.
fn latency_axis(rows: &[&Figure], left: f64, right: f64) -> LogAxis {
    // Round medians may lie below the lowest pooled median.
    let lo = rows
        .iter()
        .filter_map(|f| f.median_ns)
        .map(|m| m as f64)
        .chain(rows.iter().flat_map(|f| f.per_round.iter().copied()))
        .fold(f64::INFINITY, f64::min);
    let lo = if lo.is_finite() && lo >= 1.0 { lo } else { 1.0 };
    let hi = rows.iter().filter_map(|f| f.max_ns).max().unwrap_or(1000) as f64;
    LogAxis::new(lo, hi, left, right)
}

/// Every other row shaded, a line and a label per decade, the axis's
/// caption.
fn latency_grid(s: &mut String, ax: &LogAxis, g: &Rows, rows: usize, rtt_size: u64) {
    let (left, right, top, row_h, bottom) = (g.left, g.right, g.top, g.row_h, g.bottom);
    for i in (0..rows).step_by(2) {
        let _ = write!(
            s,
            r##"<rect x="0" y="{:.1}" width="900" height="{row_h}" fill="#f6f6f6"/>"##,
            top + row_h * i as f64
        );
    }
    for d in ax.decades() {
        let x = ax.pos(d);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            esc(&decade_label(d, NS_UNITS))
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">round-trip time of a {} B message (log scale)</text>"#,
        (left + right) / 2.0,
        bottom + 34.0,
        rtt_size
    );
}

/// A dashed line at the floor's median, when the run has one.
fn floor_mark(s: &mut String, r: &Results, ax: &LogAxis, g: &Rows) {
    let (top, bottom) = (g.top, g.bottom);
    if let Some(fl) = r
        .find("floor", Metric::Rtt, Wait::Poll, r.config.rtt_size)
        .and_then(|f| f.median_ns)
    {
        let x = ax.pos(fl as f64);
        let _ = write!(
            s,
            r##"<line class="floor" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom}" stroke="#444" stroke-dasharray="4 3"/><text x="{x:.1}" y="{:.1}" font-size="11">floor</text>"##,
            top - 12.0,
            top - 14.0
        );
    }
}

/// One figure's row, centred on `y`: its name, then median (dot), p99
/// (bar), p99.9 (line), max (×) and a tick per round, with a tooltip.
fn latency_row(s: &mut String, f: &Figure, y: f64, ax: &LogAxis, left: f64) {
    let col = if f.wait == Wait::Poll {
        POLL_COLOUR
    } else {
        BLOCK_COLOUR
    };
    let (Some(med), Some(p99), Some(p999), Some(max)) =
        (f.median_ns, f.p99_ns, f.p999_ns, f.max_ns)
    else {
        return;
    };
    let (xm, x99, x999, xmax) = (
        ax.pos(med as f64),
        ax.pos(p99 as f64),
        ax.pos(p999 as f64),
        ax.pos(max as f64),
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{} · {}</text>"#,
        left - 8.0,
        y + 4.0,
        esc(&f.mechanism),
        f.wait.as_str()
    );
    // One thin tick per round at that round's own median.
    let mut ticks = String::new();
    let mut rounds = String::new();
    for &m in &f.per_round {
        let x = ax.pos(m);
        let _ = write!(
            ticks,
            r#"<line class="round" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{col}" stroke-width="1"/>"#,
            y - 8.0,
            y + 8.0
        );
        rounds.push_str(if rounds.is_empty() { "; rounds " } else { ", " });
        rounds.push_str(&human_ns(m as u64));
    }
    let _ = write!(
        s,
        r#"<g class="mark"><title>{} {}: median {}, p99 {}, p99.9 {}, max {}{rounds}</title>{ticks}<line x1="{xm:.1}" y1="{y:.1}" x2="{x999:.1}" y2="{y:.1}" stroke="{col}" stroke-width="1.5"/><line x1="{xm:.1}" y1="{y:.1}" x2="{x99:.1}" y2="{y:.1}" stroke="{col}" stroke-width="5" stroke-opacity="0.55"/><line x1="{x999:.1}" y1="{:.1}" x2="{x999:.1}" y2="{:.1}" stroke="{col}" stroke-width="1.5"/><path d="M{:.1} {:.1}l6 6m0 -6l-6 6" stroke="{col}" stroke-width="1.2"/><circle cx="{xm:.1}" cy="{y:.1}" r="4.5" fill="{col}"/></g>"#,
        esc(&f.mechanism),
        f.wait.as_str(),
        human_ns(med),
        human_ns(p99),
        human_ns(p999),
        human_ns(max),
        y - 4.0,
        y + 4.0,
        xmax - 3.0,
        y - 3.0,
    );
}

/// What the colours and marks mean, below the axis.
fn latency_legend(s: &mut String, bottom: f64) {
    let _ = write!(
        s,
        r##"<g transform="translate(0 {ly:.1})"><circle cx="20" cy="0" r="4.5" fill="{POLL_COLOUR}"/><text x="30" y="4" font-size="12">poll (nobody sleeps)</text><circle cx="180" cy="0" r="4.5" fill="{BLOCK_COLOUR}"/><text x="190" y="4" font-size="12">block (the waiter sleeps in the kernel)</text><text x="500" y="4" font-size="12">dot median · bar p99 · line p99.9 · × max · | each round</text></g>"##,
        ly = bottom + 58.0
    );
}

/// The throughput chart: bytes/s against message size, log-log, one line
/// per mechanism.
pub fn throughput_svg(r: &Results) -> String {
    let figs: Vec<&Figure> = r
        .figures
        .iter()
        .filter(|f| f.metric == Metric::Throughput && f.bytes_per_sec.is_some() && f.is_plain())
        .collect();
    let (left, right, top, bottom) = (80.0, 700.0, 20.0, 380.0);
    let mut s = String::new();
    svg_open(
        &mut s,
        "throughput-chart",
        420.0,
        "throughput against message size",
    );
    if figs.is_empty() {
        s.push_str(r#"<text x="20" y="40">no throughput measured</text></svg>"#);
        return s;
    }
    let smin = figs.iter().map(|f| f.size_bytes).min().unwrap_or(64) as f64;
    let smax = figs.iter().map(|f| f.size_bytes).max().unwrap_or(1 << 20) as f64;
    let bmin = figs
        .iter()
        .filter_map(|f| f.bytes_per_sec)
        .fold(f64::MAX, f64::min);
    let bmax = figs
        .iter()
        .filter_map(|f| f.bytes_per_sec)
        .fold(0.0, f64::max);
    let xa = LogAxis::exact(smin / 1.5, smax * 1.5, left, right);
    let ya = LogAxis::new(bmin, bmax, bottom, top);
    let mut sizes: Vec<u64> = figs.iter().map(|f| f.size_bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for d in sizes {
        let x = xa.pos(d as f64);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            esc(&human_size(d))
        );
    }
    for d in ya.decades() {
        let y = ya.pos(d);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left - 6.0,
            y + 4.0,
            esc(&decade_label(d, RATE_UNITS))
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">message size (log scale)</text><text x="14" y="{:.1}" font-size="12" transform="rotate(-90 14 {:.1})" text-anchor="middle">bytes per second (log scale)</text>"#,
        (left + right) / 2.0,
        bottom + 34.0,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
    let mut order = latency_order(r);
    order.sort_by_key(|m| m != "memcpy");
    let mut legend_y = top + 6.0;
    for (i, m) in order.iter().enumerate() {
        let mut pts: Vec<&&Figure> = figs.iter().filter(|f| &f.mechanism == m).collect();
        if pts.is_empty() {
            continue;
        }
        pts.sort_by_key(|f| f.size_bytes);
        let col = PALETTE[i % PALETTE.len()];
        let dash = if m == "memcpy" {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let path: Vec<String> = pts
            .iter()
            .map(|f| {
                format!(
                    "{:.1},{:.1}",
                    xa.pos(f.size_bytes as f64),
                    ya.pos(f.bytes_per_sec.unwrap_or(1.0))
                )
            })
            .collect();
        let _ = write!(
            s,
            r#"<g class="mark"><polyline points="{}" fill="none" stroke="{col}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for f in &pts {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{col}"><title>{} {}: {} ({:.0} msgs/s)</title></circle>"#,
                xa.pos(f.size_bytes as f64),
                ya.pos(f.bytes_per_sec.unwrap_or(1.0)),
                esc(m),
                human_size(f.size_bytes),
                human_rate(f.bytes_per_sec.unwrap_or(0.0)),
                f.msgs_per_sec.unwrap_or(0.0)
            );
        }
        let _ = write!(
            s,
            r#"</g><line x1="720" y1="{legend_y:.1}" x2="745" y2="{legend_y:.1}" stroke="{col}" stroke-width="2"{dash}/><text x="752" y="{:.1}" font-size="12">{}</text>"#,
            legend_y + 4.0,
            esc(m)
        );
        legend_y += 18.0;
    }
    s.push_str("</svg>");
    s
}

fn median_of(r: &Results, wait: Wait) -> Option<u64> {
    let mut v: Vec<u64> = r
        .figures
        .iter()
        .filter(|f| is_main_rtt(r, f) && f.wait == wait && f.mechanism != "floor")
        .filter_map(|f| f.median_ns)
        .collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn latency_text(r: &Results) -> String {
    let floor = r
        .find("floor", Metric::Rtt, Wait::Poll, r.config.rtt_size)
        .and_then(|f| f.median_ns);
    let mut s = String::new();
    let _ = write!(
        s,
        "<p>Each row is a round trip of a {} B message between two processes{}. \
         The <b>floor</b> is two cores passing one cache line back and forth{}: \
         nothing between processes can be faster. <b>bare</b> is a bare ring in shared \
         memory, a reference rather than a mechanism: only the cache lines a message \
         needs (two for 64 bytes: a payload line and a flag line) and its two copies, \
         no checks, no wake-ups. The <b>shared-memory channel</b> \
         (<b>shm-spin</b>, <b>shm</b>, <b>shm-block</b>: the same ring, waiting by \
         spinning, by spinning briefly then sleeping, or by sleeping at once) makes no \
         system call while the peer is awake: a message is a few cache lines (record \
         header, payload, the indices) crossing between the cores. A <b>futex</b> adds \
         one system call (the wake-up) to the floor. <b>eventfd</b>, <b>pipes</b> and <b>FIFOs</b> \
         cost two system calls per message (write, read) and copy the bytes into a \
         kernel buffer and out again. <b>Sockets</b> add protocol work: Unix sockets \
         allocate a buffer per message, TCP runs the whole network stack over \
         loopback. <b>Message queues</b> (POSIX, System V) copy into and out of a \
         kernel queue under a lock.</p>",
        r.config.rtt_size,
        esc(&format!(" ({})", r.system.pinning.note)),
        floor.map_or(String::new(), |f| format!(", {} here", human_ns(f)))
    );
    let _ = write!(
        s,
        "<p><b>Block against poll.</b> In a <i>poll</i> row neither process ever \
         sleeps: it retries a non-blocking call in a loop, so the figure is the \
         mechanism's own cost (system calls and copies). In a <i>block</i> row the \
         receiver sleeps in the kernel until the message arrives, so every round \
         trip also pays two wake-ups: two context switches, an interrupt sent to the \
         other core, and that core coming out of idle. On bare metal this adds a few \
         microseconds; on many virtual machines an idle virtual CPU has handed its \
         physical core back to the hypervisor and waking it costs tens of \
         microseconds, which hides the mechanism's own cost: block rows then look \
         alike whatever the mechanism. {}</p>",
        match (median_of(r, Wait::Poll), median_of(r, Wait::Block)) {
            (Some(p), Some(b)) => format!(
                "In this run{} the typical poll round trip took {} and the typical \
                 block round trip {} ({:.1}× more).",
                if r.system.virtual_machine {
                    ", on a virtual machine,"
                } else {
                    ""
                },
                human_ns(p),
                human_ns(b),
                b as f64 / p.max(1) as f64
            ),
            _ => String::new(),
        }
    );
    s
}

const THROUGHPUT_TEXT: &str = "<p>Bytes per second moved one way, by message size \
 (both axes logarithmic). Small messages are bound by the cost per message (system calls, \
 wake-ups, locks), so bytes per second grow almost in step with the size. Large messages \
 are bound by copying: pipes, sockets and queues copy every byte twice (from the sender \
 into the kernel, from the kernel into the receiver) and level off well below \
 <b>memcpy</b>, the single-core bandwidth of copying a buffer that is already in cache: \
 the ceiling for anything that copies once. The shared-memory channel copies into the ring \
 and out of it, with no system call; with its loan API (its round trips: the loan curve \
 below) it copies \
 nothing at all, the sender writing in place. Lines stop where a mechanism cannot carry the \
 size (datagram sockets: the socket buffer; POSIX and System V queues: the kernel's \
 message size limits); the reasons are listed below.</p>";

/// The report page.
pub fn render(r: &Results) -> String {
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>ipcworks bench</title>\n<style>\nbody{font-family:system-ui,sans-serif;max-width:940px;margin:1em auto;color:#222}\ntable{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}\n.busy{color:#b00;font-weight:bold}.chart{display:block;margin:1em 0}\n</style>\n</head>\n<body>\n<h1>ipcworks bench</h1>\n");
    let sys = &r.system;
    let _ = write!(
        s,
        "<table class=\"system\"><tr><td>CPU</td><td>{}</td></tr><tr><td>cores</td><td>{}{}</td></tr><tr><td>kernel</td><td>{}</td></tr><tr><td>pinning</td><td>{} ({})</td></tr><tr><td>load average</td><td>{:.2} at start, {:.2} at end{}{}</td></tr><tr><td>time budget</td><td>{} s; wall time {:.1} s</td></tr><tr><td>tool</td><td>{}, schema {}</td></tr></table>",
        esc(&sys.cpu_model),
        sys.cores,
        if sys.virtual_machine {
            " (virtual machine)"
        } else {
            ""
        },
        esc(&sys.kernel),
        esc(&sys.pinning.placement),
        esc(&sys.pinning.note),
        sys.load_avg_start[0],
        sys.load_avg_end[0],
        esc(&crate::table::others_text(sys)),
        if sys.busy {
            " <span class=\"busy\">busy machine: figures are noisy</span>"
        } else {
            ""
        },
        r.config.time_budget_s,
        r.wall_s,
        esc(&r.tool),
        r.schema_version
    );
    s.push('\n');
    s.push_str("<h2>Round-trip latency</h2>\n");
    s.push_str(&latency_svg(r));
    s.push('\n');
    s.push_str(&latency_text(r));
    for note in crate::table::round_trip_notes(r) {
        s.push_str(&format!("\n<p>{}</p>", esc(&note)));
    }
    s.push_str("\n<h2>Throughput</h2>\n");
    s.push_str(&throughput_svg(r));
    s.push('\n');
    s.push_str(THROUGHPUT_TEXT);
    s.push('\n');
    s.push_str(crate::html_more::BARE_TEXT);
    crate::html_more::sections(&mut s, r);
    s.push_str("\n<h2>All figures</h2>\n<table class=\"figures\"><tr><th>mechanism</th><th>metric</th><th>wait</th><th>size</th><th>median</th><th>p99</th><th>p99.9</th><th>max</th><th>msgs/s</th><th>bytes/s</th><th>ratio</th><th>x bare</th></tr>\n");
    for f in &r.figures {
        let ns = |v: Option<u64>| v.map_or(String::new(), human_ns);
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.mechanism),
            match (f.producers, f.clients) {
                (Some(n), _) => format!("fan-in, {n} producers"),
                (_, Some(n)) => format!("echo, {n} clients"),
                _ => f.metric.as_str().to_string(),
            },
            f.wait.as_str(),
            human_size(f.size_bytes),
            ns(f.median_ns),
            ns(f.p99_ns),
            ns(f.p999_ns),
            ns(f.max_ns),
            f.msgs_per_sec.map_or(String::new(), |v| format!("{v:.0}")),
            f.bytes_per_sec.map_or(String::new(), human_rate),
            f.ratio_to_floor
                .map_or(String::new(), |v| format!("{v:.3}")),
            x_bare(r, f).map_or(String::new(), human_ratio),
        );
    }
    s.push_str("</table>\n<p>ratio: round trips, median ÷ floor median (lower is better); throughput, bytes/s ÷ memcpy bytes/s at the same size (higher is better). x bare: the same figure over <b>bare</b>'s at the same size, the median of the rounds' ratios (round trips: lower is better; throughput: higher is better).</p>\n");
    if !r.detection.is_empty() {
        s.push_str("\n<h2>Dead-peer detection</h2>\n<p>The peer is killed with SIGKILL while the parent waits in a receive; the time from the kill to the receive's error.</p>\n<table class=\"figures\"><tr><th>mechanism</th><th>wait</th><th>kills</th><th>median</th><th>max</th></tr>\n");
        for d in &r.detection {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.mechanism),
                d.wait.as_str(),
                d.trials,
                human_ns(d.median_ns),
                human_ns(d.max_ns)
            );
        }
        s.push_str("</table>\n");
    }
    if !r.skipped.is_empty() {
        s.push_str("<h2>Not measured</h2>\n<ul>\n");
        for k in &r.skipped {
            let _ = writeln!(
                s,
                "<li>{} {} {} {}: {}</li>",
                esc(&k.mechanism),
                k.metric.as_str(),
                k.wait.as_str(),
                human_size(k.size_bytes),
                esc(&k.reason)
            );
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decade_labels_are_whole_units() {
        let ns: Vec<String> = [100.0, 1e3, 1e4, 1e6, 1e8, 1e9]
            .iter()
            .map(|&v| decade_label(v, NS_UNITS))
            .collect();
        assert_eq!(ns, ["100 ns", "1 µs", "10 µs", "1 ms", "100 ms", "1 s"]);
        assert_eq!(decade_label(1e7, RATE_UNITS), "10 MB/s");
        assert_eq!(decade_label(1e11, RATE_UNITS), "100 GB/s");
        assert_eq!(decade_label(0.1, NS_UNITS), "0.1 ns");
    }
}
