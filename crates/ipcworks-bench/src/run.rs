//! The run: plans every case, measures them one after another between two
//! pinned processes, and gathers [`Results`].

use std::io;
use std::time::{Duration, Instant, SystemTime};

use crate::harness::{self, Case, Mechanism};
use crate::mechs::{self, memcpy};
use crate::peer::Launcher;
use crate::schema::{
    Detection, Figure, Metric, Pinning, Results, RunConfig, SCHEMA_VERSION, Skipped,
};
use crate::system::{self, Placement};
use crate::{clients, fanin};

mod case;
mod plan;

pub use crate::harness::RTT_SIZE;
pub use crate::units::{human_size, parse_size};
use case::{Round, detect, measure, throughput_figure};
pub use plan::{PEER_NAMES, PEERS_BUILT, label, select};
use plan::{Planned, Who, plan};

/// Round-trip sizes of `--rtt-sizes` in `--full`.
pub const FULL_RTT_SIZES: &[usize] = &[32, 64, 4096, 65536, 1 << 20];
/// The loan curve: round trips at these sizes in every run for the rows
/// of [`LOAN_CURVE`], whatever `--rtt-sizes` says.
pub const LOAN_SIZES: &[usize] = &[64, 4096, 65536, 1 << 20];
/// The rows of the loan curve: the channel zero-copy (`shm-loan`) and
/// copying (`shm-spin`), iceoryx2 zero-copy (`iceoryx2-loan`, with
/// `--peers`).
pub const LOAN_CURVE: &[&str] = &["shm-loan", "shm-spin", "iceoryx2-loan"];
/// Throughput sizes when `--sizes` is not given.
pub const DEFAULT_SIZES: &[usize] = &[64, 1024, 4096, 65536, 1 << 20];
/// Default total time budget.
pub const DEFAULT_TIME: Duration = Duration::from_secs(45);
/// Total time budget of `--full` (about three times as many cases).
pub const FULL_TIME: Duration = Duration::from_secs(150);
/// Shortest time one case gets per round, whatever the budget.
pub const MIN_CASE_TIME: Duration = Duration::from_millis(10);
/// Rounds when `--rounds` is not given (see [`Options::rounds`]). Five,
/// not three: a ratio to `bare` is the median of the rounds' own ratios,
/// and on the 2-core virtual machine this was measured on, slow spells of
/// a few seconds (every cross-core hand-off 3-4x dearer) hit two rounds of
/// three in some runs, which moved the median; of five, two may be hit.
/// The time budget is the same (each round gets less of it).
pub const DEFAULT_ROUNDS: u32 = 5;
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
    /// Round-trip message sizes in bytes (`--rtt-sizes`; `[RTT_SIZE]` by
    /// default). The rows of the loan curve also get [`LOAN_SIZES`].
    pub rtt_sizes: Vec<usize>,
    /// Fan-in (`--fan-in`): 1, 2 and 4 producer processes into one
    /// receiver, for those of `shm`, `queue`, `mq` and `unix` that run
    /// ([`crate::fanin`]).
    pub fan_in: bool,
    /// The socket server's echo with 1, 10 and 100 clients (`--clients`,
    /// [`crate::clients`]).
    pub clients: bool,
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
    /// through the whole plan in turn (all cases, then all again; within
    /// a round, a size's cases side by side: `plan::round_order`). A load
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
    /// A round gave no figure (a round trip without samples): `per_round`
    /// no longer lines up with the other cases' rounds, so it is not
    /// published (and `x bare` falls back to the plain ratio).
    gap: bool,
    /// Set when a round failed: the case is skipped from then on.
    failed: bool,
    /// The hand-off probes before and after each round that had both
    /// ([`crate::probe`]): published only when every round had them (as
    /// many as `per_round`), so that they line up with the rounds.
    probes: Vec<[f64; 2]>,
}

