//! The `results.json` schema (version [`SCHEMA_VERSION`]); see the crate
//! docs for the field list.

use serde::{Deserialize, Serialize};

/// Version of the `results.json` layout. Bumped when a field changes
/// meaning or disappears; new optional fields keep the version.
pub const SCHEMA_VERSION: u32 = 1;

/// What a figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Round trip: a message to the peer and its echo back.
    Rtt,
    /// One-way stream of messages, parent to peer.
    Throughput,
}

/// How the two processes wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Blocking calls: a process with nothing to do sleeps in the kernel.
    Block,
    /// Non-blocking calls retried in a loop: nobody ever sleeps.
    Poll,
}

impl Metric {
    /// `rtt` or `throughput`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Rtt => "rtt",
            Metric::Throughput => "throughput",
        }
    }
}

impl Wait {
    /// `block` or `poll`.
    pub fn as_str(self) -> &'static str {
        match self {
            Wait::Block => "block",
            Wait::Poll => "poll",
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Mechanism name (`floor`, `pipe`, `shm-spin`, …).
    pub mechanism: String,
    /// `rtt` or `throughput`.
    pub metric: Metric,
    /// `block` or `poll`.
    pub wait: Wait,
    /// Message size in bytes.
    pub size_bytes: u64,
    /// Messages measured (after warm-up).
    pub iterations: u64,
    /// Round trip, median (rtt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_ns: Option<u64>,
    /// Round trip, 99th percentile (rtt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<u64>,
    /// Round trip, 99.9th percentile (rtt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_ns: Option<u64>,
    /// Round trip, slowest seen (rtt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ns: Option<u64>,
    /// Messages per second (throughput only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgs_per_sec: Option<f64>,
    /// Bytes per second (throughput only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<f64>,
    /// rtt: `median_ns / floor median_ns` (≥ 1, lower is better);
    /// throughput: `bytes_per_sec / memcpy bytes_per_sec` at the same size
    /// (≤ 1 usually, higher is better). Absent when the baseline was not
    /// measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_to_floor: Option<f64>,
    /// With more than one round ([`RunConfig::rounds`]): each round's own
    /// figure, in run order — rtt: its median in ns; throughput: its
    /// bytes/s. How far they lie apart shows how steady the machine was.
    /// The figure itself pools all rounds (absent with one round and in
    /// older files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_round: Vec<f64>,
    /// Beside `per_round`: the cross-core hand-off probe's figure just
    /// before and just after each round, in ns ([`crate::probe`]). Rounds
    /// of two figures whose probes disagree ran in different states of
    /// the machine, and "x bare" leaves that pair out. Absent when
    /// `per_round` is, when a probe could not say (one core, pinned
    /// together) and in older files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_round_hand_off_ns: Vec<[f64; 2]>,
    /// Fan-in (`--fan-in`): how many producer processes sent into the one
    /// receiver; the figure is their total (absent in every other figure
    /// and in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producers: Option<u32>,
    /// The socket server's echo (`--clients`): how many clients it served
    /// at once; the figure is the echoes of all of them together (absent
    /// in every other figure and in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<u32>,
}

/// What identifies a figure across runs: mechanism, metric, wait, size,
/// producers, clients.
pub type Key = (String, Metric, Wait, u64, Option<u32>, Option<u32>);

impl Figure {
    /// The identity used to match figures across runs (a fan-in or server
    /// figure never matches a plain one of the same mechanism and size).
    pub fn key(&self) -> Key {
        (
            self.mechanism.clone(),
            self.metric,
            self.wait,
            self.size_bytes,
            self.producers,
            self.clients,
        )
    }

    /// A blank figure for `case`; the runner fills the numbers.
    pub fn new(mechanism: &str, metric: Metric, wait: Wait, size_bytes: u64) -> Figure {
        Figure {
            mechanism: mechanism.to_string(),
            metric,
            wait,
            size_bytes,
            iterations: 0,
            median_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            msgs_per_sec: None,
            bytes_per_sec: None,
            ratio_to_floor: None,
            per_round: Vec::new(),
            per_round_hand_off_ns: Vec::new(),
            producers: None,
            clients: None,
        }
    }

    /// Whether this is a plain figure: one sender, one receiver (not a
    /// fan-in or server figure).
    pub fn is_plain(&self) -> bool {
        self.producers.is_none() && self.clients.is_none()
    }

    /// How far this figure's rounds lie apart: the largest round over the
    /// smallest, minus one (0.04 = the rounds differ by 4 %). `None` with
    /// fewer than two rounds.
    pub fn spread(&self) -> Option<f64> {
        self.round_range().map(|(lo, hi)| hi / lo - 1.0)
    }

