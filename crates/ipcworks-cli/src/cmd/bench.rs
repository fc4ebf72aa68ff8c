//! `ipcworks bench`: every mechanism measured side by side between two real
//! processes; a table, `results.json` and `index.html`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ipcworks_bench::run as bench_run;
use ipcworks_bench::{Options, Placement, Results, compare, html, peer, table};

/// Arguments of `ipcworks bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ipcworks bench                              # everything, about a minute
  ipcworks bench --only pipe,unix,tcp --time 10
  ipcworks bench --sizes 4K,1M --placement same
  ipcworks bench --rtt-sizes 32,64,4K,64K,1M      # round trips at several sizes
  ipcworks bench --only shm,queue,mq,unix --fan-in   # 1, 2, 4 producers into one receiver
  ipcworks bench --clients --only unix            # the socket server with 1, 10, 100 clients
  ipcworks bench --full                           # everything above, a few minutes
  ipcworks bench --compare old/results.json bench-report/results.json --fail-over 20
  cargo run --release --features peers -- bench --peers   # with iceoryx2, ipc-channel

Every mechanism runs between this process and a copy of it started as the
peer, each pinned to its own core (--placement cross). Round trips are 64 B,
measured with blocking calls (block) and with non-blocking calls in a loop
(poll). `floor` (a cache line bounced between two cores) and `memcpy` are
always measured: round trips are shown as multiples of the floor, throughput
as a fraction of memcpy bandwidth. `bare` is a reference too: a bare ring
with nothing but the cache lines a message needs and its two copies, the
least any mechanism can cost at each size (the channel's safety costs its
distance from `bare`). \"x bare\" is a figure over bare's at the same size:
for a round trip its median / bare's median (1.10x: 10% slower than bare,
lower is better); for throughput its bytes/s / bare's bytes/s (0.60x: 60% of
bare's pace, higher is better), taken round by round (the median of each
round's ratio to bare's same round: a slow spell of the machine in one round
does not move it; a pair whose halves ran while cross-core hand-offs had
changed speed, as a probe before and after each case shows, is left out, and
the table says so). What a mechanism adds to bare is about the same number of
nanoseconds whether a cross-core hand-off is quick or slow, so a round trip's
x bare is largest where the floor is lowest: read it beside the floor.

