//! `ipcworks`: the command-line face of the ipcworks library.
//!
//! Argument parsing and printing only; the work lives in the libraries.
#![deny(unsafe_op_in_unsafe_fn)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod exit;

/// Communication and synchronization between threads and processes on Linux.
#[derive(Debug, Parser)]
#[command(name = "ipcworks", version, about, long_about = None)]
#[command(after_help = exit::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch a concept happen between real threads and processes.
    Demo(cmd::demo::Args),
    /// Send messages to any endpoint (args, or stdin lines).
    Send(cmd::send::Args),
    /// Receive messages from any endpoint, one line each on stdout.
    Recv(cmd::recv::Args),
    /// Serve many TCP or Unix clients at once (print or --echo).
    Serve(cmd::serve::Args),
    /// Bridge two endpoints: everything received on FROM is sent to TO.
    Relay(cmd::relay::Args),
}

fn main() -> ExitCode {
    // Writing to a pipe whose reader is gone must fail with EPIPE (reported
    // as an error), never kill us with SIGPIPE. Rust's runtime ignores
    // SIGPIPE already; we say so explicitly so it holds whatever the build.
    let _ = ipcworks::pipe::ignore_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Send(a) => cmd::send::run(a),
        Command::Recv(a) => cmd::recv::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Relay(a) => cmd::relay::run(a),
    };
    exit::finish(result)
}
