//! Tests of the harness: the JSON schema, compare, the report, and a smoke
//! run of every mechanism between real processes (this test binary
//! re-executes itself as the peer through `peer_entry`).

use std::time::{Duration, Instant};

use ipcworks_bench::compare::{compare, render};
use ipcworks_bench::peer::Launcher;
use ipcworks_bench::schema::SCHEMA_VERSION;
use ipcworks_bench::{Metric, Options, Placement, Results, Wait, html, table};

#[path = "bench/crowd.rs"]
mod crowd;

const OLD: &str = include_str!("data/old.json");
const NEW: &str = include_str!("data/new.json");
/// A results.json written by main before fan-in, the server's clients and
/// the loan curve existed (`ipcworks bench --time 2 --rounds 2 --only
/// shm-spin,shm,queue,mq,unix --sizes 64,4K`, built at commit 93c8d87).
const MAIN: &str = include_str!("data/main-post19.json");

/// The peer's side when the harness re-executes this binary; returns at
/// once in a normal test run.
#[test]
fn peer_entry() {
    if let Some(code) = ipcworks_bench::run_if_peer_status() {
        std::process::exit(code);
    }
}

#[test]
fn schema_round_trips() {
    let r = Results::from_json(OLD).unwrap();
    assert_eq!(r.schema_version, SCHEMA_VERSION);
    assert_eq!(r.figures.len(), 8);
    let back = Results::from_json(&r.to_json()).unwrap();
    assert_eq!(back, r);
    // Field names are the documented ones.
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    let f = &v["figures"][0];
    for k in [
        "mechanism",
        "metric",
        "wait",
        "size_bytes",
        "median_ns",
        "p99_ns",
        "p999_ns",
        "max_ns",
        "ratio_to_floor",
    ] {
        assert!(f.get(k).is_some(), "rtt figure lacks {k}");
    }
    assert!(f.get("msgs_per_sec").is_none());
    let t = v["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["metric"] == "throughput")
        .unwrap();
    for k in ["msgs_per_sec", "bytes_per_sec", "ratio_to_floor"] {
        assert!(t.get(k).is_some(), "throughput figure lacks {k}");
    }
    assert!(
        v["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("msgmax")
    );
}

#[test]
fn schema_refuses_other_versions_and_bad_values() {
    let v2 = OLD.replacen("\"schema_version\": 1", "\"schema_version\": 2", 1);
    let e = Results::from_json(&v2).unwrap_err();
    assert!(e.contains("schema_version 2"), "{e}");
    let none = OLD.replacen("\"schema_version\": 1,", "", 1);
    assert!(Results::from_json(&none).unwrap_err().contains("missing"));
    let bad = OLD.replacen("\"metric\": \"rtt\"", "\"metric\": \"speed\"", 1);
    assert!(Results::from_json(&bad).is_err());
    assert!(Results::from_json("not json").is_err());
}

#[test]
fn compare_flags_regressions_beyond_the_threshold() {
    let old = Results::from_json(OLD).unwrap();
    let new = Results::from_json(NEW).unwrap();
    let c = compare(&old, &new, 10.0, false);
    let get = |l: &str| {
        c.changes
            .iter()
            .find(|x| x.label == l)
            .unwrap_or_else(|| panic!("{l}"))
    };
    let pipe = get("pipe rtt block 64 B");
    assert!((pipe.worse_pct - 50.0).abs() < 1e-9 && pipe.regression);
    let pp = get("pipe rtt poll 64 B");
    assert!((pp.worse_pct - 6.25).abs() < 1e-9 && !pp.regression);
    let tcp = get("tcp rtt poll 64 B");
    assert!((tcp.worse_pct + 25.0).abs() < 1e-9 && !tcp.regression);
    let tp = get("pipe throughput block 4 KiB");
    assert!((tp.worse_pct - 25.0).abs() < 1e-9 && tp.regression);
    assert!(!get("tcp throughput block 4 KiB").regression);
    assert_eq!(c.regressions(), 2);
    assert_eq!(c.only_new, ["eventfd rtt block 64 B"]);
    assert_eq!(c.only_old, ["futex rtt block 64 B"]);
    // A looser threshold keeps only the 50 % one.
    assert_eq!(compare(&old, &new, 30.0, false).regressions(), 1);
    // By ratio: the floor got 5 % slower too, so pipe block is ~42.9 % worse.
    let r = compare(&old, &new, 10.0, true);
    let pipe = r
        .changes
        .iter()
        .find(|x| x.label == "pipe rtt block 64 B")
        .unwrap();
    assert!(
        (pipe.worse_pct - 42.857142857142854).abs() < 1e-6,
        "{}",
        pipe.worse_pct
    );
    let text = render(&c, 10.0);
    assert!(
        text.contains("REGRESSION") && text.contains("2 worse by more than 10%"),
        "{text}"
    );
}

#[test]
fn html_report_is_self_contained_and_draws_marks() {
    let r = Results::from_json(NEW).unwrap();
    let page = html::render(&r);
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    assert_eq!(page.matches("<svg").count(), 2);
    assert_eq!(page.matches("</svg>").count(), 2);
    // No scripts, nothing fetched: the only URL is the SVG namespace.
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src="));
    let urls = page.matches("http").count();
    assert_eq!(urls, page.matches("http://www.w3.org/2000/svg").count());
    // Latency: one mark per round trip; throughput: one per mechanism.
    let lat = html::latency_svg(&r);
    let rtts = r.figures.iter().filter(|f| f.metric == Metric::Rtt).count();
    assert_eq!(lat.matches("class=\"mark\"").count(), rtts);
    assert!(lat.contains("<circle") && lat.contains("class=\"floor\""));
    let thr = html::throughput_svg(&r);
    assert_eq!(thr.matches("class=\"mark\"").count(), 3);
    assert!(thr.contains("<polyline"));
    // Plain explanations under the charts.
    assert!(page.contains("Block against poll") && page.contains("copy"));
    // Balanced tags of the kinds we emit.
    for tag in ["table", "tr", "g", "p", "ul", "svg", "title"] {
        let open =
            page.matches(&format!("<{tag}>")).count() + page.matches(&format!("<{tag} ")).count();
        assert_eq!(open, page.matches(&format!("</{tag}>")).count(), "<{tag}>");
    }
}

#[test]
fn table_sorts_by_latency_and_shows_ratios() {
    let r = Results::from_json(NEW).unwrap();
    let t = table::render(&r);
    let pos = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s} missing in\n{t}"));
    assert!(pos("floor            poll") < pos("pipe             poll"));
    assert!(pos("pipe             poll") < pos("tcp              poll"));
    assert!(pos("tcp              poll") < pos("eventfd          block"));
    assert!(pos("eventfd          block") < pos("pipe             block"));
    assert!(t.contains("57.1x") && t.contains("(0.020x)"), "{t}");
}

/// The runs below check for leftovers by this process's id: one at a time.
static RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A small run of `only` (every mechanism when empty): these sizes, this
/// many milliseconds, cross-core, one round, peers started as this test
/// binary's `peer_entry`.
fn small_run(only: &[&str], sizes: Vec<usize>, ms: u64) -> Options {
    Options {
        only: (!only.is_empty()).then(|| only.iter().map(|s| s.to_string()).collect()),
        sizes,
        rtt_sizes: vec![ipcworks_bench::run::RTT_SIZE],
        fan_in: false,
        clients: false,
        time: Duration::from_millis(ms),
        placement: Placement::Cross,
        peers: false,
        launcher: Launcher::current_exe(&["--exact", "peer_entry", "--nocapture"]).unwrap(),
        rounds: 1,
    }
}

/// System V queues this process last sent to or received from.
fn our_sysv_queues() -> usize {
    let text = std::fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |n: &str| head.iter().position(|h| *h == n);
    let (Some(s), Some(r)) = (col("lspid"), col("lrpid")) else {
        return 0;
    };
    let me = std::process::id().to_string();
    lines
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(s) == Some(&me.as_str()) || w.get(r) == Some(&me.as_str())
        })
        .count()
}

