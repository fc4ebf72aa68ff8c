//! `ipcworks send ENDPOINT [MESSAGE…]`: send messages to any endpoint.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use ipcworks::endpoint::{Endpoint, Meta, Options, open_sender};

/// Arguments of `ipcworks send`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ipcworks send tcp:127.0.0.1:7000 hello world     # two messages, one per argument
  printf 'a\\nb\\n' | ipcworks send unix:/tmp/s      # no MESSAGE: each stdin line is one message
  ipcworks send fifo:/tmp/f hi                      # waits for a reader; creates the FIFO (0600) if missing and removes it after
  ipcworks send --binary tcp:127.0.0.1:7000 blob   # length-prefixed frames instead of lines
  ipcworks send mq:jobs urgent -p 9              # -p: --priority

Byte streams (fifo:, unix:, tcp:, -) carry one line per message unless --binary.
fifo:PATH — whichever of send/recv comes first creates the FIFO and removes it when done.
unix:/tcp: — send connects to a listening recv/serve (or nc -l, socat).
mq:, queue:, sysv: — send creates the queue (0600) if it does not exist; it persists
until `ipcworks rm`, so the message waits for a receiver started later.")]
pub struct Args {
    /// Where to send: shm:NAME, queue:NAME, mq:NAME, sysv:KEY, fifo:PATH,
    /// unix:PATH, tcp:HOST:PORT or - (stdout).
    endpoint: String,
    /// Messages to send, one per argument; none: read lines from stdin.
    messages: Vec<String>,
    /// Byte streams carry length-prefixed frames instead of lines.
    #[arg(long)]
    binary: bool,
    /// Message priority (mq:, queue:).
    #[arg(short = 'p', long, default_value_t = 0)]
    priority: u32,
    /// Message type (sysv:), 1 or more.
    #[arg(long = "type", default_value_t = 1, allow_negative_numbers = true)]
    msg_type: i64,
    /// Largest message in bytes.
    #[arg(long)]
    max_message: Option<usize>,
}

/// Runs `ipcworks send`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ep: Endpoint = args.endpoint.parse()?;
    let opts = Options {
        binary: args.binary,
        max_message: args.max_message,
        ..Options::default()
    };
    let meta = Meta {
        priority: args.priority,
        msg_type: args.msg_type,
    };
    super::recv::remove_on_signal(&ep, false);
    let mut tx = open_sender(&ep, &opts).with_context(|| format!("opening {ep} for sending"))?;
    if args.messages.is_empty() {
        let stdin = std::io::stdin();
        for line in stdin.lock().split(b'\n') {
            let line = line.context("reading stdin")?;
            tx.send(&line, meta)
                .with_context(|| format!("sending to {ep}"))?;
        }
    } else {
        for m in &args.messages {
            tx.send(m.as_bytes(), meta)
                .with_context(|| format!("sending to {ep}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
