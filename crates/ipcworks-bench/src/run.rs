//! The run: plans every case, measures them one after another between two
//! pinned processes, and gathers [`Results`].

use std::io;
use std::time::{Duration, Instant, SystemTime};

use crate::harness::{self, Case, Mechanism, Setup};
use crate::mechs::{self, memcpy};
use crate::peer::{self, Launcher, Watchdog};
use crate::schema::{Detection, Figure, Metric, Results, RunConfig, SCHEMA_VERSION, Skipped, Wait};
use crate::stats::Recorder;
use crate::system::{self, Placement};

/// Message size of every round trip.
pub const RTT_SIZE: usize = 64;
/// Throughput sizes when `--sizes` is not given.
pub const DEFAULT_SIZES: &[usize] = &[64, 1024, 4096, 65536, 1 << 20];
/// Default total time budget.
pub const DEFAULT_TIME: Duration = Duration::from_secs(45);
/// Shortest time one case gets per round, whatever the budget.
pub const MIN_CASE_TIME: Duration = Duration::from_millis(10);
/// Rounds when `--rounds` is not given (see [`Options::rounds`]).
pub const DEFAULT_ROUNDS: u32 = 3;
/// Most rounds a run may ask for.
pub const MAX_ROUNDS: u32 = 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Mechanisms to run (`None`: all). `floor` and `memcpy` are added when
    /// missing, since every ratio needs them; `bare` comes with any `shm`
    /// flavour, the reference its figures are read against.
    pub only: Option<Vec<String>>,
    /// Throughput message sizes in bytes (empty: round trips only).
    pub sizes: Vec<usize>,
    /// Time budget for all measurements together (spawning and setting up
    /// come on top).
    pub time: Duration,
    /// Where the two processes run.
    pub placement: Placement,
    /// Also run other projects' IPC (iceoryx2, ipc-channel); needs the
    /// `peers` cargo feature.
    pub peers: bool,
    /// How to start a peer.
    pub launcher: Launcher,
    /// Rounds (at least 1): every case runs this many times, each time
    /// with a fresh peer and an equal share of its time, and the rounds go
    /// through the whole plan in turn (all cases, then all again). A load
    /// burst on a shared machine then falls on every mechanism alike
    /// instead of on whichever ran at that moment, so ratios within one
    /// run (to the floor, between two mechanisms) hold steadier. A round
    /// trip's median is the median of its rounds' medians (each round
    /// counts alike: [`Summary::of_rounds`](crate::stats::Summary::of_rounds));
    /// a throughput figure is all messages over all seconds.
    pub rounds: u32,
}

/// What the rounds of one case gathered so far.
#[derive(Default)]
struct Gathered {
    /// Each round's round-trip summary.
    rounds: Vec<crate::stats::Summary>,
    /// Throughput: messages and seconds of every round.
    msgs: u64,
    secs: f64,
    /// Each round's own figure (median ns, or bytes/s).
    per_round: Vec<f64>,
    /// Set when a round failed: the case is skipped from then on.
    failed: bool,
}

/// What one round of one case measured.
enum Round {
    Rtt(Recorder),
    Throughput { msgs: u64, secs: f64 },
}

impl Gathered {
    fn add(&mut self, round: Round, size: usize) {
        match round {
            Round::Rtt(rec) => {
                if let Some(s) = rec.summary() {
                    self.per_round.push(s.median_ns as f64);
                    self.rounds.push(s);
                }
            }
            Round::Throughput { msgs, secs } => {
                self.per_round
                    .push(msgs as f64 * size as f64 / secs.max(1e-9));
                self.msgs += msgs;
                self.secs += secs;
            }
        }
    }

