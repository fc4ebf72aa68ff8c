//! The rows beyond one sender and one receiver at 64 B: the loan curve
//! and `--rtt-sizes`, fan-in (exactly once, counted per producer), the
//! socket server's clients, and reading a results.json written by main
//! before they existed.

use ipcworks_bench::compare::compare;
use ipcworks_bench::fanin::{HEADER, Tally, stamp};
use ipcworks_bench::{Metric, Options, Results, Wait, html, table};

use super::{MAIN, RUNS, leftovers, our_sysv_queues, small_run};

/// The round trip of `name` at `size`, checked for sense.
fn rtt(r: &Results, name: &str, size: u64) -> u64 {
    let f = r
        .find(name, Metric::Rtt, Wait::Poll, size)
        .unwrap_or_else(|| panic!("{name} rtt {size} missing; skipped: {:#?}", r.skipped));
    let (m, p99) = (f.median_ns.unwrap(), f.p99_ns.unwrap());
    assert!(m > 0 && m <= p99 && f.iterations >= 20, "{f:?}");
    m
}

/// `shm-loan` at every loan size, beside `shm-spin`; `--rtt-sizes` gives
/// the other rows their sizes; the table and the page show the curve.
#[test]
fn loan_curve_and_round_trips_at_several_sizes() {
    let _one = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let opts = Options {
        rtt_sizes: vec![32, 64],
        ..small_run(&["shm-loan", "shm-spin", "pipe"], vec![], 900)
    };
    let r = ipcworks_bench::run(&opts, &mut |_| {}).unwrap();
    for &size in ipcworks_bench::run::LOAN_SIZES {
        rtt(&r, "shm-loan", size as u64);
        rtt(&r, "shm-spin", size as u64);
    }
    // --rtt-sizes: 32 B and 64 B for every row, nothing else for pipe.
    for size in [32, 64] {
        rtt(&r, "shm-loan", size);
        rtt(&r, "pipe", size);
        rtt(&r, "bare", size);
    }
    assert!(r.find("pipe", Metric::Rtt, Wait::Poll, 4096).is_none());
    // The floor carries no payload: only 64 B, the rest skipped with why.
    assert!(r.find("floor", Metric::Rtt, Wait::Poll, 32).is_none());
    assert!(
        r.skipped
            .iter()
            .any(|k| k.mechanism == "floor" && k.size_bytes == 32 && k.reason.contains("payload"))
    );
    // A loan moves two lines whatever the size; copying 1 MiB twice each
    // way cannot be as fast (a generous bound: the machine is loaded).
    let (loan, copy) = (rtt(&r, "shm-loan", 1 << 20), rtt(&r, "shm-spin", 1 << 20));
    assert!(
        loan < copy,
        "shm-loan {loan} ns, shm-spin {copy} ns at 1 MiB"
    );
    // The table: the 64 B rows with x bare, the curve below them.
    let text = table::render(&r);
    assert!(
        text.contains("x bare") && text.contains("Round trip by message size"),
        "{text}"
    );
    let curve = text.split("Round trip by message size").nth(1).unwrap();
    assert!(
        curve.contains("shm-loan") && curve.contains("1 MiB"),
        "{text}"
    );
    // The page: the curve's chart, one mark per row with several sizes.
    let svg = ipcworks_bench::html_more::rtt_size_svg(&r).expect("the loan curve's chart");
    let rows = table::rtt_size_rows(&r);
    assert_eq!(svg.matches("class=\"mark\"").count(), rows.len());
    assert!(
        rows.contains(&("shm-loan".to_string(), Wait::Poll)),
        "{rows:?}"
    );
    let page = html::render(&r);
    assert!(page.contains("id=\"rtt-size-chart\"") && page.contains("x bare"));
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// The tally behind fan-in's exactly-once check: a message lost, repeated
/// or from nowhere, or a count that does not add up, is an error.
#[test]
fn fan_in_tally_catches_loss_duplication_and_a_wrong_count() {
    let msg = |id: u32, seq: u64, stop: bool| {
        let mut m = vec![0u8; 64];
        stamp(&mut m, id, seq, stop);
        m
    };
    // Two producers, interleaved, each in order: fine.
    let mut t = Tally::new(2);
    for (id, seq) in [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)] {
        assert_eq!(t.take(&msg(id, seq, false)), Ok(false));
    }
    assert_eq!(t.take(&msg(1, 2, true)), Ok(false));
    assert_eq!(t.take(&msg(0, 3, true)), Ok(true));
    assert_eq!(t.seen(), 5);
    // A duplicate.
    let mut t = Tally::new(1);
    t.take(&msg(0, 0, false)).unwrap();
    let e = t.take(&msg(0, 0, false)).unwrap_err();
    assert!(e.contains("twice"), "{e}");
    // A loss.
    let mut t = Tally::new(1);
    t.take(&msg(0, 0, false)).unwrap();
    let e = t.take(&msg(0, 2, false)).unwrap_err();
    assert!(e.contains("lost"), "{e}");
    // The last message says 3 were sent, 2 arrived (lost at the end).
    let mut t = Tally::new(1);
    t.take(&msg(0, 0, false)).unwrap();
    t.take(&msg(0, 1, false)).unwrap();
    let e = t.take(&msg(0, 3, true)).unwrap_err();
    assert!(e.contains("sent 3") && e.contains("2 arrived"), "{e}");
    // An unknown producer, a message after the last one, a short message.
    let mut t = Tally::new(1);
    assert!(t.take(&msg(5, 0, false)).is_err());
    t.take(&msg(0, 0, true)).unwrap();
    assert!(t.take(&msg(0, 0, false)).unwrap_err().contains("after"));
    assert!(Tally::new(1).take(&[0u8; HEADER - 1]).is_err());
}

