//! `ipcworks relay FROM TO`: a bridge between any two endpoints.

use std::process::ExitCode;

use anyhow::Context;
use ipcworks::Error;
use ipcworks::endpoint::{Endpoint, Options, open_sender};
use ipcworks::message::{Deadline, Meta};

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
A message TO refuses (too large, …) goes back into FROM when FROM is a queue
(mq:, queue:, sysv:; with its priority or type, behind the others of its kind),
and the relay stops with the error.

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
    let (mut rx, local) = super::recv::open(&from, &opts, "ipcworks relay")?;
    if let Some(addr) = local {
        eprintln!("ipcworks relay: listening on {addr}");
    }
    let mut tx = open_sender(&to, &opts).with_context(|| format!("opening {to} for sending"))?;
    let mut n = 0u64;
    while args.count.is_none_or(|c| n < c) {
        let (msg, meta) = match rx.recv_until(Deadline::Never) {
            Ok(x) => x,
            Err(Error::Disconnected) => break,
            Err(e) => return Err(e).with_context(|| format!("receiving from {from}")),
        };
        if let Err(e) = tx.send_with(&msg, meta) {
            let back = give_back(&from, &opts, &msg, meta);
            return Err(e).with_context(|| format!("sending to {to}{back}"));
        }
        n += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts a message TO refused back into FROM when FROM is a queue, so that
/// nothing taken from it is lost; says what happened, for the error.
fn give_back(from: &Endpoint, opts: &Options, msg: &[u8], meta: Meta) -> String {
    if !matches!(
        from,
        Endpoint::Mq(_) | Endpoint::Queue(_) | Endpoint::Sysv(_)
    ) {
        return String::new();
    }
    // The room the message left, unless another sender took it meanwhile.
    let deadline = Deadline::after(std::time::Duration::from_secs(5));
    match open_sender(from, opts).and_then(|mut q| q.send_until(msg, meta, deadline)) {
        Ok(()) => format!(" (the message went back into {from})"),
        Err(e) => format!(" (the message could not go back into {from}: {e})"),
    }
}
