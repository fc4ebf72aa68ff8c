//! Which cases a run measures: the mechanisms `--only` selects (the
//! baselines every ratio needs come along), each one's cases as far as
//! it supports them, and the labels people see.

use super::{LOAN_CURVE, LOAN_SIZES, Options};
use crate::harness::{Case, Mechanism};
use crate::mechs::{self, memcpy};
use crate::schema::{Metric, Skipped, Wait};
use crate::units::human_size;
use crate::{clients, fanin};

/// Where a case runs.
pub(super) enum Who {
    /// In this process (memcpy).
    Local,
    /// Between this process and a peer.
    Remote(&'static dyn Mechanism),
    /// Fan-in: this many producer processes into one receiver here
    /// ([`crate::fanin`]).
    FanIn(u32),
    /// The socket server here, this many clients in a peer
    /// ([`crate::clients`]).
    Server(u32),
}

/// One case of the plan.
pub(super) struct Planned {
    pub(super) name: &'static str,
    pub(super) who: Who,
    pub(super) case: Case,
}

impl Planned {
    /// Fan-in producers, if a fan-in case.
    pub(super) fn producers(&self) -> Option<u32> {
        match self.who {
            Who::FanIn(n) => Some(n),
            _ => None,
        }
    }

    /// Server clients, if a server case.
    pub(super) fn clients(&self) -> Option<u32> {
        match self.who {
            Who::Server(n) => Some(n),
            _ => None,
        }
    }

    /// The case's label for people.
    pub(super) fn label(&self) -> String {
        match self.who {
            Who::FanIn(n) => fanin::label(self.name, n, self.case.size),
            Who::Server(n) => clients::label(n),
            _ => label(self.name, &self.case),
        }
    }

