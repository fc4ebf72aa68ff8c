//! `ipcworks recv ENDPOINT…`: receive messages from any endpoint (or from
//! several at once, whatever arrives first) and print each as a line (C
//! escapes where needed), a JSON record or NUL-ended raw bytes.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ipcworks::Error;
use ipcworks::endpoint::multi::MultiReceiver;
use ipcworks::endpoint::{Endpoint, Options, open_receiver_listening};
use ipcworks::message::{Deadline, MessageReceiver, Meta};

use super::format::{Format, MetaField, escape_into, json_record};

/// Arguments of `ipcworks recv`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!("Examples:
  ipcworks recv fifo:/tmp/f                  # creates the FIFO (0600) if missing, prints lines until every writer closed, removes it if it created it
  ipcworks recv unix:/tmp/s --count 3        # listens (socket file 0600), prints 3 messages, exits
  ipcworks recv tcp:127.0.0.1:7000 --timeout 5   # exit code 124 if 5 s pass first
  ipcworks recv tcp:127.0.0.1:0              # any free port: stderr says `listening on tcp:127.0.0.1:PORT`
  ipcworks recv mq:jobs -n 1 -t 2s           # -n: --count, -t: --timeout; mq:jobs must exist
  ipcworks recv queue:jobs --create          # make the queue if missing (it persists until `ipcworks rm`)
  ipcworks recv sysv:42 --type -3 -n 1       # the lowest type up to 3 first, as msgrcv(2) does
  ipcworks recv mq:jobs --json -n 10         # one JSON record per message, with its priority
  ipcworks recv queue:jobs -0 | xargs -0 -n1 printf '%s\\n'   # raw, each message ended by NUL
  ipcworks recv - --binary                   # length-prefixed frames from stdin
  ipcworks recv shm:a queue:b mq:c --tag     # whatever arrives first, each line prefixed `ENDPOINT<TAB>`
  ipcworks recv shm:a shm:b --json -n 10     # 10 messages in all; the JSON record names the endpoint
  ipcworks recv 'zenoh:demo/**' --listen tcp/127.0.0.1:7447   # every sample under demo/, from peers that connect

Output: one line per message. A message that would break its line (a newline, a
backslash, another control character, invalid UTF-8) is printed with C escapes
(\\n, \\\\, \\xHH), and stderr says so once; `ipcworks send -e` reads such lines
back. --json and -0/--null print every message exactly (-0 stops with an error at
a message holding a NUL byte, after printing it: use --json for those).

", super::format::json_schema!(), "

Byte streams (fifo:, unix:, tcp:, -) carry one line per message unless --binary.
unix:/tcp: — recv listens and reads one client at a time, each to its end; stderr
says where (`ipcworks recv: listening on ADDR`, with the real port for port 0).

Several endpoints: recv waits on all of them at once (a WaitSet: shm: and queue:
through helper threads, mq: and streams through their descriptors; sysv:, which
has no descriptor, is looked at every 10 ms) and prints whatever arrives first.
When one ends (its sender closed), the others go on; recv ends when all have.
-n counts messages across all of them, -t bounds the whole run.

", super::zenoh::help!()))]
pub struct Args {
    /// Where to receive from: shm:NAME, queue:NAME, mq:NAME, sysv:KEY,
    /// fifo:PATH, unix:PATH, tcp:HOST:PORT, zenoh:KEYEXPR or - (stdin);
    /// several at once print whatever arrives first.
    #[arg(required = true, value_name = "ENDPOINT")]
    endpoints: Vec<String>,
    /// Prefix each line with its endpoint and a tab (`shm:a<TAB>hello`;
    /// with -0, before the raw bytes; --json names it in the record
    /// anyway).
    #[arg(long)]
    tag: bool,
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
    /// Print each message as a JSON record (see below): bytes and
    /// priority or type kept exactly.
    #[arg(long, conflicts_with = "null")]
    json: bool,
    /// Print each message raw, followed by a NUL byte (like find -print0).
    #[arg(short = '0', long)]
    null: bool,
    #[command(flatten)]
    zenoh: super::zenoh::ZenohArgs,
}

