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

/// CPU model, core count, kernel and the hypervisor flag; pinning and load
/// averages are filled by the runner.
pub fn describe(pinning: Pinning, load_start: [f64; 3], load_end: [f64; 3]) -> SystemInfo {
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
    let busy = load_start[0].max(load_end[0]) >= cores as f64 * 0.5;
    SystemInfo {
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