fn leftovers() -> Vec<String> {
    let me = format!("ipcworks-bench-{}-", std::process::id());
    let mut v = Vec::new();
    for dir in [
        "/dev/mqueue".into(),
        "/dev/shm".into(),
        std::env::temp_dir(),
    ] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                // Segments of named objects carry the name inside theirs.
                if n.contains(&me) {
                    v.push(n);
                }
            }
        }
    }
    v
}

/// Every mechanism, both wait modes, two sizes, between real processes.
#[test]
fn smoke_run_of_every_mechanism() {
    let _one = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let opts = Options {
        launcher: Launcher::current_exe(&[
            "--exact",
            "peer_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .unwrap(),
        rounds: 2,
        ..small_run(&[], vec![64, 4096], 500)
    };
    let (mut steps, mut total) = (0, 0);
    let mut second_round = false;
    let r = ipcworks_bench::run(&opts, &mut |s| {
        assert!(s.done <= s.total);
        steps += 1;
        total = s.total;
        second_round |= s.label.ends_with("round 2/2");
    })
    .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
    let skipped: Vec<String> = r
        .skipped
        .iter()
        .map(|k| {
            format!(
                "{} {:?} {:?} {}: {}",
                k.mechanism, k.metric, k.wait, k.size_bytes, k.reason
            )
        })
        .collect();
    for name in ipcworks_bench::run::select(None, false).unwrap() {
        let rtt = |w: Wait| r.find(name, Metric::Rtt, w, 64);
        if name == "shm-batch" {
            // Streams only: a round trip has one message in flight.
            assert!(
                r.skipped
                    .iter()
                    .any(|k| k.mechanism == name && k.metric == Metric::Rtt)
            );
            for size in [64, 4096] {
                let f = r
                    .find(name, Metric::Throughput, Wait::Poll, size)
                    .unwrap_or_else(|| panic!("shm-batch {size} missing; skipped: {skipped:#?}"));
                assert!(f.msgs_per_sec.unwrap() > 100.0, "{f:?}");
            }
            continue;
        }
        if name == "memcpy" {
            for size in [64, 4096] {
                let f = r
                    .find(name, Metric::Throughput, Wait::Poll, size)
                    .expect("memcpy figure");
                assert!(f.bytes_per_sec.unwrap() > 1e8, "memcpy {size}: {f:?}");
            }
            continue;
        }
        // The channel's flavours are one row each: shm-spin spins (poll),
        // shm and shm-block sleep when idle (block).
        let waits: &[Wait] = match name {
            "floor" | "bare" | "shm-spin" | "shm-loan" => &[Wait::Poll],
            "shm" | "shm-block" => &[Wait::Block],
            // The async rows await: a receive that finds nothing parks.
            "shm-async" | "shm-async-park" | "unix-async" => &[Wait::Block],
            _ => &[Wait::Poll, Wait::Block],
        };
        for &w in waits {
            let f =
                rtt(w).unwrap_or_else(|| panic!("{name} rtt {w:?} missing; skipped: {skipped:#?}"));
            let (m, p99, p999, max) = (
                f.median_ns.unwrap(),
                f.p99_ns.unwrap(),
                f.p999_ns.unwrap(),
                f.max_ns.unwrap(),
            );
            assert!(
                m > 0 && m <= p99 && p99 <= p999 && p999 <= max,
                "{name}: {f:?}"
            );
            assert!(
                m < 50_000_000,
                "{name} {w:?}: a 50 ms median round trip is implausible: {f:?}"
            );
            assert!(f.iterations >= 20, "{f:?}");
            assert!(f.ratio_to_floor.unwrap() > 0.0);
        }
        if ["floor", "futex", "eventfd", "shm-loan"].contains(&name) {
            assert!(
                r.skipped
                    .iter()
                    .any(|k| k.mechanism == name && k.metric == Metric::Throughput)
            );
            continue;
        }
        for size in [64u64, 4096] {
            let f = r
                .figures
                .iter()
                .find(|f| {
                    f.mechanism == name && f.metric == Metric::Throughput && f.size_bytes == size
                })
                .unwrap_or_else(|| {
                    panic!("{name} throughput {size} missing; skipped: {skipped:#?}")
                });
            let (mps, bps) = (f.msgs_per_sec.unwrap(), f.bytes_per_sec.unwrap());
            assert!(
                mps > 100.0 && (bps / mps - size as f64).abs() < 1e-6 * bps,
                "{f:?}"
            );
            assert!(
                f.ratio_to_floor.unwrap() > 0.0 && f.ratio_to_floor.unwrap() < 10.0,
                "{f:?}"
            );
        }
    }
    // Dead-peer detection: every mechanism that can tell, and only those.
    let detected: Vec<&str> = r.detection.iter().map(|d| d.mechanism.as_str()).collect();
    assert_eq!(
        detected,
        [
            "shm-spin",
            "shm",
            "shm-block",
            "shm-async",
            "shm-async-park",
            "unix",
            "unix-async"
        ],
        "skipped: {skipped:#?}"
    );
    for d in &r.detection {
        assert!(
            d.trials == 5 && 0 < d.median_ns && d.median_ns <= d.max_ns,
            "{d:?}"
        );
        // Generous: the channel looks at its peer every 20 ms.
        assert!(d.max_ns < 5_000_000_000, "{d:?}");
    }
    assert!(r.skipped.iter().all(|k| !k.reason.is_empty()));
    // Two rounds: every case measured twice, in turn, with a fresh peer
    // each time; progress told of each, then of the end.
    assert!(second_round);
    assert_eq!(r.config.rounds, 2);
    assert_eq!(steps, total + 1, "progress was called {steps} times");
    assert_eq!(total, 2 * r.figures.len() + r.detection.len());
    for f in &r.figures {
        assert_eq!(f.per_round.len(), 2, "{f:?}");
        // The figure lies between its rounds' own (rtt: the mean of the
        // two round medians; throughput: all bytes over all seconds, a
        // time-weighted mean of the two rates).
        let (lo, hi) = (
            f.per_round[0].min(f.per_round[1]),
            f.per_round[0].max(f.per_round[1]),
        );
        let v = match f.metric {
            Metric::Rtt => f.median_ns.unwrap() as f64,
            Metric::Throughput => f.bytes_per_sec.unwrap(),
        };
        assert!(lo * 0.998 <= v && v <= hi * 1.002, "{f:?}");
        if f.metric == Metric::Rtt {
            // Each round counts alike, whatever its number of samples.
            assert!((v - (lo + hi) / 2.0).abs() <= 1.0, "{f:?}");
        }
        assert!(f.spread().unwrap() >= 0.0);
        // The hand-off probes around each round, when every one of them
        // could say: a pair each, beside the rounds.
        let probes = &f.per_round_hand_off_ns;
        assert!(probes.is_empty() || probes.len() == 2, "{f:?}");
        assert!(
            probes
                .iter()
                .flatten()
                .all(|&ns| ns > 0.0 && ns.is_finite()),
            "{f:?}"
        );
    }
    assert!(!r.system.cpu_model.is_empty() && r.system.cores >= 1 && !r.system.kernel.is_empty());
    assert_eq!(r.system.pinning.placement, "cross");
    assert_eq!(leftovers(), Vec::<String>::new());
    assert_eq!(our_sysv_queues(), 0, "a System V queue was left behind");
}

/// Another process burning a core during the run shows in `other_cpu`
/// and makes the run `busy`; the run's own two processes, which keep both
/// cores busy, do not count (the load average at the end, which counts
/// them, no longer decides).
#[test]
fn another_process_spinning_marks_the_run_busy() {
    let _one = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    struct Spinner(std::process::Child);
    impl Drop for Spinner {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let spinner = Spinner(
        std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    let opts = small_run(&["pipe"], vec![], 600);
    let r = ipcworks_bench::run(&opts, &mut |_| {}).unwrap();
    drop(spinner);
    let others = r.system.other_cpu.expect("other_cpu measured");
    // One core of two spinning the whole run is up to half the machine;
    // the scheduler shares the cores with the run's own, so expect less.
    assert!(others >= 0.10, "{:?}", r.system);
    assert!(r.system.busy, "{:?}", r.system);
    assert!(r.system.steal.is_some_and(|s| (0.0..=1.0).contains(&s)));
    let text = table::render(&r);
    assert!(text.contains("other processes used"), "{text}");
}

/// A case whose setup fails is skipped with the kernel's reason, and the
/// run goes on with the next one.
#[test]
fn failed_setup_is_skipped_and_the_run_continues() {
    let _one = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let msgsize_max: usize = std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max")
        .map_or(8192, |s| s.trim().parse().unwrap());
    let size = (msgsize_max * 2).next_power_of_two().max(16384);
    let opts = Options {
        placement: Placement::None,
        ..small_run(&["mq", "pipe"], vec![size], 200)
    };
    let r = ipcworks_bench::run(&opts, &mut |_| {}).unwrap();
    assert!(
        r.find("pipe", Metric::Throughput, Wait::Block, size as u64)
            .is_some()
    );
    assert!(r.find("mq", Metric::Rtt, Wait::Block, 64).is_some());
    let measured = r
        .find("mq", Metric::Throughput, Wait::Block, size as u64)
        .is_some();
    let skipped = r
        .skipped
        .iter()
        .find(|k| k.mechanism == "mq" && k.size_bytes == size as u64);
    // Privileged users (CAP_SYS_RESOURCE) may pass msgsize_max.
    assert!(measured != skipped.is_some(), "{r:?}");
    if let Some(k) = skipped {
        assert!(
            k.reason.contains("mq_open") || k.reason.contains("RLIMIT"),
            "{}",
            k.reason
        );
    }
    assert_eq!(r.system.pinning.parent_cpu, None);
    assert_eq!(leftovers(), Vec::<String>::new());
    assert_eq!(our_sysv_queues(), 0, "a System V queue was left behind");
}

/// With the `peers` feature: iceoryx2 and ipc-channel under the same
/// harness, every figure.
#[cfg(feature = "peers")]
#[test]
fn peers_smoke_run() {
    let _one = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    // iceoryx2 keeps a global management segment in /dev/shm and folders
    // in /tmp/iceoryx2 after its last node is gone: the bench removes what
    // its rows made appear (checked at the end); the guard below only
    // cleans up after a failure.
    let iox = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir("/dev/shm")
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("iox2_"))
        });
        v
    };
    let before = iox();
    let tmp_before = std::path::Path::new("/tmp/iceoryx2").exists();
    struct Clean<F: Fn() -> Vec<std::path::PathBuf>>(Vec<std::path::PathBuf>, bool, F);
    impl<F: Fn() -> Vec<std::path::PathBuf>> Drop for Clean<F> {
        fn drop(&mut self) {
            for p in (self.2)() {
                if !self.0.contains(&p) {
                    let _ = std::fs::remove_file(p);
                }
            }
            if !self.1 {
                let _ = std::fs::remove_dir_all("/tmp/iceoryx2");
            }
        }
    }
    let _clean = Clean(before.clone(), tmp_before, iox);
    let opts = Options {
        peers: true,
        ..small_run(
            &["iceoryx2", "iceoryx2-loan", "ipc-channel"],
            vec![64, 65536],
            600,
        )
    };
    let r = ipcworks_bench::run(&opts, &mut |_| {}).unwrap();
    for name in ["iceoryx2", "ipc-channel"] {
        for w in [Wait::Poll, Wait::Block] {
            let f = r
                .find(name, Metric::Rtt, w, 64)
                .unwrap_or_else(|| panic!("{name} {w:?}: {:#?}", r.skipped));
            assert!(f.median_ns.unwrap() > 0 && f.median_ns <= f.p99_ns, "{f:?}");
        }
        for size in [64u64, 65536] {
            let f = r
                .figures
                .iter()
                .find(|f| {
                    f.mechanism == name && f.metric == Metric::Throughput && f.size_bytes == size
                })
                .unwrap_or_else(|| panic!("{name} {size}: {:#?}", r.skipped));
            assert!(f.msgs_per_sec.unwrap() > 100.0, "{f:?}");
        }
    }
    // iceoryx2's loan API on the loan curve, beside the channel's.
    for &size in ipcworks_bench::run::LOAN_SIZES {
        let f = r
            .find("iceoryx2-loan", Metric::Rtt, Wait::Poll, size as u64)
            .unwrap_or_else(|| panic!("iceoryx2-loan {size}: {:#?}", r.skipped));
        assert!(f.median_ns.unwrap() > 0 && f.median_ns <= f.p99_ns, "{f:?}");
    }
    // Nothing of iceoryx2's left: no new file in /dev/shm, no folder.
    assert_eq!(iox(), before, "iceoryx2 files left in /dev/shm");
    assert_eq!(
        std::path::Path::new("/tmp/iceoryx2").exists(),
        tmp_before,
        "/tmp/iceoryx2 left behind"
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// The schema in the crate docs is the one written: every key of a
/// serialized `Results` and every mechanism name is listed there, under
/// the current version.
#[test]
fn schema_doc_matches_what_is_written() {
    let lib = include_str!("../src/lib.rs");
    let heading = format!("# `results.json`, schema version {SCHEMA_VERSION}");
    let doc: String = lib
        .split_once(&heading)
        .unwrap_or_else(|| panic!("the crate docs lack {heading:?}"))
        .1
        .split("//! ```")
        .nth(1)
        .expect("the schema block")
        .to_string();
    assert!(doc.contains(&format!("\"schema_version\": {SCHEMA_VERSION}")));
    fn keys(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k.clone());
                    keys(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let mut all = std::collections::BTreeSet::new();
    for text in [OLD, NEW, MAIN] {
        let mut r = Results::from_json(text).unwrap();
        // The optional fields of fan-in and server figures.
        r.figures[0].producers = Some(2);
        r.figures[0].clients = Some(10);
        r.figures[0].per_round_hand_off_ns = vec![[120.0, 125.0]];
        if let Some(k) = r.skipped.first_mut() {
            k.producers = Some(2);
            k.clients = Some(10);
        }
        keys(&serde_json::from_str(&r.to_json()).unwrap(), &mut all);
    }
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("\"{k}\"")))
        .collect();
    assert!(missing.is_empty(), "keys not documented: {missing:?}");
    // "mechanism": "floor|futex|…" (wrapped over lines).
    let listed: Vec<String> = doc
        .split_once("\"mechanism\": \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .expect("the mechanism list")
        .0
        .replace("//!", "")
        .split('|')
        .map(|n| n.trim().to_string())
        .collect();
    let mut names = ipcworks_bench::run::select(None, false).unwrap();
    names.extend(ipcworks_bench::run::PEER_NAMES);
    names.push(ipcworks_bench::clients::NAME);
    for n in names {
        assert!(
            listed.iter().any(|l| l == n),
            "mechanism {n} not in the documented list {listed:?}"
        );
    }
}
