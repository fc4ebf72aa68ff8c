//! One case between this process and a fresh peer: starting and
//! connecting it, measuring one round, and timing how fast a killed peer
//! is noticed.

use std::io;
use std::time::{Duration, Instant};

use super::{Options, RTT_SIZE};
use crate::harness::{self, Case, Mechanism, Setup};
use crate::peer::{self, Watchdog};
use crate::schema::{Detection, Figure, Metric};
use crate::stats::Recorder;

/// What one round of one case measured.
pub(super) enum Round {
    /// The round trips' times.
    Rtt(Recorder),
    /// Messages through, in how many seconds.
    Throughput { msgs: u64, secs: f64 },
}

/// Kills measured per mechanism for the dead-peer detection figure.
const DETECT_TRIALS: usize = 5;

/// Dead-peer detection: the parent exchanges a few round trips with a
/// fresh peer, kills it with SIGKILL while the peer waits for the next
/// message, then waits in a blocking receive for the peer's answer and
/// times how long the receive takes to fail. Repeated
/// [`DETECT_TRIALS`] times.
pub(super) fn detect(
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

/// A throughput figure of `n` messages in `secs` seconds.
pub(super) fn throughput_figure(name: &str, case: &Case, n: u64, secs: f64) -> Figure {
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
pub(super) fn measure(
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
