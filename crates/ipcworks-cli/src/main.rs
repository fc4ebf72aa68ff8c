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
    /// Measure every IPC mechanism side by side between two real processes.
    Bench(cmd::bench::Args),
    /// Watch a concept happen between real threads and processes.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(a) => cmd::bench::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    };
    exit::finish(result)
}
