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
distance from `bare`).

Mechanisms: floor, bare, futex, eventfd, memcpy, pipe, fifo, unix, unix-dgram,
unix-seqpacket, tcp, mq, sysv, queue; with --peers: iceoryx2, ipc-channel; in a
build with --features zenoh: zenoh (two Zenoh peers over loopback TCP)")]
pub struct Args {
    /// Only these mechanisms (comma-separated); floor and memcpy are always added, bare with any shm flavour.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Option<Vec<String>>,
    /// Throughput message sizes (comma-separated: 64,1K,4K,64K,1M); `none` for round trips only.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    sizes: Option<Vec<String>>,
    /// Time budget for all measurements, in seconds (setup comes on top).
    #[arg(long, value_name = "S", default_value_t = 45.0)]
    time: f64,
    /// Run every case this many times, interleaved (all cases, then all
    /// again), sharing its time: load bursts then hit every mechanism alike.
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
    if let Some(code) = peer::run_if_peer() {
        return Ok(code);
    }
    if let Some(files) = &args.compare {
        return run_compare(&files[0], &files[1], args.fail_over, args.by_ratio);
    }
    if args.fail_over.is_some() || args.by_ratio {
        bail!("--fail-over and --by-ratio go with --compare OLD NEW");
    }
    if !(args.time.is_finite() && args.time > 0.0 && args.time <= 3600.0) {
        bail!("--time {}: expected seconds between 0 and 3600", args.time);
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
        Some(v) => {
            let mut s = v
                .iter()
                .map(|x| bench_run::parse_size(x))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            s.sort_unstable();
            s.dedup();
            s
        }
    };
    let opts = Options {
        only: args.only.clone(),
        sizes,
        time: Duration::from_secs_f64(args.time),
        placement,
        peers: args.peers,
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
