//! What machine this is, and pinning processes to cores
//! (`sched_setaffinity`).

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

use crate::schema::{Pinning, SystemInfo};

/// Where the two processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Each on its own core (the default; needs two cores).
    Cross,
    /// Both on one core: every hand-off is a context switch.
    Same,
    /// Not pinned: the scheduler decides.
    None,
}

impl std::str::FromStr for Placement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cross" => Ok(Placement::Cross),
            "same" => Ok(Placement::Same),
            "none" => Ok(Placement::None),
            _ => Err(format!("placement {s:?}: expected cross, same or none")),
        }
    }
}

impl Placement {
    /// `cross`, `same` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Cross => "cross",
            Placement::Same => "same",
            Placement::None => "none",
        }
    }
}

/// The cores this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Chooses the cores for `placement` among the allowed ones.
pub fn plan(placement: Placement) -> Pinning {
    let cpus = allowed_cpus();
    let mk = |p: Option<usize>, c: Option<usize>, note: String| Pinning {
        placement: placement.as_str().to_string(),
        parent_cpu: p,
        peer_cpu: c,
        note,
    };
    match placement {
        Placement::None => mk(None, None, "not pinned (--placement none)".into()),
        _ if cpus.is_empty() => mk(None, None, "affinity unknown: not pinned".into()),
        Placement::Same => mk(
            Some(cpus[0]),
            Some(cpus[0]),
            format!(
                "both processes on core {} (polling loops yield the core)",
                cpus[0]
            ),
        ),
        Placement::Cross if cpus.len() < 2 => mk(
            None,
            None,
            "only 1 core available: not pinned (cross-core needs 2)".into(),
        ),
        Placement::Cross => mk(
            Some(cpus[0]),
            Some(cpus[1]),
            format!("parent on core {}, peer on core {}", cpus[0], cpus[1]),
        ),
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(std::io::Error::from)
}

/// Restores the calling thread's affinity to `cpus`.
pub fn unpin(cpus: &[usize]) {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    let _ = sched_setaffinity(None, &set);
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
pub fn load_avg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [0.0; 3];
    for (slot, word) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = word.parse().unwrap_or(0.0);
    }
    out
}

/// CPU time counters, in clock ticks: the whole machine's from
/// `/proc/stat`, and this process's plus its waited-for children's (the
/// peers) from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Machine: user, nice, system, irq and softirq time of every CPU.
    pub busy: u64,
    /// Machine: time the hypervisor ran something else on our CPUs.
    pub steal: u64,
    /// Machine: busy, idle, iowait and steal.
    pub total: u64,
    /// This process and its children that were waited for.
    pub own: u64,
}

/// Reads [`CpuTimes`] now (`None` when `/proc` cannot tell).
pub fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_times(&stat, &me)
}

