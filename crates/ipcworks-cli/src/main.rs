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
    /// Named counting semaphores: create, wait (P), post (V), value, rm, and
    /// run a command holding a permit.
    Sem(cmd::sem::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Sem(a) => cmd::sem::run(a),
    };
    exit::finish(result)
}