    /// Whether the case runs without pinning (several processes, the
    /// scheduler's choice of cores).
    pub(super) fn unpinned(&self) -> bool {
        matches!(self.who, Who::FanIn(_) | Who::Server(_))
    }
}

/// Names of other projects' IPC measured with `--peers`.
pub const PEER_NAMES: &[&str] = &["iceoryx2", "iceoryx2-loan", "ipc-channel"];

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

/// The round-trip sizes of `name`: `rtt_sizes`, and for the rows of the
/// loan curve ([`LOAN_CURVE`]) also [`LOAN_SIZES`], in ascending order.
fn rtt_sizes_of(name: &str, rtt_sizes: &[usize]) -> Vec<usize> {
    let mut v = rtt_sizes.to_vec();
    if LOAN_CURVE.contains(&name) {
        v.extend_from_slice(LOAN_SIZES);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// The cases of `names` (memcpy at each size; a mechanism's round trips
/// at each round-trip size and throughput at each size; fan-in and the
/// server's clients when asked), those a mechanism does not support
/// listed in `skipped` with its reason.
pub(super) fn plan(
    names: &[&'static str],
    opts: &Options,
    skipped: &mut Vec<Skipped>,
) -> Vec<Planned> {
    let sizes = &opts.sizes[..];
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
        let mut cases = Vec::new();
        for size in rtt_sizes_of(name, &opts.rtt_sizes) {
            for wait in [Wait::Block, Wait::Poll] {
                cases.push(Case {
                    metric: Metric::Rtt,
                    wait,
                    size,
                });
            }
        }
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
    if opts.fan_in {
        plan_fan_in(names, &mut out, skipped);
    }
    if opts.clients {
        for &n in clients::CLIENTS {
            out.push(Planned {
                name: clients::NAME,
                who: Who::Server(n),
                case: fanin::case(clients::SIZE),
            });
        }
    }
    out
}

/// The order a round runs `planned` in (indices into it): the cases a
/// ratio pairs side by side. Cases of one metric and size go together,
/// in run order, so `bare`'s case at a size is followed at once by the
/// shared-memory flavours' cases at that size (and `memcpy`'s stream by
/// the streams it is read against). "x bare" divides one round's figure
/// by bare's in the same round. On the 2-core virtual machine this was
/// written on, slow spells (every cross-core hand-off three to four times
/// dearer for a few seconds) hit one half of a pair and not the other
/// while the halves ran seconds apart, with eight or more other cases
/// between them. The unpinned cases (fan-in, the server's clients) come
/// last, in plan order: their ratios pair among themselves.
pub(super) fn round_order(planned: &[Planned]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..planned.len()).collect();
    // Stable: run order within a group.
    order.sort_by_key(|&i| {
        let p = &planned[i];
        if p.unpinned() {
            (true, false, 0)
        } else {
            (false, p.case.metric == Metric::Throughput, p.case.size)
        }
    });
    order
}

/// Fan-in cases of the mechanisms among `names` that have them.
fn plan_fan_in(names: &[&'static str], out: &mut Vec<Planned>, skipped: &mut Vec<Skipped>) {
    for &kind in fanin::KINDS {
        let Some(&name) = names.iter().find(|n| **n == kind) else {
            continue;
        };
        for &size in fanin::SIZES {
            for &n in fanin::PRODUCERS {
                let p = Planned {
                    name,
                    who: Who::FanIn(n),
                    case: fanin::case(size),
                };
                match fanin::supports(kind, size) {
                    Ok(()) => out.push(p),
                    Err(reason) => skipped.push(p.skip(reason)),
                }
            }
        }
    }
}

impl Planned {
    /// This case, not measured, and why.
    pub(super) fn skip(&self, reason: String) -> Skipped {
        Skipped {
            producers: self.producers(),
            clients: self.clients(),
            ..skip(self.name, &self.case, reason)
        }
    }
}

/// A case that is not measured, and why.
pub(super) fn skip(name: &str, case: &Case, reason: String) -> Skipped {
    Skipped {
        mechanism: name.to_string(),
        metric: case.metric,
        wait: case.wait,
        size_bytes: case.size as u64,
        reason,
        producers: None,
        clients: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RTT_SIZE;

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
        // 22 rows, and the zenoh row when that feature is built.
        assert_eq!(all.len(), 22 + usize::from(cfg!(feature = "zenoh")));
        assert_eq!(all.contains(&"zenoh"), cfg!(feature = "zenoh"));
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
        let opts = Options {
            only: None,
            sizes: sizes.to_vec(),
            rtt_sizes: vec![RTT_SIZE],
            fan_in: false,
            clients: false,
            time: std::time::Duration::from_secs(1),
            placement: crate::Placement::Cross,
            peers: false,
            launcher: crate::peer::Launcher::current_exe(&[]).unwrap(),
            rounds: 1,
        };
        let planned = plan(&names, &opts, &mut skipped);
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
        // The loan curve: shm-loan and shm-spin round trips at every loan
        // size, whatever the round-trip sizes; other rows at 64 B only.
        for &size in LOAN_SIZES {
            for m in ["shm-loan", "shm-spin"] {
                assert!(has(m, Metric::Rtt, size), "{m} {size}");
            }
        }
        assert!(!has("pipe", Metric::Rtt, 4096) && has("pipe", Metric::Rtt, 64));
        assert!(!has("shm-loan", Metric::Throughput, 64));
        assert!(
            planned
                .iter()
                .all(|p| p.producers().is_none() && p.clients().is_none())
        );
        // --rtt-sizes: every row at each size; the payload-less ones say why not.
        let mut skipped = Vec::new();
        let opts = Options {
            rtt_sizes: vec![32, 4096],
            fan_in: true,
            clients: true,
            ..opts
        };
        let planned = plan(&names, &opts, &mut skipped);
        let has = |m: &str, metric: Metric, size: usize| {
            planned
                .iter()
                .any(|p| p.name == m && p.case.metric == metric && p.case.size == size)
        };
        assert!(has("pipe", Metric::Rtt, 32) && has("pipe", Metric::Rtt, 4096));
        assert!(!has("pipe", Metric::Rtt, 64) && has("shm-loan", Metric::Rtt, 64));
        assert!(!has("floor", Metric::Rtt, 4096));
        assert!(
            skipped
                .iter()
                .any(|k| k.mechanism == "floor" && k.size_bytes == 4096)
        );
        // Fan-in: 4 kinds x 2 sizes x 3 producer counts; the server: 3.
        let fan: Vec<_> = planned.iter().filter_map(|p| p.producers()).collect();
        assert_eq!(fan.len(), 4 * 2 * 3);
        let cl: Vec<_> = planned.iter().filter_map(|p| p.clients()).collect();
        assert_eq!(cl, [1, 10, 100]);
    }

    /// A round runs every case once, and the cases "x bare" pairs side by
    /// side: bare's case at a metric and size, then shm-spin's.
    #[test]
    fn a_round_runs_the_cases_a_ratio_pairs_side_by_side() {
        let names = select(None, false).unwrap();
        let opts = Options {
            only: None,
            sizes: vec![64, 1024, 4096, 1 << 16, 1 << 20],
            rtt_sizes: vec![RTT_SIZE],
            fan_in: true,
            clients: true,
            time: std::time::Duration::from_secs(1),
            placement: crate::Placement::Cross,
            peers: false,
            launcher: crate::peer::Launcher::current_exe(&[]).unwrap(),
            rounds: 1,
        };
        let planned = plan(&names, &opts, &mut Vec::new());
        let order = round_order(&planned);
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..planned.len()).collect::<Vec<_>>(),
            "not a permutation"
        );
        let at = |name: &str, metric: Metric, size: usize| {
            order
                .iter()
                .position(|&i| {
                    let p = &planned[i];
                    p.name == name
                        && p.case.metric == metric
                        && p.case.size == size
                        && p.case.wait == Wait::Poll
                        && !p.unpinned()
                })
                .unwrap_or_else(|| panic!("{name} {metric:?} {size}"))
        };
        for size in [64, 1024, 4096, 1 << 16, 1 << 20] {
            let (b, s) = (
                at("bare", Metric::Throughput, size),
                at("shm-spin", Metric::Throughput, size),
            );
            assert_eq!(s, b + 1, "stream at {size}: bare at {b}, shm-spin at {s}");
        }
        let (b, s) = (
            at("bare", Metric::Rtt, RTT_SIZE),
            at("shm-spin", Metric::Rtt, RTT_SIZE),
        );
        assert_eq!(s, b + 1, "round trip: bare at {b}, shm-spin at {s}");
        // The unpinned cases last, in plan order (1, 2, 4 producers of a
        // mechanism and size in a row).
        let first = order.iter().position(|&i| planned[i].unpinned()).unwrap();
        assert!(order[first..].iter().all(|&i| planned[i].unpinned()));
        assert!(order[first..].windows(2).all(|w| w[0] < w[1]));
    }
}
