//! `ipcworks recv ENDPOINT`: receive messages from any endpoint and print
//! each as a line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ipcworks::Error;
use ipcworks::endpoint::{DynReceiver, Endpoint, Options, open_receiver};

/// Arguments of `ipcworks recv`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ipcworks recv fifo:/tmp/f                  # creates the FIFO (0600) if missing, prints lines until every writer closed, removes it if it created it
  ipcworks recv unix:/tmp/s --count 3        # listens (socket file 0600), prints 3 messages, exits
  ipcworks recv tcp:127.0.0.1:7000 --timeout 5   # exit code 124 if 5 s pass first
  ipcworks recv tcp:127.0.0.1:0              # any free port: stderr says `listening on tcp:127.0.0.1:PORT`
  ipcworks recv mq:jobs -n 1 -t 2s            # -n: --count, -t: --timeout; mq:jobs must exist
  ipcworks recv queue:jobs --create          # make the queue if missing (it persists until `ipcworks rm`)
  ipcworks recv sysv:42 --type -3 -n 1       # the lowest type up to 3 first, as msgrcv(2) does
  ipcworks recv - --binary                   # length-prefixed frames from stdin

Byte streams (fifo:, unix:, tcp:, -) carry one line per message unless --binary.
unix:/tcp: — recv listens and reads one client at a time, each to its end; stderr
says where (`ipcworks recv: listening on ADDR`, with the real port for port 0).")]
pub struct Args {
    /// Where to receive from: shm:NAME, queue:NAME, mq:NAME, sysv:KEY,
    /// fifo:PATH, unix:PATH, tcp:HOST:PORT or - (stdin).
    endpoint: String,
    /// Stop after N messages (default: until the stream ends).
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Give up after DURATION in total (`5`, `0.5`, `200ms`, `1m`; exit
    /// code 124).
    #[arg(short = 't', long, value_name = "DURATION", value_parser = super::duration)]
    timeout: Option<Duration>,
    /// Message type to receive (sysv:), as msgrcv(2) selects: 0 any, T > 0
    /// the first of type T, -T the lowest type up to T first.
    #[arg(long = "type", default_value_t = 0, allow_negative_numbers = true)]
    msg_type: i64,
    /// Byte streams carry length-prefixed frames instead of lines.
    #[arg(long)]
    binary: bool,
    /// Largest message in bytes.
    #[arg(long)]
    max_message: Option<usize>,
    /// Create the queue (mq:, queue:, sysv:) if it does not exist; it
    /// persists, as queues do. Without it a missing queue is an error, so
    /// a typo leaves nothing behind.
    #[arg(long)]
    create: bool,
}

/// Opens `ep` for receiving; a missing queue's error says how to make it.
pub(crate) fn open(ep: &Endpoint, opts: &Options) -> anyhow::Result<Box<dyn DynReceiver>> {
    let queue = matches!(ep, Endpoint::Mq(_) | Endpoint::Queue(_) | Endpoint::Sysv(_));
    open_receiver(ep, opts)
        .map_err(|e| match e {
            Error::NotFound { .. } if queue && !opts.create_queue => {
                anyhow::anyhow!("{e} (--create makes it; or send to it first, which creates it)")
            }
            e => e.into(),
        })
        .with_context(|| format!("opening {ep} for receiving"))
}

/// For an endpoint whose file this process is about to create (a FIFO
/// that does not exist yet, a Unix socket a receiver binds), arranges for
/// the file to be removed if Ctrl-C or SIGTERM ends the process. Call
/// before opening; `listens` says whether this side binds a Unix socket.
pub(crate) fn remove_on_signal(ep: &Endpoint, listens: bool) {
    use ipcworks::registry::{self, Kind};
    let (path, kind) = match ep {
        Endpoint::Fifo(p) if std::fs::symlink_metadata(p).is_err() => (p, Kind::Fifo),
        Endpoint::Unix(p) if listens => (p, Kind::UnixSocket),
        _ => return,
    };
    // The file, and its record in the registry.
    let _ = ipcworks::sys::signal::remove_on_terminate(&registry::removals(
        kind,
        &registry::path_name(path),
    ));
}

/// Runs `ipcworks recv`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ep: Endpoint = args.endpoint.parse()?;
    let opts = Options {
        binary: args.binary,
        recv_type: args.msg_type,
        max_message: args.max_message,
        create_queue: args.create,
        ..Options::default()
    };
    let deadline = args.timeout.map(|t| std::time::Instant::now() + t);
    remove_on_signal(&ep, true);
    let mut rx = open(&ep, &opts)?;
    if let Some(addr) = rx.local_endpoint() {
        // The real port when asked for port 0, for scripts to read.
        eprintln!("ipcworks recv: listening on {addr}");
    }
    let stdout = std::io::stdout();
    let mut got = 0u64;
    while args.count.is_none_or(|n| got < n) {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let msg = match rx.recv(left) {
            Ok((m, _)) => m,
            Err(Error::Disconnected) if args.count.is_none() => break,
            Err(Error::Disconnected) => anyhow::bail!(
                "{ep}: the sender closed after {got} of {} messages",
                args.count.unwrap_or(0)
            ),
            Err(e) => return Err(e).with_context(|| format!("receiving from {ep}")),
        };
        let mut out = stdout.lock();
        out.write_all(&msg)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
            .context("writing to stdout")?;
        got += 1;
    }
    Ok(ExitCode::SUCCESS)
}