shm-batch is shm-spin's stream sent with Sender::send_batch: up to 32
messages published with one store and one look at whether the receiver
sleeps (shm-spin's rows stay one send per message); streams only, up to
4 KiB, read against bare like shm-spin.

shm-loan is the channel's zero-copy API: each side loans a slot, writes the
message's first and last cache line in place and publishes it; the other
reads the same two lines by reference (recv_ref). Its round trips run at
64 B, 4 KiB, 64 KiB and 1 MiB in every run, beside the copying shm-spin (and
iceoryx2-loan, iceoryx2's loan API used the same way, with --peers): the
loan curve. Its Growth line is each row's round trip over its own 64 B one,
paired round by round like x bare. --fan-in adds 1, 2 and 4 producer
processes into one receiver (shm, queue, mq, unix: one connection per
producer into one server), 64 B and 4 KiB, total messages/s, default waits,
nobody pinned; every message is counted per producer and a lost or repeated
one fails the case. --clients adds the socket server's echo (ipcworks serve
--echo over a Unix socket) with 1, 10 and 100 clients at once, echoes/s.

shm-async and shm-async-park are the channel awaited on tokio (a
current-thread runtime at each end): spinning briefly then parking, as shm
does, and parking at once; unix-async is tokio's own UnixStream beside
them.

Mechanisms: floor, bare, shm-spin, shm-loan, shm, shm-block, shm-async,
shm-async-park, futex, eventfd, memcpy, pipe, fifo, unix, unix-dgram,
unix-seqpacket, unix-async, tcp, mq, sysv, queue;
with --peers: iceoryx2, iceoryx2-loan, ipc-channel; in a build with --features
zenoh: zenoh (two Zenoh peers over loopback TCP)")]
pub struct Args {
    /// Only these mechanisms (comma-separated); floor and memcpy are always added, bare with any shm flavour.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Option<Vec<String>>,
    /// Throughput message sizes (comma-separated: 64,1K,4K,64K,1M); `none` for round trips only.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    sizes: Option<Vec<String>>,
    /// Round-trip message sizes for every mechanism (comma-separated: 32,64,4K,64K,1M; default 64).
    /// The loan curve (shm-loan, shm-spin, iceoryx2-loan) runs at 64,4K,64K,1M whatever this says.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    rtt_sizes: Option<Vec<String>>,
    /// Fan-in: 1, 2 and 4 producer processes into one receiver (shm, queue, mq, unix; 64 B, 4 KiB).
    #[arg(long)]
    fan_in: bool,
    /// The socket server's echo throughput with 1, 10 and 100 clients.
    #[arg(long)]
    clients: bool,
    /// Everything: --rtt-sizes 32,64,4K,64K,1M, --fan-in, --clients, --peers when built with
    /// them, every throughput size; the time budget grows to match (--time still overrides it).
    #[arg(long)]
    full: bool,
    /// Time budget for all measurements, in seconds (setup comes on top; default 45, 150 with --full).
    #[arg(long, value_name = "S")]
    time: Option<f64>,
    /// Run every case this many times, interleaved (all cases, then all
    /// again; a size's cases side by side), sharing its time: load bursts
    /// then hit every mechanism alike.
    #[arg(long, value_name = "N", default_value_t = bench_run::DEFAULT_ROUNDS)]
    rounds: u32,
    /// Cores: cross (one each), same (both on one), none (not pinned).
    #[arg(long, value_name = "WHERE", default_value = "cross")]
    placement: String,
    /// Folder for results.json and index.html.
    #[arg(long, value_name = "DIR", default_value = "bench-report")]
    out: PathBuf,
    /// Also measure iceoryx2 and ipc-channel (needs a build with `--features peers`).
    #[arg(long)]
    peers: bool,
    /// Compare two results.json files instead of running.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    compare: Option<Vec<PathBuf>>,
    /// With --compare: exit 1 when a figure is worse by more than PCT percent
    /// (figures worse by more than 10% are flagged either way).
    #[arg(long, value_name = "PCT")]
    fail_over: Option<f64>,
    /// With --compare: compare ratios to the floor/memcpy rather than raw figures.
    #[arg(long)]
    by_ratio: bool,
}

/// Runs `ipcworks bench`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A copy of this binary started by the harness as the peer.
    if let Some(code) = ipcworks_bench::run_if_peer() {
        return Ok(code);
    }
    if let Some(files) = &args.compare {
        return run_compare(&files[0], &files[1], args.fail_over, args.by_ratio);
    }
    if args.fail_over.is_some() || args.by_ratio {
        bail!("--fail-over and --by-ratio go with --compare OLD NEW");
    }
    let time = args.time.unwrap_or(if args.full {
        bench_run::FULL_TIME.as_secs_f64()
    } else {
        bench_run::DEFAULT_TIME.as_secs_f64()
    });
    if !(time.is_finite() && time > 0.0 && time <= 3600.0) {
        bail!("--time {time}: expected seconds between 0 and 3600");
    }
    if !(1..=bench_run::MAX_ROUNDS).contains(&args.rounds) {
        bail!(
            "--rounds {}: expected 1 to {}",
            args.rounds,
            bench_run::MAX_ROUNDS
        );
    }
    let placement: Placement = args.placement.parse().map_err(anyhow::Error::msg)?;
    let sizes = match &args.sizes {
        None => bench_run::DEFAULT_SIZES.to_vec(),
        Some(v) if v.len() == 1 && v[0] == "none" => Vec::new(),
        Some(v) => size_list(v)?,
    };
    let rtt_sizes = match &args.rtt_sizes {
        None if args.full => bench_run::FULL_RTT_SIZES.to_vec(),
        None => vec![bench_run::RTT_SIZE],
        Some(v) => size_list(v)?,
    };
    let opts = Options {
        only: args.only.clone(),
        sizes,
        rtt_sizes,
        fan_in: args.fan_in || args.full,
        clients: args.clients || args.full,
        time: Duration::from_secs_f64(time),
        placement,
        peers: args.peers || (args.full && bench_run::PEERS_BUILT),
        launcher: peer::Launcher::current_exe(&["bench"]).context("finding this program")?,
        rounds: args.rounds,
    };
    // Fail on a bad --only before spending a minute.
    bench_run::select(opts.only.as_deref(), opts.peers).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed:>4} {msg}")
            .expect("valid template"),
    );
    let results = ipcworks_bench::run(&opts, &mut |step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(step.label.to_string());
    })
    .map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();

    print!("{}", table::render(&results));
    let json = args.out.join("results.json");
    let page = args.out.join("index.html");
    std::fs::write(&json, results.to_json())
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(&page, html::render(&results))
        .with_context(|| format!("writing {}", page.display()))?;
    println!();
    println!("wall time {:.1} s", results.wall_s);
    println!("results: {}", json.display());
    println!("report:  {}", page.display());
    Ok(ExitCode::SUCCESS)
}

/// Sizes like `64,4K,1M`, ascending, each once.
fn size_list(v: &[String]) -> anyhow::Result<Vec<usize>> {
    let mut s = v
        .iter()
        .map(|x| bench_run::parse_size(x))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    s.sort_unstable();
    s.dedup();
    Ok(s)
}

fn load(path: &PathBuf) -> anyhow::Result<Results> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Results::from_json(&text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("parsing {}", path.display()))
}

fn run_compare(
    old: &PathBuf,
    new: &PathBuf,
    fail_over: Option<f64>,
    by_ratio: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(p) = fail_over
        && !(p.is_finite() && p >= 0.0)
    {
        bail!("--fail-over {p}: expected a percentage of 0 or more");
    }
    let threshold = fail_over.unwrap_or(10.0);
    let c = compare::compare(&load(old)?, &load(new)?, threshold, by_ratio);
    print!("{}", compare::render(&c, threshold));
    if fail_over.is_some() && c.regressions() > 0 {
        eprintln!(
            "ipcworks: {} figure(s) worse by more than {threshold}%",
            c.regressions()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
