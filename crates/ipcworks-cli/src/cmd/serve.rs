//! `ipcworks serve ENDPOINT`: a TCP or Unix server for many clients at once.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ipcworks::endpoint::Endpoint;
use ipcworks::frame::Framing;
use ipcworks::socket::{Peer, ServerOptions};

/// Arguments of `ipcworks serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ipcworks serve tcp:127.0.0.1:7000 --echo          # then: echo hi | nc -N 127.0.0.1 7000
  ipcworks serve unix:/tmp/s                         # print each received line; socket file 0600, removed on exit
  ipcworks serve tcp:0.0.0.0:7000 --max-clients 100 --idle 30 --max-message 4096
  ipcworks serve unix:/tmp/s --echo --allow-uid 1000

Line mode by default (nc, socat); --binary for length-prefixed frames. A client that
sends an over-long or truncated message, or stays idle, is dropped with one line on
stderr; the others go on. Ctrl-C (SIGINT) or SIGTERM stops it cleanly.
The bound address is printed on stderr as `listening on ADDR` (handy with port 0).")]
pub struct Args {
    /// tcp:HOST:PORT or unix:PATH.
    endpoint: String,
    /// Send every message back to its client instead of printing it.
    #[arg(long)]
    echo: bool,
    /// Most clients at once (more are refused).
    #[arg(long, default_value_t = 1024)]
    max_clients: usize,
    /// Drop a client idle for DURATION (`60`, `90s`, `5m`; 0: never).
    #[arg(long, default_value = "60", value_name = "DURATION", value_parser = super::duration)]
    idle: Duration,
    /// Largest message in bytes; a longer one drops the client.
    #[arg(long, default_value_t = 65536)]
    max_message: usize,
    /// Length-prefixed frames instead of lines.
    #[arg(long)]
    binary: bool,
    /// Unix: accept only clients running as this uid (repeatable).
    #[arg(long = "allow-uid")]
    allow_uid: Vec<u32>,
}

/// Runs `ipcworks serve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ep: Endpoint = args.endpoint.parse()?;
    let mut opts = ServerOptions::new();
    opts.max_connections(args.max_clients)
        .max_message(args.max_message)
        .idle_timeout((!args.idle.is_zero()).then_some(args.idle))
        .framing(if args.binary {
            Framing::Frames
        } else {
            Framing::Lines
        })
        .allowed_uids((!args.allow_uid.is_empty()).then(|| args.allow_uid.clone()))
        // Each client is a descriptor: allow as many as the hard limit permits.
        .raise_fd_limit(true);
    let mut server =
        ipcworks::endpoint::bind_server(&ep, &opts).with_context(|| format!("serving on {ep}"))?;
    server.shutdown_on_signals()?;
    match server.local_addr() {
        Some(a) => eprintln!("ipcworks serve: listening on tcp:{a}"),
        None => eprintln!("ipcworks serve: listening on {ep}"),
    }
    let echo = args.echo;
    let binary = args.binary;
    let stats = server.run(move |_peer: &Peer, msg: &[u8]| {
        if echo {
            return Some(msg.to_vec());
        }
        let mut out = std::io::stdout().lock();
        if binary {
            let _ = writeln!(out, "{}", String::from_utf8_lossy(msg).escape_debug());
        } else {
            let _ = out.write_all(msg).and_then(|_| out.write_all(b"\n"));
        }
        let _ = out.flush();
        None
    })?;
    eprintln!(
        "ipcworks serve: stopped ({} clients, {} refused, {} dropped, {} messages)",
        stats.accepted, stats.refused, stats.dropped, stats.messages
    );
    Ok(ExitCode::SUCCESS)
}