/// Fan-in between real processes for every mechanism that has it, and the
/// socket server with its clients: every figure there, every message
/// counted exactly once (a case that lost or repeated one would be
/// skipped with the tally's reason), nothing left behind.
#[test]
fn fan_in_and_server_clients_smoke() {
    let _one = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let opts = Options {
        fan_in: true,
        clients: true,
        ..small_run(&["shm", "queue", "mq", "unix"], vec![], 2500)
    };
    let r = ipcworks_bench::run(&opts, &mut |_| {}).unwrap();
    let crowd_skips: Vec<_> = r
        .skipped
        .iter()
        .filter(|k| k.producers.is_some() || k.clients.is_some())
        .collect();
    assert!(crowd_skips.is_empty(), "{crowd_skips:#?}");
    for kind in ["shm", "queue", "mq", "unix"] {
        for size in [64u64, 4096] {
            for n in [1, 2, 4] {
                let f = table::fan_in_figure(&r, kind, size, n)
                    .unwrap_or_else(|| panic!("{kind} {size} x{n} missing"));
                assert_eq!((f.metric, f.wait), (Metric::Throughput, Wait::Block));
                let mps = f.msgs_per_sec.unwrap();
                assert!(mps > 10.0 && f.iterations > 0, "{f:?}");
                assert!((f.bytes_per_sec.unwrap() / mps - size as f64).abs() < 1e-6 * mps);
            }
        }
        // The plain figures are not confused with the fan-in ones.
        let plain = r.find(kind, Metric::Rtt, Wait::Block, 64).unwrap();
        assert!(plain.is_plain());
    }
    for n in [1, 10, 100] {
        let f = r
            .figures
            .iter()
            .find(|f| f.clients == Some(n))
            .unwrap_or_else(|| panic!("{n} clients missing"));
        assert_eq!(f.mechanism, "unix-server");
        assert!(f.msgs_per_sec.unwrap() > 10.0, "{f:?}");
    }
    // results.json keeps them apart and reads back.
    let back = Results::from_json(&r.to_json()).unwrap();
    let keys =
        |r: &Results| -> Vec<_> { r.figures.iter().map(|f| (f.key(), f.iterations)).collect() };
    assert_eq!(keys(&back), keys(&r));
    let text = table::render(&r);
    assert!(
        text.contains("Fan-in") && text.contains("4 producers"),
        "{text}"
    );
    assert!(
        text.contains("Socket server echo") && text.contains("100"),
        "{text}"
    );
    let svg = ipcworks_bench::html_more::fan_in_svg(&r).expect("the fan-in chart");
    assert_eq!(svg.matches("class=\"mark\"").count(), 4 * 2);
    assert!(html::render(&r).contains("id=\"fan-in-chart\""));
    // The parent is pinned again after the unpinned cases.
    assert_eq!(r.system.pinning.placement, "cross");
    assert_eq!(leftovers(), Vec::<String>::new());
    assert_eq!(our_sysv_queues(), 0);
    // Within generous bounds: a hang would be caught here.
    assert!(r.wall_s < 300.0, "{}", r.wall_s);
}

/// A results.json written by today's main (before producers, clients and
/// the loan curve) is read, compared and shown; against a new run its
/// figures match by key, and the new ones are listed as new.
#[test]
fn compare_reads_a_results_json_written_by_main() {
    let old = Results::from_json(MAIN).unwrap();
    assert!(old.figures.len() > 20 && old.figures.iter().all(|f| f.is_plain()));
    let same = compare(&old, &old, 10.0, false);
    assert_eq!(same.changes.len(), old.figures.len());
    assert_eq!(same.regressions(), 0);
    let mut new = old.clone();
    // A fan-in figure of the same mechanism and size as a plain one, and
    // a round trip at another size: both new, neither matched to the old.
    let mut fan = new
        .figures
        .iter()
        .find(|f| f.mechanism == "shm" && f.metric == Metric::Throughput)
        .unwrap()
        .clone();
    fan.producers = Some(4);
    let mut big = new
        .find("shm-spin", Metric::Rtt, Wait::Poll, 64)
        .unwrap()
        .clone();
    big.size_bytes = 1 << 20;
    new.figures.push(fan);
    new.figures.push(big);
    let c = compare(&old, &new, 10.0, true);
    assert_eq!(c.changes.len(), old.figures.len());
    assert_eq!(
        c.only_new,
        ["shm fan-in 4 producers 64 B", "shm-spin rtt poll 1 MiB"]
    );
    assert!(c.only_old.is_empty());
    // The old file renders as before.
    let text = table::render(&old);
    assert!(
        text.contains("shm-spin") && !text.contains("Fan-in"),
        "{text}"
    );
    assert!(html::render(&old).contains("id=\"latency-chart\""));
}