    /// The smallest and the largest of this figure's rounds. `None` with
    /// fewer than two rounds, or a round of zero or less.
    pub fn round_range(&self) -> Option<(f64, f64)> {
        if self.per_round.len() < 2 {
            return None;
        }
        crate::stats::positive_range(self.per_round.iter().copied())
    }
}

/// A figure that could not be measured, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Mechanism name.
    pub mechanism: String,
    /// `rtt` or `throughput`.
    pub metric: Metric,
    /// `block` or `poll`.
    pub wait: Wait,
    /// Message size in bytes.
    pub size_bytes: u64,
    /// Why, in a sentence (a limit, an error from the kernel, …).
    pub reason: String,
    /// Fan-in: producer processes (absent otherwise and in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producers: Option<u32>,
    /// Server echo: clients (absent otherwise and in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<u32>,
}

/// Which cores the two processes ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    /// `cross`, `same` or `none` (what was asked).
    pub placement: String,
    /// Core of the measuring (parent) process, when pinned.
    pub parent_cpu: Option<usize>,
    /// Core of the peer (child) process, when pinned.
    pub peer_cpu: Option<usize>,
    /// What happened, in words (e.g. "only 1 core: not pinned").
    pub note: String,
}

/// The machine the figures come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// `uname -r` and `uname -v`.
    pub kernel: String,
    /// Whether /proc/cpuinfo shows the `hypervisor` flag (a virtual machine).
    pub virtual_machine: bool,
    /// Cores used.
    pub pinning: Pinning,
    /// 1, 5 and 15 minute load averages when the run started.
    pub load_avg_start: [f64; 3],
    /// … and when it ended.
    pub load_avg_end: [f64; 3],
    /// Share of the machine's CPU time (all cores, 0 to 1) that processes
    /// other than this run's used while it ran (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpu: Option<f64>,
    /// Share of the machine's CPU time the hypervisor gave to others
    /// (steal time, 0 to 1) while the run ran (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal: Option<f64>,
    /// Expect noisy figures: during the run other processes used at least
    /// 10 % of the CPU time or the hypervisor stole at least 5 % (when
    /// /proc/stat cannot tell: the 1-minute load average at the start was
    /// at least half the core count). Files from before `other_cpu`
    /// existed judged by the load average at the start or the end, which
    /// counts the run itself.
    pub busy: bool,
}

/// What the run was asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Time budget for all measurements, seconds.
    pub time_budget_s: f64,
    /// Mechanisms run, in order.
    pub mechanisms: Vec<String>,
    /// Throughput message sizes, bytes.
    pub sizes: Vec<u64>,
    /// Round-trip message size, bytes.
    pub rtt_size: u64,
    /// Rounds each case was split into (1 in older files).
    #[serde(default = "one_round")]
    pub rounds: u32,
}

fn one_round() -> u32 {
    1
}

/// A whole run: the content of `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// `ipcworks-bench` and its version.
    pub tool: String,
    /// Start of the run, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// The machine.
    pub system: SystemInfo,
    /// What was asked.
    pub config: RunConfig,
    /// Every measured figure.
    pub figures: Vec<Figure>,
    /// Every figure that could not be measured, with the reason.
    pub skipped: Vec<Skipped>,
    /// Dead-peer detection: how long a blocked receive took to report a
    /// peer killed with SIGKILL (mechanisms that can tell; absent in older
    /// files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detection: Vec<Detection>,
}

/// How long a receiver waiting for a message took to learn that its peer
/// was killed (`kill -9`): from the kill to the receive's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Mechanism name.
    pub mechanism: String,
    /// How the receiver waited.
    pub wait: Wait,
    /// Kills measured.
    pub trials: u32,
    /// Median time from the kill to the error.
    pub median_ns: u64,
    /// Slowest detection seen.
    pub max_ns: u64,
}

impl Results {
    /// Parses `results.json`, refusing other schema versions.
    pub fn from_json(text: &str) -> Result<Results, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let ver = v.get("schema_version").and_then(|x| x.as_u64());
        if ver != Some(u64::from(SCHEMA_VERSION)) {
            return Err(format!(
                "schema_version {} is not supported (this build reads {SCHEMA_VERSION})",
                ver.map_or("missing".to_string(), |v| v.to_string())
            ));
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialize")
    }

    /// The plain figure (one sender, one receiver) with this identity, if
    /// measured.
    pub fn find(&self, mechanism: &str, metric: Metric, wait: Wait, size: u64) -> Option<&Figure> {
        self.figures.iter().find(|f| {
            f.is_plain()
                && f.mechanism == mechanism
                && f.metric == metric
                && f.wait == wait
                && f.size_bytes == size
        })
    }
}
