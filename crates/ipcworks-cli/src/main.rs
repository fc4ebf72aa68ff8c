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
    /// Run a command holding a named robust mutex, like flock(1).
    Lock(cmd::lock::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Lock(a) => cmd::lock::run(a),
    };
    exit::finish(result)
}