/// Opens `ep` for receiving, with the address it listens on (`tcp:`,
/// `unix:`); a missing queue's error says how to make it. A `zenoh:`
/// receiver says on stderr, as `who`, when it is subscribed and which
/// peers connect.
pub(crate) fn open(
    ep: &Endpoint,
    opts: &Options,
    who: &'static str,
) -> anyhow::Result<(Box<dyn MessageReceiver>, Option<Endpoint>)> {
    #[cfg(feature = "zenoh")]
    if let Endpoint::Zenoh(key) = ep {
        let rx = super::zenoh::open_receiver(key, opts, who)
            .with_context(|| format!("opening {ep} for receiving"))?;
        return Ok((rx, None));
    }
    let _ = who;
    open_receiver_listening(ep, opts)
        .map_err(|e| not_found_hint(ep, opts, e))
        .with_context(|| format!("opening {ep} for receiving"))
}

/// `e`, saying how to make the queue when `ep` is a queue that does not
/// exist.
pub(crate) fn not_found_hint(ep: &Endpoint, opts: &Options, e: Error) -> anyhow::Error {
    let queue = matches!(ep, Endpoint::Mq(_) | Endpoint::Queue(_) | Endpoint::Sysv(_));
    match e {
        Error::NotFound { .. } if queue && !opts.create_queue => {
            anyhow::anyhow!("{e} (--create makes it; or send to it first, which creates it)")
        }
        e => e.into(),
    }
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
    let _ = ipcworks::process::remove_on_terminate(&[(kind, &registry::path_name(path))]);
}

/// Writes received messages to stdout in one [`Format`].
struct Printer {
    format: Format,
    endpoint: String,
    field: MetaField,
    /// `--tag`: each line starts with the endpoint and a tab.
    tag: bool,
    /// Whether stderr was told that escapes are in use.
    told: bool,
    line: Vec<u8>,
}

impl Printer {
    fn new(ep: &Endpoint, format: Format, tag: bool) -> Self {
        Printer {
            format,
            tag,
            endpoint: ep.to_string(),
            field: match ep {
                Endpoint::Mq(_) | Endpoint::Queue(_) => MetaField::Priority,
                Endpoint::Sysv(_) => MetaField::Type,
                Endpoint::Zenoh(_) => MetaField::Both,
                _ => MetaField::None,
            },
            told: false,
            line: Vec::new(),
        }
    }

    /// Prints message number `n` (from 1).
    fn print(&mut self, msg: &[u8], meta: Meta, n: u64) -> anyhow::Result<()> {
        self.line.clear();
        if self.tag && self.format != Format::Json {
            self.line.extend_from_slice(self.endpoint.as_bytes());
            self.line.push(b'\t');
        }
        match self.format {
            Format::Lines { .. } => {
                if escape_into(msg, &mut self.line) && !self.told {
                    self.told = true;
                    eprintln!(
                        "ipcworks recv: a message held a newline, backslash, control character or \
                         invalid UTF-8; such messages are printed with C escapes (\\n, \\\\, \\xHH) \
                         that `ipcworks send -e` reads back; --json or -0 print them raw"
                    );
                }
                self.line.push(b'\n');
            }
            Format::Json => {
                let r = json_record(
                    &self.endpoint,
                    self.field,
                    (meta.priority, meta.msg_type),
                    msg,
                );
                self.line.extend_from_slice(r.as_bytes());
                self.line.push(b'\n');
            }
            Format::Null => {
                self.line.extend_from_slice(msg);
                self.line.push(0);
            }
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&self.line)
            .and_then(|_| out.flush())
            .context("writing to stdout")?;
        if self.format == Format::Null && msg.contains(&0) {
            anyhow::bail!(
                "message {n} from {} holds a NUL byte, so under -0 it reads as several; it was \
                 printed raw and recv stopped there (--json keeps such messages whole)",
                self.endpoint
            );
        }
        Ok(())
    }
}