    fn figure(&self, name: &str, case: &Case) -> Option<Figure> {
        let mut f = match case.metric {
            Metric::Rtt => {
                let s = crate::stats::Summary::of_rounds(&self.rounds)?;
                let mut f = Figure::new(name, case.metric, case.wait, case.size as u64);
                f.iterations = s.count;
                f.median_ns = Some(s.median_ns);
                f.p99_ns = Some(s.p99_ns);
                f.p999_ns = Some(s.p999_ns);
                f.max_ns = Some(s.max_ns);
                f
            }
            Metric::Throughput if self.msgs > 0 => {
                throughput_figure(name, case, self.msgs, self.secs)
            }
            Metric::Throughput => return None,
        };
        if self.per_round.len() > 1 {
            f.per_round = self.per_round.clone();
        }
        Some(f)
    }
}

/// What the progress callback is told before each case.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    /// Measurements finished so far (a case counts once per round).
    pub done: usize,
    /// Measurements in all.
    pub total: usize,
    /// The case about to run (`pipe rtt block 64 B`, with `round 2/3`
    /// when there are rounds).
    pub label: &'a str,
}

enum Who {
    Local,
    Remote(&'static dyn Mechanism),
}

struct Planned {
    name: &'static str,
    who: Who,
    case: Case,
}

/// Parses a size like `64`, `1K`, `4KiB`, `1M`, `1MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("kib").or(lower.strip_suffix('k')) {
        (n.to_string(), 1024)
    } else if let Some(n) = lower.strip_suffix("mib").or(lower.strip_suffix('m')) {
        (n.to_string(), 1 << 20)
    } else {
        (lower.strip_suffix('b').unwrap_or(&lower).to_string(), 1)
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("size {t:?}: expected a number like 64, 4K or 1M"))?;
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {t:?} is too large"))?;
    if !(8..=(64 << 20)).contains(&v) {
        return Err(format!("size {t:?}: must be between 8 bytes and 64 MiB"));
    }
    Ok(v)
}

/// A size for people: `64 B`, `4 KiB`, `1 MiB`.
pub fn human_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// Names of other projects' IPC measured with `--peers`.
pub const PEER_NAMES: &[&str] = &["iceoryx2", "ipc-channel"];

/// Whether this build carries the peers (cargo feature `peers`).
pub const PEERS_BUILT: bool = cfg!(feature = "peers");