/// [`cpu_times`] from the texts of `/proc/stat` and `/proc/self/stat`.
pub fn parse_cpu_times(stat: &str, me: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal [guest guest_nice,
    // already counted in user and nice]
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    let steal = at(7);
    let total = busy + at(3) + at(4) + steal;
    // From the state (field 3) on: utime, stime, cutime, cstime are
    // fields 14 to 17.
    let mut times = ipcworks::__bench::stat_fields(me.as_bytes())?.skip(11);
    let own = (0..4)
        .map(|_| times.next()?.parse::<i64>().ok())
        .sum::<Option<i64>>()?;
    Some(CpuTimes {
        busy,
        steal,
        total,
        own: u64::try_from(own).unwrap_or(0),
    })
}

/// Between two [`CpuTimes`]: the share of the machine's CPU time that
/// other processes used, and the share the hypervisor stole (each 0 to 1).
/// `None` when no time passed.
pub fn others_and_steal(start: CpuTimes, end: CpuTimes) -> Option<(f64, f64)> {
    let total = end.total.checked_sub(start.total).filter(|&t| t > 0)? as f64;
    let busy = end.busy.saturating_sub(start.busy);
    let own = end.own.saturating_sub(start.own);
    let steal = end.steal.saturating_sub(start.steal);
    Some((
        (busy.saturating_sub(own) as f64 / total).clamp(0.0, 1.0),
        (steal as f64 / total).clamp(0.0, 1.0),
    ))
}

/// Other processes' share of the CPU time at which a run counts as busy.
pub const BUSY_OTHERS: f64 = 0.10;
/// Stolen share of the CPU time at which a run counts as busy.
pub const BUSY_STEAL: f64 = 0.05;

/// CPU model, core count, kernel and the hypervisor flag; pinning, load
/// averages and the CPU time counters at start and end come from the
/// runner.
pub fn describe(
    pinning: Pinning,
    load_start: [f64; 3],
    load_end: [f64; 3],
    cpu: Option<(CpuTimes, CpuTimes)>,
) -> SystemInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let virtual_machine = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|w| w == "hypervisor"));
    let uts = rustix::system::uname();
    let kernel = format!(
        "{} {}",
        uts.release().to_string_lossy(),
        uts.version().to_string_lossy()
    );
    let cores = allowed_cpus().len().max(1);
    // What others used (and the hypervisor stole) during the run decides.
    // The load averages only stand in when /proc/stat cannot tell: the one
    // at the end counts this run's own two processes, and the one at the
    // start trails the last minute (a run just before this one counts).
    let shares = cpu.and_then(|(a, b)| others_and_steal(a, b));
    let busy = match shares {
        Some((o, st)) => o >= BUSY_OTHERS || st >= BUSY_STEAL,
        None => load_start[0] >= cores as f64 * 0.5,
    };
    SystemInfo {
        other_cpu: shares.map(|s| s.0),
        steal: shares.map(|s| s.1),
        cpu_model,
        cores,
        kernel,
        virtual_machine,
        pinning,
        load_avg_start: load_start,
        load_avg_end: load_end,
        busy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str =
        "cpu  1000 50 300 5000 20 0 30 40 7 0\ncpu0 500 25 150 2500 10 0 15 20 7 0\n";

    #[test]
    fn cpu_times_from_proc_texts() {
        // A command name with spaces and parentheses.
        let me = "42 (a (b) c) S 1 42 42 0 -1 4194304 10 0 0 0 11 12 13 14 20 0 1 0 5 100 1";
        let t = parse_cpu_times(STAT, me).unwrap();
        assert_eq!(
            t,
            CpuTimes {
                busy: 1000 + 50 + 300 + 30,
                steal: 40,
                total: 1380 + 5000 + 20 + 40,
                own: 11 + 12 + 13 + 14,
            }
        );
        assert!(parse_cpu_times("intr 1 2\n", me).is_none());
        assert!(parse_cpu_times(STAT, "42 (x) S 1").is_none());
        assert!(parse_cpu_times("cpu 1 2 x\n", me).is_none());
    }

    #[test]
    fn shares_of_others_and_steal() {
        let a = CpuTimes {
            busy: 100,
            steal: 10,
            total: 1000,
            own: 50,
        };
        // 1000 ticks pass: 600 busy, 400 of them ours; 50 stolen.
        let b = CpuTimes {
            busy: 700,
            steal: 60,
            total: 2000,
            own: 450,
        };
        let (o, st) = others_and_steal(a, b).unwrap();
        assert!((o - 0.2).abs() < 1e-9 && (st - 0.05).abs() < 1e-9);
        // More of ours than the machine counted (tick rounding): 0, not
        // negative.
        let c = CpuTimes { own: 2000, ..b };
        assert_eq!(others_and_steal(a, c).unwrap().0, 0.0);
        assert!(others_and_steal(a, a).is_none());
        // A real reading works and stays in range.
        let now = cpu_times().expect("/proc/stat and /proc/self/stat");
        assert!(now.busy <= now.total && now.steal <= now.total);
    }
}
