//! `ipcworks relay FROM TO`: a bridge between any two endpoints.

use std::process::ExitCode;

use anyhow::Context;
use ipcworks::endpoint::relay::{Dest, Relay, Source};
use ipcworks::endpoint::{Endpoint, Options};

/// Arguments of `ipcworks relay`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!("Examples:
  ipcworks relay fifo:/tmp/in tcp:127.0.0.1:7000   # every line written to the FIFO goes to the TCP server
  ipcworks relay unix:/tmp/s shm:jobs              # listen on a Unix socket, feed a shared-memory channel
  ipcworks relay mq:jobs -                         # print a POSIX queue's messages on stdout
  ipcworks relay zenoh:site/jobs queue:jobs --listen tcp/0.0.0.0:7447     # on host B: the far relay
  ipcworks relay queue:jobs zenoh:site/jobs --connect tcp/HOST-B:7447      # on host A: move queue jobs to B

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
To another host (a relay pair, queue: to zenoh: on one host, zenoh: to queue:,
mq: or sysv: on the other): the near relay sends up to --window claimed
messages at a time and removes them only once the far relay replied that its
queue holds them; the far queue remembers the ids it got, so either relay can be
killed (kill -9) at any moment and restarted, or the link cut for a while:
every message arrives EXACTLY ONCE, in order within its priority. While the far
side is away the near relay waits and sends again; nothing piles up in either
relay: the source queue fills and its senders block. Into mq: or sysv: (no ids
there) the far relay keeps the ids in a small queue relay-state-…; a far relay
killed between the kernel's send and that record delivers that one message
twice (at most one per kill). A second far relay on the same key is refused.
--publish: publish plain Zenoh samples instead (for `ipcworks recv zenoh:…` or
any Zenoh program): no acknowledgement, a message in flight when the link drops
is lost.
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
    /// queue: to zenoh: only: publish each message as a plain Zenoh sample
    /// to whoever subscribes (ipcworks recv zenoh:…, any Zenoh program),
    /// instead of the exactly-once relay pair. A message leaves the queue
    /// once published; one in flight when a link drops is lost.
    #[arg(long)]
    publish: bool,
    /// Relay pair (queue: to zenoh:): messages in flight at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    window: usize,
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
    #[cfg(feature = "zenoh")]
    match (&from, &to) {
        (Endpoint::Queue(_), Endpoint::Zenoh(key)) if !args.publish => {
            return pair::near(&from, key, &opts, &args);
        }
        (Endpoint::Zenoh(key), Endpoint::Queue(_) | Endpoint::Mq(_) | Endpoint::Sysv(_)) => {
            return pair::far(key, &to, &opts, &args);
        }
        _ => {}
    }
    if args.publish && !matches!((&from, &to), (Endpoint::Queue(_), Endpoint::Zenoh(_))) {
        anyhow::bail!(ipcworks::Error::InvalidConfig {
            what: "options".into(),
            reason: "--publish applies to a relay from queue: to zenoh: only".into(),
        });
    }
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
    let dest = Dest::open(&to, &opts).with_context(|| format!("opening {to} for sending"))?;
    match Relay::new(source, dest).run(args.count) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(f) if f.sending => Err(anyhow::anyhow!("sending to {to}: {f}")),
        Err(f) => Err(anyhow::anyhow!("receiving from {from}: {f}")),
    }
}

/// The relay pair over Zenoh (the work is in `ipcworks::bridge::relay`):
/// opening, and one stderr line per event.
#[cfg(feature = "zenoh")]
mod pair {
    use std::process::ExitCode;
    use std::sync::Arc;

    use anyhow::Context;
    use ipcworks::bridge::relay::{Event, Events, RelayOptions};
    use ipcworks::endpoint::relay::pair;
    use ipcworks::endpoint::{Endpoint, Options};

    fn events() -> Events {
        Arc::new(|e: &Event| eprintln!("ipcworks relay: {e}"))
    }

    fn relay_options(opts: &Options, args: &super::Args) -> RelayOptions {
        let mut r = RelayOptions {
            window: args.window.max(1),
            ..RelayOptions::default()
        };
        if let Some(m) = opts.max_message {
            r.max_message = m;
        }
        r
    }

    pub fn near(
        from: &Endpoint,
        key: &str,
        opts: &Options,
        args: &super::Args,
    ) -> anyhow::Result<ExitCode> {
        let mut relay = pair::near(from, key, opts, relay_options(opts, args), events())
            .map_err(|e| super::super::recv::not_found_hint(from, opts, e))
            .with_context(|| format!("opening the relay from {from} to zenoh:{key}"))?;
        eprintln!("ipcworks relay: relaying {from} to the far relay on zenoh:{key}");
        relay
            .run(args.count)
            .with_context(|| format!("relaying {from} to zenoh:{key}"))?;
        Ok(ExitCode::SUCCESS)
    }

    pub fn far(
        key: &str,
        to: &Endpoint,
        opts: &Options,
        args: &super::Args,
    ) -> anyhow::Result<ExitCode> {
        let mut relay = pair::far(key, to, opts, relay_options(opts, args), events())
            .with_context(|| format!("opening the relay from zenoh:{key} to {to}"))?;
        let s = relay.session();
        let listening = s.listening();
        let listening = if listening.is_empty() {
            String::new()
        } else {
            format!(", listening on {}", listening.join(", "))
        };
        eprintln!(
            "ipcworks relay: subscribed to zenoh:{key} as Zenoh peer {}{listening}",
            s.zid()
        );
        relay
            .run(args.count)
            .with_context(|| format!("relaying zenoh:{key} to {to}"))?;
        Ok(ExitCode::SUCCESS)
    }
}
