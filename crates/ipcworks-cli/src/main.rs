//! `ipcworks`: the command-line face of the ipcworks library.
//!
//! Argument parsing and printing only; the work lives in the libraries.
//! System calls live in the library; the lints in Cargo.toml keep it so.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod cmd;
mod exit;

/// Communication and synchronization between threads and processes on Linux.
#[derive(Debug, Parser)]
#[command(name = "ipcworks", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure every IPC mechanism side by side between two real processes.
    Bench(cmd::bench::Args),
    /// Watch a concept happen between real threads and processes.
    Demo(cmd::demo::Args),
    /// Show a process's memory by region: code, data, bss, heap, one stack per thread.
    Regions(cmd::regions::Args),
    /// List IPC objects: shared memory, semaphores, queues, FIFOs, sockets.
    Ls(cmd::ls::Args),
    /// Remove IPC objects by address, or all stale ones.
    Rm(cmd::rm::Args),
    /// Print a shell completion script (bash, zsh, fish, …).
    Completions(cmd::completions::Args),
    /// Run a command holding a named robust mutex, like flock(1).
    Lock(cmd::lock::Args),
    /// Send messages to any endpoint (args, or stdin lines).
    Send(cmd::send::Args),
    /// Receive messages from any endpoint, one line each on stdout.
    Recv(cmd::recv::Args),
    /// Serve many TCP or Unix clients at once (print or --echo).
    Serve(cmd::serve::Args),
    /// Bridge two endpoints: everything received on FROM is sent to TO.
    Relay(cmd::relay::Args),
    /// Named counting semaphores: create, wait (P), post (V), value, rm, and
    /// run a command holding a permit.
    Sem(cmd::sem::Args),
}

fn main() -> ExitCode {
    // Writing to a pipe whose reader is gone must fail with EPIPE (reported
    // as an error), never kill us with SIGPIPE. Rust's runtime ignores
    // SIGPIPE already; we say so explicitly so it holds whatever the build.
    let _ = ipcworks::pipe::ignore_sigpipe();
    // A demo's child process (`ipcworks demo-child TOPIC ROLE ARGS…`,
    // started by `ipcworks demo`): parsed apart, so the internal
    // subcommand is in no help text and no completion script.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == cmd::demo::CHILD)
    {
        let args = cmd::demo::ChildArgs::parse_from(std::env::args_os().skip(1));
        return exit::quiet_on_closed_stdout(move || exit::finish(cmd::demo::run_child(args)));
    }
    let cli = parse();
    exit::quiet_on_closed_stdout(move || run(cli))
}

/// The command line's definition, every `--help` ending with the exit codes.
pub fn command() -> clap::Command {
    exit::with_exit_codes(Cli::command())
}

/// Parses the arguments; wrong usage exits 2 with clap's message.
fn parse() -> Cli {
    let mut matches = command().get_matches();
    Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}

fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Bench(a) => cmd::bench::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Regions(a) => cmd::regions::run(a),
        Command::Ls(a) => cmd::ls::run(a),
        Command::Rm(a) => cmd::rm::run(a),
        Command::Completions(a) => cmd::completions::run(a),
        Command::Lock(a) => cmd::lock::run(a),
        Command::Send(a) => cmd::send::run(a),
        Command::Recv(a) => cmd::recv::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Relay(a) => cmd::relay::run(a),
        Command::Sem(a) => cmd::sem::run(a),
    };
    exit::finish(result)
}