/// Checks `--only` names and returns the run order. The peers run with
/// `peers` or when named in `only`.
pub fn select(only: Option<&[String]>, peers: bool) -> Result<Vec<&'static str>, String> {
    let rebuild = "this ipcworks was built without the `peers` feature; \
                   rebuild with `cargo run --release --features peers -- bench --peers`";
    if peers && !PEERS_BUILT {
        return Err(format!("--peers: {rebuild}"));
    }
    let all = mechs::names();
    let is_peer = |n: &str| mechs::find(n).is_some_and(|m| m.is_peer());
    let Some(only) = only else {
        return Ok(all.into_iter().filter(|n| peers || !is_peer(n)).collect());
    };
    for n in only {
        if !all.contains(&n.as_str()) {
            if PEER_NAMES.contains(&n.as_str()) {
                return Err(format!("{n}: {rebuild}"));
            }
            return Err(format!(
                "unknown mechanism {n:?}; known: {}",
                all.join(", ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|n| {
            *n == "floor"
                || *n == memcpy::NAME
                || only.iter().any(|o| o == n)
                // The channel's reference comes with any of its flavours.
                || (*n == "bare" && only.iter().any(|o| o.starts_with("shm")))
        })
        .collect())
}

fn plan(names: &[&'static str], sizes: &[usize], skipped: &mut Vec<Skipped>) -> Vec<Planned> {
    let mut out = Vec::new();
    for &name in names {
        if name == memcpy::NAME {
            for &size in sizes {
                out.push(Planned {
                    name,
                    who: Who::Local,
                    case: Case {
                        metric: Metric::Throughput,
                        wait: Wait::Poll,
                        size,
                    },
                });
            }
            continue;
        }
        let Some(m) = mechs::find(name) else { continue };
        let mut cases = vec![
            Case {
                metric: Metric::Rtt,
                wait: Wait::Block,
                size: RTT_SIZE,
            },
            Case {
                metric: Metric::Rtt,
                wait: Wait::Poll,
                size: RTT_SIZE,
            },
        ];
        for &size in sizes {
            cases.push(Case {
                metric: Metric::Throughput,
                wait: m.throughput_wait(),
                size,
            });
        }
        for case in cases {
            match m.supports(&case) {
                Ok(()) => out.push(Planned {
                    name,
                    who: Who::Remote(m),
                    case,
                }),
                Err(reason) => skipped.push(skip(name, &case, reason)),
            }
        }
    }
    out
}

fn skip(name: &str, case: &Case, reason: String) -> Skipped {
    Skipped {
        mechanism: name.to_string(),
        metric: case.metric,
        wait: case.wait,
        size_bytes: case.size as u64,
        reason,
    }
}

/// Label of a case for people.
pub fn label(name: &str, case: &Case) -> String {
    format!(
        "{name} {} {} {}",
        case.metric.as_str(),
        case.wait.as_str(),
        human_size(case.size as u64)
    )
}

/// Runs everything `opts` asks for; `progress` is called before each case
/// and once at the end (with `done == total`).
pub fn run(opts: &Options, progress: &mut dyn FnMut(Step<'_>)) -> Result<Results, String> {
    let names = select(opts.only.as_deref(), opts.peers)?;
    let started = Instant::now();
    let started_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_start = system::load_avg();
    let cpu_start = system::cpu_times();
    let pinning = system::plan(opts.placement);
    let allowed = system::allowed_cpus();
    let mut skipped = Vec::new();
    let planned = plan(&names, &opts.sizes, &mut skipped);
    let rounds = opts.rounds.clamp(1, MAX_ROUNDS) as usize;
    let (warm, budget) = crate::stats::share(opts.time, planned.len() * rounds, MIN_CASE_TIME);
    // Two processes on one core: polling loops yield instead of spinning.
    let shared_core = pinning.parent_cpu.is_some() && pinning.parent_cpu == pinning.peer_cpu;
    harness::set_yield(shared_core);
    if let Some(cpu) = pinning.parent_cpu {
        system::pin(cpu).map_err(|e| format!("pinning to core {cpu}: {e}"))?;
    }
    let detectors: Vec<&dyn Mechanism> = names
        .iter()
        .filter_map(|n| mechs::find(n))
        .filter(|m| m.detects_death())
        .collect();
    let total = planned.len() * rounds + detectors.len();
    let mut gathered: Vec<Gathered> = planned.iter().map(|_| Gathered::default()).collect();
    for round in 0..rounds {
        for (i, p) in planned.iter().enumerate() {
            if gathered[i].failed {
                continue;
            }
            let label = label(p.name, &p.case);
            let shown = match rounds {
                1 => label.clone(),
                _ => format!("{label}, round {}/{rounds}", round + 1),
            };
            progress(Step {
                done: round * planned.len() + i,
                total,
                label: &shown,
            });
            let res = match p.who {
                Who::Local => {
                    let (msgs, secs) = memcpy::measure(p.case.size, warm, budget);
                    Ok(Round::Throughput { msgs, secs })
                }
                Who::Remote(m) => measure(m, &p.case, opts, pinning.peer_cpu, warm, budget, &label),
            };
            match res {
                Ok(r) => gathered[i].add(r, p.case.size),
                Err(e) => {
                    gathered[i].failed = true;
                    let why = match rounds {
                        1 => e.to_string(),
                        _ => format!("round {}: {e}", round + 1),
                    };
                    skipped.push(skip(p.name, &p.case, why));
                }
            }
        }
    }
    let mut figures: Vec<Figure> = planned
        .iter()
        .zip(&gathered)
        .filter(|(_, g)| !g.failed)
        .filter_map(|(p, g)| g.figure(p.name, &p.case))
        .collect();
    let mut detection = Vec::new();
    for (i, m) in detectors.iter().enumerate() {
        let label = format!("{} dead-peer detection", m.name());
        progress(Step {
            done: planned.len() * rounds + i,
            total,
            label: &label,
        });
        match detect(*m, opts, pinning.peer_cpu, &label) {
            Ok(d) => detection.push(d),
            Err(e) => skipped.push(Skipped {
                mechanism: m.name().to_string(),
                metric: Metric::Rtt,
                wait: m.throughput_wait(),
                size_bytes: RTT_SIZE as u64,
                reason: format!("dead-peer detection: {e}"),
            }),
        }
    }
    progress(Step {
        done: total,
        total,
        label: "done",
    });
    if pinning.parent_cpu.is_some() {
        system::unpin(&allowed);
    }
    harness::set_yield(false);
    add_ratios(&mut figures);
    let load_end = system::load_avg();
    let cpu = cpu_start.zip(system::cpu_times());
    Ok(Results {
        schema_version: SCHEMA_VERSION,
        tool: format!("ipcworks-bench {}", env!("CARGO_PKG_VERSION")),
        started_unix_s,
        wall_s: started.elapsed().as_secs_f64(),
        system: system::describe(pinning, load_start, load_end, cpu),
        config: RunConfig {
            time_budget_s: opts.time.as_secs_f64(),
            mechanisms: names.iter().map(|s| s.to_string()).collect(),
            sizes: opts.sizes.iter().map(|&s| s as u64).collect(),
            rtt_size: RTT_SIZE as u64,
            rounds: rounds as u32,
        },
        figures,
        skipped,
        detection,
    })
}

/// Kills measured per mechanism for the dead-peer detection figure.
const DETECT_TRIALS: usize = 5;

/// Dead-peer detection: the parent exchanges a few round trips with a
/// fresh peer, kills it with SIGKILL while the peer waits for the next
/// message, then waits in a blocking receive for the peer's answer and
/// times how long the receive takes to fail. Repeated
/// [`DETECT_TRIALS`] times.
fn detect(
    m: &dyn Mechanism,
    opts: &Options,
    peer_cpu: Option<usize>,
    label: &str,
) -> io::Result<Detection> {
    let case = Case {
        metric: Metric::Rtt,
        wait: m.throughput_wait(),
        size: RTT_SIZE,
    };
    let mut times = Vec::with_capacity(DETECT_TRIALS);
    for _ in 0..DETECT_TRIALS {
        let Started {
            mut child,
            mut link,
            keep,
        } = start(m, &case, opts, peer_cpu)?;
        // A detection slower than this is a hang: the watchdog ends the run.
        let dog = Watchdog::arm(label.to_string(), None, Duration::from_secs(20));
        let msg = vec![0u8; case.size];
        let mut back = vec![0u8; case.size];
        for _ in 0..100 {
            link.send(&msg)?;
            link.recv(&mut back)?;
        }
        let pid = child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            .ok_or_else(|| io::Error::other("the peer has no process id"))?;
        // The peer now waits for our next message; we wait for its.
        rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
        let t0 = Instant::now();
        let got = link.recv(&mut back);
        let dt = t0.elapsed();
        drop(dog);
        // It died of the kill: "ended badly" is expected here.
        let _ = child.finish(Duration::from_secs(5));
        drop(link);
        drop(keep);
        match got {
            Err(_) => times.push(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX)),
            Ok(()) => {
                return Err(io::Error::other(
                    "a message arrived from a peer killed before sending it",
                ));
            }
        }
    }
    times.sort_unstable();
    Ok(Detection {
        mechanism: m.name().to_string(),
        wait: case.wait,
        trials: times.len() as u32,
        median_ns: times[times.len() / 2],
        max_ns: times[times.len() - 1],
    })
}

fn throughput_figure(name: &str, case: &Case, n: u64, secs: f64) -> Figure {
    let mut f = Figure::new(name, case.metric, case.wait, case.size as u64);
    f.iterations = n;
    let mps = n as f64 / secs.max(1e-9);
    f.msgs_per_sec = Some(mps);
    f.bytes_per_sec = Some(mps * case.size as f64);
    f
}

/// A peer started and connected for one case.
struct Started {
    child: peer::Peer,
    link: Box<dyn harness::Link>,
    /// Dropped when the case ends.
    keep: Vec<Box<dyn std::any::Any>>,
}

/// Sets `case` up, starts the peer and connects to it (10 s at most for
/// each step).
fn start(
    m: &dyn Mechanism,
    case: &Case,
    opts: &Options,
    peer_cpu: Option<usize>,
) -> io::Result<Started> {
    let Setup {
        fds,
        args,
        connect,
        keep,
    } = m
        .setup(case)
        .map_err(|e| io::Error::other(format!("setup: {e}")))?;
    let mut child = peer::spawn(&opts.launcher, m.name(), case, peer_cpu, fds, &args)?;
    let limit = Duration::from_secs(10);
    let link = match connect(Instant::now() + limit) {
        Ok(l) => l,
        Err(e) => {
            // The peer's own complaint says more than ours.
            return Err(match child.wait_ready(Duration::from_millis(500)) {
                Err(pe) => pe,
                Ok(()) => e,
            });
        }
    };
    child.wait_ready(limit)?;
    Ok(Started { child, link, keep })
}

/// Measures one round of one case of a mechanism between this process
/// and a fresh peer.
fn measure(
    m: &dyn Mechanism,
    case: &Case,
    opts: &Options,
    peer_cpu: Option<usize>,
    warm: Duration,
    budget: Duration,
    label: &str,
) -> io::Result<Round> {
    let Started {
        mut child,
        mut link,
        keep,
    } = start(m, case, opts, peer_cpu)?;
    let dog = Watchdog::arm(
        label.to_string(),
        child.id(),
        warm + budget + Duration::from_secs(30),
    );
    let round = match case.metric {
        Metric::Rtt => Round::Rtt(harness::rtt(link.as_mut(), case.size, warm, budget)?),
        Metric::Throughput => {
            let (msgs, secs) = harness::throughput(link.as_mut(), case.size, warm, budget)?;
            Round::Throughput { msgs, secs }
        }
    };
    child.finish(Duration::from_secs(5))?;
    drop(dog);
    drop(link);
    drop(keep);
    Ok(round)
}

/// Fills `ratio_to_floor`: rtt medians over the floor's median, throughput
/// over memcpy's bandwidth at the same size.
pub fn add_ratios(figures: &mut [Figure]) {
    let floor = figures
        .iter()
        .find(|f| f.mechanism == "floor" && f.metric == Metric::Rtt)
        .and_then(|f| f.median_ns);
    let memcpy: Vec<(u64, f64)> = figures
        .iter()
        .filter(|f| f.mechanism == memcpy::NAME)
        .filter_map(|f| Some((f.size_bytes, f.bytes_per_sec?)))
        .collect();
    for f in figures.iter_mut() {
        f.ratio_to_floor = match f.metric {
            Metric::Rtt => match (f.median_ns, floor) {
                (Some(m), Some(fl)) if fl > 0 => Some(m as f64 / fl as f64),
                _ => None,
            },
            Metric::Throughput => {
                let base = memcpy.iter().find(|(s, _)| *s == f.size_bytes).map(|x| x.1);
                match (f.bytes_per_sec, base) {
                    (Some(b), Some(m)) if m > 0.0 => Some(b / m),
                    _ => None,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("64B"), Ok(64));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert!(parse_size("4").is_err());
        assert!(parse_size("65M").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999999K").is_err());
        assert_eq!(human_size(65536), "64 KiB");
        assert_eq!(human_size(1000), "1000 B");
    }

    #[test]
    fn only_keeps_the_baselines_and_rejects_unknown_names() {
        let only = vec!["tcp".to_string(), "pipe".to_string()];
        assert_eq!(
            select(Some(&only), false).unwrap(),
            ["floor", "memcpy", "pipe", "tcp"]
        );
        let shm = vec!["shm-block".to_string()];
        assert_eq!(
            select(Some(&shm), false).unwrap(),
            ["floor", "bare", "memcpy", "shm-block"]
        );
        let bad = vec!["carrier-pigeon".to_string()];
        let e = select(Some(&bad), false).unwrap_err();
        assert!(
            e.contains("carrier-pigeon") && e.contains("unix-seqpacket"),
            "{e}"
        );
        let all = select(None, false).unwrap();
        assert!(all.iter().all(|n| !PEER_NAMES.contains(n)));
        assert_eq!(all.len(), 17);
        if PEERS_BUILT {
            let with = select(None, true).unwrap();
            assert!(with.contains(&"iceoryx2") && with.contains(&"ipc-channel"));
        } else {
            assert!(select(None, true).unwrap_err().contains("--features peers"));
            let ice = vec!["iceoryx2".to_string()];
            assert!(
                select(Some(&ice), false)
                    .unwrap_err()
                    .contains("--features peers")
            );
        }
    }

    #[test]
    fn sizes_are_fitted_to_each_mechanism() {
        let mut skipped = Vec::new();
        let names = select(None, false).unwrap();
        let sizes = [64, 4096, 1 << 20];
        let planned = plan(&names, &sizes, &mut skipped);
        let has = |m: &str, metric: Metric, size: usize| {
            planned
                .iter()
                .any(|p| p.name == m && p.case.metric == metric && p.case.size == size)
        };
        // Streams take every size; a memcpy per size.
        for s in sizes {
            assert!(has("pipe", Metric::Throughput, s) && has("memcpy", Metric::Throughput, s));
        }
        // Payload-less baselines: round trips only, skipped with a reason.
        assert!(!has("futex", Metric::Throughput, 64) && has("futex", Metric::Rtt, RTT_SIZE));
        assert!(
            skipped
                .iter()
                .any(|k| k.mechanism == "eventfd" && k.reason.contains("counter"))
        );
        // The floor is spin-only.
        assert!(
            planned
                .iter()
                .all(|p| p.name != "floor" || p.case.wait == Wait::Poll)
        );
        // A datagram must fit the send buffer: 1 MiB does not by default.
        let wmem: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
            .map_or(212_992, |s| s.trim().parse().unwrap());
        assert_eq!(
            has("unix-dgram", Metric::Throughput, 1 << 20),
            (1 << 20) + 1024 <= wmem
        );
        // System V messages stop at kernel.msgmax.
        let msgmax: usize = std::fs::read_to_string("/proc/sys/kernel/msgmax")
            .map_or(8192, |s| s.trim().parse().unwrap());
        assert_eq!(has("sysv", Metric::Throughput, 4096), 4096 <= msgmax);
        assert_eq!(
            has("sysv", Metric::Throughput, 1 << 20),
            (1 << 20) <= msgmax
        );
        for k in &skipped {
            assert!(!k.reason.is_empty());
        }
    }

    #[test]
    fn ratios_use_floor_and_memcpy() {
        let mut floor = Figure::new("floor", Metric::Rtt, Wait::Poll, 64);
        floor.median_ns = Some(200);
        let mut pipe = Figure::new("pipe", Metric::Rtt, Wait::Block, 64);
        pipe.median_ns = Some(5000);
        let mut mc = Figure::new("memcpy", Metric::Throughput, Wait::Poll, 4096);
        mc.bytes_per_sec = Some(1e10);
        let mut tp = Figure::new("pipe", Metric::Throughput, Wait::Block, 4096);
        tp.bytes_per_sec = Some(2.5e9);
        let mut lone = Figure::new("pipe", Metric::Throughput, Wait::Block, 64);
        lone.bytes_per_sec = Some(1e8);
        let mut v = vec![floor, pipe, mc, tp, lone];
        add_ratios(&mut v);
        assert_eq!(v[0].ratio_to_floor, Some(1.0));
        assert_eq!(v[1].ratio_to_floor, Some(25.0));
        assert_eq!(v[2].ratio_to_floor, Some(1.0));
        assert_eq!(v[3].ratio_to_floor, Some(0.25));
        assert_eq!(v[4].ratio_to_floor, None);
    }
}
