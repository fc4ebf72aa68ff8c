//! `ipcworks relay FROM TO`: a bridge between any two endpoints.

use std::process::ExitCode;

use anyhow::Context;
use ipcworks::Error;
use ipcworks::endpoint::{Endpoint, Options, open_sender};
use ipcworks::message::Deadline;

/// Arguments of `ipcworks relay`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ipcworks relay fifo:/tmp/in tcp:127.0.0.1:7000   # every line written to the FIFO goes to the TCP server
  ipcworks relay unix:/tmp/s shm:jobs              # listen on a Unix socket, feed a shared-memory channel
  ipcworks relay mq:jobs -                         # print a POSIX queue's messages on stdout

FROM is opened as recv would open it (a queue must exist unless --create), TO as
send would (a missing queue is created). Stops when FROM's stream
ends (or after --count messages); priorities and types are carried across.")]
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
}

/// Runs `ipcworks relay`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let from: Endpoint = args.from.parse()?;
    let to: Endpoint = args.to.parse()?;
    let opts = Options {
        binary: args.binary,
        max_message: args.max_message,
        create_queue: args.create,
        ..Options::default()
    };
    super::recv::remove_on_signal(&from, true);
    super::recv::remove_on_signal(&to, false);
    let (mut rx, local) = super::recv::open(&from, &opts)?;
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
        tx.send_with(&msg, meta)
            .with_context(|| format!("sending to {to}"))?;
        n += 1;
    }
    Ok(ExitCode::SUCCESS)
}
