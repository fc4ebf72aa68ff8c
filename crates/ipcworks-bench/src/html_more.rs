//! The report's sections beyond the two main charts: round trips by
//! message size (the loan curve), fan-in, the socket server's clients, and
//! what "x bare" means. Each chart is drawn only when the run has its
//! figures.

use std::fmt::Write;

use crate::schema::{Metric, Results};
use crate::svg::{LogAxis, decade_label, esc};
use crate::table::{
    fan_in_figure, fan_in_lines, growth_of, growth_rows, human_msgs, human_ns, human_ratio,
    producer_counts, rtt_size_rows, rtt_sizes, x_bare,
};
use crate::units::human_size;

/// Colours of the lines, cycled.
const PALETTE: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#ff7f0e", "#7f7f7f",
];
const NS_UNITS: &[(f64, &str)] = &[(1.0, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")];
const MSG_UNITS: &[(f64, &str)] = &[(1.0, "/s"), (1e3, "k/s"), (1e6, "M/s"), (1e9, "G/s")];

/// What "x bare" means, under the throughput chart.
pub const BARE_TEXT: &str = "<p><b>x bare</b> reads a figure against <b>bare</b> at the \
 same size, measured in the same run: for a round trip its median ÷ bare's median (1.10x is 10 % \
 slower than bare; lower is better), for throughput its bytes/s ÷ bare's bytes/s (0.60x is 60 % \
 of bare's pace; higher is better), taken round by round: the median of each round's ratio to \
 bare's same round, so that a slow spell of the machine in one round does not move it; a pair \
 whose halves ran in different states of the machine (a probe of the cross-core hand-off before \
 and after each case disagrees by more than 1.5x) is left out, and the page says how many. \
 bare is the least a message of that size can cost between \
 these two cores (its cache lines and two copies, nothing else), so x bare is the price of \
 everything else a mechanism does: checks of what the peer wrote, wake-ups, dead-peer \
 detection, several senders. The table below has it for every figure with a bare beside \
 it. A round trip's x bare also depends on the machine: what a mechanism adds to bare is \
 about the same number of nanoseconds whether a cross-core hand-off is quick or slow, so \
 the ratio is largest where the hand-off is quickest; read it beside the run's floor. \
 <b>shm-batch</b> is <b>shm-spin</b>'s stream sent with <code>Sender::send_batch</code>: \
 up to 32 messages published with one store and one look at whether the receiver sleeps, \
 where <b>shm-spin</b> (one <code>send</code> per message) pays those per message; streams \
 only, up to 4 KiB.</p>";

const LOAN_TEXT: &str = "<p>Round trips at several message sizes. <b>shm-loan</b> is the \
 shared-memory channel's zero-copy API: each side borrows a slot in the ring \
 (<code>Sender::loan</code>), writes the message's first and last cache line in place, as a \
 producer filling in a header and a trailer would, and publishes it; the other side borrows \
 the message in place (<code>Receiver::recv_ref</code>) and reads the same two lines. Only \
 those lines and the ring's indices cross between the cores, so its round trip should barely \
 grow with the size, while <b>shm-spin</b>, which copies the whole message in and out, grows \
 with it. <b>iceoryx2-loan</b> (with <code>--peers</code>) is iceoryx2's loan API used the \
 same way. Both axes are logarithmic; dashed lines are block rows; hover a point for its \
 figures.</p>";

const FAN_IN_TEXT: &str = "<p>Fan-in: 1, 2 and 4 producer processes send into one receiver \
 as fast as they can; the figure is the total messages per second the receiver took. \
 <b>shm</b> is one channel whose producers share its reservation lock, <b>queue</b> one native \
 queue, <b>mq</b> one POSIX queue, <b>unix</b> one connection per producer into one socket \
 server. Every end waits the default way and nobody is pinned, so with more producers than \
 cores the scheduler shares the cores out, and a producer preempted in the middle of its \
 reservation holds the others up: the chart shows what that costs. Every message carries its \
 producer and a sequence number; one lost or repeated fails the case instead of being \
 counted.</p>";

const SERVER_TEXT: &str = "<p>The library's socket server (what <code>ipcworks serve \
 unix:PATH --echo --binary</code> runs) echoing length-prefixed messages to several clients at \
 once, each on its own connection, each waiting for its echo before sending again. The figure \
 is the echoes of all clients together per second.</p>";

/// One line of a chart: a name and its points (x, y, the point's title);
/// dashed (the block rows of the round-trip chart) or not.
struct Series {
    name: String,
    points: Vec<(f64, f64, String)>,
    dashed: bool,
}

/// A log-log line chart: one `mark` group per series (its line when it
/// has two points or more, and a dot per point), ticks at `xticks`, the
/// y axis in decades of `units`, a legend on the right.
fn line_chart(
    id: &str,
    label: &str,
    series: &[Series],
    xticks: &[(f64, String)],
    captions: (&str, &str),
    units: &[(f64, &str)],
) -> String {
    let (left, right, top, bottom) = (80.0, 640.0, 20.0, 340.0);
    // Tall enough for the legend, one line per series.
    let height = (top + 18.0 * series.len() as f64 + 20.0).max(380.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{id}" viewBox="0 0 900 {height}" width="900" height="{height}" role="img" aria-label="{}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif" fill="#222"><rect width="900" height="{height}" fill="#fff"/>"##,
        esc(label)
    );
    let xs = xticks.iter().map(|t| t.0);
    let (xmin, xmax) = xs.fold((f64::MAX, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let ys = series.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (ymin, ymax) = ys.fold((f64::MAX, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let xa = LogAxis::exact(xmin / 1.4, xmax * 1.4, left, right);
    let ya = LogAxis::new(ymin.max(1e-9), ymax.max(1e-9), bottom, top);
    for (x, t) in xticks {
        let px = xa.pos(*x);
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{bottom}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            esc(t)
        );
    }
    for d in ya.decades() {
        let y = ya.pos(d);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left - 6.0,
            y + 4.0,
            esc(&decade_label(d, units))
        );
    }
    let mid = (top + bottom) / 2.0;
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text><text x="14" y="{mid:.1}" font-size="12" transform="rotate(-90 14 {mid:.1})" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        bottom + 34.0,
        esc(captions.0),
        esc(captions.1)
    );
    let mut legend_y = top + 6.0;
    for (i, l) in series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        let dash = if l.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        s.push_str(r#"<g class="mark">"#);
        let at: Vec<(f64, f64)> = l
            .points
            .iter()
            .map(|p| (xa.pos(p.0), ya.pos(p.1)))
            .collect();
        if at.len() > 1 {
            let pts: Vec<String> = at.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{col}" stroke-width="2"{dash}/>"#,
                pts.join(" ")
            );
        }
        for ((x, y), p) in at.iter().zip(&l.points) {
            let _ = write!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{col}"><title>{}: {}</title></circle>"#,
                esc(&l.name),
                esc(&p.2)
            );
        }
        let _ = write!(
            s,
            r#"</g><line x1="660" y1="{legend_y:.1}" x2="685" y2="{legend_y:.1}" stroke="{col}" stroke-width="2"{dash}/><text x="692" y="{:.1}" font-size="12">{}</text>"#,
            legend_y + 4.0,
            esc(&l.name)
        );
        legend_y += 18.0;
    }
    s.push_str("</svg>");
    s
}

/// Round-trip median against message size, one line per mechanism and
/// wait with a size other than the main one (the loan curve,
/// `--rtt-sizes`); `None` when there is none.
pub fn rtt_size_svg(r: &Results) -> Option<String> {
    let rows = rtt_size_rows(r);
    if rows.is_empty() {
        return None;
    }
    let mut sizes = Vec::new();
    let series: Vec<Series> = rows
        .iter()
        .map(|(m, w)| {
            let mut figs: Vec<_> = r
                .figures
                .iter()
                .filter(|f| {
                    f.is_plain()
                        && &f.mechanism == m
                        && f.metric == Metric::Rtt
                        && f.wait == *w
                        && f.median_ns.is_some()
                })
                .collect();
            figs.sort_by_key(|f| f.size_bytes);
            sizes.extend(figs.iter().map(|f| f.size_bytes));
            let points = figs
                .iter()
                .map(|f| {
                    let med = f.median_ns.unwrap_or(1);
                    let bare = x_bare(r, f)
                        .map_or(String::new(), |x| format!(", {} bare", human_ratio(x)));
                    let t = format!(
                        "{}: median {}{bare}",
                        human_size(f.size_bytes),
                        human_ns(med)
                    );
                    (f.size_bytes as f64, med as f64, t)
                })
                .collect();
            Series {
                name: format!("{m} · {}", w.as_str()),
                points,
                dashed: *w == crate::schema::Wait::Block,
            }
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let ticks: Vec<(f64, String)> = sizes.iter().map(|&z| (z as f64, human_size(z))).collect();
    Some(line_chart(
        "rtt-size-chart",
        "round-trip time against message size",
        &series,
        &ticks,
        ("message size (log scale)", "round-trip median (log scale)"),
        NS_UNITS,
    ))
}

/// Fan-in: total messages/s against producers, one line per mechanism and
/// size; `None` without fan-in figures.
pub fn fan_in_svg(r: &Results) -> Option<String> {
    let lines = fan_in_lines(r);
    if lines.is_empty() {
        return None;
    }
    let counts = producer_counts(r);
    let series: Vec<Series> = lines
        .iter()
        .map(|(m, size)| Series {
            name: format!("{m} · {}", human_size(*size)),
            points: counts
                .iter()
                .filter_map(|&n| {
                    let mps = fan_in_figure(r, m, *size, n)?.msgs_per_sec?;
                    let t = format!("{n} producers: {}", human_msgs(mps));
                    Some((f64::from(n), mps.max(1.0), t))
                })
                .collect(),
            dashed: false,
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if series.is_empty() {
        return None;
    }
    let ticks: Vec<(f64, String)> = counts
        .iter()
        .map(|&n| (f64::from(n), n.to_string()))
        .collect();
    Some(line_chart(
        "fan-in-chart",
        "fan-in: total messages per second against producers",
        &series,
        &ticks,
        (
            "producer processes (log scale)",
            "messages per second, all producers (log scale)",
        ),
        MSG_UNITS,
    ))
}

/// Under the loan curve: each row's round trip as a multiple of its own
/// at the main size, paired round by round ([`crate::table::growth`]).
fn growth_table(s: &mut String, r: &Results) {
    let sizes: Vec<u64> = rtt_sizes(r)
        .into_iter()
        .filter(|&size| size != r.config.rtt_size)
        .collect();
    let rows = growth_rows(r, &sizes);
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        s,
        "<p>Growth with the message: each row's round trip as a multiple of its own {} round \
         trip, round by round; rounds whose two cases ran at different cross-core hand-off \
         speeds (the probes around them disagree) are left out, as for x bare.</p>\n\
         <table class=\"figures\"><tr><th>mechanism</th><th>wait</th>",
        human_size(r.config.rtt_size)
    );
    for &size in &sizes {
        let _ = write!(s, "<th>{}</th>", human_size(size));
    }
    s.push_str("</tr>\n");
    for (m, w) in rows {
        let _ = write!(s, "<tr><td>{}</td><td>{}</td>", esc(&m), w.as_str());
        for &size in &sizes {
            let cell = growth_of(r, &m, w, size).map_or("-".into(), human_ratio);
            let _ = write!(s, "<td>{cell}</td>");
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}

/// The sections the run has figures for: round trips by size, fan-in,
/// the socket server.
pub fn sections(s: &mut String, r: &Results) {
    if let Some(svg) = rtt_size_svg(r) {
        s.push_str("\n<h2>Round trip by message size: the loan curve</h2>\n");
        s.push_str(&svg);
        s.push('\n');
        s.push_str(LOAN_TEXT);
        growth_table(s, r);
    }
    if let Some(svg) = fan_in_svg(r) {
        s.push_str("\n<h2>Fan-in</h2>\n");
        s.push_str(&svg);
        s.push('\n');
        s.push_str(FAN_IN_TEXT);
    }
    let mut clients: Vec<_> = r.figures.iter().filter(|f| f.clients.is_some()).collect();
    if !clients.is_empty() {
        clients.sort_by_key(|f| f.clients);
        s.push_str("\n<h2>Socket server echo</h2>\n");
        s.push_str(SERVER_TEXT);
        s.push_str("\n<table class=\"figures\"><tr><th>clients</th><th>echoes/s</th><th>per client</th><th>size</th></tr>\n");
        for f in clients {
            let n = f.clients.unwrap_or(1).max(1);
            let mps = f.msgs_per_sec.unwrap_or(0.0);
            let _ = writeln!(
                s,
                "<tr><td>{n}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                human_msgs(mps),
                human_msgs(mps / f64::from(n)),
                human_size(f.size_bytes)
            );
        }
        s.push_str("</table>\n");
    }
}
