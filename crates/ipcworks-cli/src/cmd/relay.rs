//! `ipcworks relay FROM TO`: a bridge between any two endpoints.

use std::process::ExitCode;

use anyhow::Context;
use ipcworks::endpoint::relay::{Dest, Relay, Source};
use ipcworks::endpoint::{Endpoint, Options, open_sender};

/// Arguments of `ipcworks relay`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!("Examples:
  ipcworks relay fifo:/tmp/in tcp:127.0.0.1:7000   # every line written to the FIFO goes to the TCP server
  ipcworks relay unix:/tmp/s shm:jobs              # listen on a Unix socket, feed a shared-memory channel
  ipcworks relay mq:jobs -                         # print a POSIX queue's messages on stdout
  ipcworks relay queue:jobs zenoh:site/jobs --connect tcp/FAR-HOST:7447   # feed a queue to another host

FROM is opened as recv would open it (a queue must exist unless --create), TO as
send would (a missing queue is created). Stops when FROM's stream
ends (or after --count messages); priorities and types are carried across.
A relay to zenoh: opens its publisher (waiting for a subscriber) before it takes
anything from FROM, so a failure there leaves FROM's messages where they are.

Store and forward: from a native queue (queue:) a message is taken without
being removed, sent to TO, and removed only once TO accepted it. A relay killed
at any moment (even kill -9) loses nothing: restarted, it sends the message it
held again, and a native queue TO (queue:) recognises it by its id and keeps
one copy: queue to queue is EXACTLY ONCE. Into other kinds of TO, a kill between
TO's acceptance and the removal can deliver that one message twice. A message
TO refuses (too large, …) stays first in FROM, and the relay stops with the
error.
From POSIX (mq:) and System V (sysv:) queues the kernel removes a message when
it is received and has no peek-and-acknowledge: ONE MESSAGE IN THE RELAY'S HANDS
WHEN IT IS KILLED CAN BE LOST (at most one per kill). A message TO refuses goes
back into FROM (with its priority or type, behind the others of its kind).

", super::zenoh::help!()))]
pub struct Args {
    /// Where messages come from.
    from: String,
    /// Where they go.
    to: String,
    /// Stop after N messages.
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Byte streams on both sides carry length-prefixed frames.
    #[arg(long)]
    binary: bool,
    /// Largest message in bytes.
    #[arg(long)]
    max_message: Option<usize>,
    /// Create FROM if it is a queue (mq:, queue:, sysv:) that does not
    /// exist, as `recv --create` does.
    #[arg(long)]
    create: bool,
    #[command(flatten)]
    zenoh: super::zenoh::ZenohArgs,
}

/// Runs `ipcworks relay`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let from: Endpoint = args.from.parse()?;
    let to: Endpoint = args.to.parse()?;
    let opts = Options {
        binary: args.binary,
        max_message: args.max_message,
        create_queue: args.create,
        zenoh: args.zenoh.options(&[&from, &to], None)?,
        ..Options::default()
    };
    super::recv::remove_on_signal(&from, true);
    super::recv::remove_on_signal(&to, false);
    let source = match &from {
        // A native queue is taken from in two phases (see relay::Source).
        Endpoint::Queue(_) => Source::open(&from, &opts)
            .map_err(|e| super::recv::not_found_hint(&from, &opts, e))
            .with_context(|| format!("opening {from} for receiving"))?,
        _ => {
            let (rx, local) = super::recv::open(&from, &opts, "ipcworks relay")?;
            if let Some(addr) = local {
                eprintln!("ipcworks relay: listening on {addr}");
            }
            Source::receiver(rx, &from, &opts)
        }
    };
    if source.recovered() > 0 {
        eprintln!(
            "ipcworks relay: {} message(s) a killed process had taken from {from} are back in \
             line",
            source.recovered()
        );
    }
    let dest = match &to {
        Endpoint::Queue(_) => Dest::open(&to, &opts),
        _ => open_sender(&to, &opts).map(Dest::Sender),
    }
    .with_context(|| format!("opening {to} for sending"))?;
    match Relay::new(source, dest).run(args.count) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(f) if f.sending => Err(anyhow::anyhow!("sending to {to}: {f}")),
        Err(f) => Err(anyhow::anyhow!("receiving from {from}: {f}")),
    }
}