/// Runs `ipcworks recv`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let eps = args
        .endpoints
        .iter()
        .map(|e| e.parse::<Endpoint>())
        .collect::<Result<Vec<_>, _>>()?;
    let opts = Options {
        binary: args.binary,
        recv_type: args.msg_type,
        max_message: args.max_message,
        create_queue: args.create,
        zenoh: args
            .zenoh
            .options(&eps.iter().collect::<Vec<_>>(), args.timeout)?,
        ..Options::default()
    };
    let deadline = Deadline::from_timeout(args.timeout);
    let format = Format::from_flags(args.json, args.null, false);
    if let [ep] = eps.as_slice() {
        return run_one(ep, &opts, deadline, format, &args);
    }
    run_many(&eps, &opts, deadline, format, &args)
}

/// One endpoint: receives until it ends (or `-n`, or `-t`).
fn run_one(
    ep: &Endpoint,
    opts: &Options,
    deadline: Deadline,
    format: Format,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    remove_on_signal(ep, true);
    let (mut rx, local) = open(ep, opts, "ipcworks recv")?;
    if let Some(addr) = local {
        // The real port when asked for port 0, for scripts to read.
        eprintln!("ipcworks recv: listening on {addr}");
    }
    let mut printer = Printer::new(ep, format, args.tag);
    let mut got = 0u64;
    while args.count.is_none_or(|n| got < n) {
        let (msg, meta) = match rx.recv_until(deadline) {
            Ok(m) => m,
            Err(Error::Disconnected) if args.count.is_none() => break,
            Err(Error::Disconnected) => anyhow::bail!(
                "{ep}: the sender closed after {got} of {} messages",
                args.count.unwrap_or(0)
            ),
            Err(e) => return Err(e).with_context(|| format!("receiving from {ep}")),
        };
        got += 1;
        printer.print(&msg, meta, got)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Several endpoints: whatever arrives first, until all have ended (or
/// `-n` messages in all, or `-t`).
fn run_many(
    eps: &[Endpoint],
    opts: &Options,
    deadline: Deadline,
    format: Format,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    for ep in eps {
        remove_on_signal(ep, true);
    }
    // The endpoint whose opening failed, for the error's context.
    let mut failed: Option<Endpoint> = None;
    let (mut rx, local) = MultiReceiver::open(eps, opts, |ep, e| {
        failed = Some(ep.clone());
        e
    })
    .map_err(|e| match &failed {
        Some(ep) => {
            let e = match e {
                // As for one endpoint (`open`).
                Error::NotFound { .. } if is_queue(ep) && !opts.create_queue => anyhow::anyhow!(
                    "{e} (--create makes it; or send to it first, which creates it)"
                ),
                e => e.into(),
            };
            e.context(format!("opening {ep} for receiving"))
        }
        None => anyhow::Error::from(e).context("waiting on several endpoints"),
    })?;
    for addr in local.into_iter().flatten() {
        eprintln!("ipcworks recv: listening on {addr}");
    }
    let mut printers: Vec<Printer> = eps
        .iter()
        .map(|ep| Printer::new(ep, format, args.tag))
        .collect();
    let mut got = 0u64;
    while args.count.is_none_or(|n| got < n) {
        let (i, msg, meta) = match rx.recv_until(deadline) {
            Ok((i, Ok((msg, meta)))) => (i, msg, meta),
            Ok((i, Err(e))) => {
                return Err(e).with_context(|| format!("receiving from {}", eps[i]));
            }
            Err(Error::Disconnected) if args.count.is_none() => break,
            Err(Error::Disconnected) => anyhow::bail!(
                "every sender closed after {got} of {} messages",
                args.count.unwrap_or(0)
            ),
            Err(e) => return Err(e).context("receiving"),
        };
        got += 1;
        printers[i].print(&msg, meta, got)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn is_queue(ep: &Endpoint) -> bool {
    matches!(ep, Endpoint::Mq(_) | Endpoint::Queue(_) | Endpoint::Sysv(_))
}
