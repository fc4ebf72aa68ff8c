//! The ipcworks benchmark harness, behind `ipcworks bench`.
//!
//! Every mechanism runs between two real processes: the harness (the
//! parent) re-executes a binary as the *peer* ([`peer::Launcher`], the
//! environment variable [`peer::PEER_ENV`]), hands it descriptors and names,
//! and pins the two to different cores (`--placement cross`, the default;
//! `same`, `none`). For each mechanism it measures
//!
//! - **round trips** of a 64-byte message, twice: `block` (blocking calls,
//!   what a default user gets) and `poll` (non-blocking calls retried in a
//!   loop, nobody ever sleeps); median, p99, p99.9 and max from an
//!   HdrHistogram, after a warm-up;
//! - **one-way throughput** (messages/s and bytes/s) for 64 B, 1 KiB,
//!   4 KiB, 64 KiB and 1 MiB, where the mechanism allows the size (the
//!   reason is recorded where it does not);
//! - **the loan curve**: round trips of `shm-loan` (the channel's
//!   zero-copy `loan`/`recv_ref`, writing and reading only a message's
//!   first and last cache line), `shm-spin` (copying) and, with `--peers`,
//!   `iceoryx2-loan`, at [`run::LOAN_SIZES`] (64 B to 1 MiB).
//!
//! On request: round trips of every mechanism at other sizes
//! (`--rtt-sizes`, [`run::Options::rtt_sizes`]); **fan-in**, 1, 2 and 4
//! producer processes into one receiver, exactly once ([`fanin`],
//! `--fan-in`); **the socket server's echo** with 1, 10 and 100 clients
//! ([`clients`], `--clients`). `--full` asks for all of it.
//!
//! Every case runs in rounds (`--rounds`, 5 by default): the run goes
//! through all cases, then through all of them again, each time with a
//! fresh peer, and a figure combines its rounds with each counting alike:
//! a round trip's median, p99 and p99.9 are the median of the rounds' own,
//! its max the largest; throughput is all messages over all seconds (the
//! rounds get equal time). Pooling round-trip samples instead would let a
//! round that ran fast (the host briefly placing the two CPUs as SMT
//! siblings) outweigh the others by its sample count. A load burst on a shared
//! machine then hits every mechanism alike instead of whichever ran at
//! that moment, so the ratios within a run hold steadier; each round's own
//! figure is kept (`per_round`) and the table shows how far they lie apart.
//!
//! Each round of a case gets an equal share of the time budget (`--time`), a fifth of
//! it warm-up; iteration counts follow from the time: round trips and
//! streamed messages go on until the share is spent (at least
//! [`harness::MIN_RTT_SAMPLES`] round trips), and memcpy is calibrated from
//! its warm-up into batches of about a millisecond ([`stats::calibrate`]).
//! With `--placement same` polling loops yield the core (`sched_yield`)
//! instead of spinning, since the peer needs that core to answer.
//!
//! Baselines, measured in the same run: `floor` (two processes bouncing one
//! cache line, spinning), `bare` (a bare ring: the cache lines a message
//! needs and its two copies, nothing else — the least any mechanism can
//! cost at each size; see [`mechs::bare`]), `futex` (the same line plus
//! `FUTEX_WAKE`/`FUTEX_WAIT`), `eventfd` and `memcpy` (single-core copy
//! bandwidth).
//!
//! # Ratios
//!
//! `ratio_to_floor` of a round trip is its median divided by the floor's
//! median (lower is better, 1.0 is the physical limit). Of a throughput
//! figure it is its bytes/s divided by memcpy's bytes/s at the same size
//! (higher is better; a mechanism that copies once cannot pass about 1.0).
//!
//! "x bare" (the table and the report, not stored: [`table::x_bare`]) is a
//! figure over `bare`'s at the same size in the same run: a round trip's
//! median over bare's (1.10x is 10 % slower than bare), a throughput's
//! bytes/s over bare's (0.60x is 60 % of bare's pace), taken round by
//! round (the median of round 1 over bare's round 1, round 2 over round 2,
//! …), so that a slow spell of the machine in one round does not move it.
//! A pair whose two halves ran in different states of the machine is left
//! out: a probe ([`probe`]: two threads bouncing a cache line for about
//! half a millisecond) runs before and after every case, and the pairs whose
//! four probes disagree by more than 1.5x do not count, when at least two
//! pairs remain. The table says how many it left out.
//!
//! # `results.json`, schema version 1
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "tool": "ipcworks-bench 0.1.0",
//!   "started_unix_s": 1764150000, "wall_s": 58.2,
//!   "system": { "cpu_model", "cores", "kernel", "virtual_machine",
//!               "pinning": { "placement": "cross|same|none",
//!                            "parent_cpu", "peer_cpu" (core numbers, null when not pinned), "note" },
//!               "load_avg_start": [1m, 5m, 15m], "load_avg_end": [..],
//!               "other_cpu": 0..1, "steal": 0..1 (optional: absent in older files), "busy": bool },
//!   "config": { "time_budget_s", "mechanisms": [..], "sizes": [..], "rtt_size": 64,
//!               "rounds": N (1 when absent: older files) },
//!   "figures": [ {
//!       "mechanism": "floor|bare|futex|eventfd|memcpy|shm-spin|shm-batch|shm-loan|shm|shm-block|shm-async|
//!                     shm-async-park|queue|mq|sysv|pipe|fifo|unix|unix-dgram|unix-seqpacket|
//!                     unix-async|tcp|iceoryx2|iceoryx2-loan|
//!                     ipc-channel|unix-server|zenoh",
//!       "metric": "rtt|throughput", "wait": "block|poll", "size_bytes": 64, "iterations": N,
//!       rtt only:        "median_ns", "p99_ns", "p999_ns", "max_ns"   (integers)
//!       throughput only: "msgs_per_sec", "bytes_per_sec"             (numbers)
//!       "ratio_to_floor": number (absent when the baseline is missing)
//!       "per_round": [ each round's median_ns (rtt) or bytes_per_sec (throughput) ]
//!                    (absent with one round and in older files)
//!       "per_round_hand_off_ns": [ [before, after] for each round: the hand-off
//!                    probe just before and just after it, ns (absent with
//!                    "per_round", when a probe could not say, and in older files) ]
//!       "producers": N (fan-in only: producer processes into one receiver; the
//!                    figure is their total)
//!       "clients": N   (the server's echo only: clients at once; echoes of all)
//!   } ],
//!   "skipped": [ { "mechanism", "metric", "wait", "size_bytes", "reason",
//!                  "producers", "clients" (as in figures, when set) } ],
//!   "detection": [ { "mechanism", "wait", "trials", "median_ns", "max_ns" } ]
//!       (optional: absent in files from before it existed)
//! }
//! ```
//!
//! Round trips carry their size (`size_bytes`): 64 B ([`run::RTT_SIZE`],
//! `config.rtt_size`) for every mechanism, others for the loan curve and
//! `--rtt-sizes`. A fan-in figure (`producers`) is a throughput figure of
//! the mechanism named (`shm`, `queue`, `mq`, `unix`), `wait: "block"`
//! (the default waits), its `msgs_per_sec` the total of all producers; a
//! server figure (`clients`) is `unix-server`'s echoes per second. Both
//! fields are absent everywhere else, and a figure is matched across runs
//! by mechanism, metric, wait, size, producers and clients
//! ([`schema::Figure::key`]), so files written before they existed still
//! compare.
//!
//! `detection`: for mechanisms that can tell a dead peer (the channel's
//! flavours; a Unix stream as the kernel's reference), the time from
//! killing the peer with SIGKILL while the parent waits in a receive to
//! that receive's error, over `trials` kills.
//!
//! `memcpy` figures are throughput with `wait: "poll"` (one process, no
//! waiting at all). Round-trip `iterations` is the number of samples in the
//! histogram; throughput `iterations` the number of messages timed.
//!
//! Readers refuse another `schema_version` ([`schema::Results::from_json`]).
//! `other_cpu` is the share of the machine's CPU time (all cores) that
//! processes other than the run's own used while it ran (`/proc/stat`'s
//! busy time minus this process's and its reaped peers' CPU time), `steal`
//! the share the hypervisor gave to other guests. `busy` is true when
//! `other_cpu` reached 10 % or `steal` 5 % (without `/proc/stat`: when the
//! 1-minute load average at the start reached half the core count). Older
//! files judged by the load average at the start or the end; the one at
//! the end counts the run's own two processes, so long runs always looked
//! busy.
//!
//! # Looking at the report
//!
//! `index.html` is checked in a real browser by `tests/browser.rs`: a tiny
//! run is rendered and loaded in headless Chromium (Debian's `chromium`,
//! installed by `.ci/run`), which must lay out every chart's marks and
//! fetch nothing. Without Chromium that test says in one line how to install
//! it and passes (with `CI=true` it fails); `IPCWORKS_CHROMIUM` names
//! another Chromium-based browser. `scripts/report-screenshot.sh
//! [DIR]` takes a screenshot of `DIR/index.html` by hand and copies the two
//! charts out as standalone SVG files.
//!
//! # Adding a mechanism
//!
//! One file in `src/mechs/`: a type implementing [`harness::Mechanism`]
//! (`setup` makes the resources in the parent and returns the parent's
//! [`harness::Link`] plus descriptors/arguments for the peer; `peer` opens
//! the other end in the child; `supports` skips cases with a reason), then
//! one line in [`mechs::ALL`].
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod clients;
pub mod compare;
pub mod fanin;
pub mod harness;
pub mod html;
pub mod html_more;
pub mod mechs;
pub mod peer;
pub mod peer_entry;
pub mod probe;
pub mod run;
pub mod schema;
pub mod stats;
pub mod svg;
pub mod system;
pub mod table;
pub mod units;

pub use peer_entry::{run_if_peer, run_if_peer_status};
pub use run::{Options, run};
pub use schema::{Figure, Metric, Results, Skipped, Wait};
pub use system::Placement;
