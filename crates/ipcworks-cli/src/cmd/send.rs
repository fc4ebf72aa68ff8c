//! `ipcworks send ENDPOINT [MESSAGE…]`: send messages to any endpoint, from
//! arguments or stdin (lines, C escapes with `-e`, JSON records, or
//! NUL-separated raw bytes).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ipcworks::endpoint::{Endpoint, Options, open_sender};
use ipcworks::message::{Deadline, Meta};

use super::format::{Format, read_messages, unescape};

/// Arguments of `ipcworks send`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!("Examples:
  ipcworks send tcp:127.0.0.1:7000 hello world     # two messages, one per argument
  printf 'a\\nb\\n' | ipcworks send unix:/tmp/s      # no MESSAGE: each stdin line is one message
  ipcworks send fifo:/tmp/f hi                      # waits for a reader; creates the FIFO (0600) if missing and removes it after
  ipcworks send --binary tcp:127.0.0.1:7000 blob   # length-prefixed frames instead of lines
  ipcworks send mq:jobs urgent -p 9                 # -p: --priority
  ipcworks send -e mq:jobs 'two\\nlines'            # C escapes, as echo -e and printf %b read them
  ipcworks recv mq:a --json | ipcworks send --json mq:b   # records: bytes and priorities kept
  find . -print0 | ipcworks send -0 queue:files     # NUL-separated, raw
  ipcworks send zenoh:demo/greeting hi --connect tcp/127.0.0.1:7447   # waits for a subscriber, then publishes

Stdin formats: lines (raw; with -e/--escapes C escapes \\n, \\\\, \\t, \\xHH, \\0NNN,
\\uHHHH … are read, and an unknown escape is an error), --json (the records
`ipcworks recv --json` prints; see `ipcworks recv --help`: priority and type come
from the record when it has them, else from -p/--type), -0/--null (each message
ended by a NUL byte; a last one without it counts too).

Byte streams (fifo:, unix:, tcp:, -) carry one line per message unless --binary.
fifo:PATH — whichever of send/recv comes first creates the FIFO and removes it when done.
unix:/tcp: — send connects to a listening recv/serve (or nc -l, socat).
mq:, queue:, sysv: — send creates the queue (0600) if it does not exist; it persists
until `ipcworks rm`, so the message waits for a receiver started later.

", super::zenoh::help!()))]
pub struct Args {
    /// Where to send: shm:NAME, queue:NAME, mq:NAME, sysv:KEY, fifo:PATH,
    /// unix:PATH, tcp:HOST:PORT, zenoh:KEYEXPR or - (stdout).
    endpoint: String,
    /// Messages to send, one per argument; none: read stdin.
    messages: Vec<String>,
    /// Byte streams carry length-prefixed frames instead of lines.
    #[arg(long)]
    binary: bool,
    /// Message priority (mq:, queue:, zenoh:).
    #[arg(short = 'p', long, default_value_t = 0)]
    priority: u32,
    /// Message type (sysv:, zenoh:), 1 or more [default: 1 for sysv:].
    #[arg(long = "type", allow_negative_numbers = true)]
    msg_type: Option<i64>,
    /// Largest message in bytes.
    #[arg(long)]
    max_message: Option<usize>,
    /// Read C escapes in MESSAGEs and stdin lines (\n, \\, \t, \xHH, …).
    #[arg(short = 'e', long)]
    escapes: bool,
    /// Read stdin as JSON records, one per line (as `recv --json` prints).
    #[arg(long, conflicts_with_all = ["null", "escapes", "messages"])]
    json: bool,
    /// Read stdin as messages each ended by a NUL byte (as `recv -0` prints).
    #[arg(short = '0', long, conflicts_with_all = ["escapes", "messages"])]
    null: bool,
    /// Give up after DURATION (`5`, `0.5`, `200ms`): waiting for room in a
    /// queue (exit code 124), for a zenoh: subscriber (default 5 s) or peer.
    #[arg(short = 't', long, value_name = "DURATION", value_parser = super::duration)]
    timeout: Option<Duration>,
    #[command(flatten)]
    zenoh: super::zenoh::ZenohArgs,
}

/// Runs `ipcworks send`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ep: Endpoint = args.endpoint.parse()?;
    let opts = Options {
        binary: args.binary,
        max_message: args.max_message,
        zenoh: args.zenoh.options(&[&ep], args.timeout)?,
        ..Options::default()
    };
    // Type 0 goes out as type 1 on sysv:, and a zenoh: sample with the
    // default metadata goes out plain.
    let meta = Meta {
        priority: args.priority,
        msg_type: args.msg_type.unwrap_or(0),
    };
    let deadline = Deadline::from_timeout(args.timeout);
    super::recv::remove_on_signal(&ep, false);
    let mut tx = open_sender(&ep, &opts).with_context(|| format!("opening {ep} for sending"))?;
    if args.messages.is_empty() {
        let format = Format::from_flags(args.json, args.null, args.escapes);
        read_messages(std::io::stdin().lock(), format, |msg, record| {
            let meta = match record {
                Some(r) => Meta {
                    priority: r.priority.unwrap_or(meta.priority),
                    msg_type: r.msg_type.unwrap_or(meta.msg_type),
                },
                None => meta,
            };
            tx.send_until(msg, meta, deadline)
                .with_context(|| format!("sending to {ep}"))
        })?;
    } else {
        for (i, m) in args.messages.iter().enumerate() {
            let msg = if args.escapes {
                unescape(m.as_bytes()).map_err(|why| anyhow::anyhow!("MESSAGE {}: {why}", i + 1))?
            } else {
                m.as_bytes().to_vec()
            };
            tx.send_until(&msg, meta, deadline)
                .with_context(|| format!("sending to {ep}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