impl Gathered {
    /// Adds a round, with the hand-off probes taken just before and just
    /// after it (`None`: a probe could not say).
    fn add(&mut self, round: Round, size: usize, probes: [Option<f64>; 2]) {
        match round {
            Round::Rtt(rec) => {
                if let Some(s) = rec.summary() {
                    self.per_round.push(s.median_ns as f64);
                    self.rounds.push(s);
                } else {
                    self.gap = true;
                    return;
                }
            }
            Round::Throughput { msgs, secs } => {
                self.per_round
                    .push(msgs as f64 * size as f64 / secs.max(1e-9));
                self.msgs += msgs;
                self.secs += secs;
            }
        }
        if let [Some(a), Some(b)] = probes {
            self.probes.push([a, b]);
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
        if self.per_round.len() > 1 && !self.gap {
            f.per_round = self.per_round.clone();
            if self.probes.len() == self.per_round.len() {
                f.per_round_hand_off_ns = self.probes.clone();
            }
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

/// Runs everything `opts` asks for; `progress` is called before each case
/// and once at the end (with `done == total`).
pub fn run(opts: &Options, progress: &mut dyn FnMut(Step<'_>)) -> Result<Results, String> {
    let names = select(opts.only.as_deref(), opts.peers)?;
    let start = Start::now();
    let pinning = system::plan(opts.placement);
    let allowed = system::allowed_cpus();
    let mut skipped = Vec::new();
    let planned = plan(&names, opts, &mut skipped);
    let rounds = opts.rounds.clamp(1, MAX_ROUNDS) as usize;
    let (warm, budget) = crate::stats::share(opts.time, planned.len() * rounds, MIN_CASE_TIME);
    let plan = Plan {
        opts,
        planned: &planned,
        rounds,
        warm,
        budget,
        peer_cpu: pinning.peer_cpu,
        parent_cpu: pinning.parent_cpu,
        allowed: &allowed,
    };
    pin_self(&pinning)?;
    let detectors = detectors(&names);
    let total = planned.len() * rounds + detectors.len();
    let mut figures = measure_rounds(&plan, total, &mut skipped, progress);
    let detection = detect_all(&plan, &detectors, total, &mut skipped, progress);
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
    let found = Found {
        figures,
        skipped,
        detection,
    };
    Ok(start.results(opts, &names, rounds, pinning, found))
}

/// What a run found: figures, cases skipped (and why), dead-peer
/// detection times.
struct Found {
    figures: Vec<Figure>,
    skipped: Vec<Skipped>,
    detection: Vec<Detection>,
}

/// When a run started, and the machine's load then, for its results.
struct Start {
    at: Instant,
    unix_s: u64,
    load: [f64; 3],
    cpu: Option<system::CpuTimes>,
}

impl Start {
    fn now() -> Start {
        Start {
            at: Instant::now(),
            unix_s: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            load: system::load_avg(),
            cpu: system::cpu_times(),
        }
    }

    /// The results of a run that started here, the load measured again now.
    fn results(
        self,
        opts: &Options,
        names: &[&'static str],
        rounds: usize,
        pinning: Pinning,
        found: Found,
    ) -> Results {
        let load_end = system::load_avg();
        let cpu = self.cpu.zip(system::cpu_times());
        Results {
            schema_version: SCHEMA_VERSION,
            tool: format!("ipcworks-bench {}", env!("CARGO_PKG_VERSION")),
            started_unix_s: self.unix_s,
            wall_s: self.at.elapsed().as_secs_f64(),
            system: system::describe(pinning, self.load, load_end, cpu),
            config: RunConfig {
                time_budget_s: opts.time.as_secs_f64(),
                mechanisms: names.iter().map(|s| s.to_string()).collect(),
                sizes: opts.sizes.iter().map(|&s| s as u64).collect(),
                rtt_size: RTT_SIZE as u64,
                rounds: rounds as u32,
            },
            figures: found.figures,
            skipped: found.skipped,
            detection: found.detection,
        }
    }
}

/// What every measurement of a run shares.
struct Plan<'a> {
    opts: &'a Options,
    planned: &'a [Planned],
    rounds: usize,
    /// Warm-up and measuring time of one case in one round.
    warm: Duration,
    budget: Duration,
    peer_cpu: Option<usize>,
    /// Where this process is pinned (`None`: not pinned).
    parent_cpu: Option<usize>,
    /// The cores this process may run on when not pinned.
    allowed: &'a [usize],
}

/// Pins this process where the placement says; two processes on one
/// core make polling loops yield instead of spinning.
fn pin_self(pinning: &Pinning) -> Result<(), String> {
    let shared_core = pinning.parent_cpu.is_some() && pinning.parent_cpu == pinning.peer_cpu;
    harness::set_yield(shared_core);
    if let Some(cpu) = pinning.parent_cpu {
        system::pin(cpu).map_err(|e| format!("pinning to core {cpu}: {e}"))?;
    }
    Ok(())
}

/// The mechanisms among `names` whose dead-peer detection is measured.
fn detectors(names: &[&'static str]) -> Vec<&'static dyn Mechanism> {
    names
        .iter()
        .filter_map(|n| mechs::find(n))
        .filter(|m| m.detects_death())
        .collect()
}

/// Every round of every planned case, the rounds in turn (all cases, then
/// all again, each round in [`plan::round_order`]); a case whose round
/// fails is skipped from then on. Returns
/// the figures of the cases that never failed.
fn measure_rounds(
    plan: &Plan<'_>,
    total: usize,
    skipped: &mut Vec<Skipped>,
    progress: &mut dyn FnMut(Step<'_>),
) -> Vec<Figure> {
    let (planned, rounds) = (plan.planned, plan.rounds);
    let mut gathered: Vec<Gathered> = planned.iter().map(|_| Gathered::default()).collect();
    let order = plan::round_order(planned);
    // One probe between two cases: the one after a case is the one before
    // the next. With one round there are no pairs of rounds to judge.
    let probe = || {
        (rounds > 1)
            .then(|| crate::probe::hand_off_ns(plan.parent_cpu, plan.peer_cpu))
            .flatten()
    };
    let mut before = probe();
    for round in 0..rounds {
        for (k, &i) in order.iter().enumerate() {
            let p = &planned[i];
            if gathered[i].failed {
                continue;
            }
            let label = p.label();
            let shown = match rounds {
                1 => label.clone(),
                _ => format!("{label}, round {}/{rounds}", round + 1),
            };
            progress(Step {
                done: round * planned.len() + k,
                total,
                label: &shown,
            });
            let measured = measure_round(p, plan, &label);
            let after = probe();
            let probes = [before, after];
            before = after;
            match measured {
                Ok(r) => gathered[i].add(r, p.case.size, probes),
                Err(e) => {
                    gathered[i].failed = true;
                    let why = match rounds {
                        1 => e.to_string(),
                        _ => format!("round {}: {e}", round + 1),
                    };
                    skipped.push(p.skip(why));
                }
            }
        }
    }
    planned
        .iter()
        .zip(&gathered)
        .filter(|(_, g)| !g.failed)
        .filter_map(|(p, g)| {
            let Some(mut f) = g.figure(p.name, &p.case) else {
                // Nothing crossed in any round: said, never silently left out.
                skipped.push(p.skip(
                    "no message crossed in the time measured (a busy machine? give it more --time)"
                        .into(),
                ));
                return None;
            };
            f.producers = p.producers();
            f.clients = p.clients();
            Some(f)
        })
        .collect()
}

/// One round of one planned case: memcpy in this process, a mechanism
/// between this process and a fresh peer, or several processes unpinned
/// (fan-in, the server's clients).
fn measure_round(p: &Planned, plan: &Plan<'_>, label: &str) -> io::Result<Round> {
    if !p.unpinned() {
        return measure_pinned(p, plan, label);
    }
    if plan.parent_cpu.is_some() {
        system::unpin(plan.allowed);
    }
    let (o, size) = (plan.opts, p.case.size);
    let r = match p.who {
        Who::FanIn(n) => fanin::measure(p.name, size, n, &o.launcher, plan.warm, plan.budget),
        Who::Server(n) => clients::measure(n, &o.launcher, plan.warm, plan.budget),
        _ => unreachable!("only fan-in and server cases run unpinned"),
    };
    if let Some(cpu) = plan.parent_cpu {
        system::pin(cpu)?;
    }
    let (msgs, secs) = r?;
    Ok(Round::Throughput { msgs, secs })
}

/// One round of a case between two processes, each on its core.
fn measure_pinned(p: &Planned, plan: &Plan<'_>, label: &str) -> io::Result<Round> {
    match p.who {
        Who::Local => {
            let (msgs, secs) = memcpy::measure(p.case.size, plan.warm, plan.budget);
            Ok(Round::Throughput { msgs, secs })
        }
        Who::Remote(m) => measure(
            m,
            &p.case,
            plan.opts,
            plan.peer_cpu,
            plan.warm,
            plan.budget,
            label,
        ),
        Who::FanIn(_) | Who::Server(_) => unreachable!("fan-in and server cases run unpinned"),
    }
}

/// The dead-peer detection of each of `detectors`, after the rounds; one
/// that fails is listed as skipped.
fn detect_all(
    plan: &Plan<'_>,
    detectors: &[&'static dyn Mechanism],
    total: usize,
    skipped: &mut Vec<Skipped>,
    progress: &mut dyn FnMut(Step<'_>),
) -> Vec<Detection> {
    let mut detection = Vec::new();
    for (i, m) in detectors.iter().enumerate() {
        let label = format!("{} dead-peer detection", m.name());
        progress(Step {
            done: plan.planned.len() * plan.rounds + i,
            total,
            label: &label,
        });
        match detect(*m, plan.opts, plan.peer_cpu, &label) {
            Ok(d) => detection.push(d),
            Err(e) => skipped.push(Skipped {
                mechanism: m.name().to_string(),
                metric: Metric::Rtt,
                wait: m.throughput_wait(),
                size_bytes: RTT_SIZE as u64,
                reason: format!("dead-peer detection: {e}"),
                producers: None,
                clients: None,
            }),
        }
    }
    detection
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
    use crate::schema::Wait;

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

    /// A round trip's rounds are published one by one only while every
    /// round gave a figure: a round without samples would shift the
    /// others against the `bare` rounds they are paired with.
    #[test]
    fn per_round_is_published_only_without_a_gap() {
        let case = Case {
            metric: Metric::Rtt,
            wait: Wait::Poll,
            size: 64,
        };
        let round = |ns: &[u64]| {
            let mut r = crate::stats::Recorder::new();
            ns.iter().for_each(|&n| r.record(n));
            case::Round::Rtt(r)
        };
        let probes = [Some(120.0), Some(125.0)];
        let mut whole = Gathered::default();
        for ns in [100, 200, 300] {
            whole.add(round(&[ns]), 64, probes);
        }
        let f = whole.figure("shm-spin", &case).unwrap();
        assert_eq!(f.per_round.len(), 3);
        assert!((f.per_round[1] - 200.0).abs() < 1.0, "{:?}", f.per_round);
        assert_eq!(f.per_round_hand_off_ns, vec![[120.0, 125.0]; 3]);
        let mut gapped = Gathered::default();
        gapped.add(round(&[100]), 64, probes);
        gapped.add(round(&[]), 64, probes);
        gapped.add(round(&[300]), 64, probes);
        let f = gapped.figure("shm-spin", &case).unwrap();
        assert!(f.per_round.is_empty(), "{:?}", f.per_round);
        assert!(f.per_round_hand_off_ns.is_empty());
        assert!(f.median_ns.is_some(), "the figure itself is still there");
    }

    /// The rounds go out with their probes only when every round has both
    /// (else the probes would not line up with `per_round`).
    #[test]
    fn probes_are_published_only_when_every_round_has_both() {
        let case = Case {
            metric: Metric::Throughput,
            wait: Wait::Poll,
            size: 64,
        };
        let round = || case::Round::Throughput {
            msgs: 10,
            secs: 1.0,
        };
        let mut g = Gathered::default();
        g.add(round(), 64, [Some(120.0), Some(130.0)]);
        g.add(round(), 64, [Some(130.0), None]);
        let f = g.figure("shm-spin", &case).unwrap();
        assert_eq!(f.per_round.len(), 2);
        assert!(f.per_round_hand_off_ns.is_empty());
    }
}
